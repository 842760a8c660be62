"""Service definitions: the schema, the data model PID 1 runs from, and its validation.

This module is stdlib-only and cheap to import (no yaml, json, dataclasses or ctypes). It runs in the
services loader, a child forked from PID 1, which sends PID 1 the checked definitions as a marshal
document; PID 1 rebuilds them with `richinit.services.model` (`ServiceSpec.from_dict`). The YAML
work, the file layouts and the start order live in `load`, `compat` and `graph`.

Where definitions come from
===========================
* `/etc/richinit/services.d/NAME.yaml` (or `.yml`) in the image: one service per file, named after
  the file unless the file says `name:`. An image file replaces richinit's default of the same file
  name *as a whole* (no field-by-field merge: copy the default and edit it). An empty file masks the
  default of that name (like systemd's link to /dev/null); so does a file holding `enabled: false`.
* richinit's defaults (this repository's `services.d/`): `sshd`, `cron`, `syslog`.
* s6-overlay's `/etc/services.d/NAME/` and runit's (phusion my_init's) `/etc/service/NAME/`, run as
  they are; see `richinit.services.compat`. They replace richinit's default of the same name (the
  image knows best), and an image YAML definition of the same name replaces them (with a warning), so
  a migration can move one service at a time.
* Init scripts, run once and in order before any service: `/etc/cont-init.d/*` (s6-overlay),
  `/etc/my_init.d/*` (my_init), `/etc/richinit/init.d/*`, then `/etc/rc.local` if executable.

Precedence, highest first: image YAML > image s6 dir > image runit dir > richinit default. Two image
YAML files claiming one name: the first (by file name) wins, the other fails.

Fields of a service file
========================
Durations are seconds (`5`, `0.5`) or strings with a unit (`500ms`, `10s`, `2m`, `1h`). Sizes are
bytes or strings with a binary unit (`512K`, `10M`, `1G`). Lists of names also accept one string.

name          Service name (default: the file name without `.yaml`). Letters, digits, `_ . @ -`,
              at most 64 characters, starting with a letter or digit. `app` is reserved for the
              container's command.
description   Free text shown by `richctl status`.
enabled       true (default) | false. A disabled service is loaded (so `richctl start` can start
              it) but not started at boot. A disabled service needs no `command`.
condition     Start only if every test holds (evaluated by the loader at boot and on reload):
                path_exists:    PATH or [PATHS]   each exists
                path_missing:   PATH or [PATHS]   none exists
                command_exists: NAME or [NAMES]   each is an executable file (NAME on PATH, or a path)
                command_missing: NAME or [NAMES]  none is
                busybox_applet: NAME or [NAMES]   each exists and is busybox (a link to it)
                native_command: NAME or [NAMES]   each exists and is not busybox
              A service whose condition fails is "skipped" (with the failed test as the reason).
              Commands are looked up on the container's PATH followed by the standard
              /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin.
command       What to run: an argv list (`[/usr/sbin/sshd, -D, -e]`), or a string run by
              `/bin/sh -c` (write `exec daemon ...` so the daemon itself receives signals; richinit
              signals the whole process group anyway). `@builtin NAME [ARGS]` (string or list)
              names one of richinit's portable daemons (`cron`, `syslogd`): the supervisor forks it
              from PID 1's interpreter (richinit.spawn.spawn_call, no new interpreter). Both take
              `--notify-fd N` to go with `ready: {fd: N}`.
alternatives  Instead of `command`: candidates tried in order, the first whose condition holds
              wins ("the image's daemon if present, else ours"). Each is an argv list, a string, or
              a mapping with `command:` and optionally `condition:`, `pre`, `type`, `pidfile`,
              `ready`, `ready_timeout`, `stop_signal`, `stop_timeout` (the rest comes from the
              service). An argv-list alternative without a condition needs its argv[0] to exist
              (on PATH, or the given path); a string or `@builtin` alternative always matches.
              The chosen candidate's bare argv[0] is replaced by the path found (`cron` ->
              `/usr/sbin/cron`). No candidate matching = the service is skipped.
type          simple (default): the process is the service.
              forking: a daemon that double-forks; the process started must exit 0 once the daemon
                runs, which is then followed through `pidfile` (required for this type).
              oneshot: runs to completion; "ready" = exited 0; dependents start after it.
pidfile       Absolute path of the daemon's pid file (type: forking only).
pre           Commands run one after the other, to completion, before `command` (each an argv list
              or a shell string), with the service's user, environment and workdir. A failing one
              fails that start. Used by sshd to create host keys and /run/sshd.
finish        Command run after each exit of the service (s6 semantics: two extra arguments, the exit
              code, 256 if killed, and the signal number or 0; exiting 125 means "do not restart").
user, group   Run as this user / group (name or number). Default: root; `user` alone also takes
              that user's primary group and supplementary groups.
workdir       Absolute working directory (default /).
environment   Map of extra variables on top of the container's environment: `{KEY: value}`;
              values are strings or numbers (quote `yes`/`no`/`true`; null is rejected).
env_files     Files of KEY=VALUE lines (`#` comments, optional `export `, optional quotes) read at
              each start, in order, after `environment`. A missing file is an error unless its path
              is written with a leading `-` (as in systemd's EnvironmentFile=-/path).
after         Names this service starts after (ordering only). Unknown names are warned about and
              ignored; skipped or failed ones are ignored.
requires      Names this service needs: ordering as `after`, and if a required service is unknown,
              disabled, skipped or failed, this one fails too (with a message naming why). The loader
              does not start a required-but-disabled service behind your back: enable it.
              Independent services start in parallel (waves); shutdown runs the waves in reverse.
              A dependency cycle fails every service on it: "cycle: a -> b -> a".
ready         When the service counts as up (dependents and the app wait for it):
                none (default)            as soon as the process runs
                {tcp: PORT | HOST:PORT}   a TCP connect succeeds (host 127.0.0.1; [::1]:PORT for v6)
                {unix: PATH}              a connect to that unix socket succeeds
                {file: PATH}              the file exists
                notify                    the service sends READY=1 on $NOTIFY_SOCKET (sd_notify)
                {fd: N}                   the service writes a line to fd N (s6 notification-fd, N >= 3)
ready_timeout Seconds to become ready (and, for oneshot, to finish; pre commands count too).
              Past it the start failed: the process is stopped and `restart` applies. 0 = no limit.
              Default 30.
restart       always (default; oneshot: never) | on-failure (exit code != 0 or killed) | never.
backoff       Delay between restarts: {initial: 0.5, max: 30, factor: 2, reset_after: 10}. The first
              restart after a healthy run is immediate; restart k (k >= 2) of a streak waits
              min(max, initial * factor^(k-2)). A run longer than `reset_after` ends the streak.
crash_loop    {starts: 5, within: 30}: the `starts`-th start within `within` seconds that ends in
              another exit marks the service failed instead of restarting it (the rest keep
              running; `richctl start` clears it). `crash_loop: none` never gives up.
stop_signal   Signal that asks the service to stop: name (TERM, SIGTERM, SIGRTMIN+3) or number.
              Default SIGTERM.
stop_timeout  Seconds between stop_signal and SIGKILL (to the whole process group). Default 5.
log           Where the output (stdout and stderr) goes:
                stdout (default)                       container stdout, each line prefixed "[name] "
                {file: PATH, max_size: 10M, keep: 5}   a file rotated at max_size, keeping `keep` old ones
                syslog                                 /dev/log, tagged with the service name; the
                                                       service then starts after (and stops before)
                                                       the `syslog` service, if there is one
                none                                   discarded

YAML reads unquoted yes/no/on/off/true/false as booleans: quote such names and values
(`after: ['off']`, `MODE: "on"`); the error message says so.

Errors
======
Every problem is one line "FILE:LINE: message" (Problem); a service with a problem is failed, the
others still load. The loader's JSON document is described in `richinit.services.load`.
"""

