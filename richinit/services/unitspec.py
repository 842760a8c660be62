"""[Unit], [Service], [Socket] and [Timer] directives -> ServiceSpec, SocketSpec, TimerSpec fields.

`convert(unit, ctx)` walks a unit's assignments in order (file, then drop-ins): a later assignment
of a single-valued setting wins, list settings accumulate and an empty assignment resets them, as
systemd does. Values are %-expanded (systemd.unit(5) specifiers; a template keeps the instance
ones): command lines and Environment= word by word once split, the others whole. The result is a
`Converted`: the fields, the dependencies by unit name with the line of each, the conditions, the
errors (the unit cannot run) and the warnings (ignored or approximated).

Approximations, each a warning: Type=dbus runs as simple; DynamicUser= runs as User= or nobody;
StandardOutput=journal+console goes to syslog; fd outputs go to the console; file: is
opened for appending. Ignored with a warning: sandboxing (Protect*, Private* but PrivateTmp,
Restrict*, SystemCall*, capabilities, ReadWritePaths...: the container is the sandbox) and resource
control (CPU*, Memory*, IO*, Tasks*: the container's limits apply); "not supported" for the rest
richinit knows and does not do (socket options, TTY*=, credentials...). Accepted silently: what only
documents or affects systemd's own bookkeeping (Documentation=, SourcePath=, IgnoreOnIsolate=,
AllowIsolate=, CollectMode=...).

Conditions (systemd.unit(5) Condition*/Assert*): the ones whose answer cannot change while the
container runs are evaluated here (Virtualization: "container", or the engine name, holds; "vm" and
hypervisor names do not; Architecture, Host, KernelCommandLine, KernelVersion, Security (none),
Capability (the bounding set), ACPower (true), NeedsUpdate and FirstBoot (false), User/Group (root),
Environment, OSRelease, Memory, CPUs, ControlGroupController (true), Credential (false)); the
path ones go to PID 1 as Condition records. A failed condition skips the unit; a failed assert fails it.
"""

import os

from richinit.services import model as M
from richinit.services import unitfile as U

RLIMITS = ("CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NOFILE", "AS", "NPROC", "MEMLOCK", "LOCKS",
           "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME")
_RLIMIT_BYTES = ("FSIZE", "DATA", "STACK", "CORE", "RSS", "AS", "MEMLOCK", "MSGQUEUE")
_DIR_KEYS = {"RuntimeDirectory": "runtime", "StateDirectory": "state", "CacheDirectory": "cache",
             "LogsDirectory": "logs", "ConfigurationDirectory": "configuration"}
_PATH_CONDITIONS = ("PathExists", "PathExistsGlob", "PathIsDirectory", "PathIsSymbolicLink",
                    "PathIsMountPoint", "PathIsReadWrite", "PathIsEncrypted", "DirectoryNotEmpty",
                    "FileNotEmpty", "FileIsExecutable")
_DEPS = ("After", "Before", "Requires", "Wants", "BindsTo", "PartOf", "Requisite", "Conflicts",
         "OnFailure", "Upholds", "PropagatesReloadTo", "ReloadPropagatedFrom")

_SANDBOX_PREFIXES = ("Protect", "Restrict", "SystemCall", "ReadWrite", "ReadOnly", "Inaccessible",
                     "NoExecPaths", "ExecPaths", "BindPaths", "BindReadOnlyPaths", "TemporaryFileSystem",
                     "CapabilityBoundingSet", "AmbientCapabilities", "Private", "Secure", "NoNewPrivileges",
                     "LockPersonality", "MemoryDenyWrite", "RemoveIPC", "KeyringMode", "AppArmor", "SELinux",
                     "SmackProcess", "RootDirectory", "RootImage", "MountAPIVFS", "MountFlags", "IPAddress",
                     "NetworkNamespacePath", "IPCNamespacePath", "DevicePolicy", "DeviceAllow", "ProcSubset",
                     "Personality", "RootHash", "RootVerity", "ExtensionImages", "ExtensionDirectories",
                     "ReadWriteDirectories", "ReadOnlyDirectories", "InaccessibleDirectories")
_RESOURCE_PREFIXES = ("CPU", "Memory", "IO", "Tasks", "BlockIO", "StartupCPU", "StartupIO", "AllowedCPUs",
                      "AllowedMemoryNodes", "StartupAllowed", "DefaultMemory", "Delegate", "Slice",
                      "OOMScoreAdjust", "OOMPolicy", "ManagedOOM", "IOScheduling", "NUMA", "TimerSlack",
                      "CoredumpFilter", "ControlGroup")
