"""The pure part of rich mode: read annotations, decide, and rewrite an OCI config.json dict.

Nothing here touches the OS. parse (annotations → RichOptions) → validate (each check names
the config field it refused) → rewrite (a new dict; the input is never modified). The host
pipeline (runtime_hooks.pipeline) calls them for every entry point: rich-runtime, podman's
precreate hook and `rich run`.

What a rewrite does:
  - process.args → the portable runtime's loader + python + `-c` richinit's entry + its options,
    then `--` and the original args (the app's argv is kept exactly);
  - a read-only, nosuid, nodev bind of the host's runtime directory at /.richinit;
  - a /run tmpfs when the config mounts nothing there (sshd, cron and syslog want a fresh /run);
  - the runtime's tools (systemctl, service, journalctl, shutdown...) bound read-only over the
    image's own copies the caller found; with io.richinit.vm=true also /.richinit/tools appended
    to process.env's PATH (richctl, and the tools the image lacks) and an empty read-only
    /run/systemd/system, so packages' scripts (deb-systemd-invoke, invoke-rc.d) and Ansible take
    the container for a systemd machine and call systemctl;
  - optional OCI hook entries (the rich-hook program) with an explicit env;
  - the annotation io.richinit.rewritten, so rewriting twice changes nothing.
Nothing else is added to process.env (nothing at all without --vm): richinit's own settings
travel as its arguments.
"""

from osbase import standin

ANNOT_RICH = "io.richinit.rich"
ANNOT_SERVICES = "io.richinit.services"
ANNOT_VM = "io.richinit.vm"
ANNOT_GRACE = "io.richinit.grace"
ANNOT_KILL_GRACE = "io.richinit.kill-grace"
ANNOT_REWRITTEN = "io.richinit.rewritten"
REWRITE_VERSION = "1"

MOUNT_POINT = "/.richinit"
TOOLS_DIR = "tools"  # portable_manifest.TOOLS_DIR
TOOLS_PATH = MOUNT_POINT + "/" + TOOLS_DIR
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEMD_RUN_DIR = "/run/systemd/system"  # sd_booted(): systemd is PID 1
HOOK_STAGES = ("createRuntime", "createContainer", "poststart", "poststop")
HOOK_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")
_MAX_GRACE = 86400.0
_SERVICE_REST = standin.ALNUM | frozenset("_.@-")


def _service_name(n):
    """[A-Za-z0-9][A-Za-z0-9_.@-]{0,63} (osbase.standin.name_ok: no `re` on every container's create)."""
    return standin.name_ok(n, 64, _SERVICE_REST)


class ConfigError(Exception):
    """A refused field: str() is 'field: reason' (the caller prefixes the file)."""


class RichOptions:
    """What the annotations ask richinit for."""

    def __init__(self, services=None, vm=False, grace=None, kill_grace=None):
        self.services = services  # None: richinit's default; [] : none; list of names
        self.vm = vm
        self.grace = grace
        self.kill_grace = kill_grace

    def richinit_args(self):
        args = []
        if self.grace is not None:
            args += ["--grace", _fmt_seconds(self.grace)]
        if self.kill_grace is not None:
            args += ["--kill-grace", _fmt_seconds(self.kill_grace)]
        if self.vm:
            args.append("--vm")
        if self.services is not None:
            args += ["--services", ",".join(self.services)]
        return args

    def __eq__(self, other):
        return isinstance(other, RichOptions) and vars(self) == vars(other)

    def __repr__(self):
        return "RichOptions(%r)" % vars(self)


def _fmt_seconds(v):
    return ("%d" % v) if v == int(v) else repr(v)


def _bool(value, field):
    if not isinstance(value, str) or value.strip().lower() not in _TRUE + _FALSE:
        raise ConfigError("%s: must be true or false, not %r" % (field, value))
    return value.strip().lower() in _TRUE


def annotations_of(cfg):
    ann = cfg.get("annotations") if isinstance(cfg, dict) else None
    if ann is None:
        return {}
    if not isinstance(ann, dict):
        raise ConfigError("annotations: must be an object")
    return ann


