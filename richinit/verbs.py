"""The control verbs systemctl, service and journalctl inside the container need (PID 1's side).

Requests, one text line each, `unit VERB ARGS...` (control.py hands them here; names are unit
stems, "nginx"):

  units [NAME...]                 the named services (all without names), systemd's view of each
  job VERB [--no-block] NAME...   VERB: start stop restart try-restart reload reload-or-restart
                                  try-reload-or-restart. The reply waits until every job settled
                                  (the unit is up, done, failed or down), unless --no-block: first
                                  {"ok": true, "queued": [NAME...]}, then the results
  kill SIGNAL main|all NAME...    a signal to the main process, or to the service's process group
  reset-failed [NAME...]          failed -> inactive (all failed ones without names)
  system                          is-system-running: the phase and the failed units
  reboot                          every service stopped and started again in order (Init.reboot)

Replies: {"ok": true, "units": [RECORD...]}; a job's reply lists per name {"name", "result":
done | failed | skipped | queued (--no-block) | not-found | not-loaded | not-applicable, "state",
"reason"}. RECORD is
a service's state mapped onto systemd's ActiveState/SubState ("active"/"running", "activating"/
"start-pre", "failed"/"failed"...), with what status and show print.

Nothing here imports beyond PID 1's own modules; the module is loaded the first time a verb
is asked for. Waiting jobs are woken by the supervisor's change events, never by a timer.
"""

from richinit import svc as S

VERBS = ("units", "job", "kill", "reset-failed", "system", "reboot")
JOB_VERBS = ("start", "stop", "restart", "try-restart", "reload", "reload-or-restart",
             "try-reload-or-restart")
_TRANSIENT = (S.WAITING, S.PRE, S.STARTING, S.STOPPING, S.FINISH)
_SUBSTATE = {S.DOWN: ("inactive", "dead"), S.WAITING: ("activating", "start"),
             S.PRE: ("activating", "start-pre"), S.STARTING: ("activating", "start"),
             S.UP: ("active", "running"), S.STOPPING: ("deactivating", "stop-sigterm"),
             S.FINISH: ("deactivating", "stop-post"), S.BACKOFF: ("activating", "auto-restart"),
             S.FAILED: ("failed", "failed"), S.SKIPPED: ("inactive", "dead")}


def active_state(s):
    """(ActiveState, SubState) of a service, as systemd names them."""
    if s.state == S.DONE:
        return ("active", "exited") if s.spec.remain_after_exit else ("inactive", "dead")
    if s.state == S.UP and s.spec.type == "oneshot":
        return "active", "exited"
    return _SUBSTATE.get(s.state, ("active", s.state))


def _result(s):
    """systemd's Result= of the last run."""
    if s.state != S.FAILED:
        return "success"
    reason = s.reason or ""
    if reason.startswith("crash loop"):
        return "start-limit-hit"
    if "not ready within" in reason or "did not appear" in reason:
        return "timeout"
    if "watchdog" in reason:
        return "watchdog"
    code = s.last_exit
    if code is not None and code > 128:
        return "signal"
    return "exit-code" if code is not None else "resources"


def record(s, now):
    spec = s.spec
    active, sub = active_state(s)
    since = None
    if active in ("active", "activating", "deactivating") and s.started_at is not None:
        since = round(now - s.started_at, 3)
    return {
        "name": s.name, "unit": spec.unit or s.name + ".service", "source": spec.source,
        "origin": spec.origin, "description": spec.description, "type": spec.type,
        "enabled": spec.enabled, "active": active, "sub": sub, "state": s.state, "reason": s.reason,
        "result": _result(s), "pid": s.pid, "pids": s.pids(), "since": since, "restarts": s.restarts,
        "last_exit": s.last_exit, "restart": spec.restart, "remain_after_exit": spec.remain_after_exit,
        "after": list(spec.after), "requires": list(spec.requires), "wants": list(spec.wants),
        "warnings": list(spec.warnings),
    }


class Jobs:
    """Clients waiting for their jobs to settle; checked on each change the supervisor reports."""

    def __init__(self, server):
        self.server = server
        self.waiting = []  # (fd, its socket, answered at once [result], waited for [(name, service, kind)])
        sup = server.sup
        chained = sup.on_change

        def on_change():
            if chained is not None:
                chained()
            self.check()
        sup.on_change = on_change

    def check(self):
        still = []
        for entry in self.waiting:
            fd, conn, answered, jobs = entry
            client = self.server.clients.get(fd)
            if client is None or client[0] is not conn:
                continue  # gone (its fd may serve another client by now)
            if all(_settled(s, kind) for _, s, kind in jobs):
                self.server._reply(fd, _job_reply(answered, jobs), close=True)
            else:
                still.append(entry)
        self.waiting = still


def _job_reply(answered, jobs):
    return {"ok": True, "results": answered + [_outcome(n, s, kind) for n, s, kind in jobs]}


