"""The real richinit as PID 1 of a fresh PID namespace (unshare), black-boxed from the host.

The test child (tests/support/child.py) announces readiness in a report file before
anything is sent to it, as dumb-init's tests do.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.pid1run import REPO, RICHINIT, Pid1, child_argv

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for PID namespaces")


def run_init(args, timeout=30, env=None, pidns=True, cwd=None):
    argv = RICHINIT + list(args)
    if pidns:
        argv = ["unshare", "--fork", "--pid", "--mount-proc", "--kill-child"] + argv
    e = dict(os.environ if env is None else env)
    e.setdefault("PYTHONPATH", REPO)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def test_every_exit_code_passes_through():
    # 256 inits in batches, so the whole range is covered in a few seconds.
    procs = {}
    codes = list(range(256))
    results = {}
    while codes or procs:
        while codes and len(procs) < 16:
            c = codes.pop()
            procs[c] = subprocess.Popen(
                ["unshare", "--fork", "--pid", "--mount-proc", "--kill-child"] + RICHINIT
                + ["--", "sh", "-c", "exit %d" % c], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=dict(os.environ, PYTHONPATH=REPO))
        for c, p in list(procs.items()):
            if p.poll() is not None:
                results[c] = p.returncode
                p.stderr.close()
                del procs[c]
        time.sleep(0.01)
    assert results == {c: c for c in range(256)}


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT, signal.SIGKILL, signal.SIGUSR1, signal.SIGSEGV,
                                 signal.SIGTERM, signal.SIGABRT])
def test_death_by_signal_is_128_plus_n(sig):
    r = run_init(["--", "sh", "-c", "kill -%d $$" % sig])
    assert r.returncode == 128 + sig, r.stderr


def test_command_not_found_is_127_and_not_executable_is_126(tmp_path):
    r = run_init(["--", "/no/such/command"])
    assert r.returncode == 127
    assert r.stderr.strip().splitlines() == ["richinit: cannot run /no/such/command: No such file or directory"]
    plain = tmp_path / "plain"
    plain.write_text("data")
    r = run_init(["--", str(plain)])
    assert r.returncode == 126
    assert "Permission denied" in r.stderr and "Traceback" not in r.stderr


def test_every_forwardable_signal_reaches_the_child(tmp_path):
    forwardable = [s for s in range(1, 32) if s not in (
        signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD,          # cannot / must not
        signal.SIGTERM, signal.SIGINT, signal.SIGPWR,             # start a shutdown (tested below)
        signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP, signal.SIGSYS,
        signal.SIGABRT)]                                          # synchronous faults: not forwarded
    with Pid1(tmp_path, child_argv(str(tmp_path / "report"), "signals")) as p:
        child = int(p.wait_line("ready")[0].split()[1])
        for s in forwardable:
            p.signal(s)
            p.wait_line("sig %d " % s, timeout=5)
        got = [int(line.split()[1]) for line in p.lines() if line.startswith("sig ")]
        assert got == forwardable
        assert all(line.split()[2] == str(child) for line in p.lines() if line.startswith("sig "))
        p.signal(signal.SIGTERM)
        assert p.wait() == 0  # the child's TERM handler exits 0
        assert p.lines()[-1].startswith("sig 15 ")


@pytest.mark.parametrize("sig,expect", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGPWR, 143),
                                        (signal.SIGRTMIN + 3, 143)])
def test_stop_signals_stop_the_child_with_default_handlers(tmp_path, sig, expect):
    with Pid1(tmp_path, ["sh", "-c", "echo ready > %s; exec sleep 1000" % (tmp_path / "report")]) as p:
        p.wait_line("ready")
        t0 = time.monotonic()
        p.signal(sig)
        assert p.wait() == expect
        assert time.monotonic() - t0 < 5


def test_child_ignoring_term_is_killed_after_the_grace(tmp_path):
    with Pid1(tmp_path, child_argv(str(tmp_path / "report"), "ignore-term"),
              opts=["--grace", "1", "--kill-grace", "1"]) as p:
        p.wait_line("ready")
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        rc = p.wait(timeout=20)
        took = time.monotonic() - t0
    assert rc == 137
    assert 1.9 <= took < 6, took
    assert "sending SIGKILL" in p.err


def test_reaps_2000_released_orphans(tmp_path):
    barrier = str(tmp_path / "barrier")
    os.mkfifo(barrier)
    # Hold the barrier's write end so the grandchildren block until we close it.
    wfd = os.open(barrier, os.O_RDWR)
    try:
        with Pid1(tmp_path, child_argv(str(tmp_path / "report"), "orphans", 2000, barrier)) as p:
            p.wait_line("ready", timeout=60)
            # All 2000 grandchildren exist (reparented to PID 1) before release.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                kids = open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()
                if len(kids) >= 2001:
                    break
                time.sleep(0.05)
            assert len(kids) >= 2001
            os.close(wfd)
            wfd = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                kids = open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()
                zombies = [k for k in kids if _state(int(k)) == "Z"]
                if len(kids) == 1 and not zombies:
                    break
                time.sleep(0.05)
            assert len(kids) == 1, "%d children left, %d zombies" % (len(kids), len(zombies))
            p.signal(signal.SIGTERM)
            assert p.wait() == 143
    finally:
        if wfd is not None:
            os.close(wfd)


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def test_double_forked_daemon_gets_term_at_shutdown(tmp_path):
    with Pid1(tmp_path, child_argv(str(tmp_path / "report"), "daemon")) as p:
        p.wait_line("ready")
        daemon = p.wait_line("daemon ")[0].split()
        assert daemon[3] == "1"  # reparented to PID 1
        p.signal(signal.SIGTERM)
        assert p.wait() == 143
        assert p.wait_line("daemon-term", timeout=1)


def test_pipelines_are_fully_stopped(tmp_path):
    """Every member of the app's background pipelines gets TERM (each says so from its trap) and
    PID 1 exits on it, not on KILL; nothing of the namespace survives."""
    report = tmp_path / "report"
    member = "sh -c 'trap \"echo term-%s >> %s; exit 0\" TERM; echo up >> %s; while :; do sleep 0.05; done'"
    pipes = " & ".join("%s | %s" % (member % ("a%d" % i, report, report), member % ("b%d" % i, report, report))
                       for i in (1, 2))
    with Pid1(tmp_path, ["sh", "-c", "%s & wait" % pipes], opts=["--grace", "20"]) as p:
        p.wait_line("up", count=4)
        p.signal(signal.SIGTERM)
        p.wait(timeout=30)
        assert p.proc.returncode in (143, 0)
        assert sorted(p.lines()) == ["term-a1", "term-a2", "term-b1", "term-b2"] + ["up"] * 4
        # The namespace is gone: no process of it survived.
        assert not os.path.exists("/proc/%d" % p.pid)


def test_group_mode_reaches_the_grandchild(tmp_path):
    with Pid1(tmp_path, child_argv(str(tmp_path / "report"), "group-usr1"), opts=["--forward", "group"]) as p:
        p.wait_line("ready")
        p.wait_line("grandchild ")
        p.signal(signal.SIGUSR1)
        p.wait_line("grandchild-usr1")
        p.signal(signal.SIGTERM)
        p.wait()


def test_rewrite_and_drop(tmp_path):
    with Pid1(tmp_path, child_argv(str(tmp_path / "report"), "signals"),
              opts=["--rewrite", "USR1:USR2", "--rewrite", "HUP:0"]) as p:
        p.wait_line("ready")
        p.signal(signal.SIGHUP)
        p.signal(signal.SIGUSR1)
        p.wait_line("sig %d " % signal.SIGUSR2)
        p.signal(signal.SIGTERM)
        p.wait()
        sigs = [int(line.split()[1]) for line in p.lines() if line.startswith("sig ")]
        assert sigs == [signal.SIGUSR2, signal.SIGTERM]


def test_child_gets_a_clean_signal_state_cwd_env_and_no_leaked_fds(tmp_path):
    leak = os.open("/dev/null", os.O_RDONLY)
    os.set_inheritable(leak, True)
    try:
        script = "grep -E '^Sig(Ign|Blk)' /proc/self/status; pwd; echo V=$MYVAR R=${RICHINIT_GRACE:-none}; " \
                 "ls /proc/self/fd"
        r = subprocess.run(["unshare", "--fork", "--pid", "--mount-proc", "--kill-child"] + RICHINIT
                           + ["--", "sh", "-c", script], capture_output=True, text=True, timeout=30,
                           cwd=str(tmp_path), pass_fds=(leak,), stdin=subprocess.DEVNULL,
                           env=dict(os.environ, MYVAR="kept", RICHINIT_GRACE="3",
                                    PYTHONPATH=REPO))
    finally:
        os.close(leak)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert "SigIgn:\t0000000000000000" in out and "SigBlk:\t0000000000000000" in out
    assert str(tmp_path) in out
    assert "V=kept R=none" in out
    fds = out[out.index("V=kept R=none") + 1:]
    assert sorted(fds) == ["0", "1", "2", "3"]  # 3 is ls's own directory fd


def test_socket_activation_fds_pass_with_listen_pid_rewritten(tmp_path):
    import socket
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(tmp_path / "sock"))
    srv.listen()
    other = os.open("/dev/null", os.O_RDONLY)
    # A wrapper sets LISTEN_PID to its own pid, then execs richinit (same pid), as systemd would.
    launcher = ("import os,sys; os.dup2(%d, 3); os.dup2(%d, 4); os.set_inheritable(3, True); "
                "os.set_inheritable(4, True); os.environ['LISTEN_PID']=str(os.getpid()); "
                "os.environ['LISTEN_FDS']='1'; os.execv(sys.executable, [sys.executable]+sys.argv[1:])"
                % (srv.fileno(), other))
    script = ('echo "pid=$$ listen_pid=$LISTEN_PID fds=$LISTEN_FDS"; stat -L -c %F /proc/$$/fd/3; '
              'if [ -e /proc/$$/fd/4 ]; then echo "fd4 leaked"; else echo "fd4 closed"; fi')
    r = subprocess.run([sys.executable, "-c", launcher, "-m", "richinit", "--", "sh", "-c", script],
                       capture_output=True, text=True, timeout=30, pass_fds=(srv.fileno(), other),
                       env=dict(os.environ, PYTHONPATH=REPO), stdin=subprocess.DEVNULL)
    srv.close()
    os.close(other)
    assert r.returncode == 0, r.stderr
    first, kind, fd4 = r.stdout.splitlines()
    first = first.split()
    assert first[0].split("=")[1] == first[1].split("=")[1], first  # LISTEN_PID == the child's pid
    assert first[2] == "fds=1"
    assert kind == "socket" and fd4 == "fd4 closed"


def test_subreaper_mode_when_not_pid1(tmp_path):
    report = str(tmp_path / "report")
    with Pid1(tmp_path, child_argv(report, "daemon"), pidns=False) as p:
        p.wait_line("ready")
        daemon = p.wait_line("daemon ")[0].split()
        assert daemon[3] == str(p.pid)  # orphan reparented to richinit, not to the host's init
        assert "not PID 1" not in (p.err or "")
        p.signal(signal.SIGTERM)
        assert p.wait() == 143
        assert p.wait_line("daemon-term", timeout=2)
        assert not os.path.exists("/proc/%s" % daemon[1]) or _state(int(daemon[1])) in (None, "Z")


def test_idle_pid1_never_wakes_up(tmp_path):
    with Pid1(tmp_path, ["sh", "-c", "echo ready > %s; exec sleep 1000" % (tmp_path / "report")]) as p:
        p.wait_line("ready")
        time.sleep(0.3)
        before = p.status()
        time.sleep(2)
        after = p.status()
        for k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            assert int(after[k]) - int(before[k]) <= 1, (k, before[k], after[k])
        p.signal(signal.SIGTERM)
        assert p.wait() == 143


def test_process_title_says_what_it_supervises(tmp_path):
    with Pid1(tmp_path, ["sh", "-c", "echo ready > %s; exec sleep 1000" % (tmp_path / "report")]) as p:
        p.wait_line("ready")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            title = open("/proc/%d/cmdline" % p.pid, "rb").read().replace(b"\0", b" ").decode()
            if title.startswith("richinit -- "):
                break
            time.sleep(0.02)
        assert title.startswith("richinit -- sh -c echo ready"), title
        p.signal(signal.SIGTERM)
        p.wait()


def test_injected_fault_does_not_kill_pid1(tmp_path):
    env = dict(os.environ, RICHINIT_INJECT_FAULT="forward,exit", PYTHONPATH=REPO)
    with Pid1(tmp_path, child_argv(str(tmp_path / "report"), "daemon"), env=env) as p:
        p.wait_line("ready")
        p.wait_line("daemon ")
        p.signal(signal.SIGUSR1)  # the forward raises: logged, survived, signal lost
        time.sleep(0.2)
        assert os.path.exists("/proc/%d" % p.pid)
        p.signal(signal.SIGTERM)  # the main child's exit handler raises once too
        rc = p.wait(timeout=30)
    assert "injected fault at forward" in p.err and "survived" in p.err
    assert rc == 143, p.err
