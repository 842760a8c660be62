"""One supervised service as a small state machine: (state x event) -> named actions.

States
  down      not running (never started, stopped on request, or exited with restart: never)
  waiting   asked to start; its dependencies are not ready yet
  pre       running its `pre` commands, one after the other
  starting  the process runs; waiting for readiness (or, for forking, for the pidfile)
  up        running and ready
  stopping  stop_signal sent; SIGKILL to the group after stop_timeout
  finish    the process exited; its `finish` command (s6-overlay) runs, at most 5 s
  backoff   exited; restarting after a delay
  done      a oneshot that finished with 0
  failed    crash loop, failed dependency, bad definition, or failed start with restart: never
  skipped   not started at boot (disabled, condition false, not selected)

Effects go through `host` (the manager in supervisor.py, a fake in unit tests):
host.launch(svc, argv) -> pid | raises, host.kill_group(pid, sig), host.kill_leftovers(pgid), host.now(),
host.read_pidfile(path) -> pid | None, host.probe(ready) -> bool, host.changed(svc).
Each action sets state and timer before touching the process, so an error half-way
cannot leave a service without a way forward.
"""

from richinit import log

DOWN, WAITING, PRE, STARTING, UP, STOPPING, FINISH, BACKOFF, DONE, FAILED, SKIPPED = (
    "down", "waiting", "pre", "starting", "up", "stopping", "finish", "backoff", "done", "failed", "skipped")

FINISH_TIMEOUT = 5.0      # s6-overlay's default for a finish script
FINISH_NO_RESTART = 125   # s6: a finish script exiting 125 means "do not restart"

PROBE_INTERVAL = 0.05     # pidfile reads of a forking daemon, only while starting
PROBE_FIRST = 0.005       # tcp/unix/file readiness probes, only while starting: 5 ms, doubling
PROBE_MAX = 0.1           # ... up to 100 ms (a fast daemon is seen at once, a slow one costs few wake-ups)
PIDFILE_WAIT = 5.0        # a forking daemon's starter exited 0: how long its pidfile may take
KILL_WAIT = 5.0           # after SIGKILL, how long before we stop waiting for the exit


