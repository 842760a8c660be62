"""The host-side pieces the pipeline (runtime_hooks.pipeline) is made of: where things live
(HostPaths), the hook log, the choice of a /proc view backend, starting it and registering a
container with it, and the rich-hook entries the wrapper registers.

Where things live is a HostPaths, read from RICHINIT_* environment variables with the system
defaults; the wrapper copies the ones that were set into the env of the hook entries it
registers (hooks get an explicit env, never an inherited one), so a test or a second
installation can keep everything in its own directories.

    paths = HostPaths.from_env()
    backend, lxcfs_mount = choose_views(runtime, annotations, paths, pid)
    register_views(cid, backend, lxcfs_mount, paths, pid=pid, root=rootfs)
    hooks = hook_entries(hook_path, timeout, paths, runtime, stages)  # rich-hook STAGE entries

Every failure is a PrepError whose text is one line.
"""

import os

ANNOT_VIEWS = "io.richinit.views"  # what the wrapper did about views: builtin | lxcfs | off
HOOK_STAGES = ("createRuntime", "poststop")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# (attribute, environment variable, default). Defaults of lxcfs/quota are imported lazily.
_VARS = (
    ("log_dir", "RICHINIT_LOG_DIR", "/var/log/richinit"),
    ("state_dir", "RICHINIT_STATE_DIR", "/var/lib/richinit"),
    ("views_mount", "RICHINIT_VIEWS_MOUNT", "/run/richinit/views"),
    ("views_registry", "RICHINIT_VIEWS_REGISTRY", "/run/richinit/views.d"),
    ("views_pidfile", "RICHINIT_VIEWS_PIDFILE", "/run/richinit/views.pid"),
    ("watch_pidfile", "RICHINIT_VIEWS_WATCH_PIDFILE", "/run/richinit/views-watch.pid"),
    ("lxcfs_mount", "RICHINIT_LXCFS", None),  # a specific lxcfs mount; default: detect a running one
)


class PrepError(Exception):
    """One line: what could not be prepared and why."""


class Log:
    """LOG_DIR/hook.log: one line per host-side action, from rich-hook and from `rich run` (prog)."""

    def __init__(self, log_dir, stage, cid="-", prog="rich-hook"):
        self.path = os.path.join(log_dir, "hook.log")
        self.stage, self.cid, self.prog = stage, cid, prog

    def __call__(self, msg):
        import time
        line = "%s %s[%d] %s %s: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), self.prog, os.getpid(), self.stage,
                                          self.cid, msg)
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o640)
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError:
            pass  # logging never decides the container's fate


class HostPaths:
    def __init__(self, **kw):
        self.explicit = {}
        for attr, var, default in _VARS:
            setattr(self, attr, kw.get(attr, default))
            if attr in kw and kw[attr] is not None:
                self.explicit[var] = kw[attr]

    @classmethod
    def from_env(cls, environ=None):
        environ = os.environ if environ is None else environ
        kw = {}
        for attr, var, _default in _VARS:
            v = environ.get(var)
            if v:
                if not v.startswith("/") or "\0" in v or "\n" in v:
                    raise PrepError("%s: must be an absolute path, not %r" % (var, v))
                kw[attr] = v
        return cls(**kw)

    def hook_env(self, runtime=None):
        """The explicit env of a hook entry: PATH, the paths that differ from the defaults, the runtime."""
        env = [PATH_ENV] + ["%s=%s" % kv for kv in sorted(self.explicit.items())]
        if runtime:
            env.append("RICHINIT_HOOK_RUNTIME=%s" % os.path.basename(runtime))
        return env

    @property
    def views_log(self):
        return os.path.join(self.log_dir, "views.log")


# ---------------------------------------------------------------- views

def choose_views(runtime, annotations, paths, pid=None):
    """('lxcfs', mount) | ('builtin', None) | (None, None). PrepError on a bad annotation."""
    from lxcfs import detect
    try:
        lx = paths.lxcfs_mount or detect.find_lxcfs()
        vm = detect.is_vm_runtime(runtime or "", annotations) or _runs_under_runsc(pid)
        backend = None if vm else detect.choose_backend(runtime or "", annotations, lx)
    except detect.BadAnnotation as e:
        raise PrepError(str(e))
    return backend, (lx if backend == "lxcfs" else None)


def _runs_under_runsc(pid):
    """gVisor's createRuntime state names its sandbox process: its executable is runsc."""
    if not pid:
        return False
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return False
    return "runsc" in os.path.basename(exe.split(" (deleted)")[0])


def _start_backend(backend, paths):
    from lxcfs import api
    os.makedirs(paths.log_dir, exist_ok=True)
    if backend == "builtin":
        api.ensure_server_running(paths.views_mount, paths.views_registry, paths.views_pidfile,
                                  paths.views_log, timeout=5.0)
    api.ensure_watcher_running(paths.views_registry, paths.views_mount, paths.watch_pidfile,
                               paths.views_log, timeout=5.0)


def register_views(cid, backend, lxcfs_mount, paths, pid=None, root=None):
    """Start what the backend needs and register the container; returns its view directory.
    root: its rootfs, so that the init can be found without a pid (lxcfs.locate)."""
    from lxcfs import api, registry
    try:
        _start_backend(backend, paths)
        return api.register(cid, pid, backend=backend, lxcfs_mount=lxcfs_mount, mount=paths.views_mount,
                            registry_dir=paths.views_registry, root=root)
    except (OSError, registry.BadEntry, ValueError) as e:
        raise PrepError("views (%s): %s" % (backend, e))


# ---------------------------------------------------------------- hook entries

def find_hook(configured=None, argv0=None, environ=None):
    """The rich-hook program: runtime.yaml's `hook`, RICHINIT_HOOK, or the one installed beside argv0."""
    environ = os.environ if environ is None else environ
    for cand in (configured, environ.get("RICHINIT_HOOK")):
        if cand:
            if not cand.startswith("/"):
                raise PrepError("hook %r: must be an absolute path" % cand)
            return cand
    if argv0 and "/" in argv0:
        cand = os.path.join(os.path.dirname(os.path.abspath(argv0)), "rich-hook")
        if os.access(cand, os.X_OK):
            return cand
    return None


def hook_entries(hook_path, timeout, paths, runtime=None, stages=HOOK_STAGES):
    """{stage: [entry]}: `rich-hook STAGE` with an explicit env."""
    from runtime_hooks import ociconfig
    env = paths.hook_env(runtime)
    return {s: [ociconfig.hook_entry(hook_path, [s], env=env, timeout=timeout)] for s in stages}
