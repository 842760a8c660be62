"""A VM image's systemd units run by the real richinit as PID 1 of a runc container (busybox rootfs,
`richinit -- /sbin/init`: VM mode): what each unit asks at run time, observed from the host.

The host's /usr is bound in for Python; empty tmpfs cover its /usr/lib/systemd and /lib/systemd so
only the image's own units (tests/integration/units_rootfs.py) are read.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.units_rootfs import write_units
from tests.support import containers as ct
from tests.support.wait import wait_until

pytestmark = pytest.mark.skipif(not ct.have("runc") or os.geteuid() != 0, reason="needs root and runc")

SIGRTMIN_3 = signal.SIGRTMIN + 3


def _exec(cid, *argv, timeout=30):
    return subprocess.run(["runc", "exec", cid, *argv], capture_output=True, text=True, timeout=timeout)


def status(cid, must=True):
    r = _exec(cid, sys.executable, "-m", "richinit.ctl", "status", "--json")
    if r.returncode != 0 and not must:
        return {}  # not up yet
    assert r.returncode == 0, r.stderr
    return {s["name"]: s for s in json.loads(r.stdout)["services"]}


def control(cid, line):
    """One raw request on the control socket (what systemctl's tools send)."""
    code = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect('/run/richinit/control.sock'); "
            "s.sendall(sys.argv[1].encode()+b'\\n'); print(s.recv(65536).decode())")
    r = _exec(cid, sys.executable, "-c", code, line)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def host_pid(cid, pid_in_container):
    init = int(json.loads(subprocess.run(["runc", "state", cid], capture_output=True, text=True).stdout)["pid"])
    ns = os.readlink("/proc/%d/ns/pid" % init)
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/status" % p) as f:
                nspid = next(line.split()[1:] for line in f if line.startswith("NSpid:"))
            if len(nspid) >= 2 and nspid[-1] == str(pid_in_container) and os.readlink("/proc/%s/ns/pid" % p) == ns:
                return int(p)
        except (OSError, StopIteration):
            continue
    return None