import _signal as signal  # not the enum-heavy package (see richinit/signals.py)

from richinit.services.model import (  # noqa: F401 (re-exported: the schema's public names)
    BUILTIN_TOKEN,
    BUILTINS,
    CONDITION_KEYS,
    LOG_KINDS,
    READY_KINDS,
    RESERVED_NAMES,
    RESTARTS,
    TYPES,
    Backoff,
    CrashLoop,
    InitScript,
    Log,
    Problem,
    Ready,
    ServiceSpec,
    _jsonable,
    _Record,
    _tuple,
    _tuple_of_tuples,
    parse_env_text,
    read_env_files,
    signal_name,
    signal_number,
)

# The syntax below is checked by hand, not with `re`: the loader runs at every boot, on the way to
# the first service, and importing re costs it ~6 ms here (tests/test_services_spec.py holds the
# equivalent regular expressions against these checks).
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_ALNUM = _LETTERS | frozenset("0123456789")
_NAME_REST = _ALNUM | frozenset("_.@-")
_USER_FIRST = _LETTERS | {"_"}
_USER_REST = _ALNUM | frozenset("_.-")
_HOST_CHARS = _ALNUM | frozenset("_.-")
_ADDR_CHARS = frozenset("0123456789abcdefABCDEF:.")
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _word(s, first, rest, longest):
    """s is 1..longest characters, the first from `first`, the others from `rest`."""
    return 0 < len(s) <= longest and s[0] in first and all(c in rest for c in s[1:])


