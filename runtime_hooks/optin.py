"""Is this container rich, and with which io.richinit.* options: one decision from whatever the
engine could pass. Pure: a config.json dict in, a Decision out; nothing here touches the OS.

Every option can come from three places, checked in this order (the first one that has it wins):

  1. the annotation io.richinit.KEY            Docker >= 24 (--annotation), podman, CRI (pod annotations)
  2. RICHINIT_KEY in the container's process.env  any engine: `docker run -e RICHINIT_RICH=true`
                                                 (the nvidia-container-runtime pattern); KEY upper-cased,
                                                 `-` as `_`: io.richinit.quota-backend -> RICHINIT_QUOTA_BACKEND
  3. the wrapper's runtime argument --richinit-KEY=VALUE   how the runtime was registered: daemon.json
                                                 `runtimeArgs` (rich-all: ["--richinit-rich=true"]); they
                                                 come first on the command line and the wrapper takes them off
then runtime.yaml's `rich:` (annotation | all | off) when nothing said whether the container is rich.
`rich: off` turns rich mode off whatever the container asks.

What the user gave explicitly (1 or 2) therefore wins over the wrapper's defaults (3, and the
`--services all` the wrapper adds when the host side is installed). The options found in 2 and 3
are written into the rich config's annotations, so everything after the decision (the rewrite,
the host side, rich-hook) reads one place.

Never rich: the sandbox (pause) container of a pod (io.kubernetes.cri.container-type=sandbox from
containerd, io.kubernetes.cri-o.ContainerType=sandbox from CRI-O): pod annotations reach it too,
and a pause process needs no init.

docker run --init: Docker makes process.args `/sbin/docker-init -- CMD...` (tini). richinit is
the init already, so CMD runs directly under it and a note says so.
"""

from runtime_hooks import ociconfig

PREFIX = "io.richinit."
ENV_PREFIX = "RICHINIT_"
ARG_PREFIX = "--richinit-"
# The options a user may set (io.richinit.views and io.richinit.rewritten are the wrapper's own).
OPTIONS = ("rich", "services", "vm", "grace", "kill-grace", "lxcfs", "quota", "quota-backend")
SANDBOX = (("io.kubernetes.cri.container-type", "sandbox"), ("io.kubernetes.cri-o.ContainerType", "sandbox"))
# Inits that engines put in front of the command (docker run --init: docker-init is tini).
INITS = ("docker-init", "tini", "tini-static")


class OptinError(Exception):
    """One line: 'FIELD: reason' (the caller prefixes the file)."""


def env_name(key):
    """io.richinit.quota-backend's key -> RICHINIT_QUOTA_BACKEND."""
    return ENV_PREFIX + key.upper().replace("-", "_")


class Decision:
    """rich: the container is made rich; options: {key: (value, where)}; config: the config to
    rewrite (annotations filled in, an engine's init taken out), or the input when not rich;
    notes: lines for the log; why: when not rich, the reason."""

    def __init__(self, rich, config, options=None, notes=(), why=""):
        self.rich, self.config, self.options, self.notes, self.why = rich, config, options or {}, list(notes), why

    def __repr__(self):
        return "Decision(%r)" % vars(self)


def split_runtime_args(args):
    """(our --richinit-KEY=VALUE arguments as {key: value}, the rest): ours must come first, as
    daemon.json runtimeArgs put them; the real runtime gets the rest unchanged."""
    ours = {}
    i = 0
    while i < len(args) and args[i].startswith(ARG_PREFIX):
        key, eq, value = args[i][len(ARG_PREFIX):].partition("=")
        if key not in OPTIONS or not eq:
            raise OptinError("runtime argument %s: expected %sKEY=VALUE with KEY one of %s"
                             % (args[i], ARG_PREFIX, ", ".join(OPTIONS)))
        ours[key] = value
        i += 1
    return ours, list(args[i:])