def wants_rich(cfg, mode="annotation"):
    """Is rich mode on for this config? mode is settings.rich: annotation | all | off.

    An explicit annotation wins over `all` (io.richinit.rich=false opts a container out).
    """
    if mode == "off":
        return False
    ann = annotations_of(cfg)
    field = "annotations.%s" % ANNOT_RICH
    if ANNOT_RICH in ann:
        return _bool(ann[ANNOT_RICH], field)
    return mode == "all"


def is_rewritten(cfg):
    return annotations_of(cfg).get(ANNOT_REWRITTEN) is not None


def rich_options(cfg):
    """RichOptions from the io.richinit.* annotations; ConfigError names the bad one."""
    ann = annotations_of(cfg)
    o = RichOptions()
    if ANNOT_SERVICES in ann:
        field = "annotations.%s" % ANNOT_SERVICES
        v = ann[ANNOT_SERVICES]
        if not isinstance(v, str):
            raise ConfigError("%s: must be a comma-separated string" % field)
        names = [n.strip() for n in v.split(",") if n.strip()]
        for n in names:
            if not _service_name(n):
                raise ConfigError("%s: bad service name %r" % (field, n))
        o.services = list(dict.fromkeys(names))
    if ANNOT_VM in ann:
        o.vm = _bool(ann[ANNOT_VM], "annotations.%s" % ANNOT_VM)
    if ANNOT_GRACE in ann:
        o.grace = _seconds(ann[ANNOT_GRACE], "annotations.%s" % ANNOT_GRACE)
    if ANNOT_KILL_GRACE in ann:
        o.kill_grace = _seconds(ann[ANNOT_KILL_GRACE], "annotations.%s" % ANNOT_KILL_GRACE)
    return o


def _seconds(v, field):
    try:
        g = float(v) if isinstance(v, str) and v.strip() else None
    except ValueError:
        g = None
    if g is None or not 0 <= g <= _MAX_GRACE:  # also refuses nan
        raise ConfigError("%s: must be seconds between 0 and %d, not %r" % (field, _MAX_GRACE, v))
    return g


def _check_process(cfg):
    proc = cfg.get("process")
    if not isinstance(proc, dict):
        raise ConfigError("process: missing or not an object")
    args = proc.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise ConfigError("process.args: must be a non-empty list of strings")
    if proc.get("commandLine") is not None:
        raise ConfigError("process.commandLine: not supported in rich mode (Windows only)")
    return proc


def _check_mounts(cfg, rewritten=False):
    mounts = cfg.get("mounts", [])
    if not isinstance(mounts, list) or not all(isinstance(m, dict) for m in mounts):
        raise ConfigError("mounts: must be a list of objects")
    for i, m in enumerate(mounts):
        if not isinstance(m.get("destination"), str):
            raise ConfigError("mounts[%d].destination: missing" % i)
        if rewritten:
            continue  # our own runtime mount is there
        if _norm(m["destination"]) == MOUNT_POINT or _norm(m["destination"]).startswith(MOUNT_POINT + "/"):
            raise ConfigError("mounts[%d].destination: %s is reserved for the richinit runtime" % (i, MOUNT_POINT))
    return mounts


def _check_hooks(cfg):
    hooks = cfg.get("hooks")
    if hooks is not None and not (isinstance(hooks, dict) and all(isinstance(v, list) for v in hooks.values())):
        raise ConfigError("hooks: must be an object of lists")


def _norm(path):
    parts = [p for p in path.split("/") if p and p != "."]
    return "/" + "/".join(parts)


def validate(cfg, rewritten=False):
    """Every check a rich rewrite needs (rewritten: the config is ours already, as podman's
    createRuntime sees it after precreate); raises ConfigError for the first failure."""
    if not isinstance(cfg, dict):
        raise ConfigError("(top level): must be a JSON object")
    _check_process(cfg)
    _check_mounts(cfg, rewritten)
    _check_hooks(cfg)
    root = cfg.get("root")
    if not isinstance(root, dict) or not isinstance(root.get("path"), str) or not root["path"]:
        raise ConfigError("root.path: missing")
    return rich_options(cfg)


def runtime_mount(source):
    """The read-only bind of the host runtime directory (CVE-2019-5736: never writable from inside)."""
    return {"destination": MOUNT_POINT, "type": "bind", "source": source,
            "options": ["rbind", "ro", "nosuid", "nodev", "rprivate"]}


