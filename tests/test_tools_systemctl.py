"""systemctl, service and journalctl against a real richinit (PID 1 of its own PID and mount
namespaces, services from services.d YAML in an overlay over /etc): the verbs go through the
control socket to richinit.verbs and come back with systemctl's exit codes and output.

The tools run inside richinit's namespaces (nsenter), as they would in the container, so the
pids PID 1 reports are the ones they read in /proc. Nothing is written to the host's /etc.
"""

import contextlib
import os
import shutil
import subprocess
import sys

import pytest

from tests.support.pid1run import REPO
from tests.support.wait import wait_until

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (unshare --pid --mount, overlay on /etc)"),
    pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("nsenter") is None,
                       reason="unshare/nsenter (util-linux) not installed"),
]

SERVICES = {
    "web.yaml": 'command: "echo web-hello; exec sleep 100000"\nstop_timeout: 2\n',
    "once.yaml": 'type: oneshot\ncommand: "exit 0"\n',
    "broken.yaml": 'type: oneshot\ncommand: "echo broken-said-this; exit 3"\nrestart: never\nenabled: false\n',
    "later.yaml": 'command: "exec sleep 100000"\nenabled: false\n',
}
WRAP = ('mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc || exit 99\n'
        'shift\nexec "$@"\n')


@pytest.fixture(scope="module")
def pid1(tmp_path_factory):
    scratch = str(tmp_path_factory.mktemp("tools"))
    sd = os.path.join(scratch, "upper", "richinit", "services.d")
    os.makedirs(sd)
    os.makedirs(os.path.join(scratch, "work"))
    for name, text in SERVICES.items():
        with open(os.path.join(sd, name), "w") as f:
            f.write(text)
    with _pid1_in_namespaces(scratch, WRAP, ["--services", "web,once,broken,later"], "web") as tool:
        yield tool


@contextlib.contextmanager
def _pid1_in_namespaces(scratch, wrap, args, first):
    """richinit (ARGS, app `sleep`) as PID 1 of new pid and mount namespaces, `wrap` preparing /etc
    first; yields tool(prog, *args) running richinit's tools inside, once `first` is active.
    tool.proc is the unshare process, tool.sh(script) runs a shell script inside."""
    control = os.path.join(scratch, "control")
    argv = ["unshare", "--fork", "--pid", "--mount", "--mount-proc", "--kill-child", "/bin/sh", "-c", wrap, "sh",
            scratch, sys.executable, "-m", "richinit"] + list(args) + [
            "--control-dir", control, "--no-save-env", "--", "sleep", "1000000"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONPATH=REPO))
    try:
        assert wait_until(lambda: os.path.exists(os.path.join(control, "control.sock")) or proc.poll() is not None,
                          15), "no control socket"
        assert proc.poll() is None, proc.stdout.read().decode()
        init = int(open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)).read().split()[0])
        env = dict(os.environ, PYTHONPATH=REPO, RICHINIT_CONTROL_DIR=control)

        def tool(prog, *args):
            return subprocess.run(["nsenter", "-t", str(init), "-p", "-m", sys.executable, "-c",
                                   "from richinit.tools import main; main(%r)" % prog, prog, *args],
                                  capture_output=True, text=True, env=env, timeout=30)

        def sh(script):
            return subprocess.run(["nsenter", "-t", str(init), "-p", "-m", "/bin/sh", "-c", script],
                                  capture_output=True, text=True, timeout=30)
        assert wait_until(lambda: tool("systemctl", "is-active", "-q", first).returncode == 0, 15), \
            tool("systemctl", "status", first).stdout
        tool.proc, tool.sh = proc, sh
        yield tool
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_is_active_status_and_show_of_a_running_service(pid1):
    r = pid1("systemctl", "is-active", "web", "once", "later")
    assert (r.returncode, r.stdout.split()) == (3, ["active", "active", "inactive"])  # services.d's oneshot stays
    r = pid1("systemctl", "status", "web", "--no-pager")
    assert r.returncode == 0, r.stderr
    assert "● web.service" in r.stdout
    assert "Active: active (running) since " in r.stdout and " ago" in r.stdout
    pid = int(r.stdout.split("Main PID: ")[1].split()[0])
    assert "Main PID: %d (sleep)" % pid in r.stdout
    assert "web-hello" in r.stdout, "the last lines of its output"
    r = pid1("systemctl", "show", "-p", "ActiveState,SubState,MainPID", "web.service")
    assert r.stdout.splitlines() == ["ActiveState=active", "SubState=running", "MainPID=%d" % pid]
    assert pid1("systemctl", "show", "-p", "MainPID", "--value", "web").stdout == "%d\n" % pid
    r = pid1("service", "web", "status")
    assert r.returncode == 0 and "Active: active (running)" in r.stdout