def container_env(cfg):
    """RICHINIT_* variables of process.env as {name: value} (the first of a name, as getenv reads it)."""
    proc = cfg.get("process") if isinstance(cfg, dict) else None
    env = proc.get("env") if isinstance(proc, dict) else None
    if env is None:
        return {}
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise OptinError("process.env: must be a list of strings")
    out = {}
    for e in env:
        if e.startswith(ENV_PREFIX):
            k, _, v = e.partition("=")
            out.setdefault(k, v)
    return out


def is_sandbox(ann):
    return any(ann.get(k) == v for k, v in SANDBOX)


def gather(cfg, runtime_args=None):
    """{key: (value, field)} from the three sources in order; OptinError names a bad container field."""
    try:
        ann = ociconfig.annotations_of(cfg)
    except ociconfig.ConfigError as e:
        raise OptinError(str(e))
    env = container_env(cfg)
    runtime_args = runtime_args or {}
    found = {}
    for key in OPTIONS:
        if PREFIX + key in ann:
            found[key] = (ann[PREFIX + key], "annotations.%s%s" % (PREFIX, key))
        elif env_name(key) in env:
            found[key] = (env[env_name(key)], "process.env.%s" % env_name(key))
        elif key in runtime_args:
            found[key] = (runtime_args[key], "runtime argument %s%s" % (ARG_PREFIX, key))
    return found


def _check(found):
    """The values richinit's rewrite reads, checked where they came from (so an error names the
    variable or the runtime argument, not an annotation the user never wrote)."""
    for key, (value, field) in found.items():
        if key == "rich":
            continue
        if not isinstance(value, str):
            raise OptinError("%s: must be a string" % field)
        try:
            ociconfig.rich_options({"annotations": {PREFIX + key: value}})
        except ociconfig.ConfigError as e:
            raise OptinError("%s:%s" % (field, str(e).split(":", 1)[1]))


def strip_engine_init(args):
    """CMD when args is an engine's init in front of it (`docker-init -- CMD`, `tini [-flags] -- CMD`),
    else None."""
    if not args or args[0].rsplit("/", 1)[-1] not in INITS or "--" not in args:
        return None
    i = args.index("--")
    if not all(a.startswith("-") for a in args[1:i]) or i + 1 >= len(args):
        return None
    return list(args[i + 1:])


def decide(cfg, mode="annotation", runtime_args=None):
    """The Decision for config `cfg` under runtime.yaml's `rich:` mode. OptinError for bad input."""
    if not isinstance(cfg, dict):
        raise OptinError("(top level): must be a JSON object")
    if mode == "off":
        return Decision(False, cfg, why="rich mode is off (runtime.yaml)")
    found = gather(cfg, runtime_args)
    ann = ociconfig.annotations_of(cfg)
    if is_sandbox(ann):
        return Decision(False, cfg, found, why="a pod's sandbox (pause) container")
    if "rich" in found:
        value, field = found["rich"]
        try:
            rich = ociconfig.wants_rich({"annotations": {ociconfig.ANNOT_RICH: value}})
        except ociconfig.ConfigError as e:
            raise OptinError("%s:%s" % (field, str(e).split(":", 1)[1]))
    else:
        rich = mode == "all"
    if not rich:
        return Decision(False, cfg, found, why="not asked for")
    _check(found)
    new = dict(cfg)
    new_ann = dict(ann)
    for key, (value, _field) in found.items():
        new_ann.setdefault(PREFIX + key, value)
    new["annotations"] = new_ann
    notes = []
    proc = cfg.get("process")
    target = strip_engine_init(proc.get("args")) if isinstance(proc, dict) and isinstance(proc.get("args"), list) \
        else None
    if target is not None:
        new["process"] = dict(proc, args=target)
        notes.append("%s given as the command (docker run --init?): richinit is the init, %s runs directly"
                     % (proc["args"][0], target[0]))
    return Decision(True, new, found, notes)
