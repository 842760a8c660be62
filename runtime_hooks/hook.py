"""rich-hook STAGE: the OCI hook program of rich mode.

    rich-hook createRuntime | prestart      /proc views for the container, project quotas (fail closed)
    rich-hook createContainer | poststart   nothing heavy: one log line
    rich-hook poststop                      best effort: unregister views, release quota IDs/images
    rich-hook precreate                     podman's config filter: config.json on stdin, the rich one out

The OCI state arrives on stdin (id, pid, bundle, annotations); config.json is found through
`bundle`, never through the status string (runc and crun disagree on it). Everything read is
hostile: the state and config.json are parsed and checked before anything is done, and nothing
from the container's rootfs is ever executed or loaded here.

Who registers it: rich-runtime (the wrapper) for createRuntime and poststop with an explicit env,
or the oci-hooks JSON of hooks/ for podman/CRI-O (keyed on the annotation io.richinit.rich=true).
When the wrapper already bound the views through config.json mounts (annotation io.richinit.views)
and applied the quotas (their record exists), createRuntime only registers the init pid.

One line per action goes to $RICHINIT_LOG_DIR/hook.log (default /var/log/richinit/hook.log).
Failures: one line on stderr and in the log; createRuntime exits 1 (the runtime then destroys the
container), poststop always exits 0 (it never blocks removal).
"""

import os
import sys

from osbase import jsonfast
from runtime_hooks import hostprep

PROG = "rich-hook"
STAGES = ("createRuntime", "prestart", "createContainer", "startContainer", "poststart", "poststop", "precreate")
MAX_INPUT = 4 << 20  # a config.json bigger than this is not a container we run


class HookError(Exception):
    """One line: what was refused or failed."""


class State:
    def __init__(self, cid, pid, bundle, annotations):
        self.id, self.pid, self.bundle, self.annotations = cid, pid, bundle, annotations


# ---------------------------------------------------------------- input

def _read_stdin(stream):
    data = stream.read(MAX_INPUT + 1)
    if len(data) > MAX_INPUT:
        raise HookError("stdin: more than %d bytes" % MAX_INPUT)
    return data


def parse_state(data):
    """The OCI state (bytes or str) → State; HookError names the bad field."""
    from lxcfs import registry
    try:
        st = jsonfast.loads(data)
    except ValueError as e:
        raise HookError("state (stdin): not JSON: %s" % e)
    checks = [
        (isinstance(st, dict), "state (stdin): must be a JSON object"),
        (isinstance(st, dict) and registry.valid_id(st.get("id")), "state.id: missing or not a valid container id"),
        # runsc reports -1 when there is no process: any integer <= 0 means "no pid".
        (isinstance(st, dict) and (st.get("pid") is None or type(st.get("pid")) is int),
         "state.pid: must be an integer"),
        (isinstance(st, dict) and isinstance(st.get("bundle"), str) and st["bundle"].startswith("/")
         and "\0" not in st["bundle"], "state.bundle: missing or not an absolute path"),
        (isinstance(st, dict) and (st.get("annotations") is None or isinstance(st["annotations"], dict)),
         "state.annotations: must be an object"),
    ]
    for ok, msg in checks:
        if not ok:
            raise HookError(msg)
    pid = st.get("pid")
    return State(st["id"], pid if pid and pid > 0 else None, st["bundle"], st.get("annotations") or {})


def load_config(bundle):
    path = os.path.join(bundle, "config.json")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_INPUT + 1)
    except OSError as e:
        raise HookError("%s: cannot read: %s" % (path, e.strerror))
    if len(data) > MAX_INPUT:
        raise HookError("%s: more than %d bytes" % (path, MAX_INPUT))
    try:
        cfg = jsonfast.loads(data)
    except ValueError as e:
        raise HookError("%s: not JSON: %s" % (path, e))
    if not isinstance(cfg, dict):
        raise HookError("%s: (top level): must be a JSON object" % path)
    if cfg.get("annotations") is not None and not isinstance(cfg["annotations"], dict):
        raise HookError("%s: annotations: must be an object" % path)
    root = cfg.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str) or not root["path"]:
        raise HookError("%s: root.path: missing" % path)
    return cfg


