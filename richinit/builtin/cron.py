"""Built-in cron: runs the image's crontabs when the image has no cron daemon.

    python -m richinit.builtin.cron [--root /] [--syslog /dev/log] [--stop-timeout 5]
        [--once-at 'YYYY-mm-dd HH:MM'] [--clock-start 'YYYY-mm-dd HH:MM' --minute-seconds S]

Reads ROOT/etc/crontab and ROOT/etc/cron.d/* (with a user field), and the user crontabs
ROOT/var/spool/cron/crontabs/USER (Debian), ROOT/var/spool/cron/USER (cronie) and
ROOT/etc/crontabs/USER (busybox). Syntax: see cronspec.py.

- Files are checked like Vixie cron does: a regular file, not writable by group or
  others, owned by root (system tables) or by the user or root (user tables); else the
  file is skipped with a logged reason. cron.d names starting with `.`, ending in `~`
  or left by package managers (.dpkg-*, .rpm*, .ucf-*, .swp) are ignored.
- Each job: /bin/sh -c (or the crontab's SHELL) as its user (setgid, initgroups from
  ROOT/etc/group, setuid, from ROOT/etc/passwd), in its home (or /), in its own session,
  with the saved container environment (richinit.environ; only for users allowed to
  read that file, the same rule ssh logins get), then HOME LOGNAME USER SHELL, PATH
  (container's, else /usr/bin:/bin), then the crontab's assignments (LOGNAME and USER
  cannot be overridden, MAILTO is ignored: output goes to syslog instead of mail).
- Logging to syslog (facility cron) through the --syslog socket, or stderr when no
  syslog listens: `(user) CMD (command)`, each output line `(user) OUT (...)`, capped,
  and `(user) END (command) exit N` / `killed by SIGNAME`. Bad crontab lines are logged
  as FILE:LINE: reason and the other lines still run.
- Timing: sleeps until the next minute boundary (no polling); at each tick the files'
  mtimes are compared and the tables re-read if anything changed (SIGHUP forces it).
  A forward clock jump of up to an hour runs what was missed, each entry once.
- @reboot entries run once per boot of the container: a marker in ROOT/run/richinit/
  holding the boot's identity (host boot id + PID 1's start time) keeps a restarted
  cron from running them again, and does not stop a restarted container.
- Stop (SIGTERM/SIGINT): running jobs get SIGTERM (their process group), SIGKILL after
  --stop-timeout, their END is logged, exit 0.
- Test clocks: --once-at runs the entries due at that minute, waits for them, exits.
  --clock-start/--minute-seconds run the real loop on a clock that starts at the given
  time and makes a minute last S real seconds.

Lean, as PID 1 is (one of these runs in every container): `_signal`, `_socket`,
`select.epoll` and richinit.spawn (fork + exec, then waitpid on the jobs' pids) rather than
signal/socket/selectors/subprocess; options, times and the saved environment are parsed by
hand rather than with argparse, time.strptime (re, locale, datetime) or shlex.
tests/test_cron_builtin_lean.py checks that none of those creep back.
"""

import _signal as signal  # not the enum-heavy package: see richinit/signals.py
import _socket as socket  # not socket.py (enum, selectors): see richinit/control.py
import os
import select
import stat
import sys
import time

from richinit import envfile
from richinit.builtin import cronspec
from richinit.signals import NAMES as SIGNAL_NAMES
from richinit.spawn import ExecError, spawn

LOG_FACILITY = 9  # cron
INFO, ERR = 6, 3
MAX_OUTPUT_LINES = 100
MAX_OUTPUT_BYTES = 16384
MAX_LINE_BYTES = 2048
MAX_TABLE_BYTES = 1 << 20
CATCH_UP_MINUTES = 60
DEFAULT_PATH = "/usr/bin:/bin"
# richinit.environ.RUN_FILE: that module (json, re, shlex) is what PID 1's boot child runs, not us.
_IGNORED_SUFFIXES = ("~", ".swp", ".rpmsave", ".rpmnew", ".rpmorig", ".bak")
_IGNORED_INFIXES = (".dpkg-", ".ucf-")


