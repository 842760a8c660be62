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

YAML_TYPES = ("simple", "forking", "oneshot")                # what services.d YAML accepts
YAML_RESTARTS = ("always", "on-failure", "never")
TYPES = ("simple", "exec", "forking", "oneshot", "notify", "notify-reload", "idle")
# "never" is systemd's "no"; the others are systemd's Restart= values.
RESTARTS = ("always", "on-failure", "never", "on-success", "on-abnormal", "on-abort", "on-watchdog")
KILL_MODES = ("control-group", "mixed", "process", "none")
NOTIFY_ACCESS = ("none", "main", "exec", "all")
DIRECTORY_KINDS = ("runtime", "state", "cache", "logs", "configuration")
READY_KINDS = ("none", "tcp", "unix", "file", "notify", "fd")
LOG_KINDS = ("stdout", "file", "syslog", "none", "socket")
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
    """Delays between restarts. `first` is the wait before the first restart of a streak (0 for
    services.d YAML; systemd's RestartSec=, default 100 ms, for units, whose restarts all wait it)."""

    __slots__ = ("initial", "max", "factor", "reset_after", "first")
    _defaults = {"initial": 0.5, "max": 30.0, "factor": 2.0, "reset_after": 10.0, "first": 0.0}

    def delay(self, k):
        """Seconds to wait before restart number k (1-based) of a streak: first, initial, initial*factor, ..."""
        if k <= 1:
            return self.first
        try:
            return min(self.max, self.initial * self.factor ** (k - 2))
        except OverflowError:
            return self.max


class CrashLoop(_Record):
    __slots__ = ("starts", "within")
    _defaults = {"starts": 5, "within": 30.0}


class Log(_Record):
    """Output destination.

    kind: stdout (the container's console: systemd's inherit/tty) | file (path, max_size bytes, keep;
    `mode` append, or truncate: emptied at each start) | syslog (lines sent under `identifier`, default
    the service name: systemd's journal, syslog, kmsg) | none (systemd's null) | socket (the socket
    the service was handed, for an Accept=yes instance its connection: systemd's socket).
    """

    __slots__ = ("kind", "path", "max_size", "keep", "mode", "identifier")
    _defaults = {"kind": "stdout", "path": None, "max_size": None, "keep": None, "mode": "append",
                 "identifier": None}


class Command(_Record):
    """One command line of a service: argv plus systemd's ExecXxx= prefix characters in `flags`.

    flags, any of: "-" a failure exit is ignored; "@" argv[1] is the argv[0] passed (argv[0] stays
    the program run); ":" no $VAR/${VAR} expansion; "+" / "!" / "!!" run with full privileges (no
    User=/Group= switch). Without ":", `$VAR` (split on white space into words) and `${VAR}` (one
    word, or inside a word) are expanded at start from the service's environment, as systemd does.
    A command from services.d YAML has no flags and is never expanded (it has no "$" semantics).
    """

    __slots__ = ("argv", "flags")
    _defaults = {"argv": (), "flags": ":"}
    _convert = {"argv": _tuple}


def _commands(v):
    """A tuple of Command from Command dicts or plain argv lists (services.d YAML, older documents)."""
    return tuple(Command.from_dict(x) if isinstance(x, dict) else
                 x if isinstance(x, Command) else Command(argv=tuple(x)) for x in v)


class Directory(_Record):
    """RuntimeDirectory= and its kin: `path` relative to the kind's base (/run, /var/lib, /var/cache,
    /var/log, /etc), created owned by the service's user with `mode` before the first command."""

    __slots__ = ("kind", "path", "mode")
    _defaults = {"kind": "runtime", "path": "", "mode": 0o755}


class Condition(_Record):
    """A Condition*/Assert* check PID 1 evaluates right before a start (the loader has already
    evaluated and dropped the ones whose answer cannot change in a container's life).

    name: systemd's suffix (PathExists, PathIsDirectory, FileNotEmpty, DirectoryNotEmpty,
    PathIsSymbolicLink, PathIsMountPoint, PathIsReadWrite, FileIsExecutable, PathExistsGlob, ...);
    `negate` for "!", `trigger` for "|" (any triggering one suffices), `assert_` for Assert* (a
    failed assert fails the start; a failed condition skips it, the unit counts as inactive).
    """

    __slots__ = ("name", "value", "negate", "trigger", "assert_")
    _defaults = {"name": "", "value": "", "negate": False, "trigger": False, "assert_": False}


