"""The control verbs systemctl, service and journalctl inside the container need (PID 1's side).

Requests, one text line each, `unit VERB ARGS...` (control.py hands them here). NAME is a unit
name ("nginx.service", "pong.socket", "tick.timer") or a service's stem ("nginx"):

  units [NAME...]                 systemd's properties of each (every unit without names):
                                  the supervisor's unit_status, or for sockets and timers their
                                  ActiveState/SubState; {"Id": NAME, "LoadState": "not-found"}
  job VERB [--no-block] NAME...   VERB: start stop restart try-restart reload reload-or-restart
                                  try-reload-or-restart. Replies {"ok": true, "queued": [NAME...]},
                                  then, once every unit has no job in progress (the supervisor's
                                  when_settled), {"ok": true, "results": [...]}; with --no-block
                                  the results at once. A socket or timer unit's job is done at
                                  once: start binds/arms it, stop closes/disarms it (richinit.sockets,
                                  richinit.timers), restart both; reload is not applicable to them
  kill SIGNAL main|control|all NAME...   the signal to the unit's processes
  reset-failed [NAME...]          failed units become inactive (all of them without names)
  system                          is-system-running: the state and the failed units

A result is {"name", "ok", "error", "code" (systemctl's exit code), "ActiveState", "SubState",
"Result"}: what the supervisor's verb method answered, and the unit's state after the job.

The work is the supervisor's (start_service, stop_service, ... and their dependency rules);
this module only maps requests onto it. Loaded the first time a verb is asked for; waiting jobs
are woken by the supervisor's change events, never by a timer.
"""

VERBS = ("units", "job", "kill", "reset-failed", "system")
JOBS = {"start": "start_service", "stop": "stop_service", "restart": "restart_service",
        "try-restart": "try_restart_service", "reload": "reload_service",
        "reload-or-restart": "reload_or_restart_service", "try-reload-or-restart": None}


def _stem(name, suffix):
    return name[:-len(suffix)] if name.endswith(suffix) else None


def unit_props(sup, name):
    """systemd's properties of one unit, as far as PID 1 knows it."""
    props = sup.unit_status(name)
    if props is not None:
        return props
    name = sup.canonical(name)  # an alias of a socket or timer unit
    found = _other(sup, name)
    if found is not None:
        owner, stem = found
        spec = owner.specs[stem] if hasattr(owner, "specs") else owner.units[stem].spec
        active, sub = owner.state(stem)
        return {"Id": name, "Names": name, "LoadState": "loaded", "ActiveState": active, "SubState": sub,
                "Description": spec.unit or name, "FragmentPath": spec.source,
                "Triggers": spec.service + ".service"}
    return {"Id": name, "Names": name, "LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead"}


def _other(sup, name):
    """(PID 1's Sockets or Timers, stem) for a socket or timer unit it knows, else None."""
    for suffix, table in ((".socket", "sockets"), (".timer", "timers")):
        stem = _stem(name, suffix)
        owner = getattr(sup, table, None)
        if stem is not None and owner is not None and owner.state(stem) is not None:
            return owner, stem
    return None


def _other_job(owner, verb, name, stem):
    """A job on a socket or timer unit: done at once."""
    if verb == "reload":
        return {"ok": False, "code": 1, "error": "Job type reload is not applicable for unit %s." % name}
    active = owner.state(stem)[0] in ("active", "failed")
    if verb in ("try-restart", "try-reload-or-restart") and not active:
        return {"ok": True, "skipped": True}
    if verb != "start" and active:
        owner.stop(stem)
    if verb != "stop":
        err = owner.start(stem)
        if err:
            return {"ok": False, "code": 1, "error": err}
    return {"ok": True}


def _others(sup):
    """Unit names of the sockets and timers PID 1 holds."""
    out = []
    if getattr(sup, "sockets", None) is not None:
        out += sorted(u.spec.unit or n + ".socket" for n, u in sup.sockets.units.items())
    timers = getattr(sup, "timers", None)
    if timers is not None:
        out += sorted(timers.specs[n].unit or n + ".timer" for n in set(timers.timers) | timers.stopped)
    return out


