"""The built-in syslogd and cron stay lean: no heavy stdlib module while they start, serve and stop.

One of each runs in every container, so a module that creeps back costs memory in all of them
(re ~1.1 MB, socket.py ~1.3 MB, subprocess ~2.2 MB, argparse ~2 MB of private memory each).
Each daemon's real main() runs in an isolated interpreter (`python -I`, as the supervisor starts
it) and does real work (messages on both sockets, jobs started and reaped, a stop by SIGTERM);
then the interpreter reports every module it loaded.
"""

import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support.containers import REPO, have

HEAVY = frozenset({"re", "enum", "socket", "selectors", "subprocess", "argparse", "datetime", "locale", "json",
                   "logging", "shlex", "signal", "_strptime", "collections", "typing", "threading", "gettext"})

# Runs main(argv) in this interpreter, then prints the modules it loaded (the last line of stdout).
RUNNER = """
import sys
mod = __import__(sys.argv[1], fromlist=["main"])
code = mod.main(sys.argv[2:])
sys.stdout.write("\\nMODULES " + " ".join(sorted(sys.modules)) + "\\n")
sys.exit(code)
"""


def start(module, *args):
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-I", "-c", RUNNER, module, *args, "--notify-fd", str(w)], cwd="/",
                         pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(w)
    try:
        ready = select.select([r], [], [], 10)[0] and os.read(r, 1) == b"\n"
    finally:
        os.close(r)
    if not ready:
        p.kill()
        p.communicate()
        pytest.fail("%s never became ready" % module)
    return p


def stop(p):
    try:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    last = out.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("MODULES "), out + err
    return set(last.split()[1:]), err


def test_the_test_would_notice_a_heavy_module():
    """The runner reports what it loaded: the services loader's command line (argparse, json, re) is caught."""
    r = subprocess.run([sys.executable, "-I", "-c", RUNNER, "richinit.services.load", "--root", "/nonexistent/x"],
                       cwd="/", capture_output=True, text=True, timeout=30)
    modules = set(r.stdout.rstrip("\n").rsplit("\n", 1)[-1].split()[1:])
    assert r.returncode == 1 and {"argparse", "json", "re"} <= modules & HEAVY, r.stdout + r.stderr


def test_saving_the_environment_loads_nothing_heavy(tmp_path):
    """PID 1's boot child saves the environment before any service starts: no json, re or shlex."""
    code = ("import sys; from richinit import environ; "
            "environ.save({'A': 'x y', 'B': 'a' + chr(39) + 'b', 'C': 'p/q=1'}, sys.argv[1]); "
            "sys.stdout.write('MODULES ' + ' '.join(sorted(sys.modules)))")
    (tmp_path / "etc").mkdir()
    r = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path)], cwd="/", capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    saved = (tmp_path / "run/richinit/environment").read_text()
    assert saved == "export A='x y'\nexport B='a'\"'\"'b'\nexport C=p/q=1\n"
    assert not set(r.stdout.split()[1:]) & HEAVY, r.stdout


def test_syslogd_serving_and_stopping_loads_nothing_heavy(tmp_path):
    sock, stream = str(tmp_path / "log"), str(tmp_path / "logs")
    p = start("richinit.builtin.syslogd", "--socket", sock, "--stream-socket", stream, "--file",
              str(tmp_path / "messages"), "--max-size", "1K", "--keep", "2")
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for msg in (b"<13>Nov 27 11:59:58 host app[1]: 3164", b"<13>2026-11-27T11:00:00+00:00 host tag: legacy",
                    b'<165>1 2026-11-27T10:20:30.123Z web01 app 1 ID [x@1 a="b"][timeQuality tzKnown="1"] 5424',
                    b"\xff garbage", b"<13>" + b"x" * 1100):
            s.sendto(msg, sock)
        s.close()
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(stream)
        c.sendall(b"<14>streamed: one\n12 <14>t: octet")
        c.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "octet" not in _all_text(tmp_path):
            time.sleep(0.02)
        os.kill(p.pid, signal.SIGHUP)  # reopen
    finally:
        modules, err = stop(p)
    assert "octet" in _all_text(tmp_path) and "3164" in _all_text(tmp_path), err
    assert os.path.exists(tmp_path / "messages.1")  # rotated too
    assert "richinit.builtin.syslogd" in modules
    assert sorted(modules & HEAVY) == []


def _all_text(d):
    return "".join((d / n).read_text(errors="replace") for n in os.listdir(d) if n.startswith("messages"))


@pytest.mark.skipif(not have("sh"), reason="no /bin/sh for the jobs")
def test_cron_running_jobs_and_stopping_loads_nothing_heavy(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "run/richinit").mkdir(parents=True)
    uid, gid = os.geteuid(), os.getegid()
    (root / "etc/passwd").write_text("me:x:%d:%d::/:/bin/sh\n" % (uid, gid))
    (root / "etc/group").write_text("me:x:%d:\n" % gid)
    (root / "run/richinit/environment").write_text("export APP='a b'\nexport Q='it'\"'\"'s'\n")
    ran = tmp_path / "ran"
    (root / "etc/crontab").write_text("X=1\n* * * * * me echo \"$APP $Q $X\" >> %s; echo out\n"
                                      "@reboot me echo rebooted >> %s\n" % (ran, ran))
    os.chmod(root / "etc/crontab", 0o644)
    p = start("richinit.builtin.cron", "--root", str(root), "--syslog", str(tmp_path / "no-syslog"),
              "--clock-start", "2026-11-27 10:00", "--minute-seconds", "0.2")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not ran.exists() or "a b it's 1" not in ran.read_text()):
            time.sleep(0.05)
        time.sleep(0.3)  # a job's END is logged after it is reaped
    finally:
        modules, err = stop(p)
    assert "a b it's 1" in ran.read_text() and "rebooted" in ran.read_text(), err
    assert "(me) OUT (out)" in err and "(me) END (echo" in err
    assert "richinit.builtin.cron" in modules and "richinit.spawn" in modules
    assert sorted(modules & HEAVY) == []


def test_repo_is_what_runs():
    """`-I` ignores the checkout's directory: the daemons above came from the installed package."""
    r = subprocess.run([sys.executable, "-I", "-c", "import richinit, os; print(os.path.dirname(richinit.__file__))"],
                       cwd="/", capture_output=True, text=True, timeout=30)
    assert os.path.realpath(r.stdout.strip()) == os.path.realpath(os.path.join(REPO, "richinit"))
