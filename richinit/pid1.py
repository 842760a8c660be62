"""PID 1's decisions as a small state machine: (phase x event) -> named actions.

Phases:
  BOOTING            services mode: init scripts run, then services; the app waits for the
                     services it names (--app-after), if it did not start before the loader.
  RUNNING            the app runs; signals are forwarded to it.
  STOPPING_MAIN      a stop signal came: the app got it; wait up to --grace.
  STOPPING_SERVICES  services stop in reverse dependency order, each with its own timeout.
  STOPPING_ALL       TERM+CONT to every process left; wait up to --kill-grace for the last child.
  KILLING            KILL to every process left; wait (bounded) for the reaper to see none.
  DONE               the loop exits with exit_code.

Nothing here blocks or touches the OS directly: effects go through `ops` (sysops.SysOps
in production, a fake in unit tests) and the optional `services` (supervisor.Supervisor).
Each handler changes phase and arms its timer *before* it sends signals, so a failure
half-way leaves a consistent state with a timer that will move things on: a stop can
never hang.
"""

import _signal as signal  # not the enum-heavy package: see signals.py

from richinit import log
from richinit import signals as sigs

BOOTING, RUNNING, STOPPING_MAIN, STOPPING_SERVICES, STOPPING_ALL, KILLING, DONE = (
    "booting", "running", "stopping-main", "stopping-services", "stopping-all", "killing", "done")

# After KILL to everything, how long to wait for the reaper to see no child left
# before exiting anyway (a process stuck in D state must not hang the container).
KILL_WAIT = 5.0


