"""100 rich containers through rich-runtime (runc, busybox without Python, the portable runtime),
started in parallel, idle 30 s, stopped in parallel: all up, all stopped, nothing left, and the view
server answers every container's reads throughout (each app reads /proc/meminfo every 3 s)."""

import json
import os
import select
import shutil
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import containers as ct
from tests.support.wait import wait_until

N = 100
IDLE = 30.0
MEMORY = 128 * 1024 * 1024
APP = ("trap 'exit 0' TERM; while :; do grep MemTotal /proc/meminfo >> /shared/views 2>> /shared/errors; "
       "sleep 3 & wait $!; done")


@pytest.fixture
def richenv(tmp_path, busybox_rootfs):
    if os.geteuid() != 0 or not ct.have("runc"):
        pytest.skip("needs root and runc")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse for the view server")
    if not os.access("/usr/bin/python3.11", os.X_OK):
        pytest.skip("Debian's /usr/bin/python3.11 is not installed (the portable runtime)")
    from runtime_hooks import portable
    from tests.integration.richcli.conftest import RichEnv
    runtime = str(tmp_path / "runtime")
    portable.build(runtime)
    views_base = "/run/richfaults-%s" % uuid.uuid4().hex[:8]  # short, world-traversable
    os.makedirs(views_base)
    env = RichEnv(str(tmp_path / "rich"), views_base, runtime)
    try:
        yield env
    finally:
        env.stop_services()
        shutil.rmtree(views_base, ignore_errors=True)


def control_status(pid):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect("/proc/%d/root/run/richinit/control.sock" % pid)
        s.sendall(b"status\n")
        buf = b""
        while b"\n" not in buf:
            data = s.recv(65536)
            if not data:
                break
            buf += data
        return json.loads(buf.split(b"\n", 1)[0])
    finally:
        s.close()


def _running(pid):
    """Whether pid is a process that has not exited (a zombie its parent has yet to reap has)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_hundred_rich_containers(tmp_path, richenv, busybox_rootfs):
    from lxcfs import api
    v = richenv.vars
    api.ensure_server_running(v["RICHINIT_VIEWS_MOUNT"], v["RICHINIT_VIEWS_REGISTRY"], v["RICHINIT_VIEWS_PIDFILE"])
    wrapper = os.path.join(richenv.bin, "rich-runtime")
    template = str(tmp_path / "template")
    cfg = ct.make_bundle(template, busybox_rootfs, ["/bin/sh", "-c", APP], readonly=True, memory=MEMORY,
                         annotations={"io.richinit.rich": "true", "io.richinit.services": "syslog",
                                      "io.richinit.lxcfs": "builtin", "io.richinit.grace": "2"})
    tag = "many%d" % os.getpid()
    boxes = []
    for i in range(N):
        b = tmp_path / ("b%03d" % i)
        shared = b / "shared"
        shared.mkdir(parents=True)
        c = json.loads(json.dumps(cfg))
        c["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared),
                            "options": ["rbind", "rw"]})
        (b / "config.json").write_text(json.dumps(c))
        boxes.append({"cid": "%s-%03d" % (tag, i), "bundle": str(b), "shared": str(shared)})

    def wrapped(*args, timeout=120):
        return subprocess.run([wrapper, *args], env=richenv.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def start(box):
        # The container keeps run's stdio: a file, or a pipe would never see its end.
        log = os.path.join(box["bundle"], "out")
        with open(log, "wb") as out:
            r = subprocess.run([wrapper, "run", "-d", "--bundle", box["bundle"], box["cid"]], env=richenv.env,
                               stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=120)
        assert r.returncode == 0, open(log).read()
        st = json.loads(wrapped("state", box["cid"]).stdout)
        box["pid"] = st["pid"]
        box["pidfd"] = os.pidfd_open(st["pid"])
        with open("/proc/%d/cgroup" % st["pid"]) as f:
            box["cgroups"] = ["/sys/fs/cgroup/%s%s" % (ctrl, path) for _, ctrl, path in
                              (line.rstrip("\n").split(":", 2) for line in f) if ctrl in ("pids", "memory")]

    pool = ThreadPoolExecutor(max_workers=8)
    cids = [b["cid"] for b in boxes]
    try:
        t0 = time.monotonic()
        list(pool.map(start, boxes))
        started = time.monotonic() - t0
        # All up: every PID 1 answers, the app runs and has read its view once.
        assert wait_until(lambda: all(os.path.exists(os.path.join(b["shared"], "views")) for b in boxes), 120)
        # Idle: every 5 s, every PID 1 answers its control socket (from the host) and every app's view reads work.
        worst, rounds = 0.0, 0
        end = time.monotonic() + IDLE
        while time.monotonic() < end:
            for b in boxes:
                t = time.monotonic()
                assert control_status(b["pid"])["app"]["state"] == "running", b["cid"]
                worst = max(worst, time.monotonic() - t)
            rounds += 1
            select.select([], [], [], max(0.0, min(5.0, end - time.monotonic())))
        for b in boxes:
            lines = open(os.path.join(b["shared"], "views")).read().splitlines()
            assert len(lines) >= IDLE / 3 - 2, (b["cid"], lines)
            assert {tuple(line.split()) for line in lines} == {("MemTotal:", str(MEMORY // 1024), "kB")}, \
                (b["cid"], set(lines))
            errors = os.path.join(b["shared"], "errors")
            assert not os.path.exists(errors) or os.path.getsize(errors) == 0, open(errors).read()
        # Stopped in parallel: every PID 1 gone within its grace + kill-grace.
        t0 = time.monotonic()
        list(pool.map(lambda b: wrapped("kill", b["cid"], "TERM"), boxes))
        for b in boxes:
            assert select.select([b["pidfd"]], [], [], 30)[0], "%s still running" % b["cid"]
            try:  # an init reparented to us (this process may be a subreaper) is reaped here
                os.waitpid(b["pid"], 0)
            except ChildProcessError:
                pass
        stopped = time.monotonic() - t0
        rm = list(pool.map(lambda b: wrapped("delete", b["cid"]), boxes))
        assert all(r.returncode == 0 for r in rm), [r.stderr for r in rm if r.returncode][:3]
        # Nothing left: no runtime state, no view registration, no process, no cgroup.
        listed = subprocess.run(["runc", "list", "-q"], capture_output=True, text=True).stdout.split()
        assert not set(cids) & set(listed)
        assert not [n for n in richenv.registered() if n.startswith(tag)], richenv.registered()
        assert wait_until(lambda: not [b for b in boxes if _running(b["pid"])], 10), \
            [b["cid"] for b in boxes if _running(b["pid"])]
        assert not [g for b in boxes for g in b["cgroups"] if os.path.exists(g)]
        out = os.environ.get("RICHINIT_FAULTS_RESULTS")
        if out:
            with open(out, "a") as f:
                f.write(json.dumps({"fault": "%d rich containers in parallel" % N, "start_all_s": round(started, 2),
                                    "stop_all_s": round(stopped, 2), "status_max_ms": round(worst * 1000, 2),
                                    "probe_rounds": rounds}) + "\n")
    finally:
        pool.shutdown(wait=True)
        for b in boxes:
            subprocess.run([wrapper, "delete", "--force", b["cid"]], env=richenv.env, capture_output=True)
            if "pidfd" in b:
                os.close(b["pidfd"])

