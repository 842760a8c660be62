"""The container's environment, saved at boot for ssh logins and cron jobs.

PID 1 calls `boot()` once (it imports this module only then: it is not lean).
`save(env, root)` writes, all atomically (temp file + rename):
- ROOT/run/richinit/environment: `export NAME='value'` lines (POSIX-shell quoted), the
  file our cron loads and /etc/profile.d/richinit-env.sh sources;
- my_init's layout, when ROOT/etc is writable: /etc/container_environment/NAME (value
  as is, no newline), /etc/container_environment.sh and .json, so images written for
  phusion/baseimage keep working.

Secrets: container environments routinely carry passwords and tokens (`-e DB_PASSWORD=`).
A 0644 file would hand them to every account in the container, including a compromised
www-data. So we follow my_init: files 0640 owned by root and the group `docker_env`
(if the image defines it, else root's group), the directory 0700. Root logins and
root's cron jobs see everything; another user sees it if an admin adds them to
docker_env. Cron applies the same rule per job (`readable_by`), so cron and ssh agree.

Like my_init, variables an image ships as files in /etc/container_environment/ are
imported first; the container's real environment overrides them.

Only per-process or per-session variables are left out (see EXCLUDED): a login or a
job gets its own HOME, USER, SHELL, TERM from sshd/cron, and LISTEN_*/NOTIFY_SOCKET
describe fds and sockets of PID 1 that nobody else has.
"""

import os

from osbase import standin
from richinit.envfile import RUN_FILE, readable_by  # noqa: F401 (one reader, shared with cron)

ENV_DIR = "etc/container_environment"
ENV_SH = "etc/container_environment.sh"
ENV_JSON = "etc/container_environment.json"
PROFILE_SNIPPET = "etc/profile.d/richinit-env.sh"
MODE = 0o640
GROUP = "docker_env"

EXCLUDED = frozenset({
    "HOME", "PWD", "OLDPWD", "SHLVL", "_", "TERM", "USER", "LOGNAME", "SHELL", "MAIL",
    "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC",
    "INVOCATION_ID", "JOURNAL_STREAM", "container_uuid",
})
EXCLUDED_PREFIXES = ("RICHINIT_",)
# No re, shlex or json package here: this runs in a child on every boot, before any service
# starts, and those imports would cost it more than the work (~10 ms here).
_NAME_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NAME_REST = _NAME_FIRST | frozenset("0123456789")
_SHELL_SAFE = _NAME_REST | frozenset("@%+=:,./-")  # what shlex.quote leaves unquoted


def _is_shell_name(name):
    return bool(name) and name[0] in _NAME_FIRST and all(c in _NAME_REST for c in name)


def _is_file_name(name):
    """One path component (a file name in the my_init directory)."""
    return bool(name) and "/" not in name and "\0" not in name and name not in (".", "..")


