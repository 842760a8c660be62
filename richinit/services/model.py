"""What PID 1 needs of a service definition: the value records and their dict form.

Stdlib only and cheap (no re, no signal package, no yaml): PID 1 rebuilds ServiceSpec objects from
the loader's document with `ServiceSpec.from_dict`. The schema, its documentation and validation
live in `richinit.services.spec`, which re-exports everything here.
"""

from richinit import regular
from richinit import signals as _signals

RESERVED_NAMES = frozenset({"app"})
BUILTINS = frozenset({"cron", "syslogd"})
BUILTIN_TOKEN = "@builtin"

TYPES = ("simple", "forking", "oneshot")
RESTARTS = ("always", "on-failure", "never")
READY_KINDS = ("none", "tcp", "unix", "file", "notify", "fd")
LOG_KINDS = ("stdout", "file", "syslog", "none")
CONDITION_KEYS = ("path_exists", "path_missing", "command_exists", "command_missing",
                  "busybox_applet", "native_command")

# ---------------------------------------------------------------------------------------------
# Records: small immutable-by-convention value objects with equality and a JSON-friendly dict form
# ---------------------------------------------------------------------------------------------

def _jsonable(v):
    if isinstance(v, _Record):
        return v.to_dict()
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


class _Record:
    """Base of the value objects: fields and defaults in `_defaults`, compared by value."""

    __slots__ = ()
    _defaults = {}
    _convert = {}  # field -> function applied by from_dict (lists back to tuples, nested records)

    def __init__(self, **kw):
        for field, default in self._defaults.items():
            value = kw.pop(field, default)
            if isinstance(value, dict) and value is default:
                value = dict(value)
            object.__setattr__(self, field, value)
        if kw:
            raise TypeError("%s: unknown fields %s" % (type(self).__name__, ", ".join(sorted(kw))))

    def __setattr__(self, field, value):
        raise AttributeError("%s is immutable; use replace()" % type(self).__name__)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._defaults)

    __hash__ = None  # environment is a dict: compare, do not hash

    def __repr__(self):
        parts = ("%s=%r" % (f, getattr(self, f)) for f in self._defaults
                 if getattr(self, f) != self._defaults[f] or f == "name")
        return "%s(%s)" % (type(self).__name__, ", ".join(parts))

    def replace(self, **kw):
        values = {f: getattr(self, f) for f in self._defaults}
        values.update(kw)
        return type(self)(**values)

    def to_dict(self):
        return {f: _jsonable(getattr(self, f)) for f in self._defaults}

    @classmethod
    def from_dict(cls, d):
        if d is None:
            return None
        kw = {}
        for k, v in d.items():
            conv = cls._convert.get(k)
            kw[k] = conv(v) if conv is not None and v is not None else v
        return cls(**kw)


def _tuple(v):
    return tuple(v)


def _tuple_of_tuples(v):
    return tuple(tuple(x) for x in v)


class Ready(_Record):
    """Readiness check. kind: none | tcp (host, port) | unix (path) | file (path) | notify | fd (fd)."""

    __slots__ = ("kind", "host", "port", "path", "fd")
    _defaults = {"kind": "none", "host": None, "port": None, "path": None, "fd": None}


class Backoff(_Record):
    __slots__ = ("initial", "max", "factor", "reset_after")
    _defaults = {"initial": 0.5, "max": 30.0, "factor": 2.0, "reset_after": 10.0}

    def delay(self, k):
        """Seconds to wait before restart number k (1-based) of a streak: 0, initial, initial*factor, ..."""
        if k <= 1:
            return 0.0
        try:
            return min(self.max, self.initial * self.factor ** (k - 2))
        except OverflowError:
            return self.max


class CrashLoop(_Record):
    __slots__ = ("starts", "within")
    _defaults = {"starts": 5, "within": 30.0}


class Log(_Record):
    """Output destination. kind: stdout | file (path, max_size bytes, keep) | syslog | none."""

    __slots__ = ("kind", "path", "max_size", "keep")
    _defaults = {"kind": "stdout", "path": None, "max_size": None, "keep": None}


