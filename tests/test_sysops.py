"""SysOps against real children: exited() peeks without reaping, so the loop still gets the status."""

import os
import signal

from richinit.sysops import SysOps


def _wait_exited(pid):
    # A pidfd becomes readable when the process exits: an event, not a sleep.
    import select
    fd = os.pidfd_open(pid)
    try:
        select.select([fd], [], [], 10)
    finally:
        os.close(fd)


def test_exited_peeks_without_reaping():
    ops = SysOps(is_pid1=False)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(7)
    os.close(r)
    try:
        assert ops.exited(pid) is False        # still running
        os.write(w, b"x")
        _wait_exited(pid)
        assert ops.exited(pid) is True
        assert ops.exited(pid) is True          # still there to be reaped: nothing was consumed
        assert os.waitpid(pid, 0) == (pid, 7 << 8)
        assert ops.exited(pid) is True          # reaped: no such child, so it is gone
    finally:
        os.close(w)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
