"""What a systemd unit asks of a command's launch: expansion, environment, conditions, directories,
and the setup the spawned child does before exec (umask, nice, limits, PrivateTmp).

Plain string and os code (no re, no shlex): it runs in PID 1 at every start. `child_setup` runs
in the forked child only, so what it imports (resource, osbase.libc) never reaches PID 1.
"""

import os

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DIRECTORY_BASES = {"runtime": "/run", "state": "/var/lib", "cache": "/var/cache", "logs": "/var/log",
                   "configuration": "/etc"}
DIRECTORY_VARS = {"runtime": "RUNTIME_DIRECTORY", "state": "STATE_DIRECTORY", "cache": "CACHE_DIRECTORY",
                  "logs": "LOGS_DIRECTORY", "configuration": "CONFIGURATION_DIRECTORY"}


# ---- $VAR / ${VAR} (systemd.service(5), "COMMAND LINES") --------------------------------------

def _is_name(text):
    return bool(text) and (text[0].isalpha() or text[0] == "_") and text.isascii() \
        and all(c.isalnum() or c == "_" for c in text)


def _braces(word, env):
    """${VAR} anywhere in a word replaced by its value (unset: empty); "$$" is a literal "$"."""
    if "$" not in word:
        return word
    out, i, n = [], 0, len(word)
    while i < n:
        c = word[i]
        if c == "$" and i + 1 < n and word[i + 1] == "$":
            out.append("$")
            i += 2
        elif c == "$" and i + 1 < n and word[i + 1] == "{":
            end = word.find("}", i + 2)
            if end < 0 or not _is_name(word[i + 2:end]):
                out.append(c)
                i += 1
                continue
            out.append(env.get(word[i + 2:end], ""))
            i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand(argv, env):
    """A command line's words after systemd's expansion: a word starting with `$NAME` (not `${`,
    not `$$`) is the value of the variable named by the rest of the word, split on white space
    (zero or more words; unset or not a name: none); `${VAR}` is replaced inside its word (one
    word); `$$` is a "$". argv[0] (the program) always stays one word."""
    out = []
    for i, word in enumerate(argv):
        if i > 0 and len(word) > 1 and word[0] == "$" and word[1] not in "{$":
            out.extend(env.get(word[1:], "").split())
        else:
            out.append(_braces(word, env))
    return out


# ---- environment ------------------------------------------------------------------------------

def unit_env(spec, manager_env, account, file_env):
    """A unit's environment as systemd builds it: PATH, the PassEnvironment= names from PID 1's
    environment, USER/LOGNAME/HOME/SHELL for User=, the *_DIRECTORY variables, Environment=, then
    EnvironmentFile= (later wins), minus UnsetEnvironment= (NAME, or NAME=VALUE for that value)."""
    env = {"PATH": DEFAULT_PATH}
    for key in ("LANG", "TZ"):
        if key in manager_env:
            env[key] = manager_env[key]
    for name in spec.pass_env:
        if name in manager_env:
            env[name] = manager_env[name]
    if account is not None:
        env.update(account)
    kinds = {}
    for d in spec.directories:
        kinds.setdefault(d.kind, []).append(os.path.join(DIRECTORY_BASES.get(d.kind, "/run"), d.path))
    for kind, paths in kinds.items():
        env[DIRECTORY_VARS.get(kind, "RUNTIME_DIRECTORY")] = ":".join(paths)
    env.update({k: str(v) for k, v in spec.environment.items()})
    env.update(file_env)
    for item in spec.unset_env:
        name, eq, value = item.partition("=")
        if not eq or env.get(name) == value:
            env.pop(name, None)
    return env


# ---- Condition*/Assert* -----------------------------------------------------------------------

def _fnmatch(name, pattern):
    """Shell pattern with * and ? (no brackets), for ConditionPathExistsGlob= without re."""
    if not pattern:
        return not name
    if pattern[0] == "*":
        return any(_fnmatch(name[i:], pattern[1:]) for i in range(len(name) + 1))
    return bool(name) and (pattern[0] == "?" or pattern[0] == name[0]) and _fnmatch(name[1:], pattern[1:])


def _glob_exists(pattern):
    head, _, tail = pattern.rpartition("/")
    if "*" not in head and "?" not in head:
        try:
            return any(_fnmatch(n, tail) for n in os.listdir(head or "/"))
        except OSError:
            return False
    return False


def _read_only(path):
    try:
        return bool(os.statvfs(path).f_flag & 1)  # ST_RDONLY
    except OSError:
        return False


