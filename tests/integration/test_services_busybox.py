"""Services under the real richinit as PID 1 of a runc container on a busybox image.

The image has no cron daemon config and no syslogd running: richinit's built-in
syslog and cron serve it. Everything is observed from the host: richctl through
`runc exec`, files the services write into a shared directory.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.support import containers as ct
from tests.support.wait import wait_until

pytestmark = pytest.mark.skipif(not ct.have("runc") or os.geteuid() != 0, reason="needs root and runc")

SERVICES = {
    # A TCP service with readiness; its stop is recorded so the order can be checked.
    "web.yaml": """
command: "trap 'echo web-stop >> /shared/order; exit 0' TERM; httpd -f -p 8080 -h /www & wait"
ready: {tcp: 8080}
stop_timeout: 3
""",
    "worker.yaml": """
command: "trap 'echo worker-stop >> /shared/order; exit 0' TERM; echo worker up; while true; do sleep 0.1; done"
requires: [web]
""",
    "flaky.yaml": """
command: "echo flaky starting; exit 3"
backoff: {initial: 0.05, max: 0.1, factor: 2, reset_after: 10}
crash_loop: {starts: 3, within: 20}
""",
    "forker.yaml": """
type: forking
pidfile: /run/forker.pid
command: "sleep 1000 & echo $! > /run/forker.pid"
""",
    # The built-in cron with a fast clock (a minute per second) so the test need not wait.
    "cron.yaml": """
