"""One supervised service as a small state machine: (state x event) -> named actions (`_TABLE`).

States (systemd's ActiveState/SubState in `properties`)
  down       not running (never started, stopped on request, exited cleanly, or a condition was false)
  waiting    asked to start; its dependencies are not ready yet
  condition  running ExecCondition= commands (exit 1..254: the start is skipped, the unit inactive)
  pre        running its `pre` commands (ExecStartPre=), one after the other
  starting   the process runs; waiting for readiness (notify READY=1, a probe, a forking pidfile,
             or a oneshot's exit)
  post       ready; running ExecStartPost= commands
  up         running and ready (a watchdog may be armed)
  reloading  ExecReload= runs, or a notify-reload service was signalled and has not said READY=1
  stopping   ExecStop= runs, then stop_signal per KillMode, SIGKILL after stop_timeout
  stop-post  everything is down; ExecStopPost= runs (also after a failure)
  finish     s6-overlay's finish command runs, at most 5 s
  backoff    exited; restarting after a delay (systemd's auto-restart, RestartSec=)
  done       a oneshot that finished well, or RemainAfterExit= after a clean exit
  failed     failed start, failed exit without restart, start limit, failed dependency (YAML)
  skipped    not started at boot (disabled, not selected)

Events: start, stop, deps-ready, dep-failed, main-exit, ctl-exit (the control process: an
ExecXxx= command or a forking starter), ready, reloading / stopping (sd_notify), and the one
timer (event "timer:" + what it is for). Effects go through `host` (the supervisor, a fake in
unit tests): launch(svc, command, main) -> pid | raises, kill_group(pid, sig) (the process
group and session), kill_process(pid, sig), kill_leftovers(pgid), now(), read_pidfile(path),
probe(ready), check_conditions(svc) -> None | (message, is_assert), guess_main_pid(svc) -> pid |
None, cleanup(svc, restarting), changed(svc). Each action sets state and timer before touching a process, so an error
half-way cannot leave a service without a way forward.

Exit codes arrive as PID 1's loop reports them: 128+N for death by signal N (as shells do; an
exit(128+N) is taken for that signal). Units (spec.unit set) follow systemd: Restart= by
systemd.service(5)'s table, StartLimitBurst= counted at every start (RestartSec= is a constant
backoff: the loader sets every step of it); services.d definitions keep their crash-loop limit.
"""

from richinit import log
from richinit import signals as sigs
from richinit.services.model import Command

DOWN, WAITING, CONDITION, PRE, STARTING, POST, UP, RELOADING, STOPPING, STOP_POST, FINISH, \
    BACKOFF, DONE, FAILED, SKIPPED = (
        "down", "waiting", "condition", "pre", "starting", "post", "up", "reloading", "stopping",
        "stop-post", "finish", "backoff", "done", "failed", "skipped")

FINISH_TIMEOUT = 5.0      # s6-overlay's default for a finish script
FINISH_NO_RESTART = 125   # s6: a finish script exiting 125 means "do not restart"

PROBE_INTERVAL = 0.05     # pidfile reads of a forking daemon, only while starting
PROBE_FIRST = 0.005       # tcp/unix/file readiness probes, only while starting: 5 ms, doubling
PROBE_MAX = 0.1           # ... up to 100 ms (a fast daemon is seen at once, a slow one costs few wake-ups)
PIDFILE_WAIT = 5.0        # a forking daemon's starter exited 0: how long its pidfile may take
KILL_WAIT = 5.0           # after SIGKILL, how long before we stop waiting for the exit
SIGKILL, SIGCONT, SIGHUP, SIGABRT = 9, 18, 1, 6
CLEAN_SIGNALS = (1, 2, 15, 13)  # HUP INT TERM PIPE: a clean death for systemd (not for a oneshot)

# Restart= -> does a run that ended with this Result restart? (systemd.service(5)'s table, as
# systemd's service.c decides it: Result success | exit-code | signal | core-dump | timeout | watchdog)
RESTART_WHEN = {
    "no": lambda r: False,
    "never": lambda r: False,
    "always": lambda r: True,
    "on-success": lambda r: r == "success",
    "on-failure": lambda r: r != "success",
    "on-abnormal": lambda r: r not in ("success", "exit-code"),
    "on-abort": lambda r: r in ("signal", "core-dump"),
    "on-watchdog": lambda r: r == "watchdog",
}

_STARTING_STATES = (CONDITION, PRE, STARTING, POST)
_TIMED = (CONDITION, PRE, STARTING, POST, RELOADING, STOPPING, STOP_POST, FINISH, BACKOFF, UP)

# (state, event) -> action. Events not listed are ignored in that state.
_TABLE = {}
for _st in (DOWN, FAILED, SKIPPED):
    _TABLE[(_st, "start")] = "_queue"
_TABLE[(DONE, "start")] = "_queue_again"
_TABLE[(BACKOFF, "start")] = "_launch"
for _st in (STOPPING, STOP_POST, FINISH):
    _TABLE[(_st, "start")] = "_start_when_down"
    _TABLE[(_st, "stop")] = "_no_restart"