def _settled(s, kind):
    if kind == "stop":
        return not s.pids() and s.state not in _TRANSIENT
    if s.start_after_stop or s.state in _TRANSIENT:
        return False
    return True


def _outcome(name, s, kind):
    if kind == "stop" or s.state in (S.UP, S.DONE, S.BACKOFF, S.DOWN):
        result = "done"
    else:
        result = "skipped" if s.state == S.SKIPPED else "failed"
    return {"name": name, "result": result, "state": s.state, "reason": s.reason}


_jobs = None


def handle(server, fd, words):
    """One verb request -> (reply, keep the connection open)."""
    global _jobs
    sup, init = server.sup, server.init
    verb, args = words[0], words[1:]
    if verb == "units":
        now = sup.now()
        names = args or sorted(sup.services)
        out = [record(sup.services[n], now) if n in sup.services else {"name": n, "active": None}
               for n in names]
        return {"ok": True, "units": out}, False
    if verb == "system":
        failed = sorted(n for n, s in sup.services.items() if s.state == S.FAILED)
        phase = init.phase
        if phase == "booting":
            state = "starting"
        elif phase != "running":
            state = "stopping"
        else:
            state = "degraded" if failed else "running"
        return {"ok": True, "state": state, "phase": phase, "failed": failed}, False
    if verb == "reboot":
        reboot = getattr(init, "reboot", None)
        if reboot is None:
            return {"ok": False, "error": "reboot is not supported by this richinit"}, False
        return dict(reboot() or {}, ok=True), False
    if verb == "reset-failed":
        for n in args or list(sup.services):
            s = sup.services.get(n)
            if s is not None and s.state == S.FAILED:
                s.starts, s.streak = [], 0
                s._set(S.DOWN, "reset")
        return {"ok": True}, False
    if verb == "kill":
        if len(args) < 3 or not args[0].isdigit() or args[1] not in ("main", "all"):
            return _usage("kill SIGNAL main|all NAME...")
        sig, who = int(args[0]), args[1]
        missing = []
        for n in args[2:]:
            s = sup.services.get(n)
            if s is None or not s.pids():
                missing.append(n)
                continue
            for pid in ([s.pid] if who == "main" and s.pid else s.pids()):
                if who == "main":
                    sup.ops.kill(pid, sig)
                else:
                    sup.kill_group(pid, sig)
        return {"ok": True, "not_running": missing}, False
    if verb == "job":
        if not args or args[0] not in JOB_VERBS:
            return _usage("job %s [--no-block] NAME..." % "|".join(JOB_VERBS))
        jverb, names = args[0], args[1:]
        block = "--no-block" not in names
        names = [n for n in names if n != "--no-block"]
        if not names:
            return _usage("job %s NAME..." % jverb)
        if init.phase not in ("booting", "running"):
            return {"ok": False, "error": "the container is stopping"}, False
        jobs, answered = [], []
        for n in names:
            s = sup.services.get(n)
            if s is None:
                answered.append({"name": n, "result": "not-loaded" if jverb == "stop" else "not-found"})
                continue
            now = _enqueue(s, jverb)
            if now is not None:
                answered.append(dict(now, name=n, state=s.state, reason=s.reason))
            else:
                jobs.append((n, s, "stop" if jverb == "stop" else "start"))
        if not block:
            return {"ok": True, "results": answered + [{"name": n, "result": "queued", "state": s.state}
                                                       for n, s, _ in jobs]}, False
        if all(_settled(s, kind) for _, s, kind in jobs):
            return _job_reply(answered, jobs), False
        if _jobs is None:
            _jobs = Jobs(server)
        _jobs.waiting.append((fd, server.clients[fd][0], answered, jobs))
        return {"ok": True, "queued": [n for n, _, _ in jobs]}, True
    return _usage(" | ".join(VERBS))


def _usage(text):
    return {"ok": False, "error": "usage: unit " + text}, False


def _enqueue(s, verb):
    """Ask the service for the job; a dict when it is answered at once (nothing to wait for)."""
    running = bool(s.pids()) or s.state == S.UP or (s.state == S.DONE and s.spec.remain_after_exit)
    if verb == "start":
        s.start()
    elif verb == "stop":
        s.stop()
        if s.state == S.DONE:
            s._set(S.DOWN, "stopped")
    elif verb in ("restart", "reload-or-restart") or (verb.startswith("try-") and running):
        if verb.endswith("reload-or-restart") and s.spec.reload and running:
            return _reload(s)
        if s.state == S.DONE:
            s._set(S.DOWN, "restart")
        s.restart()
    elif verb.startswith("try-"):
        return {"result": "done"}
    elif verb == "reload":
        if not running:
            return {"result": "failed"}
        return _reload(s)
    return None


def _reload(s):
    if not s.spec.reload:
        return {"result": "not-applicable"}
    s.reload()
    return None