class ServiceSpec(_Record):
    """One service as the supervisor runs it (alternatives and conditions already resolved).

    `origin` is where it came from (image | default | s6-overlay | runit) and `source` the file
    (as seen inside the container) to name in messages.
    """

    __slots__ = ("name", "origin", "source", "description", "enabled", "command", "type", "pidfile",
                 "pre", "finish", "user", "group", "workdir", "environment", "env_files", "after",
                 "requires", "ready", "ready_timeout", "restart", "backoff", "crash_loop",
                 "stop_signal", "stop_timeout", "log")
    _defaults = {
        "name": "", "origin": "image", "source": "", "description": "", "enabled": True,
        "command": (), "type": "simple", "pidfile": None, "pre": (), "finish": (),
        "user": None, "group": None, "workdir": None, "environment": {}, "env_files": (),
        "after": (), "requires": (), "ready": Ready(), "ready_timeout": 30.0,
        "restart": "always", "backoff": Backoff(), "crash_loop": CrashLoop(),
        "stop_signal": "SIGTERM", "stop_timeout": 5.0, "log": Log(),
    }
    _convert = {
        "command": _tuple, "pre": _tuple_of_tuples, "finish": _tuple, "env_files": _tuple,
        "after": _tuple, "requires": _tuple, "ready": Ready.from_dict, "backoff": Backoff.from_dict,
        "crash_loop": CrashLoop.from_dict, "log": Log.from_dict, "environment": dict,
    }

    @property
    def builtin(self):
        """The built-in daemon's name when command is `@builtin NAME ...`, else None."""
        if len(self.command) >= 2 and self.command[0] == BUILTIN_TOKEN:
            return self.command[1]
        return None

    @property
    def stop_signum(self):
        return signal_number(self.stop_signal)

    @property
    def env_file_paths(self):
        """[(path, optional)] from env_files ('-' prefix = optional)."""
        return [(p[1:], True) if p.startswith("-") else (p, False) for p in self.env_files]


class InitScript(_Record):
    """A one-shot boot script. `optional`: a failure is logged and the boot goes on."""

    __slots__ = ("path", "command", "origin", "optional")
    _defaults = {"path": "", "command": (), "origin": "richinit", "optional": False}
    _convert = {"command": _tuple}


class Problem(_Record):
    """One load error or warning: "FILE:LINE: message" (service: the name when known)."""

    __slots__ = ("service", "file", "line", "message")
    _defaults = {"service": None, "file": "", "line": None, "message": ""}

    def __str__(self):
        where = self.file if self.line is None else "%s:%d" % (self.file, self.line)
        return "%s: %s" % (where, self.message) if where else self.message


# ---------------------------------------------------------------------------------------------
# Value helpers shared by validation, the loader and the supervisor
# ---------------------------------------------------------------------------------------------

def signal_number(name):
    """Number of a canonical or loose signal name ("TERM", "SIGTERM", "RTMIN+3"); ValueError if unknown."""
    n = _signals.parse(str(name))
    if n == 0 or str(name).strip().isdigit():
        raise ValueError("no such signal: %s" % name)
    return n


def signal_name(num):
    """Canonical name of a signal number: SIGTERM, SIGRTMIN+3; ValueError if there is none."""
    name = _signals.name(int(num))
    if not name.startswith("SIG"):
        raise ValueError("no such signal: %s" % num)
    return name


def _identifier(key):
    return bool(key) and (key[0].isalpha() or key[0] == "_") and key.isascii() \
        and all(c.isalnum() or c == "_" for c in key)


def parse_env_text(text):
    """KEY=VALUE lines of an env file -> (dict, [(line, message)]). Comments and blank lines skipped."""
    env, bad = {}, []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq or not _identifier(key):
            bad.append((n, "expected KEY=VALUE, got %r" % raw[:80]))
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace('\\"', '"').replace("\\\\", "\\")
        env[key] = value
    return env, bad


def read_env_files(entries, max_bytes=1024 * 1024):
    """Variables of `env_files` entries, in order (later files win) -> (env, [error lines]).

    For the supervisor at each start. A '-' prefix makes a missing file fine; every other problem
    is one "FILE[:LINE]: message" line, and the good lines are still used.
    """
    env, errors = {}, []
    for entry in entries:
        optional = entry.startswith("-")
        path = entry[1:] if optional else entry
        try:
            text = regular.read_text(path, max_bytes)  # PID 1 reads these: a FIFO must not hang it
        except FileNotFoundError:
            if not optional:
                errors.append("%s: env file not found" % path)
            continue
        except OSError as e:
            errors.append("%s: %s" % (path, e.strerror or e))
            continue
        values, bad = parse_env_text(text)
        env.update(values)
        errors.extend("%s:%d: %s" % (path, n, m) for n, m in bad)
    return env, errors