def shell_quote(value):
    """shlex.quote: as is when it holds only safe characters, else single-quoted."""
    if value and all(c in _SHELL_SAFE for c in value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"

SNIPPET = """\
# Installed by richinit: the container's environment for login shells.
# Readable by root and the docker_env group (it may hold secrets).
if [ -r /run/richinit/environment ]; then
    . /run/richinit/environment
fi
"""


def initial(proc="/proc", pid="self"):
    """The environment process `pid` (default: this one) was started with, from /proc/PID/environ.

    os.environ is not it: Python's locale coercion (PEP 538) adds LC_CTYPE=C.UTF-8 to
    os.environ at start-up, a variable the container never had. Falls back to os.environ
    when /proc is not there.
    """
    try:
        with open(os.path.join(proc, str(pid), "environ"), "rb") as f:
            raw = f.read()
    except OSError:
        return dict(os.environ)
    env = {}
    for item in raw.split(b"\0"):
        name, eq, value = item.partition(b"=")
        if eq and name:
            env.setdefault(name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
    return env


def filtered(env):
    """Drop per-process variables and names no file or shell could carry."""
    return {k: v for k, v in env.items()
            if k not in EXCLUDED and not k.startswith(EXCLUDED_PREFIXES) and k and "=" not in k
            and "\0" not in k and "\0" not in v}


def to_shell(env):
    """`export NAME='value'` lines; names that are not shell identifiers are skipped."""
    return "".join("export %s=%s\n" % (k, shell_quote(v)) for k, v in sorted(env.items())
                   if _is_shell_name(k))


def parse_shell(text):
    """The inverse of to_shell, without running a shell: a sequence of `export NAME=value`."""
    import shlex  # tests and tools only, never on the boot path
    env = {}
    words = shlex.split(text, comments=True, posix=True)
    i = 0
    while i < len(words):
        w = words[i]
        if w == "export":
            i += 1
            continue
        name, eq, value = w.partition("=")
        if not eq or not _is_shell_name(name):
            raise ValueError("not NAME=value: %r" % w[:60])
        env[name] = value
        i += 1
    return env


def _group_id(root, name):
    try:
        with open(os.path.join(root, "etc/group"), encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 3 and parts[0] == name and parts[2].isdigit():
                    return int(parts[2])
    except OSError:
        pass
    return 0


def _write_atomic(path, data, mode, gid):
    """Write a sibling temp file, fix mode/owner, rename over `path` (never follows a link at path)."""
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        if os.geteuid() == 0:
            os.fchown(fd, 0, gid)
        os.write(fd, data.encode("utf-8", "surrogateescape"))
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)


def import_dir(root="/"):
    """Variables an image ships as /etc/container_environment/NAME files (my_init convention)."""
    d = os.path.join(root, ENV_DIR)
    env = {}
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return env
    for name in names:
        try:
            fd = os.open(os.path.join(d, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            with os.fdopen(fd, "rb") as f:
                value = f.read(1 << 20).decode("utf-8", "surrogateescape")
        except OSError:
            continue
        # my_init strips one trailing newline: `echo v > FILE` is how images write them.
        env[name] = value[:-1] if value.endswith("\n") else value
    return env


def save(env, root="/"):
    """Save `env` (the container's, as PID 1 received it). Returns a list of notes (skipped parts)."""
    notes = []
    merged = filtered(import_dir(root))
    merged.update(filtered(env))
    gid = _group_id(root, GROUP)
    run_dir = os.path.join(root, os.path.dirname(RUN_FILE))
    os.makedirs(run_dir, mode=0o755, exist_ok=True)
    shell_text = to_shell(merged)
    _write_atomic(os.path.join(root, RUN_FILE), shell_text, MODE, gid)
    try:
        _save_my_init(merged, root, shell_text, gid)
    except OSError as e:
        notes.append("/%s not written (%s): my_init-style scripts will not see the environment"
                     % (ENV_DIR, e.strerror or e))
    try:
        _save_etc_environment(merged, root, gid)
    except OSError as e:
        notes.append("/etc/environment not updated (%s): non-login ssh sessions and PAM cron jobs "
                     "will not see the environment" % (e.strerror or e))
    return notes


# /etc/environment is read by pam_env for every PAM session: sshd's (login shells or not) and
# Debian cron's jobs. Our block replaces an earlier boot's; the image's own lines stay.
BLOCK_BEGIN = "# BEGIN richinit: the container's environment, for pam_env (ssh sessions, cron jobs)\n"
BLOCK_END = "# END richinit\n"


def to_pam_env(env):
    """pam_env's format: KEY="value", one pair of quotes stripped, nothing expanded; no line breaks."""
    return "".join('%s="%s"\n' % (k, v) for k, v in sorted(env.items())
                   if _is_shell_name(k) and "\n" not in v and "\r" not in v and len(k) + len(v) < 7990)


def _save_etc_environment(env, root, gid):
    path = os.path.join(root, "etc/environment")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, encoding="utf-8", errors="surrogateescape") as f:
            old = f.read(1 << 20)
    except FileNotFoundError:
        old = ""
    kept, inside = [], False
    for line in old.splitlines(keepends=True):
        if line == BLOCK_BEGIN:
            inside = True
        elif inside and line == BLOCK_END:
            inside = False
        elif not inside:
            kept.append(line)
    text = "".join(kept)
    if text and not text.endswith("\n"):
        text += "\n"
    # 0640 like the other copies (secrets): pam_env reads it as root.
    _write_atomic(path, text + BLOCK_BEGIN + to_pam_env(env) + BLOCK_END, MODE, gid)


def _save_my_init(env, root, shell_text, gid):
    d = os.path.join(root, ENV_DIR)
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        if os.path.islink(d) or not os.path.isdir(d):
            raise OSError(20, "%s is not a directory" % d) from None
    os.chmod(d, 0o700)
    for name in os.listdir(d):  # stale entries of an earlier boot (or the image's, re-written below)
        if name not in env:
            try:
                os.unlink(os.path.join(d, name))
            except IsADirectoryError:
                pass
    for name, value in env.items():
        if _is_file_name(name):
            _write_atomic(os.path.join(d, name), value, 0o600, 0)
    _write_atomic(os.path.join(root, ENV_SH), shell_text, MODE, gid)
    _write_atomic(os.path.join(root, ENV_JSON), standin.json_dumps(env, sort_keys=True), MODE, gid)


def install_profile_snippet(root="/"):
    """Make login shells load the saved environment; True if installed (needs /etc/profile.d)."""
    d = os.path.join(root, os.path.dirname(PROFILE_SNIPPET))
    if not os.path.isdir(d):
        return False
    _write_atomic(os.path.join(root, PROFILE_SNIPPET), SNIPPET, 0o644, 0)
    return True


def boot(root="/", proc="/proc", pid="self"):
    """What PID 1 calls once at boot: save the environment it was started with, install the
    login snippet. Returns notes for the log; never raises for a read-only or odd image."""
    notes = []
    try:
        notes += save(initial(proc, pid), root)
    except OSError as e:
        notes.append("environment not saved for logins and cron: %s" % e)
    try:
        install_profile_snippet(root)
    except OSError as e:
        notes.append("/%s not installed: %s" % (PROFILE_SNIPPET, e))
    return notes


def load(path):
    """The saved environment as a dict; {} if the file does not exist (see richinit.envfile)."""
    from richinit import envfile
    return envfile.load(path)


def save_for(pid):
    """What PID 1's child (richinit.spawn.spawn_call) runs at boot: boot(pid=PID), notes on stderr."""
    for note in boot(pid=str(pid)):
        os.write(2, ("richinit: %s\n" % note).encode("utf-8", "replace"))
    return 0


def main(argv=None):
    """`python -m richinit.environ --from-pid PID`: the same as save_for(PID), in a process of its
    own. Notes go to stderr; exit 0 regardless."""
    import sys
    args = sys.argv[1:] if argv is None else argv
    pid = args[1] if len(args) == 2 and args[0] == "--from-pid" and args[1].isdigit() else None
    if pid is None:
        sys.stderr.write("usage: python -m richinit.environ --from-pid PID\n")
        return 2
    for note in boot(pid=pid):
        sys.stderr.write("richinit: %s\n" % note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
