"""Rich containers under faults: real runc, richinit as PID 1 with services, a busybox image.

A `Rich` container runs detached (`runc run -d`, its init our child: we are a subreaper) with
stdio the test chooses (an unread pipe, a closed one, /dev/null, a terminal nobody reads). The test
talks to PID 1's control socket from the host, through /proc/PID/root, so a fault inside the
container (no pids left, no fds left) cannot stop the probe itself; each probe's latency is kept.
"""

import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from tests.support import containers as ct
from tests.support.wait import wait_until

pytestmark = pytest.mark.skipif(not ct.have("runc") or os.geteuid() != 0, reason="needs root and runc")

GRACE, KILL_GRACE = 2.0, 2.0
LIVENESS = 1.0  # seconds a status reply may take under a fault: a liveness bound, not a target


class Rich:
    def __init__(self, tmp, rootfs, app, services=None, only=None, stdout=None, stderr=None, mounts=(),
                 nofile=None, pids=None, memory=None, opts=(), userns=None):
        self.tmp = str(tmp)
        self.scratch = None
        if userns is not None:  # pytest's tmp is 0700 root's: the container's root could not reach it
            self.scratch = tempfile.mkdtemp(prefix="richfaults-userns-")
            os.chmod(self.scratch, 0o711)
            self.tmp = self.scratch
        self.rootfs = os.path.join(self.tmp, "rootfs")
        shutil.copytree(rootfs, self.rootfs, symlinks=True)
        sd = os.path.join(self.rootfs, "etc/richinit/services.d")
        os.makedirs(sd)
        for name, text in (services or {}).items():
            with open(os.path.join(sd, name + ".yaml"), "w") as f:
                f.write(text)
        self.shared = os.path.join(self.tmp, "shared")
        os.makedirs(self.shared)
        self.bundle = os.path.join(self.tmp, "bundle")
        sel = ",".join(only) if only else "all"
        argv = ct.richinit_argv("-vv", "--services", sel, "--grace", str(GRACE), "--kill-grace", str(KILL_GRACE),
                                *opts, "--", "sh", "-c", app)
        cfg = ct.make_bundle(self.bundle, self.rootfs, argv, python=True, memory=memory,
                             mounts=[{"destination": "/shared", "type": "bind", "source": self.shared,
                                      "options": ["rbind", "rw"]}] + list(mounts))
        if nofile:
            cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}]
        if pids:
            cfg["linux"].setdefault("resources", {})["pids"] = {"limit": pids}
        if userns is not None:
            # Container root is host uid `userns`: what the host's root owns (the test's pipes) is
            # nobody's in there. The rootfs and /shared become the container root's; /run a tmpfs.
            subprocess.run(["chown", "-R", "%d:%d" % (userns, userns), self.rootfs, self.shared], check=True)
            lin = cfg["linux"]
            lin["namespaces"].append({"type": "user"})
            lin["uidMappings"] = lin["gidMappings"] = [{"containerID": 0, "hostID": userns, "size": 65536}]
            cfg["mounts"] = [m for m in cfg["mounts"] if m["type"] != "cgroup"]
            cfg["mounts"].append({"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["nosuid", "nodev", "mode=755"]})
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(cfg, f)
        self.cid = ct.new_id("flt%d" % os.getpid())
        self.errpath = os.path.join(self.tmp, "stderr")
        self.stdout = stdout
        self.stderr = open(self.errpath, "wb") if stderr is None else stderr
        self.pid = self.pidfd = self.exit = None
        self.latencies = []

    def start(self, timeout=30):
        """`runc run -d`: the container gets the test's stdio itself (no runc copying in between, as
        under containerd's shim); its init is then our child (we are a subreaper), for its exit code."""
        r = subprocess.run(["runc", "run", "-d", "--bundle", self.bundle, self.cid], stdin=subprocess.DEVNULL,
                           stdout=self.stdout if self.stdout is not None else subprocess.DEVNULL,
                           stderr=self.stderr, timeout=timeout)
        assert r.returncode == 0, "container did not start: %s" % self.log()
        self.pid = int(self._state()["pid"])
        self.pidfd = os.pidfd_open(self.pid)
        return self

    def _state(self):
        r = subprocess.run(["runc", "state", self.cid], capture_output=True, text=True)
        return json.loads(r.stdout) if r.returncode == 0 else {}

    def path(self, inside):
        return "/proc/%d/root%s" % (self.pid, inside)

    def request(self, line, timeout=10):
        """One control request from the host; returns the first reply (dict). Its latency is recorded."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        t0 = time.monotonic()
        try:
            while True:  # a full listen backlog says EAGAIN here (richctl's blocking connect waits in it)
                try:
                    s.connect(self.path("/run/richinit/control.sock"))
                    break
                except BlockingIOError:
                    assert time.monotonic() - t0 < timeout, "listen backlog full for %ss" % timeout
                    select.select([], [], [], 0.001)
            s.sendall(line.encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                data = s.recv(65536)
                if not data:
                    break
                buf += data
        finally:
            s.close()
        self.latencies.append(time.monotonic() - t0)
        return json.loads(buf.split(b"\n", 1)[0])

    def status(self):
        return self.request("status")

    def services(self):
        return {s["name"]: s for s in self.status()["services"]}

    def wait_up(self, *names, timeout=30):
        def up():
            try:
                svcs = self.services()
            except OSError:  # the control socket is not there yet
                return False
            return all(svcs.get(n, {}).get("state") == "up" for n in names)
        assert wait_until(up, timeout), self.log()
        self.latencies.clear()  # the probes before the socket existed are no measure

    def alive(self):
        """PID 1 answers within the liveness bound and has no child left unreaped (polled: zombies come
        and go while orphans exit; one sample without any means the reaper runs)."""
        st = self.status()
        assert st["ok"] and self.latencies[-1] < LIVENESS, (self.latencies[-1], st)
        assert wait_until(lambda: not self.zombies(), 5), self.zombies()
        return st

    def zombies(self):
        try:
            with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as f:
                kids = f.read().split()
        except OSError:
            return []
        out = []
        for k in kids:
            try:
                with open("/proc/%s/stat" % k) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        out.append(int(k))
            except OSError:
                pass
        return out

    def cpu_and_rss(self):
        """PID 1's CPU seconds (user+system) and RSS in KiB."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/%d/status" % self.pid) as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return (int(fields[11]) + int(fields[12])) / tick, rss

    def stop(self, sig="TERM"):
        """Signal the container; returns (exit code, seconds until PID 1 was gone)."""
        t0 = time.monotonic()
        subprocess.run(["runc", "kill", self.cid, sig], capture_output=True)
        return self.wait(), time.monotonic() - t0

    def running(self):
        return not select.select([self.pidfd], [], [], 0)[0]

    def wait(self, timeout=60):
        """PID 1's exit code (it is our child: see start)."""
        assert select.select([self.pidfd], [], [], timeout)[0], "PID 1 still running after %ss" % timeout
        _, status = os.waitpid(self.pid, 0)
        self.exit = os.waitstatus_to_exitcode(status)
        return self.exit

    def log(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self):
        if self.pid is not None and self.exit is None:
            subprocess.run(["runc", "kill", self.cid, "KILL"], capture_output=True)
            try:
                self.wait(20)
            except (AssertionError, ChildProcessError):
                pass
        if self.pidfd is not None:
            os.close(self.pidfd)
        ct.delete(self.cid)
        if self.stderr is not None and hasattr(self.stderr, "close"):
            self.stderr.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


@pytest.fixture
def rich(tmp_path, busybox_rootfs):
    from osbase import libc
    libc.set_child_subreaper(True)
    made = []

    def make(app, **kw):
        r = Rich(tmp_path / ("c%d" % len(made)), busybox_rootfs, app, **kw)
        made.append(r)
        return r
    try:
        yield make
    finally:
        for r in made:
            r.close()
        libc.set_child_subreaper(False)


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """Host-side tmpfs mounts (so what the container wrote outlives it); unmounted afterwards."""
    mounted = []

    def make(name, size):
        d = tmp_path / name
        d.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=755" % size, "tmpfs", str(d)], check=True)
        mounted.append(str(d))
        return str(d)
    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", d], capture_output=True)


def bind(src, dst):
    return {"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rw"]}


def record(name, rich, extra=None):
    """Append one fault's numbers to FAULTS_RESULTS (bench/faults.py reads them back), if set."""
    out = os.environ.get("RICHINIT_FAULTS_RESULTS")
    if not out:
        return
    cpu, rss = rich.cpu_and_rss() if rich.pid and os.path.exists("/proc/%d" % rich.pid) else (None, None)
    lat = sorted(rich.latencies)
    row = {"fault": name, "status_p50_ms": round(lat[len(lat) // 2] * 1000, 2) if lat else None,
           "status_max_ms": round(lat[-1] * 1000, 2) if lat else None, "probes": len(lat),
           "pid1_cpu_s": cpu, "pid1_rss_kib": rss}
    row.update(extra or {})
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
