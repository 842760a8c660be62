"""rich-runtime: an OCI runtime CLI wrapper (the nvidia-container-runtime pattern).

Engines call it exactly as they would call runc. On `create` and `run`, when rich mode is on for
the container, it rewrites BUNDLE/config.json (runtime_hooks.ociconfig) and then execs the real
runtime with the same argv. Everything else — every other subcommand, every global flag — is a
pure exec: stdio, every inherited fd and LISTEN_FDS reach the real runtime untouched; nothing is
proxied.

It runs on every runtime call, so start-up is kept cheap: the pass-through path imports only os,
sys and the settings reader; the pipeline (runtime_hooks.pipeline) is imported only when a
config.json has to be read. Installed, it is reached through the sh launcher of
runtime_hooks.launchers, which execs the real runtime itself for a call that cannot be a create
or run when its memo says what this wrapper resolved from the same inputs (remember() writes it;
see there); every other call comes here.

Bad input (a missing bundle, config.json that is not JSON or lacks `process`, an unreadable
rootfs, a bad io.richinit.* annotation, a broken runtime.yaml) → one line naming the file and
field on stderr (and in the engine's --log file), exit 1, the real runtime is not called and
config.json is not touched.

    python -m runtime_hooks.wrapper [GLOBAL FLAGS] COMMAND [ARGS]   (console script: rich-runtime)
"""

import os
import sys

from runtime_hooks import settings as settings_mod

PROG = "rich-runtime"
EXIT_BAD_INPUT = 1
EXIT_NO_RUNTIME = 127

# Subcommands of runc, crun and runsc (go-runc calls most of them). Knowing them lets an unknown
# global flag be told apart from a flag followed by its value.
SUBCOMMANDS = frozenset((
    "create", "run", "start", "state", "kill", "delete", "exec", "ps", "pause", "resume", "update",
    "checkpoint", "restore", "events", "features", "spec", "list", "help", "boot", "debug", "do", "gofer",
    "install", "mitigate", "port-forward", "symbolize", "tar", "wait", "metric-export", "metric-metadata",
    "metric-server", "flags", "usage", "commands", "mount",
))
# Global flags taking a value (runc, crun; runsc's Go flags take one dash or two).
VALUE_FLAGS = frozenset((
    "root", "log", "log-format", "criu", "rootless", "cgroup-manager", "log-level",
    "debug-log", "panic-log", "coverage-report", "debug-log-format", "network", "platform", "file-access",
    "overlay2", "watchdog-action", "strace-syscalls", "strace-log-size", "net-raw", "gso", "config",
    "profile-block", "profile-cpu", "profile-heap", "profile-mutex", "trace", "num-network-channels",
))
BOOL_FLAGS = frozenset((
    "debug", "systemd-cgroup", "help", "h", "version", "v", "V", "usage", "strace", "alsologtostderr",
    "TESTONLY-unsafe-nonroot", "ignore-cgroups", "rootless-ok",
))
BUNDLE_FLAGS = ("bundle", "b")
# create/run flags of runc, crun and runsc that take a value (to tell the container id from a value).
SUB_VALUE_FLAGS = frozenset(("console-socket", "pid-file", "preserve-fds", "user-log", "panic-log"))
REWRITE_COMMANDS = ("create", "run")


class WrapperError(Exception):
    """One line: 'FILE: FIELD: reason'."""


class Call:
    """What an argv asks the runtime to do, as far as the wrapper cares."""

    def __init__(self, command=None, index=None, bundle=None, log=None, log_format=None, container_id=None,
                 root=None):
        self.command = command  # first non-flag argument, or None (--version, --help, nothing)
        self.index = index  # its position in the argument list
        self.bundle = bundle  # last --bundle/-b/-bundle of the subcommand (None: the cwd)
        self.container_id = container_id  # create/run: the last positional argument
        self.log = log  # the engine's --log file, to report our own errors there too
        self.log_format = log_format
        self.root = root  # the runtime's --root (where it keeps container state), None: its default
        self.runtime_args = None  # our own --richinit-KEY=VALUE arguments (runtime_hooks.optin), taken off

    def __repr__(self):
        return "Call(%r)" % vars(self)


def _flag(token):
    """('name', value-or-None) of a -x/--x/-x=v/--x=v token; None if not a flag."""
    if len(token) < 2 or token[0] != "-" or token == "--":
        return None
    name = token.lstrip("-")
    if not name:
        return None
    name, eq, value = name.partition("=")
    return name, (value if eq else None)