def test_stop_start_restart_round_trip(pid1):
    before = pid1("systemctl", "show", "-p", "MainPID", "--value", "web").stdout.strip()
    assert pid1("systemctl", "stop", "web").returncode == 0
    r = pid1("systemctl", "is-active", "web")
    assert (r.returncode, r.stdout) == (3, "inactive\n")
    r = pid1("systemctl", "status", "web")
    assert r.returncode == 3 and "Active: inactive (dead)" in r.stdout
    assert pid1("systemctl", "start", "web.service").returncode == 0
    assert pid1("systemctl", "is-active", "web").stdout == "active\n"
    first = pid1("systemctl", "show", "-p", "MainPID", "--value", "web").stdout.strip()
    assert pid1("systemctl", "restart", "web").returncode == 0
    after = pid1("systemctl", "show", "-p", "MainPID", "--value", "web").stdout.strip()
    assert len({before, first, after}) == 3 and "0" not in (first, after)
    assert pid1("systemctl", "try-restart", "later").returncode == 0  # not running: nothing to do
    assert pid1("systemctl", "is-active", "later").stdout == "inactive\n"


def test_failures_and_unknown_units(pid1):
    r = pid1("systemctl", "start", "broken")
    assert r.returncode == 1
    assert "Job for broken.service failed" in r.stderr
    r = pid1("systemctl", "is-failed", "broken")
    assert (r.returncode, r.stdout) == (0, "failed\n")
    r = pid1("systemctl", "status", "broken")
    assert r.returncode == 3 and "Active: failed (Result: exit-code)" in r.stdout
    assert pid1("systemctl", "is-system-running").stdout == "degraded\n"
    r = pid1("systemctl", "list-units", "--failed", "--plain", "--no-legend")
    assert r.stdout.split()[:4] == ["broken.service", "loaded", "failed", "failed"]
    assert pid1("systemctl", "reset-failed", "broken").returncode == 0
    assert pid1("systemctl", "is-active", "broken").stdout == "inactive\n"
    assert pid1("systemctl", "is-system-running").stdout == "running\n"
    r = pid1("journalctl", "-u", "broken", "-n", "1", "--no-pager")
    assert r.stdout.rstrip().endswith("broken: broken-said-this")

    r = pid1("systemctl", "status", "nope")
    assert (r.returncode, r.stderr) == (4, "Unit nope.service could not be found.\n")
    r = pid1("systemctl", "start", "nope")
    assert r.returncode == 5 and "Unit nope.service not found." in r.stderr
    assert pid1("systemctl", "stop", "nope").returncode == 5
    r = pid1("systemctl", "is-active", "nope")
    assert (r.returncode, r.stdout) == (3, "inactive\n")