@pytest.fixture(scope="module")
def vm(tmp_path_factory, busybox_rootfs):
    tmp = tmp_path_factory.mktemp("units")
    rootfs = str(tmp / "rootfs")
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    write_units(rootfs)
    shared = tmp / "shared"
    shared.mkdir()
    os.chmod(str(shared), 0o777)
    mounts = [{"destination": "/shared", "type": "bind", "source": str(shared), "options": ["rbind", "rw"]}]
    for d in ("/usr/lib/systemd", "/lib/systemd"):
        mounts.append({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["ro", "mode=755"]})
    bundle = str(tmp / "bundle")
    ct.make_bundle(bundle, rootfs, ct.richinit_argv("-vv", "--", "/sbin/init"), python=True, mounts=mounts)
    cid = ct.new_id("units")
    proc = subprocess.Popen(["runc", "run", "--bundle", bundle, cid], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ns = type("VM", (), {})()
    ns.cid, ns.proc, ns.shared = cid, proc, shared
    try:
        settled = wait_until(lambda: (lambda st: st if st.get("usr", {}).get("state") == "up"
                                      and st.get("top", {}).get("state") == "down"
                                      and st.get("setup", {}).get("state") == "done" else None)(status(cid, False)), 30)
        assert settled, (proc.poll(), proc.stderr.read() if proc.poll() is not None else "", status(cid, False))
        ns.boot = settled
        yield ns
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        ct.delete(cid)


def test_requires_chain_failure_propagates_and_nothing_after_runs(vm):
    st = vm.boot
    assert (st["base"]["active"], st["base"]["result"]) == ("failed", "exit-code")
    for name in ("mid", "top"):
        assert (st[name]["active"], st[name]["result"]) == ("inactive", "dependency"), st[name]
    assert (vm.shared / "chain").read_text().split() == ["base-ran"]


def test_forking_without_pidfile_follows_the_daemon_it_left(vm):
    st = wait_until(lambda: (lambda f: f if f["state"] != "starting" else None)(status(vm.cid)["forky"]), 10)
    starter = int((vm.shared / "forky.pid").read_text())  # the outer shell expands $$: the starter's pid
    assert st["state"] == "up" and st["pid"] != starter, st
    with open("/proc/%d/cmdline" % host_pid(vm.cid, st["pid"]), "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"1000"], "the daemon, in a session of its own"


def test_user_environment_file_runtime_directory_and_expansion(vm):
    def cat(path):
        return _exec(vm.cid, "cat", path).stdout.strip()
    assert cat("/run/usrd/id") == "65534"
    assert cat("/run/usrd/env") == "hello world"
    assert cat("/run/usrd/braces") == "1:hello world", "${VAR} is one word"
    assert cat("/run/usrd/words") == "2:one", "$VAR is split into words"
    ls = _exec(vm.cid, "ls", "-ld", "/run/usrd").stdout.split()
    assert ls[0] == "drwxr-x---" and ls[2] in ("nobody", "65534"), ls


def test_oneshot_remain_after_exit_stays_active_and_stop_runs_exec_stop(vm):
    assert (vm.boot["setup"]["active"], vm.boot["setup"]["sub"]) == ("active", "exited")
    r = _exec(vm.cid, sys.executable, "-m", "richinit.ctl", "stop", "setup")
    assert r.returncode == 0, r.stderr
    assert wait_until(lambda: status(vm.cid)["setup"]["active"] == "inactive", 10)
    assert (vm.shared / "setup").read_text().split() == ["setup", "undo"]


def test_restart_on_failure_after_kill_9_waits_restart_sec(vm):
    pids = (vm.shared / "crashy.pids").read_text().split()
    old = int(pids[-1])
    hp = host_pid(vm.cid, old)
    assert hp
    t0 = time.monotonic()
    os.kill(hp, signal.SIGKILL)
    assert wait_until(lambda: len((vm.shared / "crashy.pids").read_text().split()) == len(pids) + 1, 10)
    took = time.monotonic() - t0
    st = status(vm.cid)["crashy"]
    assert st["state"] == "up" and st["restarts"] == 1 and st["pid"] != old
    assert took >= 0.3, "RestartSec=300ms is waited before the restart (took %.3fs)" % took
    print("crashy back %.0f ms after kill -9 (RestartSec=300ms)" % (took * 1000))


def test_a_silent_watchdog_service_is_aborted_and_restarted(vm):
    def starts():
        return (vm.shared / "dog.starts").read_text().splitlines()
    assert wait_until(lambda: len(starts()) >= 2, 15), starts()
    first = starts()[0].split()
    assert first[1] == "1000000" and first[2] == first[0], "WATCHDOG_USEC, WATCHDOG_PID"
    st = status(vm.cid)["dog"]
    assert st["restarts"] >= 1


def test_exec_stop_then_kill_then_exec_stop_post_and_kill_modes(vm):
    main = status(vm.cid)["ordered"]["pid"]
    child = int((vm.shared / "ordered.child").read_text())
    km_child = int((vm.shared / "km.child").read_text())
    for name in ("ordered", "km"):
        r = _exec(vm.cid, sys.executable, "-m", "richinit.ctl", "stop", name)
        assert r.returncode == 0, r.stderr
    assert wait_until(lambda: status(vm.cid)["ordered"]["active"] == "inactive"
                      and status(vm.cid)["km"]["active"] == "inactive", 10)
    order = (vm.shared / "order").read_text().splitlines()
    assert order == ["exec-stop %d" % main, "main-term", "stop-post success"], order
    assert wait_until(lambda: host_pid(vm.cid, child) is None, 5), "control-group: the child went with it"
    survivor = host_pid(vm.cid, km_child)
    assert survivor, "KillMode=process: the child outlives the stop"
    os.kill(survivor, signal.SIGKILL)


def test_runtime_directory_goes_with_the_stop_and_comes_back_with_the_start(vm):
    ctl = [sys.executable, "-m", "richinit.ctl"]
    assert _exec(vm.cid, *ctl, "stop", "usr").returncode == 0
    assert wait_until(lambda: _exec(vm.cid, "test", "-e", "/run/usrd").returncode == 1, 10)
    assert _exec(vm.cid, *ctl, "start", "usr").returncode == 0
    assert wait_until(lambda: _exec(vm.cid, "cat", "/run/usrd/id").stdout.strip() == "65534", 10)


def test_reboot_restarts_every_service_without_ending_the_container(vm):
    before = status(vm.cid)
    r = control(vm.cid, "reboot")
    assert r["ok"], r
    assert wait_until(lambda: (lambda st: st["usr"]["state"] == "up" and st["usr"]["pid"] != before["usr"]["pid"]
                               and st["setup"]["state"] == "done")(status(vm.cid)), 20)
    assert vm.proc.poll() is None
    assert (vm.shared / "setup").read_text().split()[-1] == "setup"
    assert (vm.shared / "chain").read_text().split() == ["base-ran", "base-ran"]


def test_sigrtmin_3_ends_the_container(vm):
    subprocess.run(["runc", "kill", vm.cid, str(SIGRTMIN_3)], check=True)
    out, err = vm.proc.communicate(timeout=30)
    assert vm.proc.returncode == 0, err
    assert "VM mode: /sbin/init given as the command" in err
    # PrivateTmp=: an empty /tmp of its own, or (no mount namespace allowed here) one warning and
    # the container's /tmp
    seen = (vm.shared / "ptmp.ls").read_text().split()
    if "PrivateTmp= not available" in err:
        assert seen == ["inside", "outside"] and err.count("PrivateTmp= not available") == 1, (seen, err)
    else:
        assert seen == ["inside"], seen