def valid_name(name):
    """[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}"""
    return isinstance(name, str) and _word(name, _ALNUM, _NAME_REST, 64)


def _valid_user_name(v):
    """[A-Za-z_][A-Za-z0-9_.-]{0,31}\\$? (a trailing $: Samba machine accounts)"""
    return _word(v[:-1] if v.endswith("$") else v, _USER_FIRST, _USER_REST, 32)


def _parse_duration(text):
    """'1.5', '500ms', '10 s', '2m', '1h' -> seconds; None when it is none of those."""
    t = text.strip()
    unit = next((u for u in ("ms", "s", "m", "h") if t.endswith(u)), None)
    if unit:
        t = t[:-len(unit)].rstrip()
    whole, dot, frac = t.partition(".")
    if not (whole or frac) or (whole and not whole.isdecimal()) or (frac and not frac.isdecimal()) \
            or (not whole and not dot):
        return None
    return float(t) * _UNITS[unit]


def _parse_size(text):
    """'512', '512K', '10 MiB', '1GB' (case-insensitive) -> bytes; None when it is none of those."""
    t = text.strip()
    if t[-1:] in ("b", "B"):
        t = t[:-1]
        if t[-1:] in ("i", "I"):
            t = t[:-1]
    power = 0
    if t[-1:].upper() in ("K", "M", "G", "T"):
        power = " KMGT".index(t[-1].upper())
        t = t[:-1]
    t = t.rstrip()
    return int(t) * 1024 ** power if t.isdecimal() else None


def _parse_host_port(text):
    """'HOST:PORT' or '[ADDR]:PORT' -> (host, port); None otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not 0 < len(port) <= 5 or not port.isdecimal():
        return None
    if len(host) > 2 and host[0] == "[" and host[-1] == "]" and all(c in _ADDR_CHARS for c in host[1:-1]):
        return host[1:-1], int(port)
    if host and all(c in _HOST_CHARS for c in host):
        return host, int(port)
    return None


# ---------------------------------------------------------------------------------------------
# Validation of one parsed file: plain Python values in, (Definition, problems) out. The loader
# turns each problem's path (("ready", "tcp"), ("after", 2)) into a line number.
# ---------------------------------------------------------------------------------------------

class Bad(Exception):
    """A validation failure at a path inside the document."""

    def __init__(self, path, message):
        super().__init__(message)
        self.path, self.message = tuple(path), message


class Condition(_Record):
    __slots__ = CONDITION_KEYS
    _defaults = {k: () for k in CONDITION_KEYS}


class Alternative(_Record):
    """One candidate of `alternatives`: fields it sets, its condition, whether argv[0] must exist."""

    __slots__ = ("fields", "condition", "implicit", "index")
    _defaults = {"fields": {}, "condition": None, "implicit": False, "index": 0}


class Definition(_Record):
    """A validated service file before the loader resolves it against the image.

    `fields` are ServiceSpec keyword arguments; `condition` the service's own condition;
    `alternatives` the candidates (empty when `command` was given); `masked` for an empty file.
    """

    __slots__ = ("name", "fields", "condition", "alternatives", "masked")
    _defaults = {"name": "", "fields": {}, "condition": None, "alternatives": (), "masked": False}

    def resolve(self, alternative=None):
        """The ServiceSpec with the chosen alternative's fields applied (None: the base fields)."""
        fields = dict(self.fields)
        if alternative is not None:
            fields.update(alternative.fields)
        return ServiceSpec(**fields)