for _st in (WAITING, BACKOFF):
    _TABLE[(_st, "stop")] = "_cancel"
for _st in _STARTING_STATES:
    _TABLE[(_st, "stop")] = "_abort_start"
    _TABLE[(_st, "timer:start-timeout")] = "_start_timeout"
    _TABLE[(_st, "ctl-exit")] = "_ctl_exited"
for _st in (UP, RELOADING, DONE):
    _TABLE[(_st, "stop")] = "_stop_running"
_TABLE.update({
    (WAITING, "deps-ready"): "_launch",
    (WAITING, "dep-failed"): "_dep_fail",
    (STARTING, "main-exit"): "_exit_while_starting",
    (POST, "main-exit"): "_main_exited",
    (UP, "main-exit"): "_main_exited",
    (RELOADING, "main-exit"): "_main_exited",
    (STOPPING, "main-exit"): "_main_gone_stopping",
    (STARTING, "ready"): "_ready",
    (RELOADING, "ready"): "_reloaded",
    (UP, "reloading"): "_reload_notified",
    (UP, "stopping"): "_stop_notified",
    (RELOADING, "stopping"): "_stop_notified",
    (RELOADING, "ctl-exit"): "_ctl_exited",
    (STOPPING, "ctl-exit"): "_ctl_exited",
    (STOP_POST, "ctl-exit"): "_ctl_exited",
    (FINISH, "ctl-exit"): "_finished",
    (BACKOFF, "timer:backoff"): "_launch",
    (STARTING, "timer:probe"): "_probe",
    (STARTING, "timer:pidfile"): "_pidfile",
    (RELOADING, "timer:reload-timeout"): "_reload_timeout",
    (STOPPING, "timer:stop-cmd-timeout"): "_stop_cmd_timeout",
    (STOPPING, "timer:stop-notified"): "_kill_signal",
    (STOPPING, "timer:kill"): "_sigkill",
    (STOPPING, "timer:gone"): "_give_up",
    (STOP_POST, "timer:stop-post-timeout"): "_stop_post_timeout",
    (FINISH, "timer:finish"): "_finish_timeout",
    (UP, "timer:watchdog"): "_watchdog_fire",
})
del _st


def signal_of(code):
    """The signal number a 128+N exit code stands for, else None."""
    return code - 128 if code is not None and 128 < code < 128 + 65 else None


def _matches(code, statuses):
    """Is exit `code` listed in SuccessExitStatus=-style `statuses` (ints and signal names)?"""
    sig = signal_of(code)
    for st in statuses:
        if isinstance(st, int) or (isinstance(st, str) and st.isdigit()):
            if sig is None and int(st) == code:
                return True
        elif sig is not None:
            try:
                if sigs.parse(st) == sig:
                    return True
            except ValueError:
                pass
    return False