def _check_one(c, env):
    name, value = c.name, c.value
    if name == "PathExists":
        return os.path.lexists(value)
    if name == "PathExistsGlob":
        return _glob_exists(value)
    if name == "PathIsDirectory":
        return os.path.isdir(value)
    if name == "PathIsSymbolicLink":
        return os.path.islink(value)
    if name == "PathIsMountPoint":
        return os.path.ismount(value)
    if name == "PathIsReadWrite":
        return os.path.exists(value) and not _read_only(value)
    if name == "DirectoryNotEmpty":
        try:
            return os.path.isdir(value) and bool(os.listdir(value))
        except OSError:
            return False
    if name == "FileNotEmpty":
        try:
            return os.path.isfile(value) and os.path.getsize(value) > 0
        except OSError:
            return False
    if name == "FileIsExecutable":
        return os.path.isfile(value) and os.access(value, os.X_OK)
    if name == "Virtualization":
        return value in ("yes", "container", "1", "true") or value == env.get("container")
    if name == "Environment":
        key, eq, val = value.partition("=")
        return (key in env) if not eq else env.get(key) == val
    if name == "Host":
        try:
            return os.uname().nodename == value
        except OSError:
            return False
    if name == "User":
        return value in ("root", "0", "@system")
    if name in ("FirstBoot", "NeedsUpdate"):
        return value in ("no", "false", "0")
    return True  # what the loader left and PID 1 cannot judge (it warned at load): true


def check_conditions(conditions, env=None):
    """None when the start may go on, else (message, is_assert) for the first failure. "|" ones
    (trigger): at least one of them must hold; the others: every one."""
    env = os.environ if env is None else env
    for asserts in (True, False):
        group = [c for c in conditions if bool(c.assert_) == asserts]
        triggers = [c for c in group if c.trigger]
        for c in group:
            if c.trigger:
                continue
            if _check_one(c, env) == c.negate:
                return _describe(c), asserts
        if triggers and not any(_check_one(c, env) != c.negate for c in triggers):
            return " | ".join(_describe(c) for c in triggers), asserts
    return None


def _describe(c):
    return "%s%s=%s%s%s" % ("Assert" if c.assert_ else "Condition", c.name, "|" if c.trigger else "",
                            "!" if c.negate else "", c.value)


# ---- directories --------------------------------------------------------------------------------

def make_directories(directories, uid, gid):
    """Create RuntimeDirectory= and kin with their modes, owned by the service's user (the
    configuration directory stays root's, as systemd does). Returns error lines."""
    errors = []
    for d in directories:
        path = os.path.join(DIRECTORY_BASES.get(d.kind, "/run"), d.path)
        try:
            os.makedirs(path, mode=0o755, exist_ok=True)
            if d.kind != "configuration":
                os.chown(path, uid, gid)
            os.chmod(path, d.mode)
        except OSError as e:
            errors.append("%s: %s" % (path, e.strerror or e))
    return errors


def runtime_paths(directories):
    return [os.path.join("/run", d.path) for d in directories if d.kind == "runtime" and d.path]


def remove_paths(paths):
    """In a forked child: remove the runtime directories of a stopped service."""
    from osbase.safepath import remove_tree
    for p in paths:
        try:
            remove_tree(p)
        except OSError:
            pass
    return 0


# ---- in the child, before exec ------------------------------------------------------------------

RLIMITS = ("CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE", "MEMLOCK", "AS", "LOCKS",
           "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME")


def private_tmp():
    """A mount namespace of its own with empty tmpfs on /tmp and /var/tmp (PrivateTmp=)."""
    from osbase import libc
    libc.unshare(0x00020000)                           # CLONE_NEWNS
    libc.mount("none", "/", None, 0x4000 | 0x40000)    # MS_REC | MS_PRIVATE
    for path in ("/tmp", "/var/tmp"):
        if os.path.isdir(path):
            libc.mount("tmpfs", path, "tmpfs", 0x2 | 0x4, "mode=1777")  # nosuid, nodev


def probe_private_tmp():
    """In a throwaway child: can this container give a service its own /tmp? exit 0 if so."""
    try:
        private_tmp()
        return 0
    except (OSError, AttributeError):
        return 1


def child_setup(umask, nice, limits, with_private_tmp):
    """The function spawn runs in the child before the user switch and exec: UMask=, Nice=,
    Limit*= (setrlimit; None is infinity; above the hard limit the container allows, clamped to it
    as systemd's setrlimit_closest does), PrivateTmp=. A negative Nice= the container refuses is
    said on the service's stderr, not fatal."""
    def setup():
        if with_private_tmp:
            private_tmp()
        if umask is not None:
            os.umask(umask)
        if nice is not None:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, nice)
            except OSError as e:  # a negative Nice= without CAP_SYS_NICE
                os.write(2, ("richinit: Nice=%d: %s\n" % (nice, e.strerror)).encode())
        if limits:
            import resource
            for name, (soft, hard) in limits.items():
                which = getattr(resource, "RLIMIT_" + name, None)
                if which is None:
                    continue
                inf = resource.RLIM_INFINITY
                want = (inf if soft is None else soft, inf if hard is None else hard)
                try:
                    resource.setrlimit(which, want)
                except (OSError, ValueError):
                    # systemd's setrlimit_closest: without CAP_SYS_RESOURCE the hard limit cannot be
                    # raised; take the closest the container allows instead of refusing the start.
                    top = resource.getrlimit(which)[1]
                    resource.setrlimit(which, tuple(v if top == inf or (v != inf and v <= top) else top
                                                    for v in want))
    return setup