class Paths:
    def __init__(self, root="/", syslog=None, env_file=None):
        j = lambda p: os.path.join(root, p)  # noqa: E731
        self.root = root
        self.crontab = j("etc/crontab")
        self.cron_d = j("etc/cron.d")
        self.user_dirs = [j("var/spool/cron/crontabs"), j("var/spool/cron"), j("etc/crontabs")]
        self.passwd = j("etc/passwd")
        self.group = j("etc/group")
        self.env_file = env_file or j(envfile.RUN_FILE)
        self.reboot_marker = j("run/richinit/cron-reboot-done")
        self.syslog = syslog or j("dev/log")


# ---------------------------------------------------------------- logging


class Logger:
    """Syslog client over a datagram socket; stderr when nobody listens.

    /dev/log queues only net.unix.max_dgram_qlen (10) datagrams, so a burst of job output
    outruns any syslogd: sends block, for at most SEND_TIMEOUT. A syslogd that stays stuck
    that long is skipped (stderr) for STALL_BACKOFF seconds rather than stalling cron.
    """

    SEND_TIMEOUT = 0.5
    STALL_BACKOFF = 5.0

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.stalled_until = 0.0

    def log(self, severity, msg, pid=None):
        tag = "CRON[%d]" % (pid or os.getpid())
        stamp = time.strftime("%b %e %H:%M:%S")
        data = ("<%d>%s %s: %s" % (LOG_FACILITY * 8 + severity, stamp, tag, msg)).encode("utf-8", "replace")
        if self._send(data):
            return
        try:
            os.write(2, ("richinit-cron: %s: %s\n" % (tag, msg)).encode("utf-8", "replace"))
        except OSError:
            pass

    def _send(self, data):
        if time.monotonic() < self.stalled_until:
            return False
        for _ in range(2):  # a syslogd restarted since the last message: reconnect once
            if self.sock is None:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0)
                try:
                    s.connect(self.path)
                except OSError:
                    s.close()
                    return False
                s.settimeout(self.SEND_TIMEOUT)
                self.sock = s
            try:
                self.sock.send(data)
                return True
            except TimeoutError:
                self.stalled_until = time.monotonic() + self.STALL_BACKOFF
                return False
            except OSError:
                self.sock.close()
                self.sock = None
        return False

    def info(self, msg, pid=None):
        self.log(INFO, msg, pid)

    def error(self, msg, pid=None):
        self.log(ERR, msg, pid)


# ---------------------------------------------------------------- users


class User:
    __slots__ = ("name", "uid", "gid", "home", "groups")

    def __init__(self, name, uid, gid, home, groups):
        self.name, self.uid, self.gid, self.home, self.groups = name, uid, gid, home, groups