def test_no_block_and_several_units_per_call(pid1):
    r = pid1("systemctl", "start", "--no-block", "later", "once")
    assert r.returncode == 0
    assert wait_until(lambda: pid1("systemctl", "is-active", "later").stdout == "active\n", 10)
    assert pid1("systemctl", "stop", "later", "web").returncode == 0
    assert pid1("systemctl", "is-active", "later", "web").stdout.split() == ["inactive", "inactive"]
    assert pid1("systemctl", "start", "later", "web").returncode == 0
    r = pid1("systemctl", "list-units", "--no-legend", "--plain", "--type=service")
    units = [line.split()[0] for line in r.stdout.splitlines()]
    assert {"web.service", "later.service", "once.service"} <= set(units) and "broken.service" not in units
    before = pid1("systemctl", "show", "-p", "MainPID", "--value", "later").stdout.strip()
    r = pid1("systemctl", "kill", "-s", "KILL", "--kill-whom=main", "later")
    assert r.returncode == 0, r.stderr
    # restart: always (services.d's default) brings it back with a new pid
    assert wait_until(lambda: pid1("systemctl", "show", "-p", "MainPID", "--value", "later").stdout.strip()
                      not in (before, "0"), 10)
    r = pid1("systemctl", "show", "-p", "NRestarts", "--value", "later")
    assert r.stdout == "1\n"


def test_reboot_restarts_the_services_and_poweroff_ends_pid1(pid1):
    before = pid1("systemctl", "show", "-p", "MainPID", "--value", "web").stdout.strip()
    assert pid1("reboot").returncode == 0
    assert wait_until(lambda: pid1("systemctl", "show", "-p", "MainPID", "--value", "web").stdout.strip()
                      not in (before, "0", ""), 15), "web is started again by the reboot"
    assert pid1.proc.poll() is None, "reboot keeps the container"
    # The client runs inside the namespace: the shutdown may kill it right after PID 1 answered
    # (as in any container), so its exit code says nothing; PID 1 ending does.
    r = pid1("systemctl", "poweroff")
    assert r.returncode in (0, -9), r.stderr
    pid1.proc.wait(timeout=30)  # PID 1 (and unshare with it) ends: the container is down


# ---- the image's own unit files: aliases, timers, sockets, the Loaded: line ------------------------