def _type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return "a %s" % type(v).__name__


def _str(v, path, what="a string"):
    if not isinstance(v, str):
        raise Bad(path, "expected %s, got %s" % (what, _type_name(v)))
    return v


def _abs_path(v, path):
    _str(v, path, "an absolute path")
    if not v.startswith("/") or "\0" in v:
        raise Bad(path, "expected an absolute path, got %r" % v)
    return v


def _bool(v, path):
    if not isinstance(v, bool):
        raise Bad(path, "expected true or false, got %s" % _type_name(v))
    return v


def _duration(v, path):
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise Bad(path, "expected a duration (seconds, or e.g. 500ms, 10s, 2m), got %s" % _type_name(v))
    if isinstance(v, str):
        seconds = _parse_duration(v)
        if seconds is None:
            raise Bad(path, "expected a duration (seconds, or e.g. 500ms, 10s, 2m), got %r" % v)
        v = seconds
    v = float(v)
    if not 0 <= v <= 10 ** 7:
        raise Bad(path, "duration out of range: %r" % v)
    return v


def _size(v, path):
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise Bad(path, "expected a size (bytes, or e.g. 512K, 10M, 1G), got %s" % _type_name(v))
    if isinstance(v, str):
        size = _parse_size(v)
        if size is None:
            raise Bad(path, "expected a size (bytes, or e.g. 512K, 10M, 1G), got %r" % v)
        v = size
    if v < 1:
        raise Bad(path, "size must be at least 1 byte")
    return v


def _int(v, path, lo, hi, what="an integer"):
    if isinstance(v, bool) or not isinstance(v, int):
        raise Bad(path, "expected %s, got %s" % (what, _type_name(v)))
    if not lo <= v <= hi:
        raise Bad(path, "%s must be between %d and %d, got %d" % (what, lo, hi, v))
    return v


def _number(v, path, lo, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Bad(path, "expected a number for %s, got %s" % (what, _type_name(v)))
    if v < lo:
        raise Bad(path, "%s must be at least %s, got %s" % (what, lo, v))
    return float(v)


def _choice(v, path, choices):
    if not isinstance(v, str) or v not in choices:
        shown = repr(v) if isinstance(v, str) else _type_name(v)
        raise Bad(path, "expected one of %s, got %s" % (" | ".join(choices), shown))
    return v


def _names(v, path):
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list):
        raise Bad(path, "expected a service name or a list of them, got %s" % _type_name(v))
    out = []
    for i, n in enumerate(items):
        p = path if isinstance(v, str) else path + (i,)
        if isinstance(n, bool):
            raise Bad(p, "a boolean where a service name belongs: YAML reads yes/no/on/off/true/false as "
                      "booleans, quote the name")
        if not valid_name(n):
            raise Bad(p, "not a valid service name: %r" % (n,))
        if n not in out:
            out.append(n)
    return tuple(out)


def _strings(v, path, what, check=None):
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items:
        raise Bad(path, "expected %s or a non-empty list of them, got %s" % (what, _type_name(v)))
    out = []
    for i, x in enumerate(items):
        p = path if isinstance(v, str) else path + (i,)
        out.append(check(x, p) if check else _str(x, p, what))
    return tuple(out)


def _argv(v, path):
    """command: argv list (numbers become strings) or a shell string; '@builtin NAME' stays argv."""
    if isinstance(v, str):
        if not v.strip():
            raise Bad(path, "command is empty")
        if "\0" in v:
            raise Bad(path, "command contains a NUL byte")
        words = v.split()
        if words[0] == BUILTIN_TOKEN:
            return _check_builtin(tuple(words), path)
        return ("/bin/sh", "-c", v)
    if not isinstance(v, list):
        raise Bad(path, "expected a command (a list of arguments or a string), got %s" % _type_name(v))
    if not v:
        raise Bad(path, "command is empty")
    argv = []
    for i, a in enumerate(v):
        if isinstance(a, bool) or not isinstance(a, (str, int, float)):
            raise Bad(path + (i,), "command arguments must be strings, got %s" % _type_name(a))
        a = str(a)
        if "\0" in a:
            raise Bad(path + (i,), "command argument contains a NUL byte")
        argv.append(a)
    if not argv[0]:
        raise Bad(path + (0,), "command name is empty")
    if argv[0] == BUILTIN_TOKEN:
        return _check_builtin(tuple(argv), path)
    return tuple(argv)