def parse_argv(args):
    """Find the subcommand, the bundle and the --log file in runtime args (argv without argv[0]).

    Flags are only looked at, never interpreted or re-ordered: the real runtime gets args as is.
    """
    call = Call()
    i, n = 0, len(args)
    while i < n:  # global flags
        tok = args[i]
        f = _flag(tok)
        if f is None:
            if tok == "--":
                return call
            call.command, call.index = tok, i
            break
        name, value = f
        if value is None and name not in BOOL_FLAGS and i + 1 < n and (
                name in VALUE_FLAGS or args[i + 1] not in SUBCOMMANDS):
            value = args[i + 1]
            i += 1
        if name == "log":
            call.log = value
        elif name == "log-format":
            call.log_format = value
        elif name == "root":
            call.root = value
        i += 1
    if call.command not in REWRITE_COMMANDS:
        return call
    i = call.index + 1
    while i < n:  # the subcommand's flags: the bundle, last one wins (space or '=')
        tok = args[i]
        if tok == "--":
            break
        f = _flag(tok)
        if f is None:
            call.container_id = tok  # runc and crun take the id last
        elif f[0] in BUNDLE_FLAGS:
            if f[1] is not None:
                call.bundle = f[1]
            elif i + 1 < n:
                call.bundle = args[i + 1]
                i += 1
        elif f[0] in SUB_VALUE_FLAGS and f[1] is None:
            i += 1
        i += 1
    if call.container_id is None and i + 1 < n and args[i] == "--":
        call.container_id = args[i + 1]
    return call


# ---------------------------------------------------------------- the rewrite (create / run only)

def _read_config(bundle):
    path = os.path.join(bundle, "config.json")
    if not os.path.isdir(bundle):
        raise WrapperError("%s: bundle: no such directory" % bundle)
    try:
        with open(path, "rb") as f:
            data = f.read()
            st = os.fstat(f.fileno())
    except FileNotFoundError:
        raise WrapperError("%s: missing" % path)
    except OSError as e:
        raise WrapperError("%s: cannot read: %s" % (path, e.strerror))
    from osbase import standin
    try:
        cfg = standin.json_loads(data)
    except ValueError as e:
        raise WrapperError("%s: not JSON: %s" % (path, e))
    return path, cfg, st


def _write_atomically(path, data, st):
    """Temp file next to config.json with its mode and owner, fsync, rename over it."""
    d, base = os.path.split(path)
    tmp = os.path.join(d, ".%s.rich-%d" % (base, os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), st.st_mode & 0o7777)
            if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                os.fchown(f.fileno(), st.st_uid, st.st_gid)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def prepare_bundle(call, conf, runtime, argv0=None):
    """The pipeline's wrapper adapter: rewrite BUNDLE/config.json for rich mode if it asks for it;
    returns True if rewritten. config.json is replaced atomically, or left as it was.

    With a container id and the rich-hook program installed, the host side is planned and applied
    too (runtime_hooks.pipeline, engine "wrapper"): loop quotas mounted (before the runtime binds
    the directories), the /proc views registered by the rootfs and bound through config.json
    mounts, rich-hook registered for poststop (undo the saved plan) alone. No createRuntime hook:
    as under `rich run`, the view server finds the init from its first reader (lxcfs.locate), so
    nothing is left for a hook process to do on the container's start-up path. Without the host
    side here, rich-hook is registered for createRuntime too and plans and applies it there.
    """
    from runtime_hooks import optin
    bundle = os.path.abspath(call.bundle or os.getcwd())
    path, cfg, st = _read_config(bundle)
    # Whether it is rich, from annotations, RICHINIT_* in its environment or our runtime
    # arguments (runtime_hooks.optin); its options then all read as annotations.
    try:
        decision = optin.decide(cfg, conf.rich, call.runtime_args)
    except optin.OptinError as e:
        raise WrapperError("%s: %s" % (path, e))
    if not decision.rich:
        return False  # a pod's sandbox, a plain container: the pipeline is not even imported
    from runtime_hooks import hostprep, pipeline
    try:
        cfg = decision.config
        if not pipeline.wants(cfg, conf.rich, path):
            return False
        pipeline.validate(cfg, path, bundle)
        paths = hostprep.HostPaths.from_env()
        hook = hostprep.find_hook(conf.hook, argv0)
        host_side = call.container_id is not None and hook is not None and os.access(hook, os.X_OK)
        if not host_side and pipeline.has_quota_rules(cfg):
            # Nothing would release them (poststop) or record the container: refuse rather than ignore.
            raise WrapperError("%s: annotations: io.richinit.quota needs the rich-hook program (runtime.yaml hook:)"
                               % path)
        stages = ("poststop",) if host_side else hostprep.HOOK_STAGES
        hooks = hostprep.hook_entries(hook, conf.hook_timeout, paths, runtime, stages) if hook else None
        new = pipeline.rewrite(cfg, conf, path, hooks, host_side,
                               rootfs=os.path.join(bundle, cfg["root"]["path"]))
        from runtime_hooks import reach
        reach.add_richctl(new, bundle, conf.runtime_dir)  # richctl on the image's PATH
        if decision.notes and call.container_id is not None:
            note = hostprep.Log(paths.log_dir, "create", call.container_id, prog=PROG)
            for line in decision.notes:
                note(line)

        def write_config():
            from osbase import standin
            try:
                _write_atomically(path, standin.json_dumps(new).encode(), st)
            except OSError as e:
                raise WrapperError("%s: cannot write: %s" % (path, e.strerror))
        if not host_side:
            write_config()
            return True
        root = os.path.abspath(call.root) if call.root else None
        plan = pipeline.new_plan(call.container_id, "wrapper", bundle, runtime, paths, runtime_root=root)
        pipeline.plan_host(plan, new, paths)
        pipeline.claim(plan, paths)
        log = hostprep.Log(paths.log_dir, "create", call.container_id, prog=PROG)
        try:
            pipeline.apply(plan, paths, pipeline.STEPS["wrapper"], {"log": log, "write_config": write_config})
            pipeline.mark(plan, paths, "applied")  # the runtime (this very process, exec'd) takes over
        except BaseException:
            pipeline.abort(plan, paths)
            raise
    except (pipeline.PipelineError, hostprep.PrepError) as e:
        raise WrapperError(str(e))
    return True


