"""A chatty service and a container stdout nobody takes: an unread pipe, a closed one, /dev/null, an
unread terminal. PID 1 keeps reaping and answering, a stop ends the container in time with the app's
exit code, and a lost stretch of output is reported once the pipe drains."""

import fcntl
import os
import re
import select
import termios
import threading

import pytest

from .conftest import GRACE, KILL_GRACE, record

# The app leaves an orphan behind every 0.2 s (PID 1 must reap it) and exits 5 on TERM.
APP = "trap 'exit 5' TERM; while :; do (sleep 0.05 &); sleep 0.2; done"
CHATTY = {"chatty": 'command: "while :; do echo chatter-chatter-chatter-chatter-chatter-chatter; done"\n'
                    "stop_timeout: 2\n"}
SLACK = 3.0  # runc's own start-up and teardown around the stop


def probe(c, n):
    """n status probes, each a liveness check; the probes are the test's pace (about 0.2 s each)."""
    for _ in range(n):
        c.alive()
        select.select([], [], [], 0.2)


def unread(fd):
    buf = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return int.from_bytes(buf, "little")


def full(fd):
    """Whether a writer of the pipe whose read end is fd would block: a PIPE_BUF write (all or
    nothing) through a write end of our own finds no free slot. Counting bytes cannot tell: the
    pipe's slots fill at whatever the writes left in each page."""
    w = os.open("/proc/self/fd/%d" % fd, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(w, b"\n" * select.PIPE_BUF)
    except BlockingIOError:
        return True
    finally:
        os.close(w)
    return False


def test_unread_stdout_pipe_with_a_chatty_service(rich):
    r, w = os.pipe()
    c = rich(APP, services=CHATTY, only=["chatty"], stdout=w)
    c.start()
    os.close(w)
    try:
        c.wait_up("chatty")
        probe(c, 25)  # ~5 s with the pipe full
        assert full(r), unread(r)  # a blocking writer would sit here
        # Someone reads now: the stretch that was dropped is reported, once.
        got, stop = bytearray(), threading.Event()

        def drain():
            while not stop.is_set():
                if select.select([r], [], [], 0.1)[0]:
                    got.extend(os.read(r, 65536))
        t = threading.Thread(target=drain)
        t.start()
        try:
            pat = re.compile(rb"\[richinit\] (\d+) bytes of chatty's output dropped\n")
            from tests.support.wait import wait_until
            assert wait_until(lambda: pat.search(got), 15), bytes(got[-300:])
        finally:
            stop.set()
            t.join()
        assert int(pat.search(got).group(1)) > 0
        probe(c, 25)  # ~5 s more, the pipe full again
        assert full(r), unread(r)  # a blocking writer would sit here
        record("unread stdout pipe", c)
        rc, took = c.stop()
    finally:
        os.close(r)
    assert rc == 5, c.log()
    assert took < GRACE + KILL_GRACE + SLACK, took
    assert "SIGTERM received: stopping" in c.log()


@pytest.mark.parametrize("kind", ["devnull", "closed-pipe", "unread-terminal"])
def test_stdout_and_stderr_lead_nowhere(rich, kind):
    keep = []
    if kind == "devnull":
        out = err = os.open("/dev/null", os.O_WRONLY)
    elif kind == "closed-pipe":
        rd, out = os.pipe()
        os.close(rd)  # EPIPE for every write
        err = out
    else:
        master, out = os.openpty()  # a terminal whose other side nobody reads
        err = out
        keep.append(master)
    c = rich(APP, services=CHATTY, only=["chatty"], stdout=out, stderr=err)
    c.start()
    os.close(out)
    try:
        c.wait_up("chatty")
        probe(c, 15)
        assert c.running()  # the app was not hit by a SIGPIPE of PID 1's own writes
        if kind == "unread-terminal":
            assert unread(keep[0]) > 0  # the terminal holds what fitted; the rest is not waited for
        record("stdout+stderr: %s" % kind, c)
        rc, took = c.stop()
    finally:
        for fd in keep:
            os.close(fd)
    assert rc == 5
    assert took < GRACE + KILL_GRACE + SLACK, took


def test_a_pipe_pid1_cannot_reopen_goes_through_a_helper(rich):
    """In a user namespace the host's pipe is nobody's: /proc/self/fd/1 cannot be reopened, so PID 1's
    writes go through a forked helper that blocks for it; PID 1 itself still never waits."""
    r, w = os.pipe()
    c = rich(APP, services=CHATTY, only=["chatty"], stdout=w, userns=100000)
    c.start()
    os.close(w)
    try:
        c.wait_up("chatty")
        assert "fd 1 cannot be reopened (Permission denied): written through a helper process" in c.log(), c.log()
        kids = open("/proc/%d/task/%d/children" % (c.pid, c.pid)).read().split()
        titles = [open("/proc/%s/cmdline" % k, "rb").read().replace(b"\0", b" ") for k in kids]
        assert any(t.startswith(b"richinit-output 1") for t in titles), titles
        probe(c, 10)
        assert full(r), unread(r)  # a blocking writer would sit here
        record("unread stdout pipe through the helper (user namespace)", c)
        rc, took = c.stop()
    finally:
        os.close(r)
    assert rc == 5, c.log()
    assert took < GRACE + KILL_GRACE + SLACK, took