def _check_builtin(argv, path):
    if len(argv) < 2 or argv[1] not in BUILTINS:
        raise Bad(path, "%s needs one of: %s" % (BUILTIN_TOKEN, ", ".join(sorted(BUILTINS))))
    return argv


def _commands(v, path):
    if not isinstance(v, list):
        v = [v]
        return (_argv(v[0], path),)
    return tuple(_argv(c, path + (i,)) for i, c in enumerate(v))


def _user(v, path):
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise Bad(path, "expected a name or a number, got %s" % _type_name(v))
    if isinstance(v, int) or v.isdigit():
        n = int(v)
        if not 0 <= n < 2 ** 32 - 1:
            raise Bad(path, "id out of range: %s" % v)
        return n
    if not _valid_user_name(v):
        raise Bad(path, "not a valid user or group name: %r" % v)
    return v


def _environment(v, path):
    if not isinstance(v, dict):
        raise Bad(path, "expected a mapping of VARIABLE: value, got %s" % _type_name(v))
    env = {}
    for k, x in v.items():
        p = path + (k,)
        if not isinstance(k, str) or not k or "=" in k or "\0" in k:
            raise Bad(p, "not a valid variable name: %r" % (k,))
        if isinstance(x, bool):
            raise Bad(p, "%s: YAML reads this as a boolean; quote it if you mean the string" % k)
        if not isinstance(x, (str, int, float)):
            raise Bad(p, "%s: expected a string or a number, got %s" % (k, _type_name(x)))
        x = str(x)
        if "\0" in x:
            raise Bad(p, "%s: value contains a NUL byte" % k)
        env[k] = x
    return env


def _env_file(v, path):
    _str(v, path, "a file path")
    if not v.lstrip("-").startswith("/") or v.startswith("--"):
        raise Bad(path, "expected an absolute path (optionally prefixed with '-'), got %r" % v)
    return v


def _signal(v, path):
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise Bad(path, "expected a signal name (TERM, SIGINT, SIGRTMIN+3) or number, got %s" % _type_name(v))
    try:
        num = v if isinstance(v, int) else signal_number(v)
        name = signal_name(num)
    except ValueError:
        raise Bad(path, "no such signal: %r" % (v,))
    if num in (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD, signal.SIGCONT):
        raise Bad(path, "%s does not stop a process" % name)
    return name


def _mapping(v, path, what, parsers, required=()):
    if not isinstance(v, dict):
        raise Bad(path, "expected a mapping for %s, got %s" % (what, _type_name(v)))
    out = {}
    for k, x in v.items():
        if k not in parsers:
            raise Bad(path + (k,), "unknown field %r in %s (known: %s)" % (k, what, ", ".join(parsers)))
        out[k] = parsers[k](x, path + (k,))
    for k in required:
        if k not in out:
            raise Bad(path, "%s needs %r" % (what, k))
    return out


def _host_port(v, path):
    if isinstance(v, bool):
        raise Bad(path, "expected a port or HOST:PORT, got a boolean")
    host = "127.0.0.1"
    if isinstance(v, str):
        hp = _parse_host_port(v)
        if hp:
            host, port = hp
        elif v.strip().isdigit():
            port = int(v)
        else:
            raise Bad(path, "expected a port or HOST:PORT, got %r" % v)
    elif isinstance(v, int):
        port = v
    else:
        raise Bad(path, "expected a port or HOST:PORT, got %s" % _type_name(v))
    if not 1 <= port <= 65535:
        raise Bad(path, "port must be between 1 and 65535, got %d" % port)
    return host, port


