"""The services side of PID 1: boot stages, dependencies, readiness, output, reload.

Boot: init scripts one after the other (a failing one stops the boot unless optional),
then services as their dependencies become ready (independent ones in parallel), and the
app beside them, once the services it waits for (`app_after`) are ready (pid1.Init starts
it when `boot` calls back). Sockets of the document are bound before any of it (sockets.py),
timers armed on PID 1's own deadline (timers.py). Shutdown: services stop in reverse
dependency order, each with its own signal and timeout.

Definitions come from richinit.services.load, run in a short-lived child forked from PID 1
(spawn_call) so PID 1 never imports yaml or the schema. Everything that touches the OS for a service (fds,
users, spawning) lives here; the per-service decisions live in svc.Service.
"""

import _socket as socket  # the C module: socket.py's enums would cost PID 1 memory
import marshal
import os

from richinit import log
from richinit import svc as S
from richinit.identity import passwd_lookup
from richinit.sinks import OutputSink
from richinit.spawn import spawn, spawn_call

RUN_DIR = "/run/richinit"
SCRIPT_STOP_TIMEOUT = 5.0  # an init script cut short by a stop, or a finish script: SIGKILL after this


def _load_document(fd, root, only):
    """In the loader child: import the loader (yaml, the schema) there, never in PID 1."""
    from richinit.services.load import write_document
    return write_document(fd, root, only)


def _run_builtin(name, args):
    """In a built-in's child: its module's main(args)."""
    from richinit import builtin
    return builtin.main(name, args)