def read_users(passwd_path, group_path):
    """ROOT/etc/passwd and group -> {name: User} (supplementary groups from the member lists)."""
    users, members = {}, {}
    try:
        with open(group_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 4 and parts[2].isdigit():
                    for m in filter(None, parts[3].split(",")):
                        members.setdefault(m, []).append(int(parts[2]))
    except OSError:
        pass
    try:
        with open(passwd_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 7 and parts[2].isdigit() and parts[3].isdigit() and parts[0] not in users:
                    gid = int(parts[3])
                    groups = [gid] + [g for g in members.get(parts[0], []) if g != gid]
                    users[parts[0]] = User(parts[0], int(parts[2]), gid, parts[5] or "/", groups)
    except OSError:
        pass
    return users


# ---------------------------------------------------------------- tables


def _ignored_name(name):
    return name.startswith(".") or name.endswith(_IGNORED_SUFFIXES) or any(i in name for i in _IGNORED_INFIXES)


def _read_table(path, allowed_owners):
    """Contents of a crontab file if it is safe to obey; raises ValueError with the reason."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise ValueError("cannot open: %s" % e.strerror) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_uid not in allowed_owners:
            raise ValueError("owned by uid %d, not by %s: skipped"
                             % (st.st_uid, " or ".join("uid %d" % u for u in sorted(allowed_owners))))
        if st.st_mode & 0o022:
            raise ValueError("writable by group or others (mode %04o): skipped" % (st.st_mode & 0o7777))
        data = os.read(fd, MAX_TABLE_BYTES + 1)
        if len(data) > MAX_TABLE_BYTES:
            raise ValueError("larger than %d bytes: skipped" % MAX_TABLE_BYTES)
        return data.decode("utf-8", "replace")
    finally:
        os.close(fd)


def table_files(paths):
    """[(path, user or None)] in reading order: system tables first, then user tables."""
    out = [(paths.crontab, None)]
    try:
        names = sorted(os.listdir(paths.cron_d))
    except OSError:
        names = []
    out += [(os.path.join(paths.cron_d, n), None) for n in names if not _ignored_name(n)]
    for d in paths.user_dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for n in names:
            p = os.path.join(d, n)
            if not _ignored_name(n) and not os.path.isdir(p):
                out.append((p, n))
    return out


def load_tables(paths, users):
    """-> (entries, errors). A missing /etc/crontab is not an error; a bad file or line is."""
    entries, errors = [], []
    me = os.geteuid()
    for path, user in table_files(paths):
        if user is not None and user not in users:
            errors.append("%s: no user %r in %s: skipped" % (path, user, paths.passwd))
            continue
        owners = {0, me} if user is None else {0, me, users[user].uid}
        try:
            text = _read_table(path, owners)
        except ValueError as e:
            if path == paths.crontab and not os.path.lexists(path):
                continue
            errors.append("%s: %s" % (path, e))
            continue
        got, errs = cronspec.parse_crontab(text, path, user)
        errors += errs
        for e in got:
            if e.user not in users:
                errors.append("%s: no user %r in %s: skipped" % (e.where(), e.user, paths.passwd))
            else:
                entries.append(e)
    return entries, errors


def signature(paths):
    """What the reload check compares: identity and mtime of every file and directory we read."""
    sig = []
    candidates = [paths.crontab, paths.cron_d, paths.passwd, paths.group, paths.env_file] + paths.user_dirs
    candidates += [p for p, _ in table_files(paths)]
    for p in candidates:
        try:
            st = os.stat(p)
            sig.append((p, st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode, st.st_uid))
        except OSError:
            sig.append((p,))
    return tuple(sig)


# ---------------------------------------------------------------- jobs


class Job:
    __slots__ = ("entry", "pid", "out_fd", "buf", "lines", "bytes", "dropped")

    def __init__(self, entry, pid, out_fd):
        self.entry, self.pid, self.out_fd = entry, pid, out_fd
        self.buf = b""
        self.lines = self.bytes = self.dropped = 0


def job_environment(entry, user, saved, saved_allowed):
    env = dict(saved) if saved_allowed else {}
    path = env.get("PATH", DEFAULT_PATH)
    env.update({"HOME": user.home, "LOGNAME": user.name, "USER": user.name, "SHELL": "/bin/sh", "PATH": path})
    for k, v in entry.env.items():
        if k not in ("LOGNAME", "USER", "MAILTO"):
            env[k] = v
    return env


class Cron:
    def __init__(self, paths, log, stop_timeout=5.0):
        self.paths, self.log, self.stop_timeout = paths, log, stop_timeout
        self.entries, self.users, self.saved_env = [], {}, {}
        self.sig = None
        self.jobs = {}  # pid -> Job
        self.ep = select.epoll()
        self.readers = {}  # fd -> Job or _Signals
        self.failed_spawns = 0  # children whose exec failed: reaped by the next sweep

    # tables
    def reload(self, force=False):
        sig = signature(self.paths)
        if sig == self.sig and not force:
            return False
        self.sig = sig
        self.users = read_users(self.paths.passwd, self.paths.group)
        try:
            self.saved_env = envfile.load(self.paths.env_file)
        except (OSError, ValueError) as e:
            self.saved_env = {}
            self.log.error("%s: cannot load the saved environment: %s" % (self.paths.env_file, e))
        self.entries, errors = load_tables(self.paths, self.users)
        for e in errors:
            self.log.error(e)
            if self.log.sock is not None:  # bad tables must be seen even when syslog is a file nobody reads
                os.write(2, ("richinit-cron: %s\n" % e).encode("utf-8", "replace"))
        return True

    def due(self, minutes):
        """Entries matching any of the minutes (epoch of the minute start), each once."""
        out = []
        for e in self.entries:
            if e.schedule is not None and any(e.schedule.matches(time.localtime(m)) for m in minutes):
                out.append(e)
        return out

    # jobs
    def start(self, entry):
        user = self.users.get(entry.user)
        if user is None:
            self.log.error("%s: no user %r: not run" % (entry.where(), entry.user))
            return None
        me = os.geteuid()
        if me != 0 and user.uid != me:
            self.log.error("%s: cannot run as %s without root: not run" % (entry.where(), user.name))
            return None
        allowed = envfile.readable_by(self.paths.env_file, user.uid, user.groups)
        env = job_environment(entry, user, self.saved_env, allowed)
        shell = entry.env.get("SHELL") or "/bin/sh"
        cwd = user.home if os.path.isdir(user.home) else "/"
        creds = (user.uid, user.gid, user.groups) if me == 0 else None
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        if entry.stdin is not None:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), None
        umask = os.umask(0o022)  # inherited by the fork; we are single-threaded
        try:
            pid = spawn([shell, "-c", entry.command], env=env, cwd=cwd, new_session=True, user=creds,
                        stdio=(in_r, out_w, out_w))
        except (OSError, ExecError) as e:
            if isinstance(e, ExecError):
                self.failed_spawns += 1
            for fd in (out_r, in_w):
                if fd is not None:
                    os.close(fd)
            self.log.error("(%s) CANNOT RUN (%s): %s" % (user.name, entry.command, e))
            return None
        finally:
            os.umask(umask)
            os.close(out_w)
            os.close(in_r)
        if in_w is not None:
            try:
                data = memoryview(entry.stdin.encode("utf-8", "replace"))
                while data:
                    data = data[os.write(in_w, data):]
            except OSError:
                pass  # the job did not read its input: its business
            finally:
                os.close(in_w)
        os.set_blocking(out_r, False)
        job = Job(entry, pid, out_r)
        self.jobs[pid] = job
        self.ep.register(out_r, select.EPOLLIN)
        self.readers[out_r] = job
        self.log.info("(%s) CMD (%s)" % (user.name, entry.command), pid=job.pid)
        return job

    def read_output(self, job, final=False):
        while True:
            try:
                data = os.read(job.out_fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                final = True
                break
            job.buf += data
            *lines, job.buf = job.buf.split(b"\n")
            if len(job.buf) > MAX_OUTPUT_BYTES:  # output with no newline in sight: cut it here
                lines.append(job.buf)
                job.buf = b""
            for line in lines:
                self._out_line(job, line)
        if final:
            if job.buf:
                self._out_line(job, job.buf)
                job.buf = b""
            self.ep.unregister(job.out_fd)
            del self.readers[job.out_fd]
            os.close(job.out_fd)
            job.out_fd = None

    def _out_line(self, job, line):
        if job.lines >= MAX_OUTPUT_LINES or job.bytes >= MAX_OUTPUT_BYTES:
            job.dropped += 1
            return
        job.lines += 1
        job.bytes += len(line)
        if len(line) > MAX_LINE_BYTES:
            line = line[:MAX_LINE_BYTES] + b"... (%d bytes)" % len(line)
        self.log.info("(%s) OUT (%s)" % (job.entry.user, line.decode("utf-8", "replace")), pid=job.pid)

    def reap(self):
        """waitpid on our jobs' pids (we are not PID 1: nobody else reaps them)."""
        for pid in list(self.jobs):
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                got, status = pid, 0x7f00  # gone without a trace: as exit 127
            if got:
                self._ended(got, status)
        while self.failed_spawns:  # their pids are not known: any child will do, jobs included
            try:
                got, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.failed_spawns = 0
                return
            if not got:
                return
            if got in self.jobs:
                self._ended(got, status)
            else:
                self.failed_spawns -= 1

    def _ended(self, pid, status):
        job = self.jobs.pop(pid)
        if job.out_fd is not None:
            self.read_output(job, final=True)  # what it wrote before exiting is in the pipe
        self.finished(job, status)

    def finished(self, job, status):
        if job.dropped:
            self.log.info("(%s) OUT truncated: %d more line(s) not logged" % (job.entry.user, job.dropped),
                          pid=job.pid)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = SIGNAL_NAMES.get(sig)  # a real-time signal has no name
            how = "killed by %s" % name if name else "killed by signal %d" % sig
        else:
            how = "exit %d" % os.WEXITSTATUS(status)
        sev = INFO if how == "exit 0" else ERR
        self.log.log(sev, "(%s) END (%s) %s" % (job.entry.user, job.entry.command, how), pid=job.pid)

    def kill_all(self, sig):
        for pid in list(self.jobs):
            try:
                os.killpg(pid, sig)  # its own session: pgid == pid
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------- clock


class RealClock:
    def now(self):
        return time.time()

    def seconds_until(self, epoch):
        return max(0.0, epoch - time.time() + 0.005)  # wake just past the boundary, not just before


class FastClock:
    """Test clock: starts at `start` (epoch) and runs `60 / minute_seconds` times faster."""

    def __init__(self, start, minute_seconds):
        self.start, self.factor, self.t0 = start, 60.0 / minute_seconds, time.monotonic()

    def now(self):
        return self.start + (time.monotonic() - self.t0) * self.factor

    def seconds_until(self, epoch):
        return max(0.0, (epoch - self.now()) / self.factor + 0.001)


# ---------------------------------------------------------------- loop


def _noop(signum, frame):
    pass


class _Signals:
    def __init__(self, cron):
        self.rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(s, _noop)
        cron.ep.register(self.rfd, select.EPOLLIN)
        cron.readers[self.rfd] = self

    def read(self):
        out = []
        while True:
            try:
                data = os.read(self.rfd, 64)
            except BlockingIOError:
                return out
            if not data:
                return out
            out.extend(data)


def _dispatch(cron, signals, timeout):
    """One select round; returns the set of signals seen."""
    seen = set()
    for fd, _ in cron.ep.poll(-1 if timeout is None else timeout):
        what = cron.readers.get(fd)
        if what is signals:
            seen.update(signals.read())
        elif what is not None and fd == what.out_fd:
            cron.read_output(what)
    cron.reap()
    return seen


def _stop(cron, signals):
    if cron.jobs:
        cron.log.info("stopping: SIGTERM to %d running job(s)" % len(cron.jobs))
        cron.kill_all(signal.SIGTERM)
        deadline = time.monotonic() + cron.stop_timeout
        while cron.jobs and time.monotonic() < deadline:
            _dispatch(cron, signals, max(0.0, deadline - time.monotonic()))
        if cron.jobs:
            cron.kill_all(signal.SIGKILL)
            while cron.jobs:
                _dispatch(cron, signals, 1.0)
    return 0


def boot_identity(proc="/proc"):
    """Which boot of the container this is: the host's boot id and our PID 1's start time.

    /run is not a tmpfs in every container (runc's default spec has none), so a bare marker
    file would survive a container restart and @reboot would never run again.
    """
    parts = []
    for path, pick in (("sys/kernel/random/boot_id", lambda t: t.strip()),
                       ("1/stat", lambda t: t.rsplit(")", 1)[1].split()[19])):
        try:
            with open(os.path.join(proc, path)) as f:
                parts.append(pick(f.read()))
        except (OSError, IndexError):
            parts.append("?")
    return " ".join(parts)


def run_reboot_jobs(cron, proc="/proc"):
    marker = cron.paths.reboot_marker
    ident = boot_identity(proc)
    try:
        with open(marker) as f:
            if f.read().strip() == ident:
                return  # this boot's @reboot jobs already ran (cron was restarted)
    except OSError:
        pass
    for e in cron.entries:
        if e.reboot:
            cron.start(e)
    try:
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        with open(marker, "w") as f:
            f.write(ident + "\n")
    except OSError as e:
        cron.log.error("%s: %s (@reboot jobs may run again if cron restarts)" % (marker, e.strerror))


def serve(cron, clock, notify_fd=None):
    signals = _Signals(cron)
    cron.reload(force=True)
    cron.log.info("started: %d entr%s" % (len(cron.entries), "y" if len(cron.entries) == 1 else "ies"))
    if notify_fd is not None:
        try:
            os.write(notify_fd, b"\n")
            os.close(notify_fd)
        except OSError:
            pass
    run_reboot_jobs(cron)
    target = (int(clock.now()) // 60 + 1) * 60  # the next minute boundary
    while True:
        seen = _dispatch(cron, signals, clock.seconds_until(target))
        if seen & {signal.SIGTERM, signal.SIGINT}:
            return _stop(cron, signals)
        if signal.SIGHUP in seen:
            cron.reload(force=True)
        now_min = int(clock.now()) // 60 * 60
        if now_min < target - 60 * CATCH_UP_MINUTES:
            cron.log.info("clock went back: rescheduling from now")
            target = now_min + 60
        if now_min < target:
            continue
        if now_min - target > 60 * CATCH_UP_MINUTES:
            cron.log.info("clock jumped forward: missed minutes not run")
            minutes = [now_min]
        else:
            minutes = range(target, now_min + 60, 60)
        cron.reload()
        for e in cron.due(minutes):
            cron.start(e)
        target = now_min + 60


def run_once(cron, at):
    """--once-at: run what is due at minute `at`, wait for it all, exit 0."""
    signals = _Signals(cron)
    cron.reload(force=True)
    for e in cron.due([at]):
        cron.start(e)
    while cron.jobs:
        seen = _dispatch(cron, signals, None)
        if seen & {signal.SIGTERM, signal.SIGINT}:
            return _stop(cron, signals)
    return 0


def _parse_minute(text):
    """'YYYY-mm-dd HH:MM' (local time) -> epoch; what time.strptime took, without its imports."""
    date, sp, clock = text.partition(" ")
    parts = date.split("-") + clock.lstrip().split(":")
    if not sp or len(parts) != 5 or len(parts[0]) != 4 or not all(
            p.isdigit() and p.isascii() and 0 < len(p) <= 2 for p in parts[1:]) or not parts[0].isdigit():
        raise ValueError("%r is not 'YYYY-mm-dd HH:MM'" % text)
    y, mo, d, h, mi = (int(p) for p in parts)
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not (1 <= mo <= 12 and 1 <= d <= days[mo - 1] and h <= 23 and mi <= 59):
        raise ValueError("%r is not 'YYYY-mm-dd HH:MM'" % text)
    return time.mktime((y, mo, d, h, mi, 0, 0, 0, -1))


USAGE = ("usage: richinit-cron [-h] [--root ROOT] [--syslog SYSLOG] [--env-file ENV_FILE]\n"
         "                     [--stop-timeout STOP_TIMEOUT] [--notify-fd NOTIFY_FD]\n"
         "                     [--once-at 'YYYY-mm-dd HH:MM'] [--clock-start 'YYYY-mm-dd HH:MM']\n"
         "                     [--minute-seconds MINUTE_SECONDS]\n")

HELP = USAGE + """
richinit's built-in cron

options:
  -h, --help            show this help message and exit
  --root ROOT           prefix of /etc, /var/spool, /run (tests use fixture trees)
  --syslog SYSLOG       syslog socket (default ROOT/dev/log; stderr if nobody listens)
  --env-file ENV_FILE   saved environment (default ROOT/run/richinit/environment)
  --stop-timeout STOP_TIMEOUT
                        seconds jobs get after SIGTERM
  --notify-fd NOTIFY_FD
                        write a newline to this fd once the tables are read
  --once-at 'YYYY-mm-dd HH:MM'
                        test: run the jobs due then, wait, exit
  --clock-start 'YYYY-mm-dd HH:MM'
                        test: start the clock at this time
  --minute-seconds MINUTE_SECONDS
                        test: real seconds per minute
"""


class UsageError(Exception):
    pass


class Options:
    root = "/"
    syslog = None
    env_file = None
    stop_timeout = "5.0"
    notify_fd = None
    once_at = None
    clock_start = None
    minute_seconds = "60.0"


def parse_args(argv):
    """argv -> Options (values as strings), `--opt V` or `--opt=V`; None for -h/--help.

    Raises UsageError for what argparse refused (unknown option, missing value).
    """
    a = Options()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in ("-h", "--help"):
            return None
        name, eq, val = arg.partition("=")
        attr = name[2:].replace("-", "_")
        if not name.startswith("--") or not hasattr(Options, attr) or attr.startswith("_"):
            raise UsageError("unrecognized arguments: %s" % arg)
        if not eq:
            if i >= len(argv) or (argv[i].startswith("-") and not _is_number(argv[i])):
                raise UsageError("argument %s: expected one argument" % name)
            val = argv[i]
            i += 1
        setattr(a, attr, val)
    return a


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _number(text, what, kind=float):
    try:
        return kind(text)
    except ValueError:
        raise UsageError("argument %s: invalid %s value: %r" % (what, kind.__name__, text)) from None


def _sane_fds():
    """0-2 open (else a pipe we make could land there and be dup2'd over), nothing else inherited.

    subprocess's close_fds did the latter; spawn() relies on close-on-exec instead.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free fd: this one
    try:
        fds = [int(n) for n in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the listdir fd itself, closed by now


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        a = parse_args(list(argv))
        if a is None:
            sys.stdout.write(HELP)
            return 0
        stop_timeout = _number(a.stop_timeout, "--stop-timeout")
        minute_seconds = _number(a.minute_seconds, "--minute-seconds")
        notify_fd = None if a.notify_fd is None else _number(a.notify_fd, "--notify-fd", int)
        if minute_seconds <= 0:
            raise UsageError("--minute-seconds must be > 0")
        try:
            once = _parse_minute(a.once_at) if a.once_at else None
            start = _parse_minute(a.clock_start) if a.clock_start else None
        except ValueError as e:
            raise UsageError(str(e)) from None
    except UsageError as e:
        sys.stderr.write("%srichinit-cron: error: %s\n" % (USAGE, e))
        return 2
    _sane_fds()
    paths = Paths(a.root, a.syslog, a.env_file)
    cron = Cron(paths, Logger(paths.syslog), stop_timeout)
    if once is not None:
        return run_once(cron, once)
    if start is not None or minute_seconds != 60.0:
        clock = FastClock(start if start is not None else time.time(), minute_seconds)
    else:
        clock = RealClock()
    return serve(cron, clock, notify_fd)


if __name__ == "__main__":
    sys.exit(main())