# Understood, and not done: each a warning "not supported".
_UNSUPPORTED = ("IgnoreSIGPIPE", "TTY", "Utmp", "LogRateLimit", "LogLevelMax", "LogExtraFields",
                "LogNamespace", "SyslogLevel", "SyslogFacility", "GuessMainPID", "FileDescriptorStore",
                "USBFunction", "NonBlocking", "ExitType", "LoadCredential", "SetCredential", "ImportCredential",
                "Sockets", "OpenFile", "RootDirectoryStartOnly", "RestartSteps", "RestartMaxDelaySec",
                "RestartMode", "TimeoutStartFailureMode", "TimeoutStopFailureMode",
                # socket options: richinit binds with the kernel's defaults
                "Pass", "ReceiveBuffer", "SendBuffer", "KeepAlive", "NoDelay", "Priority", "ReusePort",
                "BindIPv6Only", "FreeBind", "Transparent", "Broadcast", "IPTOS", "IPTTL", "Mark", "PipeSize",
                "MessageQueue", "DeferAcceptSec", "TCPCongestion", "Timestamping", "SELinuxContextFromNet",
                "Symlinks", "DirectoryMode", "Writable", "FlushPending", "TriggerLimit", "PollLimit",
                "SocketProtocol", "BindToDevice", "MaxConnectionsPerSource", "ListenNetlink", "ListenSpecial",
                "ListenMessageQueue", "ListenUSBFunction", "ExecStopPre",
                # timer options
                "WakeSystem", "RemainAfterElapse", "OnClockChange", "OnTimezoneChange", "FixedRandomDelay")
_QUIET = frozenset({
    "Description", "Documentation", "SourcePath", "IgnoreOnIsolate", "AllowIsolate", "RefuseManualStart",
    "RefuseManualStop", "StopWhenUnneeded", "CollectMode", "JobTimeoutSec", "JobRunningTimeoutSec",
    "JobTimeoutAction", "DefaultDependencies", "RequiresMountsFor", "WantsMountsFor", "OnFailureJobMode",
    "OnSuccessJobMode", "FailureAction", "SuccessAction", "FailureActionExitStatus",
    "SuccessActionExitStatus", "StartLimitAction", "RebootArgument", "JoinsNamespaceOf", "Transient",
    "Perpetual", "SurviveFinalKillSignal", "Also", "WantedBy", "RequiredBy", "UpheldBy", "Alias",
    "DefaultInstance", "OnSuccess", "StopPropagatedFrom", "PropagatesStopTo", "TimeoutCleanSec",
    "RuntimeMaxSec", "RuntimeRandomizedExtraSec", "FinalKillSignal", "RestartKillSignal",
    "WatchdogSignal", "DynamicUser", "BusName"})


class Converted:
    """A unit's translated settings."""

    def __init__(self):
        self.fields = {}
        self.deps = {k: [] for k in _DEPS}  # unit names, each (name, line)
        self.conditions = []
        self.static_fail = None     # why a static condition failed (skip)
        self.errors = []            # (file, line, message)
        self.warnings = []          # (file, line, message)
        self.exec = {}              # ExecXxx key -> [(flags, argv, line)]
        self.listen = []            # socket: Listen records
        self.calendar = []
        self.fill = None            # the specifier expansion of the assignment being read


class Context:
    """What the specifiers and the static conditions need to know, computed once per load."""

    def __init__(self, root, environ=None):
        self.root = root
        self.environ = os.environ if environ is None else environ
        uts = os.uname()
        osrel = os_release(root)
        self.os_release = osrel
        self.base = {
            "t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log", "E": "/etc", "T": "/tmp",
            "V": "/var/tmp", "h": "/root", "u": "root", "U": "0", "g": "root", "G": "0", "s": "/bin/sh",
            "H": uts.nodename, "l": uts.nodename.split(".")[0], "q": uts.nodename, "v": uts.release,
            "a": _arch(uts.machine), "m": _first_line(root, "/etc/machine-id"),
            "b": _read_host("/proc/sys/kernel/random/boot_id").replace("-", ""),
            "o": osrel.get("ID", ""), "w": osrel.get("VERSION_ID", ""), "B": osrel.get("BUILD_ID", ""),
            "W": osrel.get("VARIANT_ID", ""), "A": osrel.get("IMAGE_VERSION", ""), "M": osrel.get("IMAGE_ID", ""),
        }
        self._cmdline = None
        self._capbnd = None

    def table(self, unit_name, path):
        t = dict(self.base)
        t.update(U.name_specifiers(unit_name))
        t["y"] = path or ""
        t["Y"] = (path or "").rpartition("/")[0]
        t["d"] = "/run/credentials/" + unit_name
        return t

    def cmdline(self):
        if self._cmdline is None:
            self._cmdline = _read_host("/proc/cmdline").split()
        return self._cmdline

    def capbnd(self):
        if self._capbnd is None:
            self._capbnd = 0
            for line in _read_host("/proc/self/status").split("\n"):
                if line.startswith("CapBnd:"):
                    self._capbnd = int(line.split()[1], 16)
        return self._capbnd