# ---------------------------------------------------------------- main

def _report(msg, call):
    """Our error: first to the engine's --log file in the runtime's own format (containerd and
    Docker show its last line; the shim may give us a /dev/null stderr that cannot be written),
    then to stderr, which may fail without consequence."""
    line = "%s: %s" % (PROG, msg)
    if call is not None and call.log:
        try:
            import time
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            if call.log_format == "json":  # runc's (logrus) JSON lines
                from osbase import standin
                text = standin.json_dumps({"level": "error", "msg": line, "time": stamp}, separators=(",", ":"))
            else:  # logrus text
                text = 'time="%s" level=error msg=%s' % (stamp, _quote(line))
            fd = os.open(call.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, (text + "\n").encode())
            finally:
                os.close(fd)
        except (OSError, ValueError):
            pass
    try:
        os.write(2, (line + "\n").encode())
    except OSError:
        pass


def _quote(text):
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


# ---------------------------------------------------------------- the launcher's memo

def memo_bytes(real, conf_path, conf, self_path, environ=None):
    """The memo of one resolution: the real runtime, then every input it was resolved from, then
    runtime.yaml's bytes (a line `absent` when there is none). None when an input cannot be one
    line (the launcher then always comes here)."""
    environ = os.environ if environ is None else environ
    head = [real, "conf=" + conf_path, "runtime=" + (environ.get("RICHINIT_RUNTIME") or ""),
            "path=" + (environ.get("PATH") or ""), "self=" + (self_path or "")]
    head = [os.fsencode(x) for x in head]
    body = b"absent\n" if conf.data is None else b"present\n" + conf.data
    if any(b"\n" in x or b"\0" in x for x in head) or b"\0" in body:
        return None
    return b"\n".join(head) + b"\n" + body


def remember(memo, data):
    """Write the memo for the launcher (temp file and rename: it reads the old one or the new one),
    unless it holds these bytes already. A memo that cannot be written is no error: the launcher
    then hands every call to this wrapper, as without one."""
    if data is None:
        return
    try:
        with open(memo, "rb") as f:
            if f.read(len(data) + 1) == data:
                return
    except OSError:
        pass
    tmp = "%s.%d.tmp" % (memo, os.getpid())
    try:
        os.makedirs(os.path.dirname(memo), mode=0o755, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, memo)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def main(argv=None, memo=None):
    """memo: where the launcher looks for the runtime this call resolved (None: no launcher)."""
    argv = sys.argv if argv is None else argv
    args = list(argv[1:])
    call = None
    try:
        runtime_args = None
        if args and args[0].startswith("--richinit-"):  # daemon.json runtimeArgs: ours, first
            from runtime_hooks import optin
            try:
                runtime_args, args = optin.split_runtime_args(args)
            except optin.OptinError as e:
                raise WrapperError(str(e))
        call = parse_argv(args)
        conf_path = os.environ.get("RICHINIT_RUNTIME_CONFIG") or settings_mod.DEFAULT_PATH
        conf = settings_mod.load(conf_path)
        real = settings_mod.resolve_runtime(conf.runtime, self_path=argv[0] if argv else None)
        if memo:
            remember(memo, memo_bytes(real, conf_path, conf, argv[0] if argv else None))
        if call.command in REWRITE_COMMANDS and conf.rich != "off":
            call.runtime_args = runtime_args
            prepare_bundle(call, conf, real, argv[0] if argv else None)
    except (WrapperError, settings_mod.SettingsError) as e:
        _report(str(e), call if call is not None else parse_argv(args))
        return EXIT_BAD_INPUT
    except Exception as e:
        # A bug of ours: the engine's log gets its line first (entry() then exits without a traceback).
        _report("internal error: %s: %s" % (type(e).__name__, e), call if call is not None else parse_argv(args))
        raise
    try:
        os.execv(real, [real] + args)
    except OSError as e:
        _report("%s: cannot execute: %s" % (real, e.strerror), call)
        return EXIT_NO_RUNTIME


def entry(memo=None):
    """The console script: main() (an exec, or one line and a status), then out at once."""
    from osbase.quickexit import exit_now
    try:
        code = main(memo=memo)
    except Exception:  # noqa: BLE001 - reported by main() already: one line, no traceback
        code = EXIT_BAD_INPUT
    exit_now(code)


if __name__ == "__main__":
    sys.exit(main())