def rootfs_of(bundle, cfg):
    return os.path.realpath(os.path.join(bundle, cfg["root"]["path"]))


# ---------------------------------------------------------------- log

Log = hostprep.Log  # LOG_DIR/hook.log, one line per action


# ---------------------------------------------------------------- stages

def _is_rich(cfg, state):
    from runtime_hooks import ociconfig
    ann = dict(cfg.get("annotations") or {})
    ann.update(state.annotations)
    try:
        return ociconfig.wants_rich({"annotations": ann}) or ociconfig.is_rewritten({"annotations": ann})
    except ociconfig.ConfigError:
        return False


def create_runtime(state, cfg, paths, runtime, log):
    """Quotas (project backend, unless the wrapper applied them) then views; all or nothing."""
    if not _is_rich(cfg, state):
        log("not a rich container: nothing to do")
        return
    undo = []
    try:
        _quotas(state, cfg, paths, log, undo)
        _views(state, cfg, paths, runtime, log, undo)
    except BaseException:
        for u in reversed(undo):
            try:
                u()
            except Exception:  # noqa: BLE001 - undo is best effort, the first error is what we report
                pass
        raise


def _quotas(state, cfg, paths, log, undo):
    if not hostprep.has_quota_rules(cfg):
        return
    if hostprep.quota_applied(state.id, paths):
        log("quotas: applied before create")
        return
    try:
        plan = hostprep.quota_plan(state.id, cfg, state.bundle, paths)
    except hostprep.PrepError as e:
        raise HookError(str(e))
    if not plan.groups:
        return
    loops = [g.rule for g in plan.groups if g.backend == "loop"]
    if loops:
        # A loop filesystem mounted now is not seen through the binds the runtime already made.
        raise HookError("%s: the loop backend must be applied before create: run the container through "
                        "rich-runtime" % loops[0])
    try:
        hostprep.quota_apply(plan)
    except hostprep.PrepError as e:
        raise HookError(str(e))
    undo.append(lambda: hostprep.quota_release(state.id, paths))
    for g in plan.groups:
        log("quota %s: %s backend, limit %d bytes" % (g.rule, g.backend, g.limit))


def _views(state, cfg, paths, runtime, log, undo):
    ann = dict(cfg.get("annotations") or {})
    by_wrapper = ann.get(hostprep.ANNOT_VIEWS)
    if by_wrapper == "off":
        log("views: off")
        return
    try:
        backend, lx = hostprep.choose_views(runtime, ann, paths, state.pid)
    except hostprep.PrepError as e:
        raise HookError(str(e))
    if backend is None:
        log("views: skipped (%s)" % ("VM runtime" if ann.get("io.richinit.lxcfs", "auto") != "off" else "off"))
        return
    if not state.pid:
        raise HookError("state.pid: missing: cannot register the container's views")
    if by_wrapper in ("builtin", "lxcfs"):
        # The wrapper bound the view files through config.json: tell the backend whose they are.
        try:
            hostprep.register_views(state.id, by_wrapper, lx, paths, state.pid)
        except hostprep.PrepError as e:
            raise HookError(str(e))
        undo.append(lambda: hostprep.unregister_views(state.id, paths))
        log("views: %s registered for pid %d (config.json mounts)" % (by_wrapper, state.pid))
        return
    # No wrapper in the path (podman hooks.d): bind into the container's mount namespace.
    from lxcfs import bind
    try:
        source = hostprep.register_views(state.id, backend, lx, paths, state.pid)
    except hostprep.PrepError as e:
        raise HookError(str(e))
    undo.append(lambda: hostprep.unregister_views(state.id, paths))
    try:
        bound = bind.bind_into(state.pid, source, root=rootfs_of(state.bundle, cfg),
                               pid_start=bind.start_ticks(state.pid))
    except OSError as e:
        raise HookError("views (%s): %s" % (backend, e))
    log("views: %s bound into pid %d: %s" % (backend, state.pid, " ".join(bound)))


