"""Our view server over real FUSE, serving real v1 cgroups (no container runtime needed)."""

import errno
import os
import signal

import pytest

from lxcfs import api, render
from tests.integration.views.conftest import wait_for


def read(path):
    with open(path) as f:
        return f.read()


def meminfo(path):
    return render.parse_meminfo(read(os.path.join(path, "proc/meminfo")))


def test_views_follow_each_containers_cgroup(view_server, v1_cgroups):
    a = v1_cgroups(memory=64 * 2**20, cpuset="0", quota=50000)
    b = v1_cgroups(memory=96 * 2**20)
    va = api.register("a", a.pid, mount=view_server.mount, registry_dir=view_server.registry)
    vb = api.register("b", b.pid, mount=view_server.mount, registry_dir=view_server.registry)
    assert sorted(os.listdir(view_server.mount)) == ["a", "b"]
    assert meminfo(va)["MemTotal"] == 64 * 1024
    assert meminfo(vb)["MemTotal"] == 96 * 1024
    assert read(os.path.join(va, "sys/devices/system/cpu/online")) == "0\n"
    assert read(os.path.join(va, "proc/cpuinfo")).count("processor") == 1
    up = float(read(os.path.join(va, "proc/uptime")).split()[0])
    assert 0 <= up < 30
    # Read in small pieces: the text is rendered once per open, so pieces fit together.
    with open(os.path.join(va, "proc/meminfo"), "rb", buffering=0) as f:
        pieces = b"".join(iter(lambda: f.read(7), b""))
    assert pieces.decode().startswith("MemTotal:          65536 kB\n")


def test_unknown_container_and_writes_are_refused(view_server):
    with pytest.raises(FileNotFoundError):
        read(os.path.join(view_server.mount, "nobody/proc/meminfo"))
    api.register("pending", mount=view_server.mount, registry_dir=view_server.registry)
    path = os.path.join(view_server.mount, "pending/proc/meminfo")
    with pytest.raises(OSError) as e:
        open(path, "w")
    assert e.value.errno in (errno.EACCES, errno.EROFS, errno.EPERM)
    # Registered before its init exists: the host's values, until the hook adds the pid.
    assert meminfo(os.path.dirname(os.path.dirname(path)))["MemTotal"] == render.parse_meminfo(
        read("/proc/meminfo"))["MemTotal"]


def test_vanished_cgroup_falls_back_without_hurting_others(view_server, v1_cgroups):
    good = v1_cgroups(memory=64 * 2**20)
    doomed = v1_cgroups(memory=32 * 2**20)
    vg = api.register("good", good.pid, mount=view_server.mount, registry_dir=view_server.registry)
    vd = api.register("doomed", doomed.pid, mount=view_server.mount, registry_dir=view_server.registry)
    assert meminfo(vd)["MemTotal"] == 32 * 1024
    doomed.remove()  # the cgroup directories are gone now
    host_total = render.parse_meminfo(read("/proc/meminfo"))["MemTotal"]
    for name in ("meminfo", "stat", "cpuinfo", "uptime", "loadavg", "diskstats", "swaps"):
        assert read(os.path.join(vd, "proc", name))  # every file still answers
    # cgroup limits are cached for a second by the server; then the host's value shows
    assert wait_for(lambda: meminfo(vd)["MemTotal"] == host_total, 3)
    assert meminfo(vg)["MemTotal"] == 64 * 1024
    with open(view_server.log) as f:
        log = f.read()
    assert "doomed: memory limit unreadable" in log and log.count("doomed: memory limit unreadable") == 1


def test_restart_after_sigkill_clears_the_dead_mount(view_server, v1_cgroups):
    cg = v1_cgroups(memory=64 * 2**20)
    v = api.register("r", cg.pid, mount=view_server.mount, registry_dir=view_server.registry)
    assert meminfo(v)["MemTotal"] == 64 * 1024
    old = view_server.pid
    view_server.kill(signal.SIGKILL)
    with pytest.raises(OSError) as e:
        read(os.path.join(v, "proc/meminfo"))
    # ENOTCONN once the kernel saw the server gone; ECONNABORTED while it is still aborting the connection
    assert e.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    view_server.start()
    assert view_server.pid != old
    assert meminfo(v)["MemTotal"] == 64 * 1024
    # A second ensure is a no-op: one server per host.
    assert api.ensure_server_running(view_server.mount, view_server.registry, view_server.pidfile) == view_server.pid