class Init:
    def __init__(self, ops, grace=5.0, kill_grace=2.0, rewrite=None, forward="child",
                 services=None, vm=False, start_app=None):
        self.ops = ops
        self.grace, self.kill_grace = grace, kill_grace
        self.rewrite = dict(rewrite or {})
        self.forward = forward
        self.services = services
        self.vm = vm
        self.start_app = start_app  # () -> pid; raises spawn.ExecError
        self.phase = RUNNING
        self.main_pid = None
        self.app_started = None
        self.app_exit = None
        self.exit_code = None
        self._deadline = None  # monotonic time of PID 1's own pending timer, or None
        if services is not None:
            self.use_services(services)

    def use_services(self, services):
        """Supervise `services` (supervisor.Supervisor) too; made after the app may have started."""
        self.services = services
        services.on_change = self.on_services_changed

    @property
    def deadline(self):
        own = self._deadline
        svc = self.services.next_deadline() if self.services is not None else None
        if own is None:
            return svc
        return own if svc is None else min(own, svc)

    # ---- boot ---------------------------------------------------------------

    def start_app_early(self):
        """The app waits for nothing (no init script, no --app-after): start it before the services
        are loaded; boot() then starts them beside it."""
        self._start_app()

    def app_gone(self):
        """The early-started app has already exited or could not be executed (not --vm): the
        container is about to end, so there is no point in loading or starting a service."""
        if self.vm:
            return False
        if self.phase not in (RUNNING, BOOTING):
            return True  # it could not be executed: the stop is under way
        if self.app_started is None:
            return False
        return self.app_exit is not None or (self.main_pid is not None and self.ops.exited(self.main_pid))

    def boot(self):
        """Start the services and, once the init scripts ran and what --app-after names is ready,
        the app (unless it started early); or the app alone. No service starts when the early app
        has already exited: the loop reaps it and the stop begins."""
        if self.services is None:
            self._start_app()
            return
        if self.phase != RUNNING or self.app_gone():
            return  # the early app could not be started, or is gone: the stop is under way
        if self.app_started is None:
            self.phase = BOOTING
        self.services.boot(self._booted)

    def _booted(self, ok, code):
        if self.phase != BOOTING:
            return
        if not ok:
            self.exit_code = code
            self._enter_stopping_services()
            return
        self.phase = RUNNING
        self._start_app()

    def _start_app(self):
        self.phase = RUNNING
        if self.start_app is None:
            return  # --vm without a command: services only
        from richinit.spawn import ExecError
        try:
            pid = self.start_app()
        except ExecError as e:
            log.say("cannot run %s" % e)
            self.on_exec_failed(e.exit_code)
            return
        self.on_started(pid)

    # ---- events -------------------------------------------------------------

    def on_started(self, pid):
        self.main_pid = pid
        self.app_started = self.ops.now()

    def on_exec_failed(self, code):
        """The main command could not be executed: stop with 127/126."""
        self.exit_code = code
        self._enter_stopping_services()

    def on_signal(self, sig):
        if sig == signal.SIGCHLD:
            return  # the loop reaps after every event
        if sig in sigs.SHUTDOWN:
            if self.phase in (RUNNING, BOOTING):
                self._begin_stop(sig)
            else:
                # A second stop signal while stopping goes to the app like any
                # other, so a second Ctrl-C still reaches it.
                self._forward(sig)
            return
        if sig == signal.SIGHUP and self.services is not None:
            self.reload()  # with services, HUP means "re-read services.d" (richctl reload)
            return
        if sigs.forwardable(sig):
            self._forward(sig)

    def on_exit(self, pid, code):
        # Bookkeeping first, in plain assignments that cannot fail: whatever goes
        # wrong below, the app's exit is not lost and heal() moves the stop on.
        is_main = pid == self.main_pid
        if is_main:
            self.main_pid = None
            self.app_exit = code
            if self.exit_code is None and not self.vm:
                self.exit_code = code
        if code == 128 + signal.SIGKILL and self.ops.oom_kills():
            log.warning("%s killed by the OOM killer", "app (pid %d)" % pid if is_main else "pid %d" % pid)
        if not is_main:
            if self.services is None or not self.services.on_exit(pid, code):
                log.debug("reaped pid %d (exit %d)", pid, code)
            return
        log.info("main child %d exited with %d", pid, code)
        if self.vm and self.phase == RUNNING:
            log.warning("the app exited with %d; --vm keeps the container up until it is stopped", code)
            return
        if self.phase in (RUNNING, STOPPING_MAIN):
            self._enter_stopping_services()

    def heal(self):
        """Re-derive the next step from the state: the loop calls this after every event.

        If a handler failed half-way (a bug; tests inject such failures with tests/support/faultinit.py),
        the state it left is still true, and this finds the transition that did not happen, so a stop never stalls.
        """
        if self.phase in (RUNNING, STOPPING_MAIN) and self.main_pid is None and self.app_started is not None \
                and not (self.vm and self.phase == RUNNING):
            self._enter_stopping_services()
        elif self.phase == STOPPING_SERVICES and (self.services is None or self.services.all_down()):
            self._enter_stopping_all()
        elif self.phase in (STOPPING_MAIN, STOPPING_ALL, KILLING) and self._deadline is None:
            self._deadline = self.ops.now() + (self.grace if self.phase == STOPPING_MAIN else self.kill_grace)

    def on_services_changed(self):
        if self.phase == STOPPING_SERVICES and self.services.all_down():
            self._enter_stopping_all()

    def on_no_children(self):
        if self.phase in (STOPPING_ALL, KILLING):
            self._done()

    def on_timer(self, now):
        if self.services is not None:
            self.services.on_timer(now)
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self.phase == STOPPING_MAIN:
            log.warning("the app did not exit within %.1fs of the stop signal", self.grace)
            self._enter_stopping_services()
        elif self.phase == STOPPING_ALL:
            self._enter_killing()
        elif self.phase == KILLING:
            log.warning("processes survived SIGKILL for %.1fs; exiting anyway", KILL_WAIT)
            self._done()

    # ---- requests (richctl) -------------------------------------------------

    def request_stop(self):
        self.on_signal(signal.SIGTERM)

    def reboot(self):
        """The `reboot` request (systemctl reboot): every service restarts in order; the container
        and the app go on. Without services there is nothing to restart."""
        if self.services is None or self.phase not in (RUNNING, BOOTING):
            return {"ok": False, "error": "no services to restart" if self.services is None else "stopping"}
        return self.services.reboot()

    def reload(self):
        if self.services is None or self.phase not in (RUNNING, BOOTING):
            return {"ok": False, "error": "no services to reload" if self.services is None else "stopping"}
        return self.services.reload()

    def app_status(self):
        now = self.ops.now()
        return {"state": "running" if self.main_pid else ("exited" if self.app_exit is not None else "waiting"),
                "pid": self.main_pid, "last_exit": self.app_exit,
                "uptime": round(now - self.app_started, 3) if self.main_pid and self.app_started else None}

    # ---- actions ------------------------------------------------------------

    def _begin_stop(self, sig):
        first = self.rewrite.get(sig, sig if sig in (signal.SIGTERM, signal.SIGINT) else signal.SIGTERM)
        log.info("%s received: stopping (grace %.1fs)", sigs.name(sig), self.grace)
        if self.vm and self.exit_code is None:
            self.exit_code = 0  # a VM stopped on request exits cleanly
        if self.main_pid is None:
            self._enter_stopping_services()
            return
        self.phase = STOPPING_MAIN
        self._deadline = self.ops.now() + self.grace
        if first:
            self._send_main(first)

    def _enter_stopping_services(self):
        if self.services is None:
            return self._enter_stopping_all()
        self.phase = STOPPING_SERVICES
        self._deadline = None
        self.services.stop_all()
        if self.services.all_down():
            self._enter_stopping_all()

    def _enter_stopping_all(self):
        self.phase = STOPPING_ALL
        self._deadline = self.ops.now() + self.kill_grace
        self.ops.kill_all(signal.SIGTERM)
        self.ops.kill_all(signal.SIGCONT)  # a stopped process cannot act on TERM

    def _enter_killing(self):
        log.warning("processes left after %.1fs: sending SIGKILL", self.kill_grace)
        self.phase = KILLING
        self._deadline = self.ops.now() + KILL_WAIT
        self.ops.kill_all(signal.SIGKILL)

    def _done(self):
        self.phase = DONE
        self._deadline = None
        if self.exit_code is None:
            # The app never reported (killed with everything else).
            self.exit_code = 128 + signal.SIGKILL if self.start_app is not None or self.main_pid else 0

    def _forward(self, sig):
        sig = self.rewrite.get(sig, sig)
        if sig and self.main_pid is not None:
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