def _read_host(path):
    try:
        with open(path) as f:
            return f.read(65536).strip()
    except OSError:
        return ""


def _first_line(root, path):
    try:
        return root.read(path, 4096).decode("ascii", "replace").strip().split("\n")[0]
    except OSError:
        return ""


def _arch(machine):
    return {"x86_64": "x86-64", "i686": "x86", "i386": "x86", "aarch64": "arm64", "armv7l": "arm",
            "ppc64le": "ppc64-le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


def os_release(root):
    """KEY=value pairs of the image's /etc/os-release (else /usr/lib/os-release)."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = root.read(path, 65536).decode("utf-8", "replace")
        except OSError:
            continue
        env, _ = M.parse_env_text(text)
        return env
    return {}


# ---------------------------------------------------------------------------------------------

def convert(unit, ctx, template=False):
    """Converted for a Unit (its type decides which sections count)."""
    c = Converted()
    keep = U.INSTANCE_SPECIFIERS if template else ""
    table = ctx.table(unit.name, unit.found.path)
    own = {"service": "Service", "socket": "Socket", "timer": "Timer"}.get(unit.type)
    c.fill = lambda w: U.expand(w, table, keep)
    for a in unit.assigns:
        if a.section == "Install" or a.section.startswith("X-"):
            continue
        if a.section not in ("Unit", own):
            what = "does not belong in a %s unit" % unit.type if a.section in ("Service", "Socket", "Timer") \
                else "is unknown"
            c.warnings.append((a.file, a.line, "section [%s] %s; %s= ignored" % (a.section, what, a.key)))
            continue
        handler = _HANDLERS.get((a.section, a.key))
        try:
            # Command lines and assignments are split into words first, then each word is expanded
            # (a specifier's value may hold spaces or quotes); everything else is expanded whole.
            value = a.value if handler in _WORDWISE else U.expand(a.value, table, keep)
        except ValueError as e:
            c.warnings.append((a.file, a.line, "%s=: %s; ignored" % (a.key, e)))
            continue
        try:
            if handler is not None:
                handler(c, a, value, ctx)
            elif a.key.startswith(("Condition", "Assert")) and a.section == "Unit":
                _condition(c, a, value, ctx)
            elif a.key.startswith("Limit") and a.key[5:] in RLIMITS and a.section == "Service":
                _limit(c, a, value)
            else:
                _unknown(c, a)
        except ValueError as e:
            c.warnings.append((a.file, a.line, "%s=%s: %s; ignored" % (a.key, a.value[:60], e)))
    return c


def _unknown(c, a):
    k = a.key
    if k in _QUIET:
        if k == "DynamicUser" and a.value.strip().lower() in ("yes", "true", "1", "on"):
            c.fields["dynamic_user"] = a.line
        return
    if k.startswith(_SANDBOX_PREFIXES):
        c.warnings.append((a.file, a.line, "%s= ignored (sandboxing: the container is the sandbox)" % k))
    elif k.startswith(_RESOURCE_PREFIXES):
        c.warnings.append((a.file, a.line, "%s= ignored (resource control: the container's limits apply)" % k))
    elif a.section == "Socket" and (("Service", k) in _HANDLERS or k.startswith(("Exec", "Limit"))):
        c.warnings.append((a.file, a.line, "%s= in a socket unit: richinit runs no command for sockets; ignored" % k))
    elif k.startswith(_UNSUPPORTED):
        c.warnings.append((a.file, a.line, "%s= not supported; ignored" % k))
    else:
        c.warnings.append((a.file, a.line, "unknown directive %s= in [%s]; ignored" % (k, a.section)))


# --- handlers --------------------------------------------------------------------------------

def _set(field, parse=lambda v: v):
    def h(c, a, v, ctx):
        c.fields[field] = parse(v) if v != "" else None
    return h


def _flag(field):
    def h(c, a, v, ctx):
        c.fields[field] = U.boolean(v) if v else False
    return h


def _words_into(field, check=None):
    def h(c, a, v, ctx):
        if v == "":
            c.fields[field] = []
            return
        words = U.split_words(v)
        if check:
            for w in words:
                check(w)
        c.fields.setdefault(field, []).extend(words)
    return h


def _time(field, zero_is_none=False):
    def h(c, a, v, ctx):
        t = U.timespan(v) if v else None
        if t is None or (zero_is_none and t == 0):
            t = 0.0
        c.fields[field] = t
    return h


def _dep(key):
    def h(c, a, v, ctx):
        if v == "":
            c.deps[key] = []
            return
        for w in U.split_words(v):
            if not U.valid_name(w):
                c.warnings.append((a.file, a.line, "%s=: %r is not a unit name; ignored" % (key, w)))
                continue
            c.deps[key].append((w, a.line))
    return h


def _exec(key):
    def h(c, a, v, ctx):
        if v == "":
            c.exec[key] = []
            return
        try:
            cmds = U.exec_lines(v)
        except ValueError as e:
            c.errors.append((a.file, a.line, "%s=: %s" % (key, e)))
            return
        try:
            cmds = [(flags, [c.fill(w) for w in argv]) for flags, argv in cmds]
        except ValueError as e:
            c.errors.append((a.file, a.line, "%s=: %s" % (key, e)))
            return
        for flags, argv in cmds:
            c.exec.setdefault(key, []).append((flags, argv, a.line, a.file))
    return h


def _type(c, a, v, ctx):
    if v == "dbus":
        c.warnings.append((a.file, a.line, "Type=dbus runs as Type=simple (no D-Bus name tracking)"))
        v = "simple"
    if v not in M.TYPES:
        raise ValueError("unknown type")
    c.fields["type"] = v


def _restart(c, a, v, ctx):
    v = v or "no"
    if v == "no":
        v = "never"
    if v not in M.RESTARTS:
        raise ValueError("unknown restart policy")
    c.fields["restart"] = v


def _choice(field, choices):
    def h(c, a, v, ctx):
        if v not in choices:
            raise ValueError("expected one of %s" % ", ".join(choices))
        c.fields[field] = v
    return h


def _signal(field):
    def h(c, a, v, ctx):
        c.fields[field] = M.signal_name(M.signal_number(v))
    return h


def _status_list(field):
    def h(c, a, v, ctx):
        if v == "":
            c.fields[field] = []
            return
        out = c.fields.setdefault(field, [])
        for w in U.split_words(v):
            if w.isdigit() and int(w) <= 255:
                out.append(int(w))
            else:
                try:
                    out.append(M.signal_name(M.signal_number(w)))
                except ValueError:
                    c.warnings.append((a.file, a.line, "%s=: %r is neither an exit status nor a signal; ignored"
                                       % (a.key, w)))
    return h


def _environment(c, a, v, ctx):
    if v == "":
        c.fields["environment"] = {}
        return
    env = c.fields.setdefault("environment", {})
    for w in [c.fill(w) for w in U.split_words(v)]:
        key, eq, value = w.partition("=")
        if not eq or not M._identifier(key):
            c.warnings.append((a.file, a.line, "Environment=: %r is not NAME=VALUE; ignored" % w[:60]))
            continue
        env[key] = value


def _env_file(c, a, v, ctx):
    if v == "":
        c.fields["env_files"] = []
        return
    path = v[1:] if v.startswith("-") else v
    if not path.startswith("/"):
        raise ValueError("not an absolute path")
    c.fields.setdefault("env_files", []).append(v)


def _workdir(c, a, v, ctx):
    if v == "":
        c.fields["workdir"] = None
        return
    optional = v.startswith("-")
    path = v[1:] if optional else v
    if path != "~" and not path.startswith("/"):
        raise ValueError("not an absolute path or ~")
    c.fields["workdir"] = path
    c.fields["workdir_optional"] = optional


def _octal(field, hi=0o7777):
    def h(c, a, v, ctx):
        n = int(v, 8)
        if not 0 <= n <= hi:
            raise ValueError("out of range")
        c.fields[field] = n
    return h


def _nice(c, a, v, ctx):
    n = int(v)
    if not -20 <= n <= 19:
        raise ValueError("out of range -20..19")
    c.fields["nice"] = n


def _limit(c, a, v):
    name = a.key[5:]
    soft, _, hard = v.partition(":")
    hard = hard if _ else soft

    def one(x):
        x = x.strip()
        if x == "infinity":
            return None
        if name == "CPU":
            t = U.timespan(x)
            return None if t is None else int(t)
        if name == "RTTIME":
            t = U.timespan(x, 1e-6)
            return None if t is None else int(t * 1e6)
        if name in _RLIMIT_BYTES:
            return U.size(x)
        if name == "NICE" and x[:1] in "+-":
            return 20 - int(x)
        n = int(x)
        if n < 0:
            raise ValueError("negative limit")
        return n
    s, h = one(soft), one(hard)
    if h is not None and (s is None or s > h):
        raise ValueError("soft limit above the hard one")
    c.fields.setdefault("limits", {})[name] = [s, h]


def _directories(c, a, v, ctx):
    kind = _DIR_KEYS[a.key]
    if v == "":
        c.fields[kind + "_dirs"] = []
        return
    for w in U.split_words(v):
        path, colon, _link = w.partition(":")
        if colon:
            c.warnings.append((a.file, a.line, "%s=%s: the symlink part is ignored" % (a.key, w)))
        if path.startswith("/") or ".." in path.split("/") or not path:
            raise ValueError("%r must be a relative path without .." % w)
        c.fields.setdefault(kind + "_dirs", []).append(path)


def _dir_mode(c, a, v, ctx):
    c.fields[_DIR_KEYS[a.key[:-4]] + "_mode"] = int(v, 8)


def _preserve(c, a, v, ctx):
    if v in ("restart",):
        c.fields["runtime_preserve"] = "restart"
    else:
        c.fields["runtime_preserve"] = "yes" if U.boolean(v) else "no"


def _output(field):
    def h(c, a, v, ctx):
        c.fields[field] = (v, a.file, a.line)
    return h


def _private_tmp(c, a, v, ctx):
    c.fields["private_tmp"] = U.boolean(v) if v else False


def _start_limit_burst(c, a, v, ctx):
    c.fields["start_burst"] = int(v)


def _start_limit_interval(c, a, v, ctx):
    c.fields["start_interval"] = U.timespan(v) if v else 10.0


def _timeout_both(c, a, v, ctx):
    _time("ready_timeout", True)(c, a, v, ctx)
    _time("stop_timeout", True)(c, a, v, ctx)


def _user(field):
    def h(c, a, v, ctx):
        if v and not (v.isdigit() or M._identifier(v.replace("-", "_").replace(".", "_"))):
            raise ValueError("not a user or group name")
        c.fields[field] = v or None
    return h


def _names_list(field):
    def h(c, a, v, ctx):
        if v == "":
            c.fields[field] = []
            return
        c.fields.setdefault(field, []).extend(U.split_words(v))
    return h


# --- conditions ------------------------------------------------------------------------------

def _condition(c, a, v, ctx):
    assert_ = a.key.startswith("Assert")
    name = a.key[6:] if assert_ else a.key[9:]
    if v == "":
        c.conditions = [x for x in c.conditions if x[0].assert_ != assert_]
        return
    trigger = v.startswith("|")
    v = v[1:].lstrip() if trigger else v
    negate = v.startswith("!")
    v = v[1:].lstrip() if negate else v
    record = M.Condition(name=name, value=v, negate=negate, trigger=trigger, assert_=assert_)
    if name in _PATH_CONDITIONS:
        if not (v.startswith("/") or name == "PathExistsGlob" and v.startswith("/")):
            raise ValueError("not an absolute path")
        c.conditions.append((record, None, a))
        return
    result = _static(name, v, ctx)
    if result is None:
        c.warnings.append((a.file, a.line, "%s= is not known to richinit; taken as true" % a.key))
        result = True
    c.conditions.append((record, result != negate, a))


def _static(name, v, ctx):
    """A condition's value that cannot change while the container runs; None if unknown."""
    if name == "Virtualization":
        if v in ("container", "yes", "1", "true"):
            return True
        return v in (ctx.environ.get("container", ""),) and bool(v)
    if name == "Architecture":
        return v in (ctx.base["a"], "native")
    if name == "Host":
        return v in (ctx.base["H"], ctx.base["m"])
    if name == "KernelCommandLine":
        words = ctx.cmdline()
        return v in words if "=" in v else any(w == v or w.startswith(v + "=") for w in words)
    if name == "KernelVersion":
        return _compare_version(ctx.base["v"], v)
    if name == "Security":
        return False
    if name == "Capability":
        name = v.upper() if v.upper().startswith("CAP_") else "CAP_" + v.upper()
        n = CAPABILITIES.index(name) if name in CAPABILITIES else None
        return n is not None and bool(ctx.capbnd() >> n & 1)
    if name in ("ACPower", "ControlGroupController"):
        return True
    if name in ("NeedsUpdate", "FirstBoot", "Credential"):
        return False
    if name == "User":
        return v in ("root", "0", "@system")
    if name == "Group":
        return v in ("root", "0")
    if name == "Environment":
        key, eq, val = v.partition("=")
        return key in ctx.environ and (not eq or ctx.environ[key] == val)
    if name == "OSRelease":
        for op in ("!=", "<=", ">=", "=", "<", ">"):
            key, found, val = v.partition(op)
            if found:
                have = ctx.os_release.get(key.strip(), "")
                if op in ("=", "!="):
                    return (have == val.strip()) == (op == "=")
                return _compare_version(have, op + val.strip())
        return False
    if name in ("Memory", "CPUs", "CPUFeature", "MemoryPressure", "CPUPressure", "IOPressure"):
        return True
    return None


def _compare_version(have, expr):
    expr = expr.strip()
    for op in (">=", "<=", "!=", "=", ">", "<"):
        if expr.startswith(op):
            want = expr[len(op):].strip()
            a, b = _vkey(have), _vkey(want)
            return {">=": a >= b, "<=": a <= b, "!=": a != b, "=": a == b, ">": a > b, "<": a < b}[op]
    return _glob_simple(expr, have)


def _vkey(s):
    out, num = [], ""
    for ch in s + ".":
        if ch.isdigit():
            num += ch
        else:
            if num:
                out.append(int(num))
                num = ""
    return out


def _glob_simple(pattern, s):
    from richinit.services.units import _glob
    return _glob(pattern, s)


_HANDLERS = {
    ("Unit", "Description"): _set("description"),
    ("Service", "Type"): _type,
    ("Service", "ExecStart"): _exec("ExecStart"),
    ("Service", "ExecStartPre"): _exec("ExecStartPre"),
    ("Service", "ExecStartPost"): _exec("ExecStartPost"),
    ("Service", "ExecCondition"): _exec("ExecCondition"),
    ("Service", "ExecReload"): _exec("ExecReload"),
    ("Service", "ExecStop"): _exec("ExecStop"),
    ("Service", "ExecStopPost"): _exec("ExecStopPost"),
    ("Service", "PIDFile"): _set("pidfile"),
    ("Service", "RemainAfterExit"): _flag("remain_after_exit"),
    ("Service", "Restart"): _restart,
    ("Service", "RestartSec"): _time("restart_sec"),
    ("Service", "RestartPreventExitStatus"): _status_list("restart_prevent"),
    ("Service", "RestartForceExitStatus"): _status_list("restart_force"),
    ("Service", "SuccessExitStatus"): _status_list("success_status"),
    ("Service", "TimeoutStartSec"): _time("ready_timeout", True),
    ("Service", "TimeoutStopSec"): _time("stop_timeout", True),
    ("Service", "TimeoutSec"): _timeout_both,
    ("Service", "TimeoutAbortSec"): lambda c, a, v, ctx: None,
    ("Service", "WatchdogSec"): _time("watchdog"),
    ("Service", "NotifyAccess"): _choice("notify_access", M.NOTIFY_ACCESS),
    ("Service", "PrivateTmp"): _private_tmp,
    ("Service", "StartLimitBurst"): _start_limit_burst,
    ("Service", "StartLimitInterval"): _start_limit_interval,
    ("Service", "StartLimitIntervalSec"): _start_limit_interval,
    ("Unit", "StartLimitBurst"): _start_limit_burst,
    ("Unit", "StartLimitIntervalSec"): _start_limit_interval,
    ("Unit", "StartLimitInterval"): _start_limit_interval,
    ("Socket", "Service"): _set("service"),
    ("Socket", "Accept"): _flag("accept"),
    ("Socket", "SocketMode"): _octal("mode"),
    ("Socket", "SocketUser"): _user("user"),
    ("Socket", "SocketGroup"): _user("group"),
    ("Socket", "FileDescriptorName"): _set("fd_name"),
    ("Socket", "Backlog"): _set("backlog", int),
    ("Socket", "MaxConnections"): _set("max_connections", int),
    ("Socket", "RemoveOnStop"): _flag("remove_on_stop"),
    ("Timer", "Unit"): _set("service"),
    ("Timer", "OnBootSec"): _time("on_boot"),
    ("Timer", "OnStartupSec"): _time("on_startup"),
    ("Timer", "OnActiveSec"): _time("on_active"),
    ("Timer", "OnUnitActiveSec"): _time("on_unit_active"),
    ("Timer", "OnUnitInactiveSec"): _time("on_unit_inactive"),
    ("Timer", "Persistent"): _flag("persistent"),
    ("Timer", "RandomizedDelaySec"): _time("randomized_delay"),
    ("Timer", "AccuracySec"): _time("accuracy"),
}
for _k in _DEPS:
    _HANDLERS[("Unit", _k)] = _dep(_k)
for _k, _f in (("User", "user"), ("Group", "group")):
    _HANDLERS[("Service", _k)] = _user(_f)
_HANDLERS[("Service", "SupplementaryGroups")] = _names_list("supplementary_groups")
_HANDLERS[("Service", "Environment")] = _environment
_HANDLERS[("Service", "EnvironmentFile")] = _env_file
_HANDLERS[("Service", "PassEnvironment")] = _names_list("pass_env")
_HANDLERS[("Service", "UnsetEnvironment")] = _names_list("unset_env")
_HANDLERS[("Service", "WorkingDirectory")] = _workdir
_HANDLERS[("Service", "UMask")] = _octal("umask", 0o777)
_HANDLERS[("Service", "Nice")] = _nice
_HANDLERS[("Service", "StandardInput")] = _output("stdin")
_HANDLERS[("Service", "StandardOutput")] = _output("stdout")
_HANDLERS[("Service", "StandardError")] = _output("stderr")
_HANDLERS[("Service", "SyslogIdentifier")] = _set("syslog_identifier")
_HANDLERS[("Service", "KillMode")] = _choice("kill_mode", M.KILL_MODES)
_HANDLERS[("Service", "KillSignal")] = _signal("stop_signal")
_HANDLERS[("Service", "SendSIGKILL")] = _flag("send_sigkill")
_HANDLERS[("Service", "SendSIGHUP")] = _flag("send_sighup")
for _d in _DIR_KEYS:
    _HANDLERS[("Service", _d)] = _directories
    _HANDLERS[("Service", _d + "Mode")] = _dir_mode
_HANDLERS[("Service", "RuntimeDirectoryPreserve")] = _preserve
_HANDLERS[("Service", "ReloadSignal")] = _signal("reload_signal")
_WORDWISE = frozenset([_HANDLERS[("Service", "Environment")]] +
                      [h for (sec, key), h in _HANDLERS.items() if key.startswith("Exec")])


def _listen(kind):
    def h(c, a, v, ctx):
        if v == "":
            c.listen = []
            return
        addr = v.strip()
        if kind == "fifo":
            if not addr.startswith("/"):
                raise ValueError("a FIFO needs an absolute path")
        elif not (addr.startswith(("/", "@", "[")) or addr.replace(".", "").replace(":", "").isdigit()
                  or ":" in addr and addr.rpartition(":")[2].isdigit()):
            raise ValueError("unsupported address (richinit binds PORT, IP:PORT, [IPv6]:PORT, /path, @name)")
        c.listen.append(M.Listen(kind=kind, address=addr))
    return h


def _calendar(c, a, v, ctx):
    if v == "":
        c.calendar = []
        return
    from richinit import calendar
    c.calendar.append(calendar.normalize(v))  # ValueError: a warning, the expression dropped


for _k, _kind in (("ListenStream", "stream"), ("ListenDatagram", "dgram"), ("ListenSequentialPacket", "seqpacket"),
                  ("ListenFIFO", "fifo")):
    _HANDLERS[("Socket", _k)] = _listen(_kind)
_HANDLERS[("Timer", "OnCalendar")] = _calendar

CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE")