def poststop(state, paths, log):
    """Best effort: every step runs, problems are logged, nothing blocks removal."""
    hostprep.unregister_views(state.id, paths)
    log("views: unregistered")
    problems = hostprep.quota_release(state.id, paths)
    for p in problems:
        log("quota release: %s" % p)
    if not problems:
        log("quotas: released")


def precreate(data, out):
    """podman's precreate: the rich config.json on stdout (the input as is when rich mode is off)."""
    from runtime_hooks import ociconfig, settings
    from runtime_hooks.portable_manifest import BuildError, load_manifest, richinit_argv
    try:
        cfg = jsonfast.loads(data)
    except ValueError as e:
        raise HookError("config.json (stdin): not JSON: %s" % e)
    try:
        if not isinstance(cfg, dict):
            raise ociconfig.ConfigError("(top level): must be a JSON object")
        conf = settings.load(os.environ.get("RICHINIT_RUNTIME_CONFIG") or settings.DEFAULT_PATH)
        if not ociconfig.wants_rich(cfg, conf.rich) or ociconfig.is_rewritten(cfg):
            out.write(data if isinstance(data, str) else data.decode("utf-8"))
            return False
        runtime_dir = os.path.realpath(conf.runtime_dir)
        manifest = load_manifest(runtime_dir)
        # The createRuntime/poststop hooks come from hooks.d, not from the config.
        new = ociconfig.rewrite(cfg, runtime_dir, richinit_argv(loader=manifest["loader"]), None,
                                default_services="all")
    except ociconfig.ConfigError as e:
        raise HookError("config.json (stdin): %s" % e)
    except (settings.SettingsError, BuildError) as e:
        raise HookError(str(e))
    out.write(jsonfast.dumps(new))
    return True


# ---------------------------------------------------------------- main

def _usage():
    return "usage: %s STAGE   (%s); the OCI state (precreate: config.json) on stdin" % (PROG, " | ".join(STAGES))


def main(argv=None, stdin=None, stdout=None, environ=None):
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout
    if len(argv) != 2 or argv[1] not in STAGES:
        sys.stderr.write(_usage() + "\n")
        return 2
    stage = argv[1]
    try:
        paths = hostprep.HostPaths.from_env(environ)
    except hostprep.PrepError as e:
        sys.stderr.write("%s: %s\n" % (PROG, e))
        return 1
    log = Log(paths.log_dir, stage)
    try:
        data = _read_stdin(stdin)
        if stage == "precreate":
            changed = precreate(data, stdout)
            stdout.flush()
            log("config %s" % ("rewritten for rich mode" if changed else "passed through"))
            return 0
        state = parse_state(data)
        log.cid = state.id
        if stage == "poststop":
            poststop(state, paths, log)
            return 0
        if stage in ("createRuntime", "prestart"):
            cfg = load_config(state.bundle)
            create_runtime(state, cfg, paths, environ.get("RICHINIT_HOOK_RUNTIME", ""), log)
        else:
            log("pid %s: nothing to do" % (state.pid or "-"))
        return 0
    except HookError as e:
        line = str(e)
    except hostprep.PrepError as e:
        line = str(e)
    except OSError as e:
        line = "%s" % e
    except Exception as e:  # noqa: BLE001 - a hook must answer with one line, never a traceback
        line = "internal error: %s: %s" % (type(e).__name__, e)
    log("FAILED: %s" % line)
    sys.stderr.write("%s %s: %s\n" % (PROG, stage, line))
    return 0 if stage in ("poststop", "poststart") else 1


def entry():
    """The console script: main(), then out at once (no interpreter finalization)."""
    from osbase.quickexit import exit_now
    exit_now(main())


if __name__ == "__main__":
    entry()
