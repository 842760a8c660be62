"""The real built-in cron process on fixture trees: users, environment, clock, reload, stop."""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from richinit import environ
from tests.support.containers import REPO

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="running jobs as other users needs root")

ID_JOB = 'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME logname=$LOGNAME app=$APP_MODE ' \
         'custom=$CUSTOM path=$PATH"'


def write(path, text, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    write(r / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
          "bob:x:1001:1001::/home/bob:/bin/sh\n")
    write(r / "etc/group", "root:x:0:\nalice:x:1000:\nbob:x:1001:\nstaff:x:50:alice\ndocker_env:x:8377:alice\n")
    environ.save({"APP_MODE": "production", "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/ignored"}, str(r))
    return r


def cron_argv(root, *args):
    return [sys.executable, "-m", "richinit.builtin.cron", "--root", str(root), *args]


def outputs(stderr, user=None):
    """{pid: [OUT lines]} and the list of (pid, kind, rest) records from the stderr fallback log."""
    recs = []
    for line in stderr.splitlines():
        m = re.match(r"richinit-cron: CRON\[(\d+)\]: \((\S+)\) (CMD|OUT|END) (.*)$", line)
        if m and (user is None or m.group(2) == user):
            recs.append((int(m.group(1)), m.group(2), m.group(3), m.group(4)))
    return recs


def test_once_at_runs_due_jobs_as_their_users_with_the_environment(root):
    write(root / "etc/cron.d/ids", "CUSTOM=from-crontab\n* * * * * alice %s\n* * * * * bob %s\n"
          "0 12 * * * root echo not-due\n" % (ID_JOB, ID_JOB))
    write(root / "var/spool/cron/crontabs/alice", "*/5 * * * * echo user-table $LOGNAME\n", 0o600)
    os.chown(root / "var/spool/cron/crontabs/alice", 1000, 1000)
    r = subprocess.run(cron_argv(root, "--once-at", "2026-11-27 10:05"), cwd=REPO, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    recs = outputs(r.stderr)
    outs = {user: [rest for _, u, kind, rest in recs if u == user and kind == "OUT"] for user in ("alice", "bob")}
    assert "(uid=1000 gid=1000 groups=1000 50 8377 home=/home/alice logname=alice app=production " \
           "custom=from-crontab path=/usr/local/bin:/usr/bin:/bin)" in outs["alice"]
    assert "(user-table alice)" in outs["alice"]
    # bob is not in docker_env: the saved (possibly secret) environment is not his to see.
    assert outs["bob"] == ["(uid=1001 gid=1001 groups=1001 home=/home/bob logname=bob app= custom=from-crontab "
                           "path=/usr/bin:/bin)"]
    ends = [rest for _, _, kind, rest in recs if kind == "END"]
    assert len(ends) == 3 and all(e.endswith(" exit 0") for e in ends)
    assert "not-due" not in r.stderr


def test_bad_lines_logged_with_file_and_line_others_run(root):
    write(root / "etc/crontab", "* * * * * root echo good-one\nnonsense here\n* * 32 * * root echo x\n"
          "* * * * * root echo good-two; exit 3\n")
    r = subprocess.run(cron_argv(root, "--once-at", "2026-11-27 10:05"), cwd=REPO, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0
    assert "%s:2: neither a job nor NAME=value" % (root / "etc/crontab") in r.stderr
    assert "%s:3: day of month: 32 out of range" % (root / "etc/crontab") in r.stderr
    assert "(root) OUT (good-one)" in r.stderr and "(root) OUT (good-two)" in r.stderr
    assert "(root) END (echo good-two; exit 3) exit 3" in r.stderr


def test_logs_go_to_syslog_when_it_listens(root, tmp_path):
    sock, logfile = str(tmp_path / "log"), tmp_path / "messages"
    rfd, wfd = os.pipe()
    syslogd = subprocess.Popen([sys.executable, "-m", "richinit.builtin.syslogd", "--socket", sock, "--file",
                                str(logfile), "--notify-fd", str(wfd)], cwd=REPO, pass_fds=(wfd,))
    os.close(wfd)
    try:
        assert select.select([rfd], [], [], 10)[0] and os.read(rfd, 1) == b"\n"
        write(root / "etc/cron.d/job", "* * * * * alice echo to-syslog\n* * * * * root seq 1 150\n")
        r = subprocess.run(cron_argv(root, "--syslog", sock, "--once-at", "2026-11-27 10:05"), cwd=REPO,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stderr == ""
    finally:
        os.close(rfd)
        syslogd.send_signal(signal.SIGTERM)
        assert syslogd.wait(10) == 0
    text = logfile.read_text()
    assert re.search(r" CRON\[\d+\]: \(alice\) CMD \(echo to-syslog\)\n", text), text
    assert re.search(r" CRON\[\d+\]: \(alice\) OUT \(to-syslog\)\n", text), text
    assert re.search(r" CRON\[\d+\]: \(alice\) END \(echo to-syslog\) exit 0\n", text), text
    # A burst of output outruns /dev/log's 10-datagram queue; cron waits for syslogd, loses nothing.
    assert re.findall(r"\(root\) OUT \((\d+)\)", text) == [str(i) for i in range(1, 101)]
    assert "(root) OUT truncated: 50 more line(s) not logged" in text


def test_a_stuck_syslog_does_not_stall_cron(root, tmp_path):
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # bound, never read: its queue fills
    stuck.bind(str(tmp_path / "log"))
    try:
        write(root / "etc/cron.d/job", "* * * * * root seq 1 50\n")
        t0 = time.monotonic()
        r = subprocess.run(cron_argv(root, "--syslog", str(tmp_path / "log"), "--once-at", "2026-11-27 10:05"),
                           cwd=REPO, capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - t0
    finally:
        stuck.close()
    assert r.returncode == 0
    assert elapsed < 10  # one send timeout, then stderr for the rest
    assert "(root) OUT (50)" in r.stderr and "(root) END (seq 1 50) exit 0" in r.stderr


def _run_fast(root, start, until, timeout=30):
    """The real scheduling loop on a fast clock (a minute lasts 0.2 s), stopped with SIGTERM.

    until(): polled every 50 ms; cron is stopped once it returns true (or after `timeout`),
    so a loaded machine makes the test slower, not red.
    """
    p = subprocess.Popen(cron_argv(root, "--clock-start", start, "--minute-seconds", "0.2"), cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return p.returncode, err


def test_fast_clock_schedules_minutes_hours_reboot_and_reloads(root, tmp_path):
    log = tmp_path / "ran"
    log.write_text("")
    job = lambda what: "root echo %s >> %s" % (what, log)  # noqa: E731
    write(root / "etc/cron.d/sched", "* * * * * %s\n@reboot %s\n58 10 * * * %s\n59 10 * * * %s\n"
          "0 11 * * * %s\n1 11 * * * %s\n0 10 * * * %s\n" % (
              job("tick"), job("rebooted"), job("at-10:58"), job("at-10:59"), job("at-11:00"), job("at-11:01"),
              job("never")))
    added = []

    def until():
        ran = log.read_text().split()
        if "at-11:01" in ran and not added:
            write(root / "etc/cron.d/late", "* * * * * %s\n" % job("late-added"))  # while it runs
            added.append(ran.count("tick"))
        return "late-added" in ran
    # The clock starts at 10:57:00.
    code, err = _run_fast(root, "2026-11-27 10:57", until)
    assert code == 0, err
    ran = log.read_text().split()
    assert "late-added" in ran, err                                  # picked up without a restart
    fixed = [w for w in ran if w.startswith("at-") or w == "never"]
    assert sorted(fixed) == ["at-10:58", "at-10:59", "at-11:00", "at-11:01"], ran  # each once
    assert ran.count("tick") >= 4                                    # once per fake minute
    assert ran.count("rebooted") == 1
    # @reboot runs once per boot: a second cron (a supervisor restart) does not repeat it.
    log.write_text("")
    code, err = _run_fast(root, "2026-11-27 10:57", lambda: log.read_text().count("tick") >= 2)
    assert code == 0 and "rebooted" not in log.read_text() and "tick" in log.read_text()


def test_sigterm_stops_running_jobs_and_logs_their_end(root):
    ran = root / "ran"
    cmd = "echo started; touch %s; exec sleep 3017" % ran  # an odd number: no other test's sleeper
    write(root / "etc/cron.d/slow", "* * * * * root %s\n" % cmd)
    t0 = time.monotonic()
    code, err = _run_fast(root, "2026-11-27 10:00", ran.exists)
    assert code == 0, err
    assert time.monotonic() - t0 < 20
    assert "(root) OUT (started)" in err
    assert "(root) END (%s) killed by SIGTERM" % cmd in err
    assert "sleep 3017" not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_stop_timeout_then_sigkill(root):
    write(root / "etc/cron.d/stubborn", "* * * * * root trap '' TERM; echo ready; sleep 300 & wait\n")
    p = subprocess.Popen(cron_argv(root, "--once-at", "2026-11-27 10:00", "--stop-timeout", "0.5"), cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stderr.readline()
        while "OUT (ready)" not in line:
            assert line, "job never started"
            line = p.stderr.readline()
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0
    assert "killed by SIGKILL" in err


def test_odd_jobs_endless_line_realtime_signal_missing_shell(root):
    write(root / "etc/cron.d/odd", "* * * * * root head -c 100000 /dev/zero | tr '\\0' x\n"
          "* * * * * root kill -35 $$\n"
          "SHELL=/nonexistent/shell\n* * * * * root echo never\n")
    r = subprocess.run(cron_argv(root, "--once-at", "2026-11-27 10:05"), cwd=REPO, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    outs = re.findall(r"\(root\) OUT \((x+)\.\.\. \((\d+) bytes\)\)", r.stderr)
    assert outs and all(len(x) == 2048 for x, _ in outs) and sum(int(n) for _, n in outs) <= 100000
    assert "OUT truncated:" in r.stderr or sum(int(n) for _, n in outs) == 100000
    assert "(root) END (kill -35 $$) killed by signal 35" in r.stderr
    assert "(root) CANNOT RUN (echo never): " in r.stderr and "/nonexistent/shell" in r.stderr


def test_bad_arguments_are_one_clear_line(root):
    r = subprocess.run(cron_argv(root, "--once-at", "tomorrow"), cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "'tomorrow' is not 'YYYY-mm-dd HH:MM'" in r.stderr and "Traceback" not in r.stderr


def test_job_stdin_umask_and_no_inherited_fds(root, tmp_path):
    """What subprocess gave jobs and spawn() must too: % stdin, umask 022, only fds 0-2 (not cron's own)."""
    write(root / "etc/cron.d/io", "* * * * * alice cat%first line%second line\n"
          "* * * * * root umask; ls /proc/self/fd | tr '\\n' ' '\n")
    r_fd, w_fd = os.pipe()  # an fd cron inherits from whoever started it: not the jobs' business
    try:  # cron started with umask 077: the jobs' 022 is cron's doing
        r = subprocess.run(cron_argv(root, "--once-at", "2026-11-27 10:05"), cwd=REPO, capture_output=True, text=True,
                           timeout=30, pass_fds=(w_fd,), preexec_fn=lambda: os.umask(0o077))
    finally:
        os.close(r_fd)
        os.close(w_fd)
    assert r.returncode == 0, r.stderr
    outs = [rest for _, user, kind, rest in outputs(r.stderr) if kind == "OUT"]
    assert "(first line)" in outs and "(second line)" in outs, r.stderr
    assert "(0022)" in outs, r.stderr
    fds = [o for o in outs if o[1:2].isdigit() and " " in o]
    assert fds and sorted(int(n) for n in fds[0].strip("()").split()) in ([0, 1, 2], [0, 1, 2, 3]), fds