class Supervisor:
    """Owns the services; implements the `host` interface svc.Service acts through."""

    def __init__(self, loop, ops, control_dir=RUN_DIR, root="/"):
        self.loop, self.ops = loop, ops
        self.control_dir, self.root = control_dir, root
        self.services = {}
        self.deps = {}
        self.order = []
        self.errors = []
        self.init_scripts = []
        self.sinks = {}
        self.ready_fds = {}      # service name -> read fd of its notification pipe
        self.notify_socks = {}   # service name -> socket for sd_notify
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

    # ---- loading ------------------------------------------------------------

    def load(self, only=None):
        """Run the loader child and return its document (dict), or None when it failed.

        The document comes as marshal data, not JSON: the child is our own interpreter, and
        marshal is built in, where the json package would cost PID 1 memory.
        """
        self.only = only
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        try:
            pid = spawn_call(_load_document, (3, self.root, list(only) if only else None), env=self.env,
                             extra_fds={3: wfd}, brief=True)
        except Exception as e:
            os.close(rfd)
            os.close(wfd)
            log.error("cannot run the services loader: %s", e)
            return None
        os.close(wfd)
        chunks = []
        while True:
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
        self.order = doc.get("order", [])
        added, removed, changed = [], [], []
        for name in list(self.services):
            if name not in specs:
                removed.append(name)
                old = self.services[name]
                old.removed = True
                old.stop()
                if not old.pids():
                    del self.services[name]
        for name, spec in specs.items():
            old = self.services.get(name)
            if old is not None and old.spec == spec and name not in failed:
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
        if doc.get("sockets") or self.prebound:
            from richinit.sockets import Sockets, release
            if self.sockets is None:
                self.sockets = Sockets(self)
            left = self.sockets.apply([SocketSpec.from_dict(d) for d in doc.get("sockets", [])], self.prebound)
            self.prebound = {}
            release(left)  # bound early for a service that is not there (--services, a condition)
        if doc.get("timers"):
            from richinit.timers import Timers
            if self.timers is None:
                self.timers = Timers(self)
            self.timers.apply([TimerSpec.from_dict(d) for d in doc["timers"]], self.ops.now())

    def start_instance(self, template, name):
        """Start `name`, an instance of `template` ("foo@") that runs once; False if there is no template."""
        tspec = self.templates.get(template)
        if tspec is None:
            log.error("no template %s for instance %s", template, name)
            return False
        spec = tspec.replace(name=name, unit=name + ".service", restart="never", enabled=True)
        s = self.services[name] = S.Service(spec, self)
        self.transient.add(name)
        s.start()
        return True

    def reload(self):
        """Re-read services.d: start added ones, stop removed ones, restart changed ones."""
        doc = self.load(self.only)
        if doc is None:
            return {"ok": False, "error": "the services loader failed; nothing changed"}
        added, removed, changed = self.apply(doc, boot=False)
        self._start_batch([s for s in (self.services.get(n) for n in added + changed)
                           if s is not None and s.state == S.DOWN and s.spec.enabled and not s.pids()])
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
        """Start waiting services whose dependencies are ready; fail those whose requirement failed."""
        moved = True
        while moved:
            moved = False
            for s in self.services.values():
                if s.state != S.WAITING:
                    continue
                deps = [self.services.get(d) for d in self.deps.get(s.name, [])]
                bad = [d for d in deps if d is not None and d.state in (S.FAILED, S.SKIPPED)
                       and d.name in s.spec.requires]
                if bad:
                    s.dep_failed(bad[0].name)
                    moved = True
                elif all(d is None or d.ready or d.state in (S.FAILED, S.SKIPPED)
                         or (d.state == S.DOWN and not d.want_up) for d in deps):
                    s.deps_ready()
                    moved = True
        if self.booting and self.init_pid is None and not self.init_queue \
                and all(s.state not in (S.WAITING, S.PRE, S.STARTING)
                        for s in (self.services.get(n) for n in self.app_after) if s is not None):
            cb, self.booting = self.booting, None
            cb(True, 0)

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
        waves = [w for w in self.order] + [[n for n in self.services if not any(n in w for w in self.order)]]
        for wave in reversed(waves):
            live = [self.services[n] for n in wave if n in self.services and self.services[n].pids()]
            if live:
                for s in live:
                    if s.state != S.STOPPING:
                        s.stop()
                return
        for s in self.services.values():  # nothing running: make sure no restart is pending
            s.want_up = False
            if s.state in (S.BACKOFF, S.WAITING):
                s._set(S.DOWN, "stopped")
        if self.finish_queue is None and self.init_pid is None:
            self.finish_queue = list(self.finish_scripts)
            self._next_finish_script()

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
        if self.timers is not None and self.timers.deadline is not None:
            ds.append(self.timers.deadline)
        return min(ds) if ds else None

    def on_timer(self, now):
        if self.timers is not None:
            self.timers.on_timer(now)
        for s in list(self.services.values()):
            if s.deadline is not None and now >= s.deadline:
                s.on_timer(now)
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
        if not self.ops.killpg(pid, sig):
            self.ops.kill(pid, sig)

    def kill_leftovers(self, pgid):
        self.ops.killpg(pgid, 9)

    def changed(self, s):
        down = s.state in (S.DOWN, S.FAILED, S.DONE, S.SKIPPED) and not s.pids()
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
        if self.stopping:
            self._stop_next_wave()
        elif not self.batch:
            self._progress()
        if self.on_change:
            self.on_change()

    def read_pidfile(self, path):
        try:
            with open(path) as f:
                pid = int(f.read().split()[0])
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
        sock = self.notify_socks.pop(name, None)
        if sock is not None:
            self.loop.remove_reader(sock.fileno())
            sock.close()

    def launch(self, s, argv, main):
        """Spawn a pre command or the service process with its user, env, output and readiness fds."""
        spec = s.spec
        env = dict(self.env)
        env.update({k: str(v) for k, v in spec.environment.items()})
        if spec.env_files:
            from richinit.services.model import read_env_files
            extra, errors = read_env_files(spec.env_files)
            for e in errors:
                log.warning("%s: %s", s.name, e)
            env.update(extra)
        user = None
        if spec.user is not None or spec.group is not None:
            user = passwd_lookup(spec.user, spec.group)
        sink = self.sinks.get(s.name)
        if spec.log.kind == "none":
            out = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
        else:
            if sink is None:
                sink = self.sinks[s.name] = OutputSink(self, s.name, spec.log)
            out = sink.wfd
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
            elif spec.ready.kind == "notify":
                env["NOTIFY_SOCKET"] = self._notify_socket(s)
        # Services never read the container's stdin (the app may own a terminal).
        null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        if not listen:
            for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
                env.pop(k, None)
        try:
            if spec.builtin and argv[:2] == ["@builtin", spec.builtin]:
                # Forked, not exec'd: the interpreter is up already (see spawn_call).
                return spawn_call(_run_builtin, (spec.builtin, list(argv[2:])), env=env, cwd=spec.workdir or "/",
                                  user=user, stdio=(null, out, out), extra_fds={**extra_fds, **listen},
                                  listen_fds=tuple(listen),
                                  title="richinit-%s %s" % (spec.builtin, " ".join(argv[2:])))
            return spawn(argv, env=env, cwd=spec.workdir or "/", user=user, stdio=(null, out, out),
                         extra_fds={**extra_fds, **listen}, listen_fds=tuple(listen))
        finally:
            if main and self.sockets is not None:
                self.sockets.launched(s.name)
            os.close(null)
            for fd in extra_fds.values():
                os.close(fd)
            if spec.log.kind == "none":
                os.close(out)

    def _ready_fd(self, s, fd):
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            return
        if b"\n" in data:
            s.on_ready()
        if not data or b"\n" in data:
            self._close_fds(s.name)

    def _notify_socket(self, s):
        d = os.path.join(self.control_dir, "notify")
        os.makedirs(d, mode=0o755, exist_ok=True)
        path = os.path.join(d, s.name + ".sock")
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, 0)
        sock.bind(path)
        os.chmod(path, 0o666)  # the service may run as any user
        self.notify_socks[s.name] = sock
        self.loop.add_reader(sock.fileno(), lambda fd, s=s, sock=sock: self._notified(s, sock))
        return path

    def _notified(self, s, sock):
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        if b"READY=1" in data.split(b"\n"):
            s.on_ready()

    # ---- control ------------------------------------------------------------

    def status(self):
        now = self.ops.now()
        return [self.services[n].status(now) for n in sorted(self.services)]