RUN_TMPFS = {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=755", "size=65536k"]}
SYSTEMD_RUN = {"destination": SYSTEMD_RUN_DIR, "type": "tmpfs", "source": "tmpfs",
               "options": ["ro", "nosuid", "nodev", "noexec", "mode=755", "size=4k"]}


def hook_entry(path, args=(), env=HOOK_ENV, timeout=None):
    """One OCI hook: path, argv (argv[0] = path), an explicit env (never inherited), timeout."""
    h = {"path": path, "args": [path] + list(args), "env": list(env)}
    if timeout is not None:
        h["timeout"] = int(timeout)
    return h


def add_hooks(cfg, entries):
    """Append hook entries {stage: [entry, ...]} to cfg (a dict we own); returns cfg."""
    hooks = cfg.setdefault("hooks", {})
    for stage, items in entries.items():
        hooks.setdefault(stage, []).extend(items)
    return cfg


def rich_hooks(hook_path, timeout=10, stages=HOOK_STAGES):
    """The rich-hook program registered at each stage: `rich-hook STAGE`."""
    return {stage: [hook_entry(hook_path, [stage], timeout=timeout)] for stage in stages}


def tool_mounts(runtime_source, tools):
    """Read-only binds of the runtime's tools over the image's own: tools is [(name, path in image)]."""
    return [{"destination": path, "type": "bind", "source": "%s/%s/%s" % (runtime_source, TOOLS_DIR, name),
             "options": ["bind", "ro", "nosuid", "nodev", "rprivate"]} for name, path in tools]


def _with_tools_path(env):
    env = list(env or [])
    for i, kv in enumerate(env):
        if isinstance(kv, str) and kv.startswith("PATH="):
            if TOOLS_PATH not in kv[5:].split(":"):
                env[i] = kv + (":" if kv != "PATH=" else "") + TOOLS_PATH
            return env
    return env + ["PATH=" + DEFAULT_PATH + ":" + TOOLS_PATH]


def rewrite(cfg, runtime_source, argv_prefix, hooks=None, default_services=None, opts=None, tools=()):
    """A new config running the original process under richinit from the mounted runtime.

    runtime_source: host directory of the portable runtime (bind source);
    argv_prefix: the in-container command that starts richinit (portable.richinit_argv());
    hooks: {stage: [entry]} to register, or None;
    default_services: richinit's --services when io.richinit.services is absent (e.g. "all");
    tools: [(tool name, path)] of the image's own copies to bind the runtime's tools over.
    The caller checks wants_rich() and is_rewritten() first; opts is what its validate() returned
    (without it, validate() runs here).
    """
    opts = validate(cfg) if opts is None else RichOptions(opts.services, opts.vm, opts.grace)
    if opts.services is None and default_services:
        opts.services = [default_services]
    new = standin.json_copy(cfg)
    proc = new["process"]
    proc["args"] = list(argv_prefix) + opts.richinit_args() + ["--"] + list(proc["args"])
    if opts.vm:
        proc["env"] = _with_tools_path(proc.get("env"))
    mounts = new.setdefault("mounts", [])
    mounts.append(runtime_mount(runtime_source))
    if not any(_norm(m["destination"]) == "/run" for m in mounts):
        # Before anything the config mounts under /run (secrets...), which it would otherwise hide.
        under = [i for i, m in enumerate(mounts) if _norm(m["destination"]).startswith("/run/")]
        run = standin.json_copy(RUN_TMPFS)
        user = proc.get("user") if isinstance(proc.get("user"), dict) else {}
        uid, gid = user.get("uid"), user.get("gid")
        if type(uid) is int and uid > 0:  # docker run --user: richinit keeps its state there as that user
            run["options"] += ["uid=%d" % uid, "gid=%d" % (gid if type(gid) is int and gid >= 0 else 0)]
        mounts.insert(under[0] if under else len(mounts), run)
    mounts += tool_mounts(runtime_source, tools)
    if opts.vm and not any(_norm(m["destination"]) == SYSTEMD_RUN_DIR for m in mounts):
        mounts.append(standin.json_copy(SYSTEMD_RUN))
    if hooks:
        add_hooks(new, hooks)
    ann = new.get("annotations")
    if not isinstance(ann, dict):
        ann = new["annotations"] = {}
    ann[ANNOT_REWRITTEN] = REWRITE_VERSION
    return new
