"""PID 1's decisions as a small state machine: (phase x event) -> named actions.

Phases:
  RUNNING        the main child runs; signals are forwarded to it.
  STOPPING_MAIN  a stop signal came: the main child got it; wait up to --grace.
  STOPPING_ALL   the main child is gone (or the grace ran out): TERM+CONT to every
                 process left; wait up to --kill-grace for the last child to go.
  KILLING        KILL to every process left; wait (bounded) for the reaper to see none.
  DONE           the loop exits with exit_code.

Nothing here blocks or touches the OS directly: effects go through `ops` (sysops.SysOps
in production, a fake in unit tests). Each handler changes phase and arms its timer
*before* it sends signals, so a failure half-way leaves a consistent state with a
timer that will move things on: a stop can never hang.
"""

import signal

from richinit import log
from richinit import signals as sigs

RUNNING, STOPPING_MAIN, STOPPING_ALL, KILLING, DONE = (
    "running", "stopping-main", "stopping-all", "killing", "done")

# After KILL to everything, how long to wait for the reaper to see no child left
# before exiting anyway (a process stuck in D state must not hang the container).
KILL_WAIT = 5.0


class Init:
    def __init__(self, ops, grace=10.0, kill_grace=5.0, rewrite=None, forward="child", faults=()):
        self.ops = ops
        self.grace, self.kill_grace = grace, kill_grace
        self.rewrite = dict(rewrite or {})
        self.forward = forward
        self.faults = set(faults)
        self.phase = RUNNING
        self.main_pid = None
        self.exit_code = None
        self.deadline = None  # monotonic time of the one pending timer, or None

    # ---- events -------------------------------------------------------------

    def on_started(self, pid):
        self.main_pid = pid

    def on_exec_failed(self, code):
        """The main command could not be executed: nothing to stop, exit with 127/126."""
        self.exit_code = code
        self._enter_stopping_all()

    def on_signal(self, sig):
        self._fault("signal")
        if sig == signal.SIGCHLD:
            return  # the loop reaps after every event
        if sig in sigs.SHUTDOWN:
            if self.phase == RUNNING:
                self._begin_stop(sig)
            else:
                # A second stop signal while stopping goes to the app like any
                # other, so a second Ctrl-C still reaches it.
                self._forward(sig)
            return
        if sigs.forwardable(sig):
            self._forward(sig)

    def on_exit(self, pid, code):
        self._fault("exit")
        if pid != self.main_pid:
            log.debug("reaped pid %d (exit %d)", pid, code)
            return
        log.info("main child %d exited with %d", pid, code)
        self.main_pid = None
        if self.exit_code is None:
            self.exit_code = code
        if self.phase in (RUNNING, STOPPING_MAIN):
            self._enter_stopping_all()

    def on_no_children(self):
        if self.phase in (STOPPING_ALL, KILLING):
            self._done()

    def on_timer(self, now):
        if self.deadline is None or now < self.deadline:
            return
        self.deadline = None
        if self.phase == STOPPING_MAIN:
            log.warning("main child did not exit within %.1fs of the stop signal", self.grace)
            self._enter_stopping_all()
        elif self.phase == STOPPING_ALL:
            self._enter_killing()
        elif self.phase == KILLING:
            log.warning("processes survived SIGKILL for %.1fs; exiting anyway", KILL_WAIT)
            self._done()

    # ---- actions ------------------------------------------------------------

    def _begin_stop(self, sig):
        first = self.rewrite.get(sig, sig if sig in (signal.SIGTERM, signal.SIGINT) else signal.SIGTERM)
        log.info("%s received: stopping (grace %.1fs)", sigs.name(sig), self.grace)
        self.phase = STOPPING_MAIN
        self.deadline = self.ops.now() + self.grace
        if first:
            self._send_main(first)

    def _enter_stopping_all(self):
        self.phase = STOPPING_ALL
        self.deadline = self.ops.now() + self.kill_grace
        self.ops.kill_all(signal.SIGTERM)
        self.ops.kill_all(signal.SIGCONT)  # a stopped process cannot act on TERM

    def _enter_killing(self):
        log.warning("processes left after %.1fs: sending SIGKILL", self.kill_grace)
        self.phase = KILLING
        self.deadline = self.ops.now() + KILL_WAIT
        self.ops.kill_all(signal.SIGKILL)

    def _done(self):
        self.phase = DONE
        self.deadline = None
        if self.exit_code is None:
            # The main child never reported (killed with everything else).
            self.exit_code = 128 + signal.SIGKILL

    def _forward(self, sig):
        sig = self.rewrite.get(sig, sig)
        if sig and self.main_pid is not None:
            self._fault("forward")
            log.debug("forwarding %s to %d (%s)", sigs.name(sig), self.main_pid, self.forward)
            self._send_main(sig)

    def _send_main(self, sig):
        if self.main_pid is None:
            return
        if self.forward == "group":
            self.ops.killpg(self.main_pid, sig)
        elif self.forward == "session":
            self.ops.kill_session(self.main_pid, sig)
        else:
            self.ops.kill(self.main_pid, sig)

    def _fault(self, point):
        """Test aid: RICHINIT_INJECT_FAULT=point raises once here to prove PID 1 survives."""
        if point in self.faults:
            self.faults.discard(point)
            raise RuntimeError("injected fault at %s" % point)