class Service:
    def __init__(self, spec, host, state=DOWN, reason=""):
        self.spec, self.host = spec, host
        self.name = spec.name
        self.state, self.reason = state, reason
        self.pid = None          # the process that *is* the service (daemon pid for forking)
        self.helper = None       # a pre command or a forking starter we wait for
        self.pre_index = 0
        self.started_at = None   # when the current process started
        self.up_since = None
        self.last_exit = None
        self.restarts = 0
        self.streak = 0
        self.starts = []         # start times within the crash-loop window
        self.want_up = False
        self.deadline = None     # the one timer; `due` says what it is for
        self.due = None
        self.ready_by = None
        self.pidfile_by = float("inf")  # forking, no ready_timeout: the pidfile's own limit
        self.killed = False
        self.probes = 0                  # readiness probes made in this start (their interval doubles)
        self.removed = False             # gone from services.d (reload): dropped once down
        self.replacement = None          # a changed definition waiting for this one to stop (reload)
        self.restart_after_stop = False  # a failed start is being stopped: apply restart policy after
        self.start_after_stop = False    # richctl restart, or start while stopping
        self.finish_for = None           # (exit code, was stopping) while the finish command runs

    # ---- queries ----------------------------------------------------------

    @property
    def ready(self):
        return self.state in (UP, DONE)

    def pids(self):
        return [p for p in (self.pid, self.helper) if p]

    # ---- requests ---------------------------------------------------------

    def start(self):
        if self.state in (UP, STARTING, PRE, WAITING):
            return
        if self.state in (STOPPING, FINISH):
            self.want_up = self.start_after_stop = True  # once the old process is gone
            return
        self.want_up = True
        if self.state == FAILED:
            self.starts, self.streak = [], 0
        self._set(WAITING, "")
        self.host.changed(self)

    def deps_ready(self):
        """The manager calls this when every dependency is ready."""
        if self.state == WAITING:
            self._launch()

    def dep_failed(self, dep):
        if self.state == WAITING:
            self._fail("required service %s failed" % dep)

    def restart(self):
        """richctl restart: stop, then start again (same service: its counters stay)."""
        if self.pids():
            self.stop()
            self.want_up = self.start_after_stop = True
        else:
            self.start()

    def stop(self):
        self.want_up = False
        self.start_after_stop = False
        if self.state in (WAITING, BACKOFF):
            self._set(DOWN, "stopped")
            self.host.changed(self)
        elif self.state in (PRE, STARTING, UP):
            self._send_stop()

    def skip(self, reason):
        self.want_up = False
        self._set(SKIPPED, reason)

    # ---- events -----------------------------------------------------------

    def on_exit(self, pid, code):
        if pid == self.helper:
            self.helper = None
            if self.state == PRE:
                if code != 0:
                    return self._start_failed("pre command %d exited with %d" % (self.pre_index + 1, code))
                self.pre_index += 1
                return self._run_next()
            if self.state == STARTING and self.spec.type == "forking" and self.pid is None:
                if code != 0:
                    return self._start_failed("forking starter exited with %d" % code)
                now = self.host.now()
                if self.ready_by == float("inf"):
                    # No readiness limit (ready_timeout 0) must not mean polling the pidfile forever.
                    self.pidfile_by = now + PIDFILE_WAIT
                self.due, self.deadline = "pidfile", now  # read it right away
                return
            if self.state == FINISH:
                return self._finished(code)
            if self.state == STOPPING and self.pid is None:
                return self._stopped(code)
            return
        if pid != self.pid:
            return
        self.pid = None
        self.last_exit = code
        # What the service left in its process group (a crashed server's workers that
        # still hold its port) goes with it, as systemd's control-group kill mode does.
        self.host.kill_leftovers(pid)
        if self.spec.finish and self._run_finish(code, self.state == STOPPING):
            return
        if self.state == STOPPING:
            return self._stopped(code)
        if self.spec.type == "oneshot" and code == 0:
            self._set(DONE, "")
            self.host.changed(self)
            return
        self._exited(code)

    def on_ready(self):
        if self.state == STARTING:
            self._set(UP, "")
            self.up_since = self.host.now()
            self.host.changed(self)

    def on_timer(self, now):
        if self.deadline is None or now < self.deadline:
            return
        due, self.deadline, self.due = self.due, None, None
        if due == "backoff" and self.state == BACKOFF:
            self._launch()
        elif due == "probe" and self.state == STARTING:
            if self.host.probe(self.spec.ready):
                self.on_ready()
            else:
                self._arm_starting(now)
        elif due == "pidfile" and self.state == STARTING:
            pid = self.host.read_pidfile(self.spec.pidfile)
            if pid and (self.helper is None or pid == self.helper):
                # The daemon; or the starter itself, which did not fork: sshd and others take a
                # process whose parent is PID 1, in its own session, for daemonized already.
                self.helper = None
                self.pid = pid
                self._after_spawn()
            elif now < min(self.ready_by, self.pidfile_by):
                self.due, self.deadline = "pidfile", now + PROBE_INTERVAL
            elif self.helper is not None and self.ready_by == float("inf"):
                pass  # no limit and the starter still runs: its exit arms the pidfile wait again
            else:
                self._start_failed("pidfile %s did not appear" % self.spec.pidfile)
        elif due == "ready" and self.state in (PRE, STARTING):
            self._start_failed("not ready within %.1fs" % self.spec.ready_timeout)
        elif due == "kill" and self.state == STOPPING:
            self.killed = True
            self.due, self.deadline = "gone", now + KILL_WAIT
            for p in self.pids():
                self.host.kill_group(p, 9)
        elif due == "finish" and self.state == FINISH:
            log.warning("%s: finish command still running after %.0fs: killed", self.name, FINISH_TIMEOUT)
            if self.helper:
                self.host.kill_group(self.helper, 9)
            self.helper = None
            self._finished(None)
        elif due == "gone" and self.state == STOPPING:
            log.warning("%s: processes survived SIGKILL; giving up on them", self.name)
            self.pid = self.helper = None
            self._stopped(None)

    # ---- actions ----------------------------------------------------------

    def _set(self, state, reason):
        if state != self.state:
            log.debug("%s: %s -> %s (%s)", self.name, self.state, state, reason)
        self.state, self.reason = state, reason
        if state not in (STARTING, PRE, STOPPING, BACKOFF, FINISH):
            self.deadline = self.due = None

    def _fail(self, reason):
        log.warning("%s: failed: %s", self.name, reason)
        self._set(FAILED, reason)
        self.host.changed(self)

    def _launch(self):
        now = self.host.now()
        within = self.spec.crash_loop.within if self.spec.crash_loop else 0
        self.starts = [t for t in self.starts if now - t <= within] + [now]
        self.pre_index = 0
        self.probes = 0
        self.killed = False
        self._set(PRE if self.spec.pre else STARTING, "")
        timeout = self.spec.ready_timeout
        self.ready_by = now + timeout if timeout else float("inf")
        self.pidfile_by = float("inf")
        self._run_next()

    def _run_next(self):
        """Start the next pre command, or the service itself."""
        try:
            if self.pre_index < len(self.spec.pre):
                self.state = PRE
                self.helper = self.host.launch(self, list(self.spec.pre[self.pre_index].argv), main=False)
                self._arm_ready_timeout()
                return
            self.state = STARTING
            pid = self.host.launch(self, list(self.spec.command), main=True)
        except Exception as e:  # ExecError or an OSError setting up its fds
            return self._start_failed(str(e))
        self.started_at = self.host.now()
        if self.spec.type == "forking":
            # Wait for the starter's exit, and meanwhile look for a pidfile naming the starter itself.
            self.helper, self.pid = pid, None
            now = self.host.now()
            if self.ready_by == float("inf"):
                self.pidfile_by = now + PIDFILE_WAIT
            self.due, self.deadline = "pidfile", now + PROBE_INTERVAL
            return
        self.pid = pid
        self._after_spawn()

    def _after_spawn(self):
        kind = self.spec.ready.kind if self.spec.type != "oneshot" else "oneshot"
        if kind == "none":
            self.on_ready()
        else:
            self._arm_starting(self.host.now())

    def _arm_starting(self, now):
        kind = self.spec.ready.kind
        interval = min(PROBE_MAX, PROBE_FIRST * 2 ** self.probes)
        if kind in ("tcp", "unix", "file") and now + interval < self.ready_by:
            self.probes += 1
            self.due, self.deadline = "probe", now + interval
        else:
            self._arm_ready_timeout()

    def _arm_ready_timeout(self):
        if self.ready_by != float("inf"):
            self.due, self.deadline = "ready", self.ready_by
        if self.spec.type == "forking" and self.pid is None and self.helper is None:
            self.due, self.deadline = "pidfile", self.host.now()

    def _start_failed(self, reason):
        log.warning("%s: start failed: %s", self.name, reason)
        self.reason = reason
        if self.pids():
            # Stop what runs; the exit then goes through the restart policy.
            self.restart_after_stop = True
            self._send_stop()
            self.reason = reason  # _send_stop said "stopping"; _stopped reports why it failed
            return
        self._exited(None, reason)

    def _exited(self, code, reason=None):
        now = self.host.now()
        what = reason or ("exited with %s" % code)
        if self.up_since is not None and now - self.up_since >= self.spec.backoff.reset_after:
            self.streak = 0
        self.up_since = None
        policy = self.spec.restart
        again = self.want_up and (policy == "always" or (policy == "on-failure" and code != 0))
        if not again:
            if code == 0:
                self._set(DOWN, what)
                self.host.changed(self)
            else:
                self._fail(what)
            return
        limit = self.spec.crash_loop
        if limit and limit.starts and len([t for t in self.starts if now - t <= limit.within]) >= limit.starts:
            return self._fail("crash loop: %d starts within %gs (last: %s)" % (limit.starts, limit.within, what))
        self.streak += 1
        self.restarts += 1
        delay = self.spec.backoff.delay(self.streak)
        log.info("%s: %s; restarting in %.2fs", self.name, what, delay)
        self._set(BACKOFF, what)
        self.due, self.deadline = "backoff", now + delay
        self.host.changed(self)
        if delay <= 0:
            self.deadline = None
            self._launch()

    def _send_stop(self):
        self._set(STOPPING, "stopping")
        self.due, self.deadline = "kill", self.host.now() + self.spec.stop_timeout
        for p in self.pids():
            self.host.kill_group(p, self.spec.stop_signum)
            self.host.kill_group(p, 18)  # SIGCONT: a stopped process cannot act on it
        if not self.pids():
            self._stopped(None)

    def _run_finish(self, code, stopping):
        """s6's finish: `finish EXIT SIGNAL` (256 and the signal number when killed). True if started."""
        sig = code - 128 if code is not None and code > 128 else 0
        args = list(self.spec.finish) + (["256", str(sig)] if sig else [str(code), "0"])
        self.finish_for = (code, stopping)
        self._set(FINISH, "finishing")
        self.due, self.deadline = "finish", self.host.now() + FINISH_TIMEOUT
        try:
            self.helper = self.host.launch(self, args, main=False)
        except Exception as e:
            log.warning("%s: finish command: %s", self.name, e)
            self.helper = None
            self._finished(None)
        return True

    def _finished(self, finish_code):
        code, stopping = self.finish_for or (None, False)
        self.finish_for = None
        if stopping or not self.want_up:
            self.state = STOPPING  # so _stopped applies (and start_after_stop is honoured)
            return self._stopped(code)
        if finish_code == FINISH_NO_RESTART:
            self._set(DOWN, "finish exited 125: not restarted")
            self.want_up = False
            self.host.changed(self)
            return
        if self.spec.type == "oneshot" and code == 0:
            self._set(DONE, "")
            self.host.changed(self)
            return
        self._exited(code)

    def _stopped(self, code):
        if self.pids():
            return  # the other one (helper or daemon) is still there
        if self.restart_after_stop and self.want_up:
            self.restart_after_stop = False
            return self._exited(code, self.reason)
        self.restart_after_stop = False
        self._set(DOWN, "stopped" + (" (killed)" if self.killed else ""))
        self.host.changed(self)
        if self.start_after_stop:
            self.start_after_stop = False
            self.start()

    def status(self, now):
        return {
            "name": self.name, "state": self.state, "pid": self.pid,
            "uptime": round(now - self.started_at, 3) if self.started_at and self.pid else None,
            "restarts": self.restarts, "last_exit": self.last_exit, "ready": self.ready,
            "reason": self.reason,
        }