UNIT_FILES = {
    "lib/ssh.service": "[Unit]\nDescription=OpenBSD Secure Shell server\n[Service]\n"
                       "ExecStart=/bin/sh -c 'echo ssh-says-hello; exec sleep 100000'\n"
                       "[Install]\nWantedBy=multi-user.target\nAlias=sshd.service\n",
    "etc/ssh.service.d/10-env.conf": "[Service]\nEnvironment=X=1\n",
    "lib/tick.service": "[Unit]\nDescription=ticks\n[Service]\nType=oneshot\nExecStart=/bin/true\n",
    "lib/tick.timer": "[Unit]\nDescription=tick every hour\n[Timer]\nOnActiveSec=1h\n"
                      "[Install]\nWantedBy=timers.target\n",
    "lib/pong.service": "[Service]\nExecStart=/bin/sleep 100000\n",
    "lib/pong.socket": "[Socket]\nListenStream={scratch}/pong.sock\nListenFIFO={scratch}/pong.fifo\n"
                       "RemoveOnStop=yes\n[Install]\nWantedBy=sockets.target\n",
    "lib/keep.service": "[Service]\nExecStart=/bin/sleep 100000\n",
    "lib/keep.socket": "[Socket]\nListenStream={scratch}/keep.sock\n[Install]\nWantedBy=sockets.target\n",
    "lib/gone.service": "[Service]\nExecStart=/bin/sleep 100000\n",
}
UNIT_LINKS = {
    "etc/sshd.service": "/lib/systemd/system/ssh.service",
    "etc/multi-user.target.wants/ssh.service": "/lib/systemd/system/ssh.service",
    "etc/sockets.target.wants/pong.socket": "/lib/systemd/system/pong.socket",
    "etc/sockets.target.wants/keep.socket": "/lib/systemd/system/keep.socket",
    "etc/gone.service": "/dev/null",
}
# /etc, /usr/lib/systemd/system (also /lib's: /lib is usr/lib) and /etc/init.d of the host are
# hidden by tmpfs mounts in richinit's mount namespace; the test's units are copied in.
UNITS_WRAP = ('mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc || exit 99\n'
              'for d in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system /etc/init.d; do\n'
              '  mkdir -p $d && mount -t tmpfs tmpfs $d || exit 98\ndone\n'
              'cp -a $1/units/etc/. /etc/systemd/system/ && cp -a $1/units/lib/. /lib/systemd/system/ || exit 97\n'
              'shift\nexec "$@"\n')


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    scratch = str(tmp_path_factory.mktemp("units"))
    for d in ("upper", "work", "units/etc", "units/lib"):
        os.makedirs(os.path.join(scratch, d))
    for rel, text in UNIT_FILES.items():
        p = os.path.join(scratch, "units", rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text.replace("{scratch}", scratch))
    for rel, target in UNIT_LINKS.items():
        p = os.path.join(scratch, "units", rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        os.symlink(target, p)
    with _pid1_in_namespaces(scratch, UNITS_WRAP, ["--units", "yes", "--services", "ssh,pong,keep"], "ssh") as tool:
        tool.scratch = scratch
        yield tool


def test_an_alias_reaches_its_unit_in_every_verb(units):
    """systemd: a name linked to a unit file in a unit directory is another name of that unit;
    `systemctl status sshd` shows ssh.service."""
    r = units("systemctl", "status", "sshd", "--no-pager")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.startswith("● ssh.service - OpenBSD Secure Shell server\n"), r.stdout
    assert units("systemctl", "is-active", "sshd").stdout == "active\n"
    assert r.stdout.rstrip().endswith(": ssh-says-hello"), "the unit's last lines"
    assert "ssh-says-hello" in units("journalctl", "-u", "sshd", "--no-pager").stdout
    assert units("systemctl", "show", "-p", "Id,Names", "sshd.service").stdout == \
        "Id=ssh.service\nNames=ssh.service sshd.service\n"
    before = units("systemctl", "show", "-p", "MainPID", "--value", "ssh").stdout.strip()
    assert units("systemctl", "restart", "sshd").returncode == 0
    after = units("systemctl", "show", "-p", "MainPID", "--value", "sshd").stdout.strip()
    assert after not in (before, "0", "")
    assert units("systemctl", "stop", "sshd.service").returncode == 0
    r = units("systemctl", "is-active", "ssh")
    assert (r.returncode, r.stdout) == (3, "inactive\n")
    r = units("service", "sshd", "status")
    assert r.returncode == 3 and "ssh.service - OpenBSD" in r.stdout and "Active: inactive (dead)" in r.stdout
    assert units("systemctl", "start", "sshd").returncode == 0
    assert units("systemctl", "is-active", "ssh").stdout == "active\n"
    r = units("service", "sshd", "status")
    assert r.returncode == 0 and "Active: active (running)" in r.stdout


def test_timer_start_arms_and_stop_disarms(units):
    r = units("systemctl", "is-active", "tick.timer")
    assert (r.returncode, r.stdout) == (3, "inactive\n"), "not enabled: not armed at boot"
    assert "tick.timer" not in units("systemctl", "list-timers", "--all", "--no-pager").stdout
    assert units("systemctl", "start", "tick.timer").returncode == 0
    assert units("systemctl", "is-active", "tick.timer").stdout == "active\n"
    r = units("systemctl", "list-timers", "--no-pager", "--no-legend")
    row = next(line for line in r.stdout.splitlines() if "tick.timer" in line)
    assert row.split()[-2:] == ["tick.timer", "tick.service"] and " left " in row, row
    r = units("systemctl", "status", "tick.timer")
    assert r.returncode == 0 and "Active: active (waiting)" in r.stdout and "Triggers: ● tick.service" in r.stdout
    assert units("systemctl", "stop", "tick.timer").returncode == 0
    r = units("systemctl", "is-active", "tick.timer")
    assert (r.returncode, r.stdout) == (3, "inactive\n")
    assert "tick.timer" not in units("systemctl", "list-timers", "--no-pager").stdout
    assert "tick.timer" in units("systemctl", "list-timers", "--all", "--no-pager").stdout
    r = units("systemctl", "status", "tick.timer")
    assert r.returncode == 3 and "Active: inactive (dead)" in r.stdout
    r = units("systemctl", "reload", "tick.timer")
    assert r.returncode == 1 and "Job type reload is not applicable for unit tick.timer." in r.stderr


def test_socket_stop_closes_and_start_listens_again(units):
    import socket
    path = os.path.join(units.scratch, "keep.sock")
    r = units("systemctl", "is-active", "keep.socket")
    assert (r.returncode, r.stdout) == (0, "active\n")
    assert units("systemctl", "stop", "keep.socket").returncode == 0
    r = units("systemctl", "is-active", "keep.socket")
    assert (r.returncode, r.stdout) == (3, "inactive\n")
    assert "Active: inactive (dead)" in units("systemctl", "status", "keep.socket").stdout
    c = socket.socket(socket.AF_UNIX)
    with pytest.raises(OSError):
        c.connect(path)  # nobody listens (the file stays: RemoveOnStop=no)
    c.close()
    assert units("systemctl", "is-active", "keep.service").stdout == "inactive\n"
    assert units("systemctl", "start", "keep.socket").returncode == 0
    assert units("systemctl", "is-active", "keep.socket").stdout == "active\n"
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    c.close()
    assert wait_until(lambda: units("systemctl", "is-active", "keep.service").stdout == "active\n", 10), \
        "traffic activates the service again"
    assert units("systemctl", "stop", "keep.service").returncode == 0


def test_remove_on_stop_takes_the_socket_file_and_fifo(units):
    files = [os.path.join(units.scratch, n) for n in ("pong.sock", "pong.fifo")]
    assert all(os.path.exists(p) for p in files)
    assert units("systemctl", "stop", "pong.socket").returncode == 0
    assert not any(os.path.exists(p) for p in files), "RemoveOnStop=yes"
    assert units("systemctl", "start", "pong.socket").returncode == 0
    assert all(os.path.exists(p) for p in files)


def test_status_loaded_and_drop_in_lines_as_systemd_prints_them(units):
    r = units("systemctl", "status", "ssh", "--no-pager")
    lines = r.stdout.splitlines()
    assert lines[1:4] == ["     Loaded: loaded (/lib/systemd/system/ssh.service; enabled; preset: enabled)",
                          "    Drop-In: /etc/systemd/system/ssh.service.d",
                          "             └─10-env.conf"], r.stdout
    assert lines[4].startswith("     Active: active (running) since ")
    r = units("systemctl", "status", "tick.service")
    assert "     Loaded: loaded (/lib/systemd/system/tick.service; static)\n" in r.stdout
    r = units("systemctl", "status", "gone")
    assert r.returncode == 3 and r.stdout.splitlines()[:3] == [
        "○ gone.service", "     Loaded: masked (Reason: Unit gone.service is masked.)", "     Active: inactive (dead)"]
    r = units("systemctl", "status", "nope")
    assert (r.returncode, r.stdout, r.stderr) == (4, "", "Unit nope.service could not be found.\n")
    # a unit whose file went while it runs: loaded no more, still active (systemd: not-found)
    assert units("systemctl", "start", "keep").returncode == 0
    assert units.sh("rm /lib/systemd/system/keep.service").returncode == 0
    assert units("systemctl", "daemon-reload").returncode == 0
    r = units("systemctl", "status", "keep")
    assert r.returncode == 0 and r.stdout.splitlines()[1] == \
        "     Loaded: not-found (Reason: Unit keep.service not found.)", r.stdout
    assert "Active: active (running)" in r.stdout
    assert units("systemctl", "stop", "keep").returncode == 0
    r = units("systemctl", "status", "keep")
    assert (r.returncode, r.stderr) == (4, "Unit keep.service could not be found.\n")


def test_the_container_stop_stops_the_socket_units_last(units):
    """Last in this module: PID 1 ends."""
    r = units("systemctl", "poweroff")
    assert r.returncode in (0, -9), r.stderr  # the stop may kill the client right after PID 1 answered
    units.proc.wait(timeout=30)
    assert not any(os.path.exists(os.path.join(units.scratch, n)) for n in ("pong.sock", "pong.fifo"))
    assert os.path.exists(os.path.join(units.scratch, "keep.sock")), "RemoveOnStop=no: left"