def _result(sup, name, answer):
    props = unit_props(sup, name)
    out = {"name": name, "ok": answer.get("ok", True), "error": answer.get("error"), "code": answer.get("code")}
    for key in ("ActiveState", "SubState", "Result"):
        out[key] = props.get(key)
    return out


def _instance(sup, name):
    """`systemctl start foo@x` of an instance nothing loaded yet: started from the template."""
    stem = name[:-8] if name.endswith(".service") else name
    if "@" not in stem or stem.endswith("@") or sup.find(stem) is not None:
        return False
    return sup.start_instance(stem[:stem.index("@") + 1], stem)


def _job(sup, verb, name):
    other = _other(sup, sup.canonical(name))
    if other is not None:
        return _other_job(other[0], verb, name, other[1])
    if verb == "try-reload-or-restart":
        s = sup.find(name)
        if s is not None and not s.active:
            return {"ok": True, "skipped": True}
        verb = "reload-or-restart"
    if verb in ("start", "restart", "reload-or-restart") and _instance(sup, name):
        return {"ok": True}
    return getattr(sup, JOBS[verb])(name)


class Waiter:
    """One client waiting for its jobs: replied to once every unit settled."""

    def __init__(self, server, fd, answers):
        self.server, self.fd, self.client = server, fd, server.clients.get(fd)
        self.answers = answers  # name -> the verb method's answer
        self.pending = {n for n, a in answers.items() if a.get("ok", True)}
        self.armed = False      # replies from settled() only once handle() has answered "queued"
        for name in list(self.pending):
            if not self.server.sup.when_settled(name, lambda _props, name=name: self.settled(name)):
                self.pending.discard(name)
        self.armed = True

    def results(self):
        return [_result(self.server.sup, n, a) for n, a in self.answers.items()]

    def settled(self, name):
        self.pending.discard(name)
        if self.pending or not self.armed:
            return
        if self.server.clients.get(self.fd) is not self.client:
            return  # gone (its fd may serve another client by now)
        self.server._reply(self.fd, {"ok": True, "results": self.results()}, close=True)


def handle(server, fd, words):
    """One verb request -> (reply, keep the connection open)."""
    sup, init = server.sup, server.init
    verb, args = words[0], words[1:]
    if verb == "units":
        names = args or sorted(sup.services) + _others(sup)
        return {"ok": True, "units": [unit_props(sup, n) for n in names]}, False
    if verb == "system":
        failed = sorted(n for n, s in sup.services.items() if s.active_state() == "failed")
        phase = init.phase
        state = "starting" if phase == "booting" else "stopping" if phase != "running" else \
            "degraded" if failed else "running"
        return {"ok": True, "state": state, "phase": phase, "failed": failed}, False
    if verb == "reset-failed":
        for n in args or [None]:
            sup.reset_failed(n)
        return {"ok": True}, False
    if verb == "kill":
        if len(args) < 3 or not args[0].isdigit():
            return _usage("kill SIGNAL main|control|all NAME...")
        return {"ok": True, "results": [_result(sup, n, sup.kill_service(n, int(args[0]), args[1]))
                                        for n in args[2:]]}, False
    if verb == "job":
        if not args or args[0] not in JOBS:
            return _usage("job %s [--no-block] NAME..." % "|".join(JOBS))
        jverb = args[0]
        names = [n for n in args[1:] if n != "--no-block"]
        if not names:
            return _usage("job %s NAME..." % jverb)
        answers = {n: _job(sup, jverb, n) for n in names}
        if "--no-block" in args:
            return {"ok": True, "results": [_result(sup, n, a) for n, a in answers.items()]}, False
        waiter = Waiter(server, fd, answers)
        if not waiter.pending:
            return {"ok": True, "results": waiter.results()}, False
        return {"ok": True, "queued": sorted(waiter.pending)}, True
    return _usage(" | ".join(VERBS))


def _usage(text):
    return {"ok": False, "error": "usage: unit " + text}, False