class ServiceSpec(_Record):
    """One service as the supervisor runs it (alternatives and conditions already resolved).

    `origin` is where it came from (image | default | s6-overlay | runit) and `source` the file
    (as seen inside the container) to name in messages.
    """

    __slots__ = ("name", "origin", "source", "description", "enabled", "command", "type", "pidfile",
                 "pre", "finish", "user", "group", "workdir", "environment", "env_files", "after",
                 "requires", "ready", "ready_timeout", "restart", "backoff", "crash_loop",
                 "stop_signal", "stop_timeout", "log",
                 # systemd units (origin "systemd" / "sysv"); the defaults keep services.d behaviour
                 "unit", "command_flags", "exec_condition", "post", "reload", "reload_signal",
                 "stop_commands", "stop_post", "remain_after_exit", "success_status",
                 "restart_prevent", "restart_force", "kill_mode", "send_sigkill", "send_sighup",
                 "notify_access", "watchdog", "supplementary_groups", "umask", "nice", "limits",
                 "directories", "runtime_preserve", "pass_env", "unset_env", "workdir_optional",
                 "stderr_log", "private_tmp", "conditions", "wants", "binds_to", "part_of",
                 "requisite", "conflicts", "on_failure", "sockets", "socket_deps", "stdin_socket", "warnings")
    _defaults = {
        "name": "", "origin": "image", "source": "", "description": "", "enabled": True,
        "command": (), "type": "simple", "pidfile": None, "pre": (), "finish": (),
        "user": None, "group": None, "workdir": None, "environment": {}, "env_files": (),
        "after": (), "requires": (), "ready": Ready(), "ready_timeout": 30.0,
        "restart": "always", "backoff": Backoff(), "crash_loop": CrashLoop(),
        "stop_signal": "SIGTERM", "stop_timeout": 5.0, "log": Log(),
        "unit": None,              # the systemd unit name ("nginx.service"); `name` is its stem
        "command_flags": ":",      # Command.flags of `command` (ExecStart=)
        "exec_condition": (),      # ExecCondition=: exit 1..254 skips the start, 255 or a signal fails it
        "post": (),                # ExecStartPost=: after the main process is ready
        "reload": (),              # ExecReload=; empty: reload_signal (notify-reload) or not reloadable
        "reload_signal": "SIGHUP",
        "stop_commands": (),       # ExecStop=: run instead of sending stop_signal first
        "stop_post": (),           # ExecStopPost=: after the service is down, also after a failure
        "remain_after_exit": False,
        "success_status": (),      # SuccessExitStatus=: exit codes (int) and signal names (str)
        "restart_prevent": (),     # RestartPreventExitStatus=, same form
        "restart_force": (),       # RestartForceExitStatus=, same form
        "kill_mode": "control-group",
        "send_sigkill": True,
        "send_sighup": False,
        "notify_access": None,     # None: "main" when ready.kind is notify, else "none"
        "watchdog": 0.0,           # WatchdogSec=: seconds; 0 off. A missed WATCHDOG=1 ping kills with SIGABRT
        "supplementary_groups": (),
        "umask": None,             # int
        "nice": None,              # int
        "limits": {},              # RLIMIT name without prefix ("NOFILE") -> [soft, hard], None = infinity
        "directories": (),         # Directory records
        "runtime_preserve": "no",  # no | yes | restart
        "pass_env": (),            # PassEnvironment=: names taken from PID 1's environment
        "unset_env": (),           # UnsetEnvironment=: names or NAME=VALUE assignments removed
        "workdir_optional": False,  # WorkingDirectory=-PATH; workdir "~" is the user's home
        "stderr_log": None,        # a Log for stderr when it differs from `log`
        "private_tmp": False,
        "conditions": (),          # Condition records checked at each start
        "wants": (),               # started with this one; their failure does not matter
        "binds_to": (),            # like requires, and this one stops when one of them stops
        "part_of": (),             # stop/restart of one of them stops/restarts this one
        "requisite": (),           # must already be up when this one starts, else it fails
        "conflicts": (),           # starting this one stops them (and the reverse)
        "on_failure": (),          # started when this one enters failed
        "sockets": (),             # names of SocketSpecs whose fds this service receives
        "socket_deps": (),         # socket units it Requires=/Wants=/BindsTo= (names): started with it
        "stdin_socket": False,     # StandardInput=socket: stdin is its (first) socket, Accept=yes's connection
        "warnings": (),            # FILE:LINE lines of what was ignored or approximated (status shows them)
    }
    _convert = {
        "command": _tuple, "pre": _commands, "finish": _tuple, "env_files": _tuple,
        "after": _tuple, "requires": _tuple, "ready": Ready.from_dict, "backoff": Backoff.from_dict,
        "crash_loop": CrashLoop.from_dict, "log": Log.from_dict, "environment": dict,
        "exec_condition": _commands, "post": _commands, "reload": _commands,
        "stop_commands": _commands, "stop_post": _commands, "success_status": _tuple,
        "restart_prevent": _tuple, "restart_force": _tuple, "supplementary_groups": _tuple,
        "limits": dict, "directories": lambda v: tuple(Directory.from_dict(x) for x in v),
        "pass_env": _tuple, "unset_env": _tuple, "stderr_log": Log.from_dict,
        "conditions": lambda v: tuple(Condition.from_dict(x) for x in v), "wants": _tuple,
        "binds_to": _tuple, "part_of": _tuple, "requisite": _tuple, "conflicts": _tuple,
        "on_failure": _tuple, "sockets": _tuple, "socket_deps": _tuple, "warnings": _tuple,
    }

    _COMMAND_LISTS = ("pre", "exec_condition", "post", "reload", "stop_commands", "stop_post")

    def __init__(self, **kw):
        super().__init__(**kw)
        for field in self._COMMAND_LISTS:  # plain argv lists become Commands (no flags)
            value = getattr(self, field)
            if any(not isinstance(c, Command) for c in value):
                object.__setattr__(self, field, _commands(value))

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