command: "@builtin cron --notify-fd 3 --minute-seconds 1"
ready: {fd: 3}
after: [syslog]
""",
}


def richctl(cid, *args):
    return subprocess.run(["runc", "exec", cid, sys.executable, "-m", "richinit.ctl", *args],
                          capture_output=True, text=True, timeout=30)


def status(cid):
    r = richctl(cid, "status", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def by_name(st):
    return {s["name"]: s for s in st["services"]}




@pytest.fixture
def rich(tmp_path, busybox_rootfs):
    rootfs = str(tmp_path / "rootfs")
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    sd = os.path.join(rootfs, "etc/richinit/services.d")
    os.makedirs(sd)
    for name, text in SERVICES.items():
        with open(os.path.join(sd, name), "w") as f:
            f.write(text)
    os.makedirs(os.path.join(rootfs, "www"))
    with open(os.path.join(rootfs, "www/index.html"), "w") as f:
        f.write("hello\n")
    os.makedirs(os.path.join(rootfs, "etc/cron.d"))
    with open(os.path.join(rootfs, "etc/cron.d/job"), "w") as f:
        f.write("* * * * * root echo cron-ran $GREETING >> /shared/cron.out\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    bundle = str(tmp_path / "bundle")
    app = "logger -t app hello-from-app; trap 'exit 5' TERM; touch /shared/app-up; while true; do sleep 0.1; done"
    ct.make_bundle(bundle, rootfs, ct.richinit_argv("-v", "--services", "all", "--", "sh", "-c", app),
                   python=True, env=["GREETING=hi-from-env"],
                   mounts=[{"destination": "/shared", "type": "bind", "source": str(shared),
                            "options": ["rbind", "rw"]}])
    cid = ct.new_id("svc")
    proc = subprocess.Popen(["runc", "run", "--bundle", bundle, cid], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ns = type("Rich", (), {})()
    ns.cid, ns.proc, ns.shared, ns.rootfs = cid, proc, shared, rootfs
    try:
        assert wait_until(lambda: (shared / "app-up").exists(), 30), "app never started"
        yield ns
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        ct.delete(cid)


def test_services_boot_supervise_reload_and_stop_in_order(rich):
    cid = rich.cid
    st = wait_until(lambda: (lambda s: s if s["flaky"]["state"] == "failed" else None)(by_name(status(cid))))
    assert st, by_name(status(cid))
    for name in ("web", "worker", "forker", "cron", "syslog"):
        assert st[name]["state"] == "up" and st[name]["ready"], st[name]
    assert "crash loop" in st["flaky"]["reason"]
    assert st["flaky"]["restarts"] == 2

    # The built-in syslog got the app's logger line; the built-in cron ran a cron.d job
    # with the container's environment.
    r = subprocess.run(["runc", "exec", cid, "cat", "/var/log/messages"], capture_output=True, text=True)
    assert "hello-from-app" in r.stdout, r.stdout
    assert wait_until(lambda: (rich.shared / "cron.out").exists(), 10)
    assert "cron-ran hi-from-env" in (rich.shared / "cron.out").read_text()

    # kill -9 of a service that has been up: restarted at once.
    old = st["web"]["pid"]
    os.kill(_host_pid(cid, old), signal.SIGKILL)
    t0 = time.monotonic()
    new = wait_until(lambda: (lambda s: s if s["web"]["pid"] not in (None, old) and s["web"]["ready"] else None)(
        by_name(status(cid))), 5)
    assert new and time.monotonic() - t0 < 2.5, new
    assert new["web"]["restarts"] == 1

    # The forking daemon is followed through its pidfile and restarted when it dies.
    fpid = st["forker"]["pid"]
    cat = subprocess.run(["runc", "exec", cid, "cat", "/run/forker.pid"], capture_output=True, text=True)
    assert cat.stdout.strip() == str(fpid)
    os.kill(_host_pid(cid, fpid), signal.SIGKILL)
    again = wait_until(lambda: (lambda s: s if s["forker"]["pid"] not in (None, fpid) and s["forker"]["state"] == "up"
                                else None)(by_name(status(cid))), 5)
    assert again, by_name(status(cid))["forker"]

    # richctl errors: unknown service, stopping a stopped one.
    r = richctl(cid, "stop", "nope")
    assert r.returncode != 0 and "unknown service: nope" in r.stderr
    r = richctl(cid, "stop", "flaky")
    assert r.returncode != 0 and "not running" in r.stderr

    # reload picks up an added service.
    with open(os.path.join(rich.rootfs, "etc/richinit/services.d/extra.yaml"), "w") as f:
        f.write('command: "echo extra up; exec sleep 1000"\n')
    r = richctl(cid, "reload")
    assert r.returncode == 0 and "added: extra" in r.stdout, (r.stdout, r.stderr)
    assert wait_until(lambda: by_name(status(cid)).get("extra", {}).get("state") == "up", 5)
    r = richctl(cid, "logs", "extra")
    assert "extra up" in r.stdout

    # SIGTERM: app first (exit 5 is the container's), then services in reverse order.
    subprocess.run(["runc", "kill", cid, "TERM"], check=True)
    out, err = rich.proc.communicate(timeout=30)
    assert rich.proc.returncode == 5, err
    order = (rich.shared / "order").read_text().split()
    assert order == ["worker-stop", "web-stop"], order
    assert "[worker] worker up" in out


def _host_pid(cid, pid_in_container):
    """Map a pid inside the container to the host's, through NSpid of the container's processes."""
    init = int(json.loads(subprocess.run(["runc", "state", cid], capture_output=True, text=True).stdout)["pid"])
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/status" % p) as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        ids = line.split()[1:]
                        if len(ids) >= 2 and ids[-1] == str(pid_in_container) and _same_pidns(int(p), init):
                            return int(p)
        except OSError:
            continue
    raise AssertionError("pid %s not found" % pid_in_container)


def _same_pidns(a, b):
    try:
        return os.readlink("/proc/%d/ns/pid" % a) == os.readlink("/proc/%d/ns/pid" % b)
    except OSError:
        return False


def _write(path, text, mode=0o755):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def test_s6_overlay_and_my_init_layouts_run_as_they_are(tmp_path, busybox_rootfs):
    """An image written for s6-overlay / my_init: cont-init.d, my_init.d, services.d/NAME/{run,finish},
    cont-finish.d — run by richinit without rewriting anything."""
    rootfs = str(tmp_path / "rootfs")
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    _write(rootfs + "/etc/cont-init.d/10-setup", "#!/bin/sh\necho cont-init >> /shared/order\n")
    _write(rootfs + "/etc/my_init.d/20-more", "#!/bin/sh\necho my-init >> /shared/order\n")
    _write(rootfs + "/etc/services.d/hello/run",
           "#!/bin/sh\necho hello-run >> /shared/order\nexec sleep 1000\n")
    _write(rootfs + "/etc/services.d/hello/finish", "#!/bin/sh\necho \"hello-finish $1 $2\" >> /shared/order\n")
    _write(rootfs + "/etc/cont-finish.d/90-bye", "#!/bin/sh\necho cont-finish >> /shared/order\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    bundle = str(tmp_path / "bundle")
    app = "echo app >> /shared/order; sleep 0.5; exit 3"
    ct.make_bundle(bundle, rootfs, ct.richinit_argv("--services", "hello", "--", "sh", "-c", app), python=True,
                   mounts=[{"destination": "/shared", "type": "bind", "source": str(shared),
                            "options": ["rbind", "rw"]}])
    r = ct.run(bundle, timeout=60)
    assert r.returncode == 3, r.stderr
    order = (shared / "order").read_text().split("\n")
    assert order[:2] == ["cont-init", "my-init"], order
    assert set(order[2:4]) == {"hello-run", "app"}, order
    assert order[4:6] == ["hello-finish 256 15", "cont-finish"], order