class Service:
    def __init__(self, spec, host, state=DOWN, reason=""):
        self.spec, self.host = spec, host
        self.name = spec.name
        self.unit = spec.unit is not None   # systemd semantics (units, SysV scripts)
        self.state, self.reason = state, reason
        self.pid = None          # the process that *is* the service (daemon pid for forking)
        self.helper = None       # the control process: an ExecXxx= command, a finish, a forking starter
        self.ctl_cmds = ()       # the command list the control process works through
        self.ctl_index = 0
        self.ctl_then = None     # action once the list is done
        self.ctl_what = ""       # its name in messages ("ExecStartPre", "pre command", ...)
        self.stage = ""          # STOPPING's sub-state: stop | sigterm | sigkill | watchdog | notified
        self.started_at = None   # when the current process started
        self.up_since = None
        self.last_exit = None    # the main process's last exit code (ExecMainStatus)
        self.result = "success"  # systemd's Result of the current/last run
        self.status_text = ""    # STATUS= from sd_notify
        self.restarts = 0
        self.streak = 0
        self.starts = []         # start times within the crash-loop / start-limit window
        self.want_up = False
        self.was_up = False      # reached running in this run: ExecStop= applies
        self.deadline = None     # the one timer; `due` says what it is for
        self.due = None
        self.ready_by = None
        self.pidfile_by = float("inf")  # forking, no ready_timeout: the pidfile's own limit
        self.watchdog = spec.watchdog   # WATCHDOG_USEC= may change it
        self.killed = False
        self.groups = []                 # process groups that are the service's (its spawned pid, the daemon's)
        self.probes = 0                  # readiness probes made in this start (their interval doubles)
        self.removed = False             # gone from services.d (reload): dropped once down
        self.replacement = None          # a changed definition waiting for this one to stop (reload)
        self.start_after_stop = False    # restart, or start while stopping
        self.finish_done = False         # the s6 finish command ran for this exit
        self.finish_code = None
        self.stamps = {}                 # ActiveEnter/ActiveExit/InactiveEnter/InactiveExit -> monotonic
        self.reload_error = None

    # ---- queries ----------------------------------------------------------

    @property
    def ready(self):
        """Dependents ordered after it may start."""
        return self.state in (UP, DONE)

    @property
    def notify_access(self):
        na = self.spec.notify_access
        if na:
            return na
        notify = self.spec.type in ("notify", "notify-reload") or self.spec.ready.kind == "notify"
        if not self.unit:
            return "all" if notify else "none"  # services.d: READY=1 from any of its processes, as before
        return "main" if notify or self.spec.watchdog else "none"

    @property
    def settled(self):
        """No start or stop in progress (what systemctl's job wait waits for)."""
        return self.state not in (WAITING, CONDITION, PRE, STARTING, POST, RELOADING, STOPPING, STOP_POST,
                                  FINISH)

    @property
    def active(self):
        return self.active_state() in ("active", "activating", "reloading")

    def pids(self):
        return [p for p in (self.pid, self.helper) if p]

    def can_reload(self):
        return bool(self.spec.reload) or self.spec.type == "notify-reload"

    # ---- requests ---------------------------------------------------------

    def _on(self, event, *args):
        action = _TABLE.get((self.state, event))
        if action is not None:
            return getattr(self, action)(*args)
        return None

    def start(self):
        self._on("start")

    def deps_ready(self):
        """The manager calls this when every dependency is ready."""
        self._on("deps-ready")

    def dep_failed(self, dep):
        self._on("dep-failed", dep)

    def restart(self):
        """restart: stop, then start again (same service: its counters stay)."""
        if self.pids() or self.state in (UP, DONE, RELOADING):
            self.stop()
            if self.state in (STOPPING, STOP_POST, FINISH):
                self.want_up = self.start_after_stop = True
                return
        self.start()

    def stop(self):
        self.want_up = False
        self.start_after_stop = False
        self._on("stop")

    def skip(self, reason):
        self.want_up = False
        self._set(SKIPPED, reason)

    def reload(self):
        """ExecReload= / the reload signal; returns None when started, else why not (one line)."""
        if self.state != UP:
            return "Unit %s is not active." % (self.spec.unit or self.name)
        if self.spec.reload:
            self.reload_error = None
            self._set(RELOADING, "reloading")
            self._arm("reload-timeout", self._start_timeout_s() or self.spec.stop_timeout)
            self._run_list(self.spec.reload, "_reloaded", "ExecReload")
            return None
        if self.spec.type == "notify-reload" and self.pid:
            self._set(RELOADING, "reloading")
            self._arm("reload-timeout", self._start_timeout_s() or self.spec.stop_timeout)
            try:
                self.host.kill_process(self.pid, sigs.parse(self.spec.reload_signal))
            except ValueError:
                self.host.kill_process(self.pid, SIGHUP)
            return None
        return "Job type reload is not applicable for unit %s." % (self.spec.unit or self.name)

    def kill(self, sig, who="all"):
        """systemctl kill: `sig` to main, control or all; returns the pids signalled."""
        targets = {"main": [self.pid], "control": [self.helper], "all": self.pids()}[who]
        sent = [p for p in targets if p]
        for p in sent:
            if who == "all":
                self.host.kill_group(p, sig)
            else:
                self.host.kill_process(p, sig)
        return sent

    def reset_failed(self):
        self.starts, self.streak = [], 0
        if self.state == FAILED:
            self.result = "success"
            self._set(DOWN, "")
            self.host.changed(self)
        else:
            self.result = "success"

    # ---- events -----------------------------------------------------------

    def on_exit(self, pid, code):
        if pid == self.helper:
            self.helper = None
            return self._on("ctl-exit", code)
        if pid == self.pid:
            self.pid = None
            self.last_exit = code
            return self._on("main-exit", code)
        return None

    def on_ready(self):
        self._on("ready")

    def on_timer(self, now):
        if self.deadline is None or now < self.deadline:
            return
        due, self.deadline, self.due = self.due, None, None
        self._on("timer:" + str(due))

    def on_notify(self, pid, fields):
        """sd_notify from `pid` (fields: {"READY": "1", ...}); ignored unless NotifyAccess= allows it."""
        access = self.notify_access
        if access == "none" or (access == "main" and pid != self.pid) or \
                (access == "exec" and pid not in self.pids()):
            log.debug("%s: notification from pid %s refused (NotifyAccess=%s)", self.name, pid, access)
            return False
        if "MAINPID" in fields and fields["MAINPID"].isdigit() and int(fields["MAINPID"]) > 1:
            self.pid = int(fields["MAINPID"])
            self._adopt(self.pid)
        if "STATUS" in fields:
            self.status_text = fields["STATUS"]
        if fields.get("WATCHDOG_USEC", "").isdigit():
            self.watchdog = int(fields["WATCHDOG_USEC"]) / 1e6
        if fields.get("WATCHDOG") == "1" and self.state == UP:
            self._arm_watchdog()
        elif fields.get("WATCHDOG") == "trigger":
            self._on("timer:watchdog")
        if fields.get("EXTEND_TIMEOUT_USEC", "").isdigit() and self.deadline is not None \
                and self.due in ("start-timeout", "reload-timeout", "stop-cmd-timeout", "kill", "stop-notified"):
            self.deadline = max(self.deadline, self.host.now() + int(fields["EXTEND_TIMEOUT_USEC"]) / 1e6)
        if fields.get("RELOADING") == "1":
            self._on("reloading")
        if fields.get("STOPPING") == "1":
            self._on("stopping")
        if fields.get("READY") == "1":
            self._on("ready")
        return True

    # ---- actions: start ---------------------------------------------------

    def _set(self, state, reason):
        if state != self.state:
            log.debug("%s: %s -> %s (%s)", self.name, self.state, state, reason)
            was = self.active_state()
            self.state = state
            now = self.active_state()
            if was != now:
                t = self.host.now()
                if now == "active":
                    self.stamps["ActiveEnterTimestamp"] = t
                if was == "active":
                    self.stamps["ActiveExitTimestamp"] = t
                if now in ("inactive", "failed"):
                    self.stamps["InactiveEnterTimestamp"] = t
                if was in ("inactive", "failed"):
                    self.stamps["InactiveExitTimestamp"] = t
        self.state, self.reason = state, reason
        if state not in _TIMED or state == UP:
            self.deadline = self.due = None

    def _arm(self, due, seconds):
        if seconds is None or seconds == float("inf"):
            self.deadline = self.due = None
        else:
            self.due, self.deadline = due, self.host.now() + seconds

    def _queue(self):
        self.want_up = True
        if self.state == FAILED and not self.unit:
            self.starts, self.streak = [], 0  # richctl start clears a crash loop
        self._set(WAITING, "")
        self.host.changed(self)

    def _queue_again(self):
        if self.spec.remain_after_exit:
            return  # active (exited): already started
        self._queue()

    def _start_when_down(self):
        self.want_up = self.start_after_stop = True  # once the old process is gone

    def _dep_fail(self, dep):
        if self.unit:  # systemd: the start job fails, the unit stays inactive
            self.want_up = False
            self.result = "dependency"
            log.warning("%s: dependency failed: %s", self.name, dep)
            self._set(DOWN, "required unit %s failed" % dep)
            self.host.changed(self)
        else:
            self._fail("required service %s failed" % dep)

    def _fail(self, reason, result=None):
        log.warning("%s: failed: %s", self.name, reason)
        if result:
            self.result = result
        elif self.result == "success":
            self.result = "exit-code"
        self._set(FAILED, reason)
        self.host.changed(self)

    def _start_timeout_s(self):
        return self.spec.ready_timeout or None

    def _launch(self):
        now = self.host.now()
        limit = self.spec.crash_loop
        within = limit.within if limit else 0
        recent = [t for t in self.starts if now - t <= within]
        if self.unit and limit and limit.starts and len(recent) >= limit.starts:
            self.want_up = False
            return self._fail("start-limit-hit: %d starts within %gs" % (limit.starts, limit.within),
                              "start-limit-hit")
        self.starts = recent + [now]
        self.probes = 0
        self.killed = self.was_up = self.finish_done = False
        self.result, self.finish_code, self.status_text = "success", None, ""
        self.watchdog = self.spec.watchdog
        timeout = self.spec.ready_timeout
        self.ready_by = now + timeout if timeout else float("inf")
        self.pidfile_by = float("inf")
        failed = self.host.check_conditions(self) if self.spec.conditions else None
        if failed is not None:
            message, is_assert = failed
            if is_assert:
                return self._fail("assertion failed: %s" % message, "assert")
            log.info("%s: skipped: condition failed: %s", self.name, message)
            self.want_up = False
            self._set(DOWN, "condition failed: %s" % message)
            self.host.changed(self)
            return None
        if self.spec.exec_condition:
            self._set(CONDITION, "")
            self._arm_start_timeout()
            return self._run_list(self.spec.exec_condition, "_pre", "ExecCondition")
        return self._pre()

    def _pre(self):
        if self.spec.pre:
            self._set(PRE, "")
            self._arm_start_timeout()
            return self._run_list(self.spec.pre, "_start_main", "ExecStartPre" if self.unit else "pre command")
        return self._start_main()

    def _arm_start_timeout(self):
        if self.ready_by != float("inf"):
            self.due, self.deadline = "start-timeout", self.ready_by

    def _run_list(self, commands, then, what):
        """Work through `commands` in the control process, then call action `then`."""
        self.ctl_cmds, self.ctl_index, self.ctl_then, self.ctl_what = tuple(commands), 0, then, what
        return self._run_ctl()

    def _run_ctl(self):
        while self.ctl_index < len(self.ctl_cmds):
            cmd = self.ctl_cmds[self.ctl_index]
            try:
                self.helper = self.host.launch(self, cmd, main=False)
                return None
            except Exception as e:  # ExecError or an OSError setting up its fds
                self.helper = None
                if "-" in cmd.flags or self.state in (STOPPING, STOP_POST):
                    log.warning("%s: %s: %s", self.name, self.ctl_what, e)
                    self.ctl_index += 1
                    continue
                return self._ctl_failed(str(e), None)
        then, self.ctl_then = self.ctl_then, None
        return getattr(self, then)()

    def _ctl_exited(self, code):
        cmd = self.ctl_cmds[self.ctl_index] if self.ctl_index < len(self.ctl_cmds) else None
        if self.state == STARTING and self.spec.type == "forking" and self.pid is None:
            return self._starter_exited(code)
        if self.state == STOPPING and self.stage != "stop":  # a control process ended by the kill
            return None if self.pids() else self._all_gone()
        if cmd is None:
            return None
        if self.state == CONDITION and code != 0:
            return self._condition_said_no(code)
        if code != 0 and "-" not in cmd.flags and self.state not in (STOPPING, STOP_POST):
            if self.unit:
                what = "%s %s" % (self.ctl_what, " ".join(cmd.argv)[:80])
            else:
                what = "%s %d" % (self.ctl_what, self.ctl_index + 1)
            return self._ctl_failed("%s exited with %s" % (what, code), code)
        self.ctl_index += 1
        return self._run_ctl()

    def _ctl_failed(self, reason, code):
        result = "signal" if signal_of(code) else "exit-code"
        if self.state == RELOADING:
            log.warning("%s: reload failed: %s", self.name, reason)
            self.reload_error = reason
            return self._reloaded()
        if self.state == POST:
            return self._deactivate(result, run_stop=True, reason=reason)
        return self._start_failed(reason, result)

    def _condition_said_no(self, code):
        if signal_of(code) or code == 255:
            return self._start_failed("ExecCondition exited with %s" % code, "exit-code")
        self.want_up = False
        log.info("%s: skipped: ExecCondition exited with %d", self.name, code)
        self._set(DOWN, "condition failed: ExecCondition exited with %d" % code)
        self.host.changed(self)
        return None

    def _start_main(self):
        self._set(STARTING, "")
        command = Command(argv=tuple(self.spec.command), flags=self.spec.command_flags)
        try:
            pid = self.host.launch(self, command, main=True)
        except Exception as e:  # ExecError or an OSError setting up its fds
            return self._start_failed(str(e), "exit-code")
        self.started_at = self.host.now()
        self.groups = [pid]
        if self.spec.type == "forking":
            # Wait for the starter's exit, and meanwhile look for a pidfile naming the starter itself.
            self.helper, self.pid = pid, None
            self.ctl_cmds, self.ctl_index = (), 0
            now = self.host.now()
            if self.ready_by == float("inf"):
                self.pidfile_by = now + PIDFILE_WAIT
            self.due, self.deadline = "pidfile", now + PROBE_INTERVAL
            return None
        self.pid = pid
        return self._after_spawn()

    def _after_spawn(self):
        if self.spec.type == "oneshot":
            return self._arm_start_timeout()
        kind = self.spec.ready.kind
        if self.spec.type in ("notify", "notify-reload"):
            kind = "notify"
        if kind == "none":
            return self._ready()
        return self._arm_starting(self.host.now())

    def _arm_starting(self, now):
        kind = self.spec.ready.kind
        interval = min(PROBE_MAX, PROBE_FIRST * 2 ** self.probes)
        if kind in ("tcp", "unix", "file") and now + interval < self.ready_by:
            self.probes += 1
            self.due, self.deadline = "probe", now + interval
        else:
            self._arm_start_timeout()
        if self.spec.type == "forking" and self.pid is None and self.helper is None:
            self.due, self.deadline = "pidfile", self.host.now()

    def _probe(self):
        if self.host.probe(self.spec.ready):
            return self._ready()
        return self._arm_starting(self.host.now())

    def _starter_exited(self, code):
        if code != 0:
            return self._start_failed("forking starter exited with %d" % code, "exit-code")
        now = self.host.now()
        if self.ready_by == float("inf"):
            # No readiness limit (ready_timeout 0) must not mean polling the pidfile forever.
            self.pidfile_by = now + PIDFILE_WAIT
        if self.spec.pidfile is None:
            pid = self.host.guess_main_pid(self)
            if pid:
                self.pid = pid
                self._adopt(pid)
                return self._after_spawn()
            return self._start_failed("forking starter exited and no daemon was left", "protocol")
        self.due, self.deadline = "pidfile", now  # read it right away
        return None

    def _pidfile(self):
        now = self.host.now()
        pid = self.host.read_pidfile(self.spec.pidfile)
        if pid and (self.helper is None or pid == self.helper):
            # The daemon; or the starter itself, which did not fork: sshd and others take a
            # process whose parent is PID 1, in its own session, for daemonized already.
            self.helper = None
            self.pid = pid
            self._adopt(pid)
            return self._after_spawn()
        if now < min(self.ready_by, self.pidfile_by):
            self.due, self.deadline = "pidfile", now + PROBE_INTERVAL
        elif self.helper is not None and self.ready_by == float("inf"):
            pass  # no limit and the starter still runs: its exit arms the pidfile wait again
        else:
            self._start_failed("pidfile %s did not appear" % self.spec.pidfile, "protocol")
        return None

    def _adopt(self, pid):
        """A main pid the service named (pidfile, MAINPID=): its process group is the service's too."""
        if pid not in self.groups:
            self.groups.append(pid)

    def _ready(self):
        if self.spec.post:
            self._set(POST, "")
            self._arm_start_timeout()
            return self._run_list(self.spec.post, "_running", "ExecStartPost")
        return self._running()

    def _running(self):
        self.was_up = True
        if self.pid is None and self.spec.type == "oneshot" or self.pid is None and self.spec.remain_after_exit:
            if self.spec.remain_after_exit or not self.unit:
                self._set(DONE, "")
                self.host.changed(self)
                return None
            return self._deactivate("success", run_stop=True, reason="exited")
        self._set(UP, "")
        self.up_since = self.host.now()
        self._arm_watchdog()
        self.host.changed(self)
        return None

    def _arm_watchdog(self):
        if self.watchdog and self.watchdog > 0:
            self.due, self.deadline = "watchdog", self.host.now() + self.watchdog

    def _start_timeout(self):
        limit = self.spec.ready_timeout
        if self.state == STARTING and self.spec.type != "oneshot" and not self.unit:
            return self._start_failed("not ready within %.1fs" % limit, "timeout")
        return self._start_failed("start timed out after %.1fs" % limit if self.unit else
                                  "not ready within %.1fs" % limit, "timeout")

    def _start_failed(self, reason, result="exit-code"):
        log.warning("%s: start failed: %s", self.name, reason)
        return self._deactivate(result, run_stop=False, reason=reason)

    def _exit_while_starting(self, code):
        """The main process exited before it was ready (a oneshot: its exit is its readiness)."""
        result = self._classify(code)
        if self.spec.type == "oneshot" and result == "success":
            if self.unit:
                return self._ready()
            for group in self.groups:
                self.host.kill_leftovers(group)
            return self._ready()
        if self.spec.type == "oneshot":
            return self._deactivate(result, run_stop=False, reason="exited with %s" % code)
        return self._deactivate(result, run_stop=False, reason="exited with %s before it was ready" % code)

    # ---- actions: running -------------------------------------------------

    def _main_exited(self, code):
        result = self._classify(code)
        if result == "success" and self.spec.remain_after_exit:
            self._set(DONE, "exited")
            self.host.changed(self)
            return None
        return self._deactivate(result, run_stop=True, reason="exited with %s" % code)

    def _classify(self, code):
        """Result of a main exit: success | exit-code | signal (SuccessExitStatus= counted)."""
        if code == 0 or (self.unit and _matches(code, self.spec.success_status)):
            return "success"
        sig = signal_of(code)
        if sig is not None:
            if self.unit and sig in CLEAN_SIGNALS and self.spec.type != "oneshot":
                return "success"
            return "signal"
        return "exit-code"

    def _reloaded(self):
        if self.state == RELOADING:
            self._set(UP, "")
            self._arm_watchdog()
            self.host.changed(self)

    def _reload_notified(self):
        self._set(RELOADING, "reloading")
        self._arm("reload-timeout", self._start_timeout_s() or self.spec.stop_timeout)

    def _reload_timeout(self):
        log.warning("%s: reload timed out", self.name)
        self.reload_error = "timeout"
        if self.helper:
            self.host.kill_group(self.helper, SIGKILL)
        self.helper = None
        self._reloaded()

    def _watchdog_fire(self):
        log.warning("%s: watchdog timeout (%.1fs): sending SIGABRT", self.name, self.watchdog)
        self.result = "watchdog"
        self._set(STOPPING, "watchdog timeout")
        self.stage = "watchdog"
        return self._kill_signal(SIGABRT)

    # ---- actions: stop ----------------------------------------------------

    def _cancel(self):
        self._set(DOWN, "stopped")
        self.host.changed(self)

    def _no_restart(self):
        pass  # want_up is already False

    def _abort_start(self):
        return self._deactivate("success", run_stop=False, reason="stopping")

    def _stop_running(self):
        return self._deactivate("success", run_stop=True, reason="stopping")

    def _stop_notified(self):
        self._set(STOPPING, "stopping")
        self.stage = "notified"
        self._arm("stop-notified", self.spec.stop_timeout)

    def _deactivate(self, result, run_stop, reason):
        """Bring everything down: ExecStop= (when the service had come up), the kill, ExecStopPost=."""
        if self.result == "success":
            self.result = result
        self.ctl_cmds, self.ctl_then = (), None  # a start's command list ends here
        self._set(STOPPING, reason)
        self.reason = reason
        if run_stop and self.was_up and self.spec.stop_commands:
            if self.helper:  # an ExecReload= still running gives way to ExecStop=, as systemd's does
                self.host.kill_group(self.helper, self.spec.stop_signum)
                self.helper = None
            self.stage = "stop"
            self._arm("stop-cmd-timeout", self.spec.stop_timeout)
            return self._run_list(self.spec.stop_commands, "_kill_signal", "ExecStop")
        return self._kill_signal()

    def _stop_cmd_timeout(self):
        log.warning("%s: ExecStop timed out after %.1fs", self.name, self.spec.stop_timeout)
        if self.result == "success":
            self.result = "timeout"
        if self.helper:
            self.host.kill_group(self.helper, SIGKILL)
            self.helper = None
        self.ctl_then = None
        return self._kill_signal()

    def _kill_signal(self, sig=None):
        """stop_signal (or the watchdog's SIGABRT) per KillMode=; SIGKILL after stop_timeout."""
        if self.stage != "watchdog" or sig is None:
            self.stage = "sigterm"
        mode = self.spec.kill_mode
        sig = self.spec.stop_signum if sig is None else sig
        self._arm("kill", self.spec.stop_timeout)
        if mode == "none":
            if self.pid:
                log.info("%s: KillMode=none: main process %d left running", self.name, self.pid)
            self.pid = None
        for p in self.pids():
            if mode == "control-group" or p == self.helper:
                self.host.kill_group(p, sig)
                if self.spec.send_sighup and sig != SIGHUP:
                    self.host.kill_group(p, SIGHUP)
                self.host.kill_group(p, SIGCONT)  # a stopped process cannot act on it
            else:
                self.host.kill_process(p, sig)
                if self.spec.send_sighup and sig != SIGHUP:
                    self.host.kill_process(p, SIGHUP)
                self.host.kill_process(p, SIGCONT)
        if not self.pids():
            return self._all_gone()
        return None

    def _main_gone_stopping(self, code):
        if self.unit and self.stage in ("sigterm", "notified", "stop") and self.result == "success":
            self.result = self._classify(code)
        if self.stage == "notified":
            return self._kill_signal()
        if self.stage == "stop":
            return None  # ExecStop= still runs; the kill follows it
        if not self.pids():
            return self._all_gone()
        return None

    def _sigkill(self):
        if not self.spec.send_sigkill:
            log.warning("%s: still running after %.1fs; SendSIGKILL=no: left alone", self.name,
                        self.spec.stop_timeout)
            self.pid = self.helper = None
            return self._all_gone()
        self.killed = True
        self.stage = "sigkill"
        if self.unit and self.result == "success":
            self.result = "timeout"
        self._arm("gone", KILL_WAIT)
        for p in self.pids():
            if self.spec.kill_mode == "process" and p == self.pid:
                self.host.kill_process(p, SIGKILL)
            else:
                self.host.kill_group(p, SIGKILL)
        return None

    def _give_up(self):
        log.warning("%s: processes survived SIGKILL; giving up on them", self.name)
        self.pid = self.helper = None
        return self._all_gone()

    def _all_gone(self):
        """Main and control processes are gone: what they left goes too, then ExecStopPost=."""
        if self.spec.kill_mode in ("control-group", "mixed"):
            # What the service left in its process groups (a crashed server's workers that
            # still hold its port) goes with it, as systemd's control-group kill mode does.
            for group in self.groups:
                self.host.kill_leftovers(group)
        self.deadline = self.due = None
        if self.spec.stop_post:
            self._set(STOP_POST, self.reason)
            self._arm("stop-post-timeout", self.spec.stop_timeout)
            return self._run_list(self.spec.stop_post, "_final", "ExecStopPost")
        return self._final()

    def _stop_post_timeout(self):
        log.warning("%s: ExecStopPost timed out after %.1fs", self.name, self.spec.stop_timeout)
        if self.helper:
            self.host.kill_group(self.helper, SIGKILL)
            self.helper = None
        self.ctl_then = None
        return self._final()

    # ---- actions: the end of a run ----------------------------------------

    def _final(self):
        self.pid = self.helper = None
        if self.spec.finish and not self.finish_done:
            return self._run_finish()
        return self._decide()

    def _run_finish(self):
        """s6's finish: `finish EXIT SIGNAL` (256 and the signal number when killed)."""
        code = self.last_exit
        sig = signal_of(code)
        args = list(self.spec.finish) + (["256", str(sig)] if sig else [str(code), "0"])
        self.finish_done = True
        self._set(FINISH, "finishing")
        self._arm("finish", FINISH_TIMEOUT)
        try:
            self.helper = self.host.launch(self, Command(argv=tuple(args)), main=False)
        except Exception as e:
            log.warning("%s: finish command: %s", self.name, e)
            self.helper = None
            return self._decide()
        return None

    def _finished(self, code):
        self.finish_code = code
        return self._decide()

    def _finish_timeout(self):
        log.warning("%s: finish command still running after %.0fs: killed", self.name, FINISH_TIMEOUT)
        if self.helper:
            self.host.kill_group(self.helper, SIGKILL)
        self.helper = None
        return self._decide()

    def _restart_wanted(self):
        if not self.want_up:
            return False
        code = self.last_exit
        if self.unit and code is not None and self.result in ("exit-code", "signal", "success"):
            if _matches(code, self.spec.restart_prevent):
                return False
            if _matches(code, self.spec.restart_force):
                return True
        if not self.unit and self.spec.restart == "on-failure":
            return self.result != "success" or (code is not None and code != 0)
        return RESTART_WHEN.get(self.spec.restart, RESTART_WHEN["no"])(self.result)

    def _decide(self):
        self.deadline = self.due = None
        restarting = self._restart_wanted() or self.start_after_stop
        self.host.cleanup(self, restarting)
        if self.start_after_stop:
            self.start_after_stop = False
            self.want_up = True
            self.state = DOWN  # so _queue runs
            return self._queue()
        if self.finish_code == FINISH_NO_RESTART:
            self.want_up = False
            self._set(DOWN, "finish exited 125: not restarted")
            self.host.changed(self)
            return None
        what = self.reason if self.reason not in ("stopping", "finishing") else None
        if restarting:
            return self._schedule_restart(what or "exited with %s" % self.last_exit)
        if self.result == "success":
            if self.want_up and self.spec.type == "oneshot" and self.was_up:
                self._set(DONE, "")
            elif self.want_up and what:
                self._set(DOWN, what)
            else:
                self._set(DOWN, "stopped" + (" (killed)" if self.killed else ""))
            self.want_up = False
            self.host.changed(self)
            return None
        self.want_up = False
        return self._fail(what or "exited with %s" % self.last_exit)

    def _schedule_restart(self, what):
        now = self.host.now()
        if not self.unit:
            if self.up_since is not None and now - self.up_since >= self.spec.backoff.reset_after:
                self.streak = 0
            limit = self.spec.crash_loop
            if limit and limit.starts and len([t for t in self.starts if now - t <= limit.within]) >= limit.starts:
                self.want_up = False
                return self._fail("crash loop: %d starts within %gs (last: %s)" % (limit.starts, limit.within, what))
        self.up_since = None
        self.streak += 1
        self.restarts += 1
        delay = self.spec.backoff.delay(self.streak)
        log.info("%s: %s; restarting in %.2fs", self.name, what, delay)
        self._set(BACKOFF, what)
        self.due, self.deadline = "backoff", now + delay
        self.host.changed(self)
        if delay <= 0 and self.state == BACKOFF:
            self.deadline = self.due = None
            self._launch()
        return None

    # ---- status -----------------------------------------------------------

    def active_state(self):
        st = self.state
        if st == UP:
            return "active"
        if st == DONE:
            return "active" if self.spec.remain_after_exit or not self.unit else "inactive"
        if st in (CONDITION, PRE, STARTING, POST, BACKOFF):
            return "activating"
        if st == RELOADING:
            return "reloading"
        if st in (STOPPING, STOP_POST, FINISH):
            return "deactivating"
        if st == FAILED:
            return "failed"
        return "inactive"

    def sub_state(self):
        st = self.state
        if st == STOPPING:
            return {"stop": "stop", "watchdog": "stop-watchdog", "sigkill": "stop-sigkill",
                    "notified": "stop"}.get(self.stage, "stop-sigterm")
        if st == DONE:
            return "exited" if self.active_state() == "active" else "dead"
        if st == RELOADING and not self.spec.reload:
            return "reload-notify"
        return {UP: "running", CONDITION: "condition", PRE: "start-pre", STARTING: "start", POST: "start-post",
                RELOADING: "reload", STOP_POST: "stop-post", FINISH: "final-sigterm", BACKOFF: "auto-restart",
                FAILED: "failed"}.get(st, "dead")

    def properties(self, now, wall):
        """systemd's properties of this service (systemctl show): timestamps in µs since the epoch
        (0: never); `wall` is the wall clock minus the monotonic one."""
        def usec(t):
            return int((t + wall) * 1e6) if t is not None else 0
        code = self.last_exit
        sig = signal_of(code)
        return {
            "Id": self.spec.unit or self.name + ".service", "Names": self.name,
            "Description": self.spec.description or self.name,
            "ActiveState": self.active_state(), "SubState": self.sub_state(),
            "LoadState": "loaded", "Result": self.result, "StatusText": self.status_text,
            "MainPID": self.pid or 0, "ControlPID": self.helper or 0,
            "ExecMainStatus": sig if sig else (code or 0),
            "ExecMainCode": 0 if code is None else (2 if sig else 1),
            "ExecMainStartTimestamp": usec(self.started_at), "NRestarts": self.restarts,
            "ActiveEnterTimestamp": usec(self.stamps.get("ActiveEnterTimestamp")),
            "ActiveExitTimestamp": usec(self.stamps.get("ActiveExitTimestamp")),
            "InactiveEnterTimestamp": usec(self.stamps.get("InactiveEnterTimestamp")),
            "InactiveExitTimestamp": usec(self.stamps.get("InactiveExitTimestamp")),
            "Type": self.spec.type, "Restart": "no" if self.spec.restart == "never" else self.spec.restart,
            "NotifyAccess": self.notify_access, "WatchdogUSec": int((self.watchdog or 0) * 1e6),
            "FragmentPath": self.spec.source, "SubStateReason": self.reason,
            "Warnings": list(self.spec.warnings),
        }

    def status(self, now):
        return {
            "name": self.name, "state": self.state, "pid": self.pid,
            "uptime": round(now - self.started_at, 3) if self.started_at and self.pid else None,
            "restarts": self.restarts, "last_exit": self.last_exit, "ready": self.ready,
            "reason": self.reason, "active": self.active_state(), "sub": self.sub_state(),
            "result": self.result,
        }