class Listen(_Record):
    """One ListenXxx= of a socket unit. kind: stream | dgram | seqpacket | fifo. address: "PORT",
    "IP:PORT", "[IPv6]:PORT" (inet), "/path" (unix or fifo), "@name" (abstract unix)."""

    __slots__ = ("kind", "address")
    _defaults = {"kind": "stream", "address": ""}


class SocketSpec(_Record):
    """A socket unit: PID 1 binds its listeners at boot, before any service starts, and hands the
    fds to `service` (LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES) when the first connection or datagram
    arrives (accept=False), or starts an instance `service@N` per connection (accept=True)."""

    __slots__ = ("name", "unit", "source", "service", "listen", "accept", "mode", "user", "group",
                 "fd_name", "backlog", "enabled", "max_connections", "remove_on_stop", "warnings")
    _defaults = {"name": "", "unit": None, "source": "", "service": "", "listen": (), "accept": False,
                 "mode": 0o666, "user": None, "group": None, "fd_name": None, "backlog": 4096,
                 "enabled": True, "max_connections": 64, "remove_on_stop": False, "warnings": ()}
    _convert = {"listen": lambda v: tuple(Listen.from_dict(x) for x in v), "warnings": _tuple}


class TimerSpec(_Record):
    """A timer unit, on PID 1's own timer wheel. Seconds for the monotonic ones (None: unset);
    `calendar` holds normalized OnCalendar= expressions (richinit.calendar parses them)."""

    __slots__ = ("name", "unit", "source", "service", "calendar", "on_boot", "on_startup",
                 "on_active", "on_unit_active", "on_unit_inactive", "persistent",
                 "randomized_delay", "accuracy", "enabled", "warnings")
    _defaults = {"name": "", "unit": None, "source": "", "service": "", "calendar": (),
                 "on_boot": None, "on_startup": None, "on_active": None, "on_unit_active": None,
                 "on_unit_inactive": None, "persistent": False, "randomized_delay": 0.0,
                 "accuracy": 60.0, "enabled": True, "warnings": ()}
    _convert = {"calendar": _tuple, "warnings": _tuple}


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
