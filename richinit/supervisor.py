"""The services side of PID 1: boot stages, dependencies, readiness, output, reload.

Boot: init scripts one after the other (a failing one stops the boot unless optional),
then services as their dependencies become ready (independent ones in parallel), and the
app beside them, once the services it waits for (`app_after`) are ready (pid1.Init starts
it when `boot` calls back). Sockets of the document are bound before any of it (sockets.py),
timers armed on PID 1's own deadline (timers.py). Shutdown: services stop in reverse
dependency order, each with its own signal and timeout; then the socket units stop.

Definitions come from richinit.services.load, run in a short-lived child forked from PID 1
(spawn_call) so PID 1 never imports yaml or the schema. Everything that touches the OS for a service (fds,
users, spawning) lives here; the per-service decisions live in svc.Service.
"""

import _socket as socket  # the C module: socket.py's enums would cost PID 1 memory
import marshal
import os
import select
import sys
import time

from richinit import log, regular
from richinit import signals as sigs
from richinit import svc as S
from richinit.identity import account, group_ids, passwd_lookup
from richinit.sinks import OutputSink
from richinit.spawn import ExecError, spawn, spawn_call

RUN_DIR = "/run/richinit"
_STARTING = (S.CONDITION, S.PRE, S.STARTING, S.POST)
SCRIPT_STOP_TIMEOUT = 5.0  # an init script cut short by a stop, or a finish script: SIGKILL after this
LOAD_TIMEOUT = 30.0        # the services loader child (milliseconds normally): SIGKILL after this
IDLE_TIMEOUT = 5.0         # Type=idle waits for the other starts at most this long (systemd's IDLE_TIMEOUT_USEC)


def _load_document(fd, root, only, units):
    """In the loader child: import the loader (yaml, the schema) there, never in PID 1. `units`:
    read the image's systemd units and SysV scripts too."""
    from richinit.services.load import write_document
    return write_document(fd, root, only, units=units)


def _run_builtin(name, args):
    """In a built-in's child: its module's main(args)."""
    from richinit import builtin
    return builtin.main(name, args)


