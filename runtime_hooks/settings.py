"""Host settings of rich mode: /etc/richinit/runtime.yaml and the RICHINIT_RUNTIME override.

The wrapper reads these on *every* runtime call, so reading must be cheap: the file is a flat
YAML mapping of scalars, read by osbase.standin.flat_yaml (PyYAML would cost 12 ms a call), e.g.

    runtime: /usr/bin/crun        # the real OCI runtime (runc, crun, runsc or a path)
    rich: annotation              # annotation (io.richinit.rich=true) | all | off
    runtime_dir: /var/lib/richinit/runtime   # the portable runtime (`rich runtime build`)
    hook: /usr/local/bin/rich-hook            # optional: the hook program registered in config.json
    hook_timeout: 10

Anything outside that subset (nesting, lists, anchors) is refused with the file and line.
RICHINIT_RUNTIME (environment) overrides `runtime`.
"""

import os

DEFAULT_PATH = "/etc/richinit/runtime.yaml"
DEFAULT_RUNTIME_DIR = "/var/lib/richinit/runtime"
KNOWN_RUNTIMES = ("runc", "crun", "runsc")
RICH_MODES = ("annotation", "all", "off")


class SettingsError(Exception):
    """One line naming the file (and line or key) that is wrong."""


class Settings:
    def __init__(self, runtime="runc", rich="annotation", runtime_dir=DEFAULT_RUNTIME_DIR, hook=None,
                 hook_timeout=10, source=None, data=None):
        self.runtime = runtime
        self.rich = rich
        self.runtime_dir = runtime_dir
        self.hook = hook
        self.hook_timeout = hook_timeout
        self.source = source
        self.data = data  # the file's bytes as read (None: no file), for rich-runtime's memo

    def __repr__(self):
        return "Settings(%r)" % vars(self)


_KEYS = {"runtime", "rich", "runtime_dir", "hook", "hook_timeout"}


def parse(text, path=DEFAULT_PATH):
    """The flat mapping in `text` as a dict of strings; SettingsError names path:line."""
    from osbase import standin
    try:
        values = standin.flat_yaml(text)
    except standin.FlatYamlError as e:
        raise SettingsError("%s:%s" % (path, e))
    for n, line in enumerate(text.splitlines(), 1):
        key = line.partition(":")[0].strip()
        if key in values and key not in _KEYS:
            raise SettingsError("%s:%d: unknown key %r (known: %s)" % (path, n, key, ", ".join(sorted(_KEYS))))
    return values


def validate(values, path):
    s = Settings(source=path)
    if "runtime" in values:
        s.runtime = _runtime(values["runtime"], "%s: runtime" % path)
    if "rich" in values:
        v = values["rich"].lower()
        v = {"true": "all", "yes": "all", "on": "all", "false": "off", "no": "off"}.get(v, v)
        if v not in RICH_MODES:
            raise SettingsError("%s: rich: must be one of %s, not %r" % (path, ", ".join(RICH_MODES), values["rich"]))
        s.rich = v
    if "runtime_dir" in values:
        if not values["runtime_dir"].startswith("/"):
            raise SettingsError("%s: runtime_dir: must be an absolute path" % path)
        s.runtime_dir = values["runtime_dir"]
    if values.get("hook"):
        if not values["hook"].startswith("/"):
            raise SettingsError("%s: hook: must be an absolute path" % path)
        s.hook = values["hook"]
    if "hook_timeout" in values:
        try:
            s.hook_timeout = int(values["hook_timeout"])
            if not 1 <= s.hook_timeout <= 3600:
                raise ValueError
        except ValueError:
            raise SettingsError("%s: hook_timeout: must be whole seconds between 1 and 3600" % path)
    return s


def _runtime(value, where):
    if not value or "\0" in value:
        raise SettingsError("%s: empty" % where)
    if "/" in value and not value.startswith("/"):
        raise SettingsError("%s: a path must be absolute, not %r" % (where, value))
    return value


def load(path=DEFAULT_PATH, environ=None):
    """Settings from `path` (absent file = defaults) with RICHINIT_RUNTIME applied."""
    environ = os.environ if environ is None else environ
    try:
        with open(path, "rb") as f:
            data = f.read()
        # text mode's universal newlines, on the very bytes kept in s.data
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        s = Settings()
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError("%s: cannot read: %s" % (path, getattr(e, "strerror", None) or e))
    else:
        s = validate(parse(text, path), path)
        s.data = data
    env = environ.get("RICHINIT_RUNTIME")
    if env:
        s.runtime = _runtime(env, "RICHINIT_RUNTIME")
    return s


def resolve_runtime(name, environ=None, self_path=None):
    """Absolute path of the real runtime: a path as is, a bare name searched on PATH.

    `self_path` (the wrapper's own file) is skipped so a PATH where `runc` is the wrapper
    itself cannot make it exec itself forever.
    """
    if name.startswith("/"):
        return name
    environ = os.environ if environ is None else environ
    me = os.path.realpath(self_path) if self_path else None
    for d in (environ.get("PATH") or "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        if not d:
            continue
        cand = os.path.join(d, name)
        if os.access(cand, os.X_OK) and not os.path.isdir(cand):
            if me and os.path.realpath(cand) == me:
                continue
            return cand
    raise SettingsError("runtime: %r not found on PATH" % name)
