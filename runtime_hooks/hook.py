"""rich-hook STAGE: the OCI hook program of rich mode.

    rich-hook createRuntime | prestart      /proc views for the container, project quotas (fail closed)
    rich-hook createContainer | poststart   nothing heavy: one log line
    rich-hook poststop                      best effort: unregister views, release quota IDs/images
    rich-hook precreate                     podman's config filter: config.json on stdin, the rich one out

The OCI state arrives on stdin (id, pid, bundle, annotations); config.json is found through
`bundle`, never through the status string (runc and crun disagree on it). Everything read is
hostile: the state and config.json are parsed and checked before anything is done, and nothing
from the container's rootfs is ever executed or loaded here.

Who registers it: rich-runtime (the wrapper) for poststop with an explicit env (and createRuntime
only when it could not apply the host side itself), or the oci-hooks JSON of hooks/ for
podman/CRI-O (keyed on the annotation io.richinit.rich=true). Each stage is an adapter of
runtime_hooks.pipeline: when the wrapper saved a plan for the container (a config.json from a
wrapper that still registered createRuntime), createRuntime only adds the init's pid to it;
without one, createRuntime plans and applies the host side itself; poststop undoes whatever plan
is saved. Nothing is inferred from annotations or leftover files.

One line per action goes to $RICHINIT_LOG_DIR/hook.log (default /var/log/richinit/hook.log).
Failures: one line on stderr and in the log; createRuntime exits 1 (the runtime then destroys the
container), poststop always exits 0 (it never blocks removal).
"""

import os
import sys

from osbase import standin
from runtime_hooks import hostprep, pipeline

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
        st = standin.json_loads(data)
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
        return path, standin.json_loads(data)
    except ValueError as e:
        raise HookError("%s: not JSON: %s" % (path, e))


# ---------------------------------------------------------------- log

Log = hostprep.Log  # LOG_DIR/hook.log, one line per action


# ---------------------------------------------------------------- stages

def _is_rich(cfg, state, path):
    from runtime_hooks import ociconfig
    if not isinstance(cfg, dict) or (cfg.get("annotations") is not None and not isinstance(cfg["annotations"], dict)):
        return True  # let validate() name what is wrong
    ann = dict(cfg.get("annotations") or {})
    ann.update(state.annotations)
    try:
        return ociconfig.wants_rich({"annotations": ann}) or ociconfig.is_rewritten({"annotations": ann})
    except ociconfig.ConfigError:
        return False


def create_runtime(state, paths, runtime, log):
    """The plan the wrapper saved gets the init's pid; without one (hooks.d: podman, CRI-O) the
    host side is planned and applied here (engine "hooks": project quotas, views bound into the
    running container). All or nothing."""
    plan = pipeline.load(paths, state.id)
    if plan is not None and plan.get("engine") == "wrapper":
        return _adopt_init(plan, state, paths, log)
    path, cfg = load_config(state.bundle)
    if not _is_rich(cfg, state, path):
        log("not a rich container: nothing to do")
        return
    if isinstance(cfg, dict) and isinstance(cfg.get("annotations"), dict):
        cfg["annotations"].update(state.annotations)
    pipeline.validate(cfg, path, state.bundle)
    plan = pipeline.new_plan(state.id, "hooks", state.bundle, runtime, paths)
    pipeline.plan_host(plan, cfg, paths, pid=state.pid)
    if plan["views"] is None:
        log("views: skipped (%s)" % ("off" if cfg["annotations"].get("io.richinit.lxcfs") == "off" else "VM runtime"))
    elif not state.pid:
        raise HookError("state.pid: missing: cannot register the container's views")
    pipeline.claim(plan, paths)
    try:
        pipeline.apply(plan, paths, pipeline.STEPS["hooks"], {"log": log, "pid": state.pid})
        pipeline.mark(plan, paths, "applied", **({"init": state.pid} if state.pid else {}))
    except BaseException:
        pipeline.abort(plan, paths)
        raise


def _adopt_init(plan, state, paths, log):
    """The wrapper's container: record its init, tell the view backend whose views they are."""
    if not state.pid:
        log("pid: missing: the views find the init by the rootfs")
        return
    pipeline.mark(plan, paths, init=state.pid)
    v = plan.get("views")
    if v:
        hostprep.register_views(state.id, v["backend"], v["lxcfs"], paths, pid=state.pid, root=plan.get("rootfs"))
        log("views: %s registered for pid %d (config.json mounts)" % (v["backend"], state.pid))


def poststop(state, paths, log):
    """Best effort: undo what the saved plan lists; problems are logged, nothing blocks removal."""
    plan = pipeline.load(paths, state.id)
    if plan is None:
        log("no plan: nothing to undo")
        return
    problems = pipeline.undo(plan, paths)
    for p in problems:
        log("undo: %s" % p)
    log("plan undone (%s)%s" % (", ".join(reversed(plan.get("steps") or [])) or "no steps",
                                " with problems" if problems else ""))


def precreate(data, out):
    """podman's precreate: the rich config.json on stdout (the input as is when rich mode is off).
    The container id is not known yet: only the rewrite; createRuntime plans the host side."""
    from runtime_hooks import settings
    try:
        cfg = standin.json_loads(data)
    except ValueError as e:
        raise HookError("config.json (stdin): not JSON: %s" % e)
    where = "config.json (stdin)"
    try:
        conf = settings.load(os.environ.get("RICHINIT_RUNTIME_CONFIG") or settings.DEFAULT_PATH)
    except settings.SettingsError as e:
        raise HookError(str(e))
    if not pipeline.wants(cfg, conf.rich, where):
        out.write(data if isinstance(data, str) else data.decode("utf-8"))
        return False
    pipeline.validate(cfg, where)
    # The createRuntime/poststop hooks come from hooks.d, not from the config.
    root = cfg["root"]["path"]  # podman gives it absolute; a relative one has no bundle to be under here
    new = pipeline.rewrite(cfg, conf, where, None, host_side=True, rootfs=root if root.startswith("/") else None)
    from runtime_hooks import reach
    reach.add_richctl(new, None, conf.runtime_dir)  # richctl on the image's PATH, as rich-runtime does
    out.write(standin.json_dumps(new))
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
            create_runtime(state, paths, environ.get("RICHINIT_HOOK_RUNTIME", ""), log)
        else:
            log("pid %s: nothing to do" % (state.pid or "-"))
        return 0
    except HookError as e:
        line = str(e)
    except (hostprep.PrepError, pipeline.PipelineError) as e:
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