def _ready(v, path):
    if isinstance(v, str) and v in ("none", "notify"):
        return Ready(kind=v)
    if v is None:
        return Ready()
    if not isinstance(v, dict):
        raise Bad(path, "expected none, notify, or one of {tcp: PORT}, {unix: PATH}, {file: PATH}, {fd: N}, "
                  "got %s" % (repr(v) if isinstance(v, str) else _type_name(v)))
    if len(v) != 1:
        raise Bad(path, "ready takes exactly one of tcp, unix, file, fd")
    (kind, x), = v.items()
    p = path + (kind,)
    if kind == "tcp":
        host, port = _host_port(x, p)
        return Ready(kind="tcp", host=host, port=port)
    if kind in ("unix", "file"):
        return Ready(kind=kind, path=_abs_path(x, p))
    if kind == "fd":
        return Ready(kind="fd", fd=_int(x, p, 3, 1023, "a notification fd"))
    raise Bad(p, "unknown readiness %r (known: none, notify, tcp, unix, file, fd)" % (kind,))


def _backoff(v, path):
    d = _mapping(v, path, "backoff", {
        "initial": _duration, "max": _duration,
        "factor": lambda x, p: _number(x, p, 1, "factor"), "reset_after": _duration})
    b = Backoff(**d)
    if b.max < b.initial:
        raise Bad(path, "backoff: max (%g) is below initial (%g)" % (b.max, b.initial))
    return b


def _crash_loop(v, path):
    if v is None or v == "none" or v is False:
        return None
    d = _mapping(v, path, "crash_loop", {
        "starts": lambda x, p: _int(x, p, 1, 10 ** 6, "starts"), "within": _duration},
        required=("starts", "within"))
    if d["within"] <= 0:
        raise Bad(path + ("within",), "within must be more than 0 seconds")
    return CrashLoop(**d)


def _log(v, path):
    if isinstance(v, str) and v in ("stdout", "syslog", "none"):
        return Log(kind=v)
    if not isinstance(v, dict):
        raise Bad(path, "expected stdout, syslog, none or {file: PATH, max_size: SIZE, keep: N}, got %s"
                  % (repr(v) if isinstance(v, str) else _type_name(v)))
    d = _mapping(v, path, "log", {"file": _abs_path, "max_size": _size,
                                  "keep": lambda x, p: _int(x, p, 0, 1000, "keep")}, required=("file",))
    return Log(kind="file", path=d["file"], max_size=d.get("max_size", 10 * 1024 * 1024), keep=d.get("keep", 5))


def _condition(v, path):
    def paths(x, p):
        return _strings(x, p, "a path", _abs_path)

    def cmds(x, p):
        return _strings(x, p, "a command name")
    parsers = {k: (paths if k.startswith("path_") else cmds) for k in CONDITION_KEYS}
    d = _mapping(v, path, "condition", parsers)
    if not d:
        raise Bad(path, "condition is empty (known tests: %s)" % ", ".join(CONDITION_KEYS))
    return Condition(**d)


_FIELDS = {
    "name": lambda v, p: v,  # checked by the caller, which knows the file name
    "description": _str,
    "enabled": _bool,
    "condition": _condition,
    "command": _argv,
    "alternatives": None,  # handled by _alternatives
    "type": lambda v, p: _choice(v, p, TYPES),
    "pidfile": _abs_path,
    "pre": _commands,
    "finish": _argv,
    "user": _user,
    "group": _user,
    "workdir": _abs_path,
    "environment": _environment,
    "env_files": lambda v, p: _strings(v, p, "a file path", _env_file),
    "after": _names,
    "requires": _names,
    "ready": _ready,
    "ready_timeout": _duration,
    "restart": lambda v, p: _choice(v, p, RESTARTS),
    "backoff": _backoff,
    "crash_loop": _crash_loop,
    "stop_signal": _signal,
    "stop_timeout": _duration,
    "log": _log,
}
_ALTERNATIVE_FIELDS = ("command", "condition", "pre", "type", "pidfile", "ready", "ready_timeout",
                       "stop_signal", "stop_timeout")


def _unknown_field(key, known, path):
    import difflib  # only on the error path
    hint = difflib.get_close_matches(str(key), known, n=1)
    return Bad(path, "unknown field %r%s" % (key, " (did you mean %r?)" % hint[0] if hint else ""))


