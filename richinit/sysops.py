"""The real OS side of PID 1's decisions: signals, reaping, the clock.

The state machine in pid1.py calls only these methods, so unit tests swap in a
fake with the same shape. Every method translates "the process is already gone"
into a quiet no-op: at PID 1, a race with an exiting child is normal.
"""

import os
import time


class SysOps:
    def __init__(self, is_pid1):
        self.is_pid1 = is_pid1
        self.pid = os.getpid()
        from richinit.oom import OomCounter
        self._oom = OomCounter()  # the count now: kills before PID 1 started are not ours

    now = staticmethod(time.monotonic)

    def kill(self, pid, sig):
        try:
            os.kill(pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def killpg(self, pgid, sig):
        try:
            os.killpg(pgid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def kill_session(self, sid, sig):
        from osbase import procfs
        for pid in procfs.session_members(sid):
            self.kill(pid, sig)

    def kill_all(self, sig):
        """Every process left: kill(-1) as PID 1 (the kernel spares the caller), descendants otherwise."""
        if self.is_pid1:
            try:
                os.kill(-1, sig)
            except ProcessLookupError:
                pass
            return
        from osbase import procfs  # only when not PID 1
        for pid in procfs.descendants(self.pid):
            self.kill(pid, sig)

    def exited(self, pid):
        """Whether child `pid` has exited (or is already reaped), without reaping it: the loop
        still collects its status. waitid(WNOWAIT) only peeks."""
        try:
            return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True
        except InterruptedError:
            return False

    def reap(self):
        """Drain waitpid(-1): returns ([(pid, exit_code)], none_left)."""
        out = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return out, True
            except InterruptedError:
                continue
            if pid == 0:
                return out, False
            code = os.waitstatus_to_exitcode(status)
            out.append((pid, 128 - code if code < 0 else code))

    def oom_kills(self):
        """How many processes the OOM killer took in our memory cgroup since the last call."""
        return self._oom.new_kills()
