"""Fixtures for the /proc view tests: a private lxcfs, our view server and watcher in temp dirs,
real v1 cgroups. Everything started here is stopped by PID and unmounted afterwards."""

import errno
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from lxcfs import api, detect, server
from osbase import libc, procfs
from tests.support.wait import wait_until


def need_root_fuse():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")



def wait_for(cond, timeout=10.0, step=0.02):
    return wait_until(cond, timeout, step)


def mounted(mp, fstype):
    return detect.mount_id(mp, fstype) is not None


def detach_all(mp, fstype):
    """Lazily unmount every `fstype` mount stacked on mp (dead ones included)."""
    for _ in range(16):
        if not mounted(mp, fstype):
            return
        try:
            libc.umount(mp, libc.MNT_DETACH)
        except OSError:
            return


def pid_alive(pid):
    st = procfs.ppid_state(pid)
    return st is not None and st[1] != "Z"


def wait_pid_gone(pid, timeout=10.0):
    return wait_for(lambda: not pid_alive(pid), timeout)


class ViewServer:
    """Our server, daemonized as the hooks would start it, in a private mount/registry/pid file."""

    def __init__(self, base):
        self.base = base
        self.mount = os.path.join(base, "views")
        self.registry = os.path.join(base, "views.d")
        self.pidfile = os.path.join(base, "views.pid")
        self.log = os.path.join(base, "views.log")
        self.pid = None

    def start(self):
        self.pid = api.ensure_server_running(self.mount, self.registry, self.pidfile, self.log)
        return self

    def kill(self, sig=signal.SIGKILL):
        os.kill(self.pid, sig)
        assert wait_pid_gone(self.pid), "view server %d did not exit" % self.pid
        # The leader turns Z before its sampler thread is gone; the pid-file lock (what "running"
        # means to ensure_server_running) goes with the last thread.
        from lxcfs import pidlock
        assert wait_for(lambda: not pidlock.running(self.pidfile), 10), "view server %d kept its lock" % self.pid

    def logs(self):
        try:
            with open(self.log) as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return "(no watcher log)"

    def stop(self):
        if self.pid and pid_alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            if not wait_pid_gone(self.pid, 5):
                os.kill(self.pid, signal.SIGKILL)
                wait_pid_gone(self.pid)
        detach_all(self.mount, detect.SERVER_FSTYPE)


class Lxcfs:
    """A private lxcfs in the foreground (-f), our child; --enable-cfs for CPU views, -l for loadavg."""

    def __init__(self, base):
        self.mount = os.path.join(base, "lxcfs")
        self.pidfile = os.path.join(base, "lxcfs.pid")
        self.logpath = os.path.join(base, "lxcfs.log")
        self.proc = None
        os.makedirs(self.mount, exist_ok=True)

    def start(self):
        detach_all(self.mount, "fuse.lxcfs")  # a killed lxcfs leaves a dead mount behind
        with open(self.logpath, "ab") as log:
            self.proc = subprocess.Popen(["lxcfs", "-f", "-l", "--enable-cfs", "-p", self.pidfile, self.mount],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        ok = wait_for(lambda: mounted(self.mount, "fuse.lxcfs") and os.path.exists(self.mount + "/proc/meminfo"))
        if not ok:
            self.stop()
            with open(self.logpath) as f:
                pytest.fail("lxcfs did not come up: %s" % f.read()[-2000:])
        return self

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        detach_all(self.mount, "fuse.lxcfs")


class Watcher:
    def __init__(self, base, registry):
        self.pidfile = os.path.join(base, "watch.pid")
        self.log = os.path.join(base, "watch.log")
        self.registry = registry
        self.pid = None

    def start(self):
        self.pid = api.ensure_watcher_running(self.registry, pidfile=self.pidfile, log_file=self.log)
        return self

    def logs(self):
        try:
            with open(self.log) as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return "(no watcher log)"

    def stop(self):
        if self.pid and pid_alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            if not wait_pid_gone(self.pid, 5):
                os.kill(self.pid, signal.SIGKILL)


@pytest.fixture
def views_base():
    need_root_fuse()
    # Short, world-traversable path: the container's processes (any uid) reach files through it.
    base = "/run/richviews-test-%s" % uuid.uuid4().hex[:8]
    os.makedirs(base)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def view_server(views_base):
    s = ViewServer(views_base).start()
    yield s
    s.stop()


@pytest.fixture
def lxcfs(views_base):
    if not shutil.which("lxcfs"):
        pytest.skip("lxcfs is not installed")
    lx = Lxcfs(views_base).start()
    yield lx
    lx.stop()


@pytest.fixture
def watcher(views_base):
    w = Watcher(views_base, os.path.join(views_base, "views.d")).start()
    yield w
    w.stop()


class V1Cgroup:
    """A real cgroup in the v1 hierarchies (memory, cpu, cpuacct, cpuset) holding a sleeping process."""

    CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio")

    def __init__(self, name, memory=None, cpuset=None, quota=None):
        mounts = server.cgroup.mounts()
        self.dirs = {}
        for c in self.CONTROLLERS:
            if c not in mounts:
                pytest.skip("cgroup v1 %s controller not mounted" % c)
            d = os.path.join(mounts[c], name)
            os.makedirs(d, exist_ok=True)
            self.dirs[c] = d
        if cpuset:
            self._write("cpuset", "cpuset.mems", "0")
            self._write("cpuset", "cpuset.cpus", cpuset)
        else:
            for f in ("cpuset.mems", "cpuset.cpus"):
                with open(os.path.join(os.path.dirname(self.dirs["cpuset"]), f)) as src:
                    self._write("cpuset", f, src.read().strip())
        if memory:
            self._write("memory", "memory.limit_in_bytes", str(memory))
        if quota:
            self._write("cpu", "cpu.cfs_quota_us", str(quota))
        self.proc = subprocess.Popen(["sleep", "300"], preexec_fn=self._join)
        self.pid = self.proc.pid

    def _write(self, c, f, v):
        with open(os.path.join(self.dirs[c], f), "w") as fh:
            fh.write(v)

    def _join(self):
        for c in self.CONTROLLERS:
            with open(os.path.join(self.dirs[c], "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))

    def remove(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        raise
                    time.sleep(0.02)


@pytest.fixture
def v1_cgroups():
    made = []

    def make(**kw):
        cg = V1Cgroup("richviews-test-%s" % uuid.uuid4().hex[:8], **kw)
        made.append(cg)
        return cg
    yield make
    for cg in made:
        cg.remove()