def _alternatives(v, path, problems):
    if not isinstance(v, list) or not v:
        problems.append(Bad(path, "expected a non-empty list of candidate commands, got %s" % _type_name(v)))
        return ()
    out = []
    for i, item in enumerate(v):
        p = path + (i,)
        try:
            if isinstance(item, (list, str)):
                argv = _argv(item, p)
                implicit = isinstance(item, list) and argv[0] != BUILTIN_TOKEN
                out.append(Alternative(fields={"command": argv}, implicit=implicit, index=i))
                continue
            if not isinstance(item, dict):
                raise Bad(p, "expected a command or a mapping with command:, got %s" % _type_name(item))
            fields, cond = {}, None
            for k, x in item.items():
                if k not in _ALTERNATIVE_FIELDS:
                    raise Bad(p + (k,), "unknown field %r in an alternative (it may set: %s)"
                              % (k, ", ".join(_ALTERNATIVE_FIELDS)))
                if k == "condition":
                    cond = _condition(x, p + (k,))
                else:
                    fields[k] = _FIELDS[k](x, p + (k,))
            if "command" not in fields:
                raise Bad(p, "alternative needs a command")
            argv = fields["command"]
            implicit = cond is None and isinstance(item.get("command"), list) and argv[0] != BUILTIN_TOKEN
            out.append(Alternative(fields=fields, condition=cond, implicit=implicit, index=i))
        except Bad as e:
            problems.append(e)
    return tuple(out)


def _combination(f, path):
    """Checks across fields, for the service alone or with one alternative applied."""
    out = []
    typ = f.get("type", "simple")
    if typ == "forking" and not f.get("pidfile"):
        out.append(Bad(path + ("type",), "type: forking needs a pidfile"))
    if typ != "forking" and f.get("pidfile"):
        out.append(Bad(path + ("pidfile",), "pidfile only applies to type: forking"))
    if typ == "oneshot":
        if f.get("ready") is not None and f["ready"].kind != "none":
            out.append(Bad(path + ("ready",), "a oneshot is ready when it exits 0; remove ready"))
    return out


def parse_definition(raw, name, origin="image", source=""):
    """Validate one service document (plain Python values) -> (Definition or None, [Bad]).

    `raw` None (an empty file) masks the service. Every field is checked; all problems are
    returned. The Definition is None when there is any problem.
    """
    if raw is None:
        fields = {"name": name, "origin": origin, "source": source, "enabled": False}
        return Definition(name=name, fields=fields, masked=True), []
    if not isinstance(raw, dict):
        return None, [Bad((), "expected a mapping of fields, got %s" % _type_name(raw))]
    problems = []
    fields = {"name": name, "origin": origin, "source": source}
    condition, alternatives = None, ()
    for key, value in raw.items():
        path = (key,)
        if key not in _FIELDS:
            problems.append(_unknown_field(key, list(_FIELDS), path))
            continue
        try:
            if key == "name":
                if not valid_name(value):
                    raise Bad(path, "not a valid service name: %r (letters, digits, _ . @ -)" % (value,))
                fields["name"] = value
            elif key == "condition":
                condition = _condition(value, path)
            elif key == "alternatives":
                alternatives = _alternatives(value, path, problems)
            else:
                fields[key] = _FIELDS[key](value, path)
        except Bad as e:
            problems.append(e)
    if fields["name"] in RESERVED_NAMES:
        problems.append(Bad(("name",) if "name" in raw else (), "the name %r is reserved" % fields["name"]))
    if "command" in raw and "alternatives" in raw:
        problems.append(Bad(("alternatives",), "give either command or alternatives, not both"))
    elif "command" not in raw and "alternatives" not in raw and fields.get("enabled", True):
        problems.append(Bad((), "missing field 'command' (or alternatives; or enabled: false)"))
    if fields.get("type") == "oneshot" and "restart" not in raw:
        fields["restart"] = "never"
    if not problems:
        combos = [fields] + [dict(fields, **a.fields) for a in alternatives]
        paths = [()] + [("alternatives", a.index) for a in alternatives]
        for f, p in zip(combos, paths, strict=True):
            problems.extend(_combination(f, p))
    if problems:
        return None, problems
    return Definition(name=fields["name"], fields=fields, condition=condition, alternatives=alternatives), []