class Supervisor:
    """Owns the services; implements the `host` interface svc.Service acts through."""

    def __init__(self, loop, ops, control_dir=RUN_DIR, root="/", units=False):
        self.loop, self.ops = loop, ops
        self.started = ops.now()  # PID 1's start, near enough: OnBootSec=/OnStartupSec= count from it
        self.units = units       # ask the loader for the image's systemd units and SysV scripts
        self.control_dir, self.root = control_dir, root
        self.services = {}
        self.deps = {}
        self.order = []
        self.errors = []
        self.init_scripts = []
        self.sinks = {}
        self.ready_fds = {}      # service name -> read fd of its notification pipe
        self.notify_sock = None  # the one sd_notify socket (NOTIFY_SOCKET), made at the first need
        self.notify_path = None
        self.private_tmp = None  # can a child have its own /tmp here? (asked once)
        self.unit_mode = False   # the document has systemd units
        self.unit_files = {}     # unit file name -> enabled | disabled | static | masked | ...
        self.aliases = {}        # alias unit name -> the unit it names ("sshd.service" -> "ssh.service")
        self.failed_seen = set()
        self.settle_waiters = []  # (service, callback) of when_settled
        self.rebooting = False
        self.booting = None      # callback once every service at boot has settled
        self.init_pid = None
        self.init_queue = []
        self.on_change = None    # pid1.Init hooks in here
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RICHINIT_")}
        self.stopping = False
        self.only = None         # --services a,b: the selection, kept for reloads
        self.finish_scripts = []  # s6-overlay cont-finish.d, run once every service is down
        self.finish_queue = None  # None: not started yet
        self.finish_pid = None
        self.script_deadline = None
        self.batch = False       # starting several services: no progress until all are WAITING
        self.sockets = None      # richinit.sockets.Sockets when the document has sockets
        self.timers = None       # richinit.timers.Timers when it has timers
        self.templates = {}      # "foo@" -> ServiceSpec, for instances (Accept=yes sockets)
        self.transient = set()   # instance names, dropped once down
        self.prebound = {}       # (kind, address) -> socket PID 1 bound before the loader (/dev/log)
        self.app_after = ()      # services the app waits for (--app-after); the others start beside it
        self.idle_held = {}      # Type=idle service name -> when it was first held back for the others

    # ---- loading ------------------------------------------------------------

    def load(self, only=None):
        """Run the loader child and return its document (dict), or None when it failed.

        The document comes as marshal data, not JSON: the child is our own interpreter, and
        marshal is built in, where the json package would cost PID 1 memory.
        """
        self.only = only
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        try:
            pid = spawn_call(_load_document, (3, self.root, list(only) if only else None, self.units), env=self.env,
                             extra_fds={3: wfd}, brief=True)
        except Exception as e:
            os.close(rfd)
            os.close(wfd)
            log.error("cannot run the services loader: %s", e)
            return None
        os.close(wfd)
        chunks = []
        deadline = self.ops.now() + LOAD_TIMEOUT
        while True:  # bounded: a loader that hangs must not hold PID 1 (and its signals) for ever
            left = deadline - self.ops.now()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                log.error("the services loader did not finish within %gs: killed", LOAD_TIMEOUT)
                self.kill_group(pid, 9)
                chunks = []
                break
            try:
                data = os.read(rfd, 65536)
            except InterruptedError:
                continue
            if not data:
                break
            chunks.append(data)
        os.close(rfd)
        self._wait_for(pid)
        try:
            doc = marshal.loads(b"".join(chunks))
            if not isinstance(doc, dict):
                raise ValueError
            return doc
        except (ValueError, EOFError, TypeError):
            log.error("the services loader printed no document")
            return None

    def _wait_for(self, pid):
        """Reap one synchronous helper; other exits seen meanwhile are handed to the loop later."""
        while True:
            try:
                got, status = os.waitpid(pid, 0)
                return os.waitstatus_to_exitcode(status)
            except InterruptedError:
                continue
            except ChildProcessError:
                return None

    def apply(self, doc, boot=True):
        """Create or update services from a loader document; returns names (added, removed, changed)."""
        from richinit.services.model import InitScript, ServiceSpec
        specs = {d["name"]: ServiceSpec.from_dict(d) for d in doc.get("services", [])}
        self.errors = doc.get("errors", [])
        for e in self.errors:
            where = e.get("file", "") + (":%s" % e["line"] if e.get("line") else "")
            log.error("%s: %s", where, e.get("message"))
        failed = set(doc.get("failed", []))
        skipped = doc.get("skipped", {})
        self.deps = {k: list(v) for k, v in doc.get("deps", {}).items()}
        self.unit_files = dict(doc.get("unit_files", {}))
        self.aliases = dict(doc.get("aliases", {}))
        self.unit_mode = any(spec.unit for spec in specs.values())
        self.order = doc.get("order", [])
        added, removed, changed = [], [], []
        for name in list(self.services):
            if name not in specs:
                removed.append(name)
                old = self.services[name]
                old.removed = True
                if not old.spec.unit:
                    old.stop()  # a unit whose file went away runs on until stopped, as under systemd
                if not old.pids() and not old.active:
                    del self.services[name]
        for name, spec in specs.items():
            old = self.services.get(name)
            if old is not None and old.spec == spec and name not in failed:
                continue
            if old is not None and spec.unit and old.spec.unit and name not in failed and not boot:
                # systemctl daemon-reload: a unit's new definition applies from its next start;
                # what runs is neither stopped nor restarted (enable/disable change nothing now).
                old.spec = spec
                if not old.pids():
                    old.watchdog = spec.watchdog
                if name in skipped and not old.pids() and old.state in (S.DOWN, S.SKIPPED):
                    old.skip(skipped[name])
                elif old.state == S.SKIPPED and name not in skipped:
                    old._set(S.DOWN, "")
                changed.append(name)
                continue
            (changed if old else added).append(name)
            new = S.Service(spec, self)
            if old is not None and old.pids():
                # Changed while running: stop the old one; the new one starts when it is down.
                old.replacement = new
                old.stop()
            self.services[name] = new if old is None or not old.pids() else old
            if name in failed:
                msg = next((e["message"] for e in self.errors if e.get("service") == name), "bad definition")
                new._set(S.FAILED, msg)
            elif name in skipped:
                new.skip(skipped[name])
        if boot:
            self.init_scripts = [InitScript.from_dict(d) for d in doc.get("init_scripts", [])]
            self.finish_scripts = [InitScript.from_dict(d) for d in doc.get("finish_scripts", [])]
        self._apply_units(doc)
        return added, removed, changed

    def _apply_units(self, doc):
        """Sockets (bound now, before any service starts), timers and templates of the document."""
        from richinit.services.model import ServiceSpec, SocketSpec, TimerSpec
        self.templates = {k: ServiceSpec.from_dict(v) for k, v in doc.get("templates", {}).items()}
        if doc.get("sockets") or self.prebound or self.sockets is not None:
            from richinit.sockets import Sockets, release
            if self.sockets is None:
                self.sockets = Sockets(self)
            left = self.sockets.apply([SocketSpec.from_dict(d) for d in doc.get("sockets", [])], self.prebound)
            self.prebound = {}
            release(left)  # bound early for a service that is not there (--services, a condition)
        if doc.get("timers") or self.timers is not None:
            from richinit.timers import Timers
            if self.timers is None:
                self.timers = Timers(self)
            self.timers.apply([TimerSpec.from_dict(d) for d in doc.get("timers", [])], self.ops.now())

    def start_instance(self, template, name):
        """Start `name`, an instance of `template` ("foo@") that runs once; False if there is no template."""
        tspec = self.templates.get(template)
        if tspec is None:
            log.error("no template %s for instance %s", template, name)
            return False
        from richinit.services.model import ServiceSpec
        from richinit.services.unitfile import instantiate  # %i %I %n ... of the template filled in
        try:
            spec = ServiceSpec.from_dict(instantiate(tspec.to_dict(), name[len(template):]))
        except ValueError as e:
            log.error("instance %s of %s: %s", name, template, e)
            return False
        spec = spec.replace(restart="never", enabled=True)
        s = self.services[name] = S.Service(spec, self)
        self.transient.add(name)
        s.start()
        return True

    def reload(self):
        """Re-read services.d: start added ones, stop removed ones, restart changed ones. Units
        (systemctl daemon-reload) only get their new definitions: nothing starts or restarts."""
        doc = self.load(self.only)
        if doc is None:
            return {"ok": False, "error": "the services loader failed; nothing changed"}
        added, removed, changed = self.apply(doc, boot=False)
        # services.d: what was added or changed starts; units wait for a start (systemctl start,
        # deb-systemd-invoke), as after systemd's daemon-reload.
        self._start_batch([s for s in (self.services.get(n) for n in added + changed)
                           if s is not None and s.state == S.DOWN and s.spec.enabled and not s.pids()
                           and not s.spec.unit])
        log.info("reload: added %s, removed %s, changed %s", added, removed, changed)
        return {"ok": True, "added": added, "removed": removed, "changed": changed}

    # ---- boot ---------------------------------------------------------------

    def boot(self, done):
        """Run init scripts, then start every runnable service; `done(ok, code)` once the init scripts
        ran and the services in `app_after` settled (ready, failed or skipped): the app's turn."""
        self.booting = done
        for name in self.app_after:
            if name not in self.services:
                log.warning("--app-after: no service %s: the app does not wait for it", name)
        self.init_queue = list(self.init_scripts)
        self._next_init_script()

    def _next_init_script(self):
        if not self.init_queue:
            self.init_pid = None
            self._start_batch([s for _, s in sorted(self.services.items())
                               if s.state == S.DOWN and s.spec.enabled])
            return
        script = self.init_queue[0]
        log.info("init script %s", script.path)
        try:
            self.init_pid = spawn(list(script.command), env=self.env)
        except Exception as e:
            self.init_pid = None
            self._init_script_done(127, str(e))

    def _init_script_done(self, code, why=""):
        if self.stopping:  # stopped during the boot: no more init scripts, no services
            self.init_queue = []
            self._stop_next_wave()
            return
        script = self.init_queue.pop(0)
        if code != 0:
            msg = "init script %s failed (%s)" % (script.path, why or "exit %s" % code)
            if not script.optional:
                log.error("%s: boot stopped", msg)
                cb, self.booting = self.booting, None
                if cb:
                    cb(False, code if code else 1)
                return
            log.warning("%s; it is optional, going on", msg)
        self._next_init_script()

    def _start_batch(self, services):
        """Start several services at once. Each start() reports a change; progress in between would see
        the others still DOWN and not wanted, take them as "not to wait for", and launch a dependent
        before its dependency (and, at boot, declare the boot done and start the app)."""
        self.batch = True
        try:
            for s in services:
                s.start()
        finally:
            self.batch = False
        self._progress()

    def _progress(self):
        """Start waiting services whose dependencies are ready; fail those whose requirement failed.

        A required unit counts as failed when it is failed, skipped, or itself gave up on a
        dependency (a BindsTo= one also when it is down: a false condition); a Requisite= must be
        up by then. Type=idle waits until no other service is waiting or starting (systemd's
        "after the other jobs"), at most IDLE_TIMEOUT from when it could have started: a deadline
        of PID 1's loop (next_deadline), never a poll."""
        for name in [n for n in self.idle_held if getattr(self.services.get(n), "state", None) != S.WAITING]:
            del self.idle_held[name]  # started, stopped or gone while held back
        moved = True
        while moved:
            moved = False
            for s in list(self.services.values()):  # a start that fails may drop a transient instance
                if s.state != S.WAITING:
                    continue
                deps = [self.services.get(d) for d in self.deps.get(s.name, [])]
                needed = set(s.spec.requires) | set(self._names(s.spec.requires + s.spec.binds_to))
                bound = set(self._names(s.spec.binds_to))
                bad = [d for d in deps if d is not None and d.name in needed and
                       (d.state in (S.FAILED, S.SKIPPED) or (d.state == S.DOWN and d.result == "dependency")
                        or (d.name in bound and d.state == S.DOWN and not d.want_up))]
                if bad:
                    s.dep_failed(bad[0].name)
                    moved = True
                elif all(d is None or d.ready or d.state in (S.FAILED, S.SKIPPED)
                         or (d.state == S.DOWN and not d.want_up) for d in deps):
                    if s.spec.type == "idle" and self._idle_wait(s):
                        continue  # systemd's idle: after every other queued start, 5 s at most
                    missing = [n for n in self._names(s.spec.requisite) if not (self.find(n) and self.find(n).ready)]
                    if missing:
                        s.dep_failed(missing[0])
                    else:
                        s.deps_ready()
                    moved = True
        if self.booting and self.init_pid is None and not self.init_queue \
                and all(s.state not in (S.WAITING,) + _STARTING
                        for s in (self.services.get(n) for n in self.app_after) if s is not None):
            cb, self.booting = self.booting, None
            cb(True, 0)

    def _idle_wait(self, s):
        """Whether a Type=idle service, its dependencies ready, still waits for the other starts."""
        busy = any(t.state in (S.WAITING,) + _STARTING and t.spec.type != "idle" for t in self.services.values())
        since = self.idle_held.get(s.name)
        if not busy or (since is not None and self.ops.now() >= since + IDLE_TIMEOUT):
            if busy:
                log.info("%s: Type=idle: the other starts are not done after %gs: starting anyway", s.name,
                         IDLE_TIMEOUT)
            self.idle_held.pop(s.name, None)
            return False
        if since is None:
            self.idle_held[s.name] = self.ops.now()
        return True

    # ---- shutdown -----------------------------------------------------------

    def stop_all(self):
        """Stop services wave by wave, last wave first; then the finish scripts (cont-finish.d)."""
        self.stopping = True
        self.booting = None
        if self.init_pid:  # a stop during the boot ends the running init script too
            self.kill_group(self.init_pid, 15)
            self.script_deadline = self.ops.now() + SCRIPT_STOP_TIMEOUT
        self._stop_next_wave()

    def _next_finish_script(self):
        """s6-overlay's cont-finish.d, in order, each bounded; failures are only logged."""
        self.finish_pid = None
        while self.finish_queue:
            script = self.finish_queue.pop(0)
            try:
                self.finish_pid = spawn(list(script.command), env=self.env)
                self.script_deadline = self.ops.now() + SCRIPT_STOP_TIMEOUT
                return
            except Exception as e:
                log.warning("finish script %s: %s", script.path, e)
        self.script_deadline = None

    def _stop_next_wave(self):
        if not (self.stopping or self.rebooting):
            return None
        waves = [w for w in self.order] + [[n for n in self.services if not any(n in w for w in self.order)]]
        for wave in reversed(waves):
            live = [self.services[n] for n in wave if n in self.services and
                    (self.services[n].pids() or self.services[n].state in (S.UP, S.DONE))]
            if live:
                for s in live:
                    if s.state not in (S.STOPPING, S.STOP_POST, S.FINISH):
                        s.stop()
                if any(s.pids() for s in live):
                    return
                return self._stop_next_wave()
        for s in self.services.values():  # nothing running: make sure no restart is pending
            s.want_up = False
            if s.state in (S.BACKOFF, S.WAITING):
                s._set(S.DOWN, "stopped")
        if self.rebooting:
            self.rebooting = False
            for s in self.services.values():
                s.reset_failed()
            log.info("reboot: every service is down; starting them again")
            self._start_batch([s for _, s in sorted(self.services.items())
                               if s.state == S.DOWN and s.spec.enabled])
            return None
        if self.finish_queue is None and self.init_pid is None:
            if self.sockets is not None:
                self.sockets.stop_all()  # after their services, as systemd stops sockets.target
            self.finish_queue = list(self.finish_scripts)
            self._next_finish_script()
        return None

    def all_down(self):
        return all(not s.pids() for s in self.services.values()) and self.init_pid is None \
            and self.finish_queue is not None and not self.finish_queue and self.finish_pid is None

    def pids(self):
        out = [p for s in self.services.values() for p in s.pids()]
        return out + ([self.init_pid] if self.init_pid else [])

    # ---- events from the loop ------------------------------------------------

    def on_exit(self, pid, code):
        if pid == self.init_pid:
            self.init_pid = None
            self._init_script_done(code)
            return True
        if pid == self.finish_pid:
            if code:
                log.warning("finish script (pid %d) exited with %d", pid, code)
            self._next_finish_script()
            if self.on_change:
                self.on_change()
            return True
        for s in list(self.services.values()):
            if pid in s.pids():
                s.on_exit(pid, code)
                return True
        return False

    def next_deadline(self):
        ds = [s.deadline for s in self.services.values() if s.deadline is not None]
        if self.script_deadline is not None:
            ds.append(self.script_deadline)
        wheel = self.timers.next_deadline(self.ops.now()) if self.timers is not None else None
        if wheel is not None:
            ds.append(wheel)
        if self.idle_held:
            ds.append(min(self.idle_held.values()) + IDLE_TIMEOUT)
        return min(ds) if ds else None

    def on_timer(self, now):
        if self.timers is not None:
            self.timers.on_timer(now)
        for s in list(self.services.values()):
            if s.deadline is not None and now >= s.deadline:
                s.on_timer(now)
        if self.idle_held and now >= min(self.idle_held.values()) + IDLE_TIMEOUT:
            self._progress()
            # one held back that did not start (no longer waiting, a dependency not ready) holds no deadline
            self.idle_held = {n: t for n, t in self.idle_held.items() if now < t + IDLE_TIMEOUT}
        if self.script_deadline is not None and now >= self.script_deadline:
            self.script_deadline = None
            for pid in (self.init_pid, self.finish_pid):
                if pid:
                    log.warning("script (pid %d) still running after %.0fs: killed", pid, SCRIPT_STOP_TIMEOUT)
                    self.kill_group(pid, 9)

    # ---- the host interface of svc.Service ----------------------------------

    def now(self):
        return self.ops.now()

    def kill_group(self, pid, sig):
        """`sig` to the process group `pid` leads (every spawned process leads its own session),
        else to the process; for a unit, also to every process left in that session (a worker
        that made a process group of its own)."""
        if not self.ops.killpg(pid, sig):
            self.ops.kill(pid, sig)
        if self.unit_mode:
            from osbase import procfs
            for p in procfs.pids():
                f = procfs.ppid_state(p)
                if f is not None and f[3] == pid and f[2] != pid:  # in the session, another group
                    self.ops.kill(p, sig)

    def kill_process(self, pid, sig):
        self.ops.kill(pid, sig)

    def kill_leftovers(self, pgid):
        self.ops.killpg(pgid, 9)

    def check_conditions(self, s):
        from richinit.unitexec import check_conditions
        return check_conditions(s.spec.conditions, self.env)

    def cleanup(self, s, restarting):
        """A run ended: RuntimeDirectory= goes unless RuntimeDirectoryPreserve= keeps it (removed
        by a forked child: the tree walk and its imports stay out of PID 1; waited for when a
        restart follows, so it cannot remove what the next start creates)."""
        keep = s.spec.runtime_preserve
        if not s.spec.directories or keep == "yes" or (keep == "restart" and restarting):
            return
        from richinit.unitexec import remove_paths, runtime_paths
        paths = runtime_paths(s.spec.directories)
        if paths:
            try:
                pid = spawn_call(remove_paths, (paths,), env=self.env, brief=True)
            except OSError as e:
                log.warning("%s: cannot remove %s: %s", s.name, paths, e)
                return
            if restarting:
                self._wait_for(pid)

    def guess_main_pid(self, s):
        """Type=forking without PIDFile=: the daemon the starter left (systemd guesses from the
        cgroup). Here: a process left in the starter's session; else a child PID 1 adopted (a
        daemon that double-forked and setsid()) started after the starter and no one's yet."""
        from osbase import procfs
        starter = s.groups[0] if s.groups else None
        if not starter:
            return None
        left = [p for p in procfs.session_members(starter) if p != starter]
        if left:
            return min(left)
        known = set(self.pids())
        me = os.getpid()
        adopted = [p for p in procfs.children(me) or () if p > starter and p not in known]
        return min(adopted) if adopted else None

    def changed(self, s):
        # inactive, as sockets and timers see it (RemainAfterExit= keeps a finished oneshot active)
        down = not s.pids() and (s.state in (S.DOWN, S.FAILED, S.SKIPPED)
                                 or (s.state == S.DONE and not s.spec.remain_after_exit))
        if self.sockets is not None:
            self.sockets.service_changed(s, down)
        if self.timers is not None:
            self.timers.service_changed(s, down)
        if s.state in (S.DOWN, S.FAILED, S.DONE) and not s.pids():
            self._close_fds(s.name)
            if (s.removed or s.name in self.transient) and self.services.get(s.name) is s:
                del self.services[s.name]
                self.transient.discard(s.name)
            rep = s.replacement
            if rep is not None and self.services.get(s.name) is s:
                self.services[s.name] = rep
                if rep.spec.enabled and rep.state == S.DOWN and not self.stopping:
                    rep.start()
        if not self.stopping and not self.rebooting:
            self._unit_links(s)
        if self.settle_waiters and s.settled:
            waiting, self.settle_waiters = self.settle_waiters, []
            for w, cb in waiting:
                if w is s or w.settled:
                    cb(self.unit_status(w.name))
                else:
                    self.settle_waiters.append((w, cb))
        if self.stopping or self.rebooting:
            self._stop_next_wave()
        elif not self.batch:
            self._progress()
        if self.on_change:
            self.on_change()

    def _unit_links(self, s):
        """What a unit's change means for the others: OnFailure= on entering failed, BindsTo=
        when it goes inactive, Conflicts= when it starts."""
        if s.state == S.FAILED and s.name not in self.failed_seen:
            self.failed_seen.add(s.name)
            for name in s.spec.on_failure:
                t = self.find(name)
                if t is not None:
                    log.info("%s failed: starting %s (OnFailure=)", s.name, t.name)
                    t.start()
        elif s.state != S.FAILED:
            self.failed_seen.discard(s.name)
        if s.active_state() in ("inactive", "failed") and s.state != S.WAITING:
            for t in self.services.values():
                if s.name in self._names(t.spec.binds_to) and t.active:
                    log.info("%s is down: stopping %s (BindsTo=)", s.name, t.name)
                    t.stop()
        if s.state == S.WAITING:
            for t in self.services.values():
                if t is not s and t.active and (t.name in self._names(s.spec.conflicts)
                                                or s.name in self._names(t.spec.conflicts)):
                    log.info("%s starts: stopping %s (Conflicts=)", s.name, t.name)
                    t.stop()

    @staticmethod
    def _names(units):
        """Service names among dependency entries ("foo", "foo.service"); other unit types dropped."""
        out = []
        for u in units:
            if u.endswith(".service"):
                out.append(u[:-8])
            elif "." not in u:
                out.append(u)
        return out

    def read_pidfile(self, path):
        try:
            pid = int(regular.read(path, 64).split()[0])  # a FIFO there must not hang PID 1
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def probe(self, ready):
        try:
            if ready.kind == "file":
                return os.path.exists(ready.path)
            if ready.kind == "tcp":
                host = ready.host or "127.0.0.1"
                fam = socket.AF_INET6 if ":" in host else socket.AF_INET
                c = socket.socket(fam, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0)
                try:
                    c.settimeout(0.05)
                    c.connect((host.strip("[]"), int(ready.port)))
                finally:
                    c.close()
                return True
            if ready.kind == "unix":
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0)
                try:
                    c.settimeout(0.05)
                    c.connect(ready.path)
                finally:
                    c.close()
                return True
        except OSError:
            return False
        return False

    def _close_fds(self, name):
        fd = self.ready_fds.pop(name, None)
        if fd is not None:
            self.loop.remove_reader(fd)
            os.close(fd)

    def _output(self, s, which, sock=None):
        """The fd a service's stdout (which 1) or stderr (2) gets, and whether we must close it.
        file:/append:/truncate: of a unit are opened for the child itself, as systemd does (PID 1
        never writes them); "socket" is the connection an Accept=yes socket handed over (`sock`);
        the other kinds go through a sink."""
        spec = s.spec
        dest = spec.stderr_log if which == 2 and spec.stderr_log is not None else spec.log
        if dest.kind == "socket" and sock is not None:
            return sock, False
        if dest.kind in ("none", "socket"):
            return os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC), True
        if dest.kind == "file" and s.unit and not dest.max_size:
            flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOCTTY
            flags |= os.O_APPEND if dest.mode == "append" else os.O_TRUNC if dest.mode == "truncate" else 0
            try:
                return os.open(dest.path, flags, 0o644), True
            except OSError as e:
                log.warning("%s: %s: %s; output to the console", s.name, dest.path, e.strerror)
                return os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC), True
        key = s.name if dest is spec.log else s.name + ":stderr"
        sink = self.sinks.get(key)
        if sink is None:
            sink = self.sinks[key] = OutputSink(self, s.name, dest)
        return sink.wfd, False

    def _account(self, s, privileged):
        """(user triple for spawn or None, the USER/HOME/... variables or None) of a service."""
        spec = s.spec
        if privileged or (spec.user is None and spec.group is None and not spec.supplementary_groups):
            return None, (account(spec.user) if s.unit and spec.user is not None else None)
        uid, gid, groups = passwd_lookup(spec.user, spec.group)
        if spec.supplementary_groups:
            groups = sorted(set(groups) | set(group_ids(spec.supplementary_groups)))
        return (uid, gid, groups), (account(spec.user) if s.unit and spec.user is not None else None)

    def _environment(self, s, acct):
        spec = s.spec
        file_env = {}
        if spec.env_files:
            from richinit.services.model import read_env_files
            file_env, errors = read_env_files(spec.env_files)
            for e in errors:
                log.warning("%s: %s", s.name, e)
        if s.unit:
            from richinit.unitexec import unit_env
            return unit_env(spec, self.env, acct, file_env)
        env = dict(self.env)
        env.update({k: str(v) for k, v in spec.environment.items()})
        env.update(file_env)
        return env

    def launch(self, s, cmd, main):
        """Spawn a control command or the service process with its user, env, output and fds.

        cmd is a services.model.Command (argv plus systemd's prefix flags) or a plain argv."""
        spec = s.spec
        argv, flags = (list(cmd.argv), cmd.flags) if hasattr(cmd, "argv") else (list(cmd), ":")
        privileged = "+" in flags or "!" in flags
        try:
            user, acct = self._account(s, privileged)
        except LookupError as e:
            raise ExecError(argv[0] if argv else "?", 22) from e  # systemd's 217/USER
        env = self._environment(s, acct)
        if s.pid and not main:
            env["MAINPID"] = str(s.pid)
        if s.unit and s.state in (S.STOPPING, S.STOP_POST):
            env.update(_exit_env(s))
        extra_fds = {}
        listen = {}  # PID 1's sockets for this service: placed at 3.., never closed here
        if main:
            self._close_fds(s.name)
            if self.sockets is not None:
                fds = self.sockets.handover(s.name, spec.sockets)
                listen = {3 + i: fd for i, (fd, _) in enumerate(fds)}
                if fds:
                    env.update(self.sockets.env_for(s.name), LISTEN_FDS=str(len(fds)),
                               LISTEN_FDNAMES=":".join(n for _, n in fds))
            if spec.ready.kind == "fd":
                rfd, wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                self.ready_fds[s.name] = rfd
                self.loop.add_reader(rfd, lambda fd, s=s: self._ready_fd(s, fd))
                extra_fds[spec.ready.fd] = wfd
        if s.notify_access != "none":
            env["NOTIFY_SOCKET"] = self._notify_socket()
        if main and s.watchdog:
            env["WATCHDOG_USEC"] = str(int(s.watchdog * 1e6))
        if ":" not in flags:
            from richinit.unitexec import expand
            argv = expand(argv, env)
        program = None
        if "@" in flags and len(argv) >= 2:
            program, argv = argv[0], argv[1:]
        cwd = self._workdir(s, acct, user)
        setup = self._setup(s)
        if main and s.watchdog:
            setup = _with_watchdog_pid(env, setup)
        if s.unit and user is not None and spec.directories:
            from richinit.unitexec import make_directories
            for e in make_directories(spec.directories, user[0], user[1]):
                log.warning("%s: %s", s.name, e)
        elif s.unit and spec.directories:
            from richinit.unitexec import make_directories
            for e in make_directories(spec.directories, 0, 0):
                log.warning("%s: %s", s.name, e)
        sock = listen.get(3)  # StandardInput=/StandardOutput=socket: the (first) socket handed over
        out, close_out = self._output(s, 1, sock)
        err, close_err = self._output(s, 2, sock) if spec.stderr_log is not None else (out, False)
        # Services never read the container's stdin (the app may own a terminal).
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        stdin = sock if spec.stdin_socket and sock is not None else null
        if not listen:
            for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
                env.pop(k, None)
        try:
            if spec.builtin and argv[:2] == ["@builtin", spec.builtin]:
                # Forked, not exec'd: the interpreter is up already (see spawn_call).
                return spawn_call(_run_builtin, (spec.builtin, list(argv[2:])), env=env, cwd=cwd,
                                  user=user, stdio=(stdin, out, err), extra_fds={**extra_fds, **listen},
                                  listen_fds=tuple(listen),
                                  title="richinit-%s %s" % (spec.builtin, " ".join(argv[2:])))
            pid = spawn(argv, env=env, cwd=cwd, user=user, stdio=(stdin, out, err),
                        extra_fds={**extra_fds, **listen}, listen_fds=tuple(listen), program=program, setup=setup)
            if main and s.watchdog:
                log.debug("%s: watchdog %.1fs for pid %d", s.name, s.watchdog, pid)
            return pid
        finally:
            if main and self.sockets is not None:
                self.sockets.launched(s.name)
            os.close(null)
            for fd in extra_fds.values():
                os.close(fd)
            if close_out:
                os.close(out)
            if close_err:
                os.close(err)

    def _workdir(self, s, acct, user):
        """WorkingDirectory=: "~" the user's home, a missing optional one ("-") is "/"."""
        wd = s.spec.workdir
        if wd == "~":
            wd = (acct or account(s.spec.user))["HOME"]
        if wd and s.spec.workdir_optional and not os.path.isdir(wd):
            return "/"
        return wd or "/"

    def _setup(self, s):
        spec = s.spec
        with_tmp = spec.private_tmp and self._private_tmp_ok(s)
        if spec.umask is None and spec.nice is None and not spec.limits and not with_tmp:
            return None
        from richinit.unitexec import child_setup
        return child_setup(spec.umask, spec.nice, spec.limits, with_tmp)

    def _private_tmp_ok(self, s):
        """Whether this container lets a child mount its own /tmp: asked once of a throwaway child,
        unless PID 1 lacks CAP_SYS_ADMIN (what a mount namespace needs; most engines' default), which
        one read of /proc/self/status says without a fork."""
        if self.private_tmp is None:
            from osbase import procfs
            from richinit.unitexec import probe_private_tmp
            try:
                if procfs.has_capability(procfs.CAP_SYS_ADMIN) is False:
                    self.private_tmp = False
                else:
                    pid = spawn_call(probe_private_tmp, (), env=self.env, brief=True)
                    self.private_tmp = self._wait_for(pid) == 0
            except OSError:
                self.private_tmp = False
            if not self.private_tmp:
                log.warning("%s: PrivateTmp= not available here (no mount namespace allowed): "
                            "services share /tmp", s.name)
        return self.private_tmp

    def _ready_fd(self, s, fd):
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return
        if b"\n" in data:
            s.on_ready()
        if not data or b"\n" in data:
            self._close_fds(s.name)

    # ---- sd_notify: one socket for every service, senders known by their credentials -----------
    # CONTROL_DIR.notify (/run/richinit.notify): systemd's /run/systemd/notify, one for all.

    def _notify_socket(self):
        if self.notify_sock is not None:
            return self.notify_path
        # Beside the control directory, not in it: that one is root's alone (0700), and a service
        # running as another user must reach this socket.
        path = self.control_dir.rstrip("/") + ".notify"
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.bind(path)
        os.chmod(path, 0o666)  # a service may run as any user
        self.notify_sock, self.notify_path = sock, path
        self.loop.add_reader(sock.fileno(), self._notified)
        return path

    def _notified(self, fd):
        while True:
            try:
                data, anc, _flags, _addr = self.notify_sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.warning("notify socket: %s", e)
                return
            pid = 0
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(cdata) >= 4:
                    pid = int.from_bytes(cdata[:4], sys.byteorder)
            s = self._sender(pid) if pid else None
            if s is None:
                log.debug("notification from pid %d of no service: %r", pid, data[:80])
                continue
            fields = {}
            for line in data.decode("utf-8", "replace").split("\n"):
                key, eq, value = line.partition("=")
                if eq:
                    fields[key] = value
            s.on_notify(pid, fields)

    def _sender(self, pid):
        """The service a notifying pid belongs to: one of its processes, or a descendant of one,
        or a member of one of its process groups / sessions (walked up /proc, bounded)."""
        owners = {}
        for s in self.services.values():
            for p in s.pids() + list(s.groups):
                owners.setdefault(p, s)
        cur = pid
        for _ in range(32):
            if cur in owners:
                return owners[cur]
            try:
                with open("/proc/%d/stat" % cur, "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                return None
            for group in (int(fields[2]), int(fields[3])):  # pgrp, session
                if group in owners:
                    return owners[group]
            cur = int(fields[1])  # ppid
            if cur <= 1:
                return None
        return None

    # ---- control ------------------------------------------------------------

    def status(self):
        now = self.ops.now()
        return [self.services[n].status(now) for n in sorted(self.services)]

    # ---- control verbs (systemctl and richctl call these; each returns a reply dict) ----------

    def canonical(self, name):
        """The unit an alias names ("sshd" or "sshd.service" -> "ssh.service"); other names as given."""
        return self.aliases.get(_unit_name(name), name) if self.aliases else name

    def find(self, name):
        """The Service called `name`: its stem ("nginx"), its unit name ("nginx.service") or an
        alias of its unit (a link in a unit directory: "sshd.service" -> ssh.service); None when
        there is none."""
        s = self.services.get(name)
        if s is None:
            name = self.canonical(name)
            if name.endswith(".service"):
                s = self.services.get(name[:-8])
        return s

    def _verb(self, name, fn):
        s = self.find(name)
        if s is None:
            return {"ok": False, "error": "Unit %s not found." % _unit_name(name), "code": 5}
        return fn(s)

    def wall_offset(self):
        """Wall clock minus PID 1's monotonic clock: turns the services' stamps into dates."""
        return time.time() - self.ops.now()

    def _dependents(self, s, kinds):
        """Services that name `s` in one of the spec fields `kinds`, transitively."""
        out, todo = [], [s]
        while todo:
            cur = todo.pop()
            for t in self.services.values():
                if t is not s and t not in out and any(cur.name in self._names(getattr(t.spec, k)) for k in kinds):
                    out.append(t)
                    todo.append(t)
        return out

    def _start_one(self, s):
        if self.unit_files.get(s.spec.unit or "") == "masked":
            return {"ok": False, "error": "Unit %s is masked." % s.spec.unit, "code": 1}
        if self.stopping:
            return {"ok": False, "error": "the container is shutting down", "code": 1}
        for name in self._names(s.spec.requisite):
            t = self.find(name)
            if t is None or not t.ready:
                return {"ok": False, "code": 1, "error": "Requisite unit %s is not active." % _unit_name(name)}
        pulled = []
        for name in self._names(s.spec.requires + s.spec.binds_to + s.spec.wants):
            t = self.find(name)
            if t is not None and t is not s and t.state in (S.DOWN, S.FAILED, S.SKIPPED) \
                    or t is not None and t.state == S.DONE and not t.spec.remain_after_exit and t is not s:
                pulled.append(t)
        for name in s.spec.socket_deps:  # its sockets first: its main process gets their fds
            if self.sockets is not None and self.sockets.state(name) == ("inactive", "dead"):
                err = self.sockets.start(name)
                if err:
                    log.warning("%s: its socket %s.socket: %s", s.name, name, err)
        self._start_batch(pulled + [s])
        return {"ok": True}

    def _stop_one(self, s):
        for t in self._dependents(s, ("requires", "binds_to", "part_of")):
            if t.active or t.state in (S.WAITING, S.BACKOFF):
                t.stop()
        s.stop()
        return {"ok": True}

    def _restart_one(self, s):
        if self.stopping:
            return {"ok": False, "error": "the container is shutting down", "code": 1}
        for t in self._dependents(s, ("requires", "part_of")):
            if t.active:
                t.restart()
        if s.state in (S.DOWN, S.FAILED, S.SKIPPED):
            return self._start_one(s)
        s.restart()
        return {"ok": True}

    def start_service(self, name):
        """systemctl start: pull in what it requires and wants (not running yet), stop what it
        conflicts with, then start it. {"ok": True} once queued; a Requisite= not active, a masked
        or bad unit -> {"ok": False, "error"}. `when_settled` tells when the start job is done."""
        return self._verb(name, self._start_one)

    def stop_service(self, name):
        """systemctl stop: stop it and, first, every running unit that Requires=, BindsTo= or is
        PartOf= it (systemd's stop propagation); no restart follows."""
        return self._verb(name, self._stop_one)

    def restart_service(self, name):
        """systemctl restart: stop (ExecStop, the kill, ExecStopPost) then start again; units
        PartOf=/Requires= it are restarted with it. Starts it when it was not running."""
        return self._verb(name, self._restart_one)

    def try_restart_service(self, name):
        """systemctl try-restart: restart only when it is active (running or activating)."""
        def act(s):
            if not s.active:
                return {"ok": True, "skipped": True}
            return self._restart_one(s)
        return self._verb(name, act)

    def reload_service(self, name):
        """systemctl reload: ExecReload= (or reload_signal and READY=1 for notify-reload).
        {"ok": False} when the unit is not active or has no way to reload."""
        def act(s):
            err = s.reload()
            return {"ok": True} if err is None else {"ok": False, "error": err, "code": 1}
        return self._verb(name, act)

    def reload_or_restart_service(self, name):
        """systemctl reload-or-restart: reload when it can, else restart (start when not running)."""
        def act(s):
            if s.active and s.can_reload():
                err = s.reload()
                if err is None:
                    return {"ok": True}
            return self._restart_one(s)
        return self._verb(name, act)

    def kill_service(self, name, sig, who="all"):
        """systemctl kill [--kill-whom=main|control|all] [-s SIG]: send `sig` (number) to the main
        process, the control process (ExecXxx= commands), or all of the service's processes."""
        if who not in ("main", "control", "all"):
            return {"ok": False, "error": "bad --kill-whom: %s" % who, "code": 1}
        def act(s):
            sent = s.kill(sig, who)
            if not sent:
                return {"ok": False, "error": "No process to kill for %s" % _unit_name(s.name), "code": 1}
            return {"ok": True, "pids": sent}
        return self._verb(name, act)

    def reset_failed(self, name=None):
        """systemctl reset-failed [NAME]: a failed unit becomes inactive, its start-limit counter
        and Result are cleared (every unit when name is None)."""
        if name is None:
            for s in self.services.values():
                s.reset_failed()
            return {"ok": True}
        return self._verb(name, lambda s: (s.reset_failed(), {"ok": True})[1])

    def unit_file_state(self, name):
        """systemctl is-enabled: the loader's word for the unit file (enabled, disabled, static,
        masked, generated, alias, indirect), "enabled" for services.d definitions, None if unknown."""
        state = self.unit_files.get(name) or self.unit_files.get(name + ".service")
        if state:
            return state
        s = self.find(name)
        if s is None:
            return None
        if s.spec.unit:
            return self.unit_files.get(s.spec.unit) or ("enabled" if s.spec.enabled else "disabled")
        return "enabled" if s.spec.enabled else "disabled"

    def unit_status(self, name):
        """systemctl status/show of one unit as a dict with systemd's property names (Id,
        ActiveState, SubState, MainPID, ExecMainStatus, Result, NRestarts, StatusText,
        ActiveEnterTimestamp, ...; see svc.Service.properties). None when unknown."""
        s = self.find(name)
        if s is None:
            return None
        props = s.properties(self.ops.now(), self.wall_offset())
        props["UnitFileState"] = self.unit_file_state(s.name) or ""
        if s.removed:
            props["LoadState"] = "not-found"  # its file went (daemon-reload); it runs on until stopped
        props["Names"] = " ".join([props["Id"]] + sorted(a for a, u in self.aliases.items() if u == props["Id"]))
        return props

    def units_status(self):
        """unit_status of every service, sorted by name (systemctl list-units)."""
        return [self.unit_status(n) for n in sorted(self.services)]

    def when_settled(self, name, callback):
        """Call callback(unit_status) once the unit has no start or stop in progress (systemctl's
        job wait); at once when it has none. False when the unit is unknown."""
        s = self.find(name)
        if s is None:
            return False
        if s.settled:
            callback(self.unit_status(s.name))
        else:
            self.settle_waiters.append((s, callback))
        return True

    def reboot(self):
        """The `reboot` request: stop every service in reverse order, then start the enabled ones
        again in order; the container (PID 1, the app) goes on."""
        if self.stopping:
            return {"ok": False, "error": "shutting down"}
        log.info("reboot: restarting every service")
        self.rebooting = True
        self.booting = None
        self._stop_next_wave()
        return {"ok": True}


def _with_watchdog_pid(env, setup):
    """WATCHDOG_PID= is the main process's own pid: set in the child, where it is known."""
    def child():
        env["WATCHDOG_PID"] = str(os.getpid())
        if setup is not None:
            setup()
    return child


def _exit_env(s):
    """SERVICE_RESULT, EXIT_CODE and EXIT_STATUS for ExecStop=/ExecStopPost=, as systemd sets them."""
    env = {"SERVICE_RESULT": s.result}
    code = s.last_exit
    if code is not None and s.pid is None:  # the main process has exited
        sig = S.signal_of(code)
        env["EXIT_CODE"] = "killed" if sig else "exited"
        env["EXIT_STATUS"] = sigs.name(sig)[3:] if sig else str(code)
    return env


def _unit_name(name):
    return name if "." in name else name + ".service"
