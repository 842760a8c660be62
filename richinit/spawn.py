"""Start a child with a clean slate: default signal dispositions, empty mask, own session.

fork + exec by hand (not subprocess) because PID 1 reaps every child itself with
waitpid(-1); subprocess.Popen keeps its own bookkeeping and would race the reaper
for exit statuses. Exec errors come back through a close-on-exec pipe, so the
parent knows "command not found" (127) from "not executable" (126) before it
treats the pid as running.

`spawn_call` is the same clean slate without the exec: the child runs a function of
richinit's own (the services loader, the environment saver, the built-in syslogd and
cron) in the interpreter PID 1 already started. A fresh interpreter costs ~6 ms and its
imports as much again, each time, on the boot's critical path; a fork costs ~0.3 ms and
shares PID 1's pages until written.
"""

import _signal as signal  # not the enum-heavy package: see signals.py
import errno
import os

from richinit.signals import catchable

_ALL = signal.valid_signals()


class ExecError(Exception):
    def __init__(self, argv0, err):
        self.argv0, self.errno = argv0, err
        super().__init__("%s: %s" % (argv0, os.strerror(err)))

    @property
    def exit_code(self):
        # Shells' convention, which tini and my_init follow too.
        return 127 if self.errno in (errno.ENOENT, errno.ENOTDIR) else 126


def _default_signals():
    for sig in catchable():
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    # Python ignores SIGPIPE and SIGXFSZ at start-up; ignored dispositions
    # survive exec, so put them back explicitly.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _become(user, cwd):
    """Switch to user (uid, gid, groups) and into cwd, either being None to keep ours."""
    if user is not None:
        uid, gid, groups = user
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
    if cwd is not None:
        os.chdir(cwd)


def _place_fds(stdio, extra_fds, keep=None):
    """In a forked child: put each source fd on its number (stdio 0, 1, 2; extra_fds {target: source}).

    Copies above every target are made first, because a source may sit on another target's
    number; dup2 then leaves each target inheritable (close-on-exec cleared), the copies keep
    close-on-exec. `keep` (an fd of our own, e.g. the exec-error pipe) is moved above the targets
    too; its new number is returned.
    """
    targets = [(t, fd) for t, fd in list(enumerate(stdio)) + sorted(extra_fds.items()) if fd is not None]
    if not targets:
        return keep
    import fcntl
    base = max(t for t, _ in targets) + 1
    if keep is not None:
        keep = fcntl.fcntl(keep, fcntl.F_DUPFD_CLOEXEC, base)
    for t, fd in [(t, fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base)) for t, fd in targets]:
        os.dup2(fd, t)
    return keep


def _child(argv, env, cwd, new_session, listen_fds, user, stdio, extra_fds, wfd):
    try:
        _default_signals()
        if new_session:
            os.setsid()
        wfd = _place_fds(stdio, extra_fds, keep=wfd)
        if listen_fds:
            for fd in listen_fds:
                os.set_inheritable(fd, True)
            env = dict(env, LISTEN_PID=str(os.getpid()))
        _become(user, cwd)
        os.execvpe(argv[0], argv, env)
    except OSError as e:
        os.write(wfd, str(e.errno or errno.EINVAL).encode())
    except BaseException:
        os.write(wfd, str(errno.EINVAL).encode())
    finally:
        os._exit(127)


def spawn(argv, env=None, cwd=None, new_session=True, listen_fds=(), user=None, stdio=(None, None, None),
          extra_fds=None):
    """Fork and exec argv; returns the pid. Raises ExecError when exec fails.

    user: (uid, gid, groups) to switch to; stdio: fds for 0, 1, 2 (None: inherit);
    extra_fds: {child_fd: parent_fd} (e.g. an s6 notification fd).

    All signals are blocked across fork so nothing is delivered to the child
    while it still has PID 1's handlers and wakeup fd.
    """
    env = os.environ if env is None else env
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _ALL)
    try:
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            _child(argv, env, cwd, new_session, listen_fds, user, stdio, extra_fds or {}, wfd)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    os.close(wfd)
    try:
        data = b""
        while True:
            try:
                chunk = os.read(rfd, 16)
            except InterruptedError:
                continue
            if not chunk:
                break
            data += chunk
    finally:
        os.close(rfd)
    if data:
        # The child has exited already; its zombie is reaped by the loop.
        raise ExecError(argv[0], int(data))
    return pid


def _close_all_but(keep):
    """Close every fd not in `keep` (PID 1's epoll, wakeup pipe, control socket, other services'
    pipes): without an exec, close-on-exec closes nothing."""
    lo = 0
    for fd in sorted(keep) + [None]:
        hi = os.sysconf("SC_OPEN_MAX") if fd is None else fd
        if hi > lo:
            os.closerange(lo, hi)
        if fd is not None:
            lo = fd + 1


def spawn_call(fn, args=(), env=None, cwd=None, user=None, stdio=(None, None, None), extra_fds=None, title=None,
               brief=False):
    """Fork a child that runs fn(*args) and exits with its return value; returns the pid.

    The child gets what spawn() gives an exec'd one: default signals, an empty mask, its own
    session, stdio and extra_fds placed, every other fd closed, `env` as its environment,
    `cwd`, `user`; `title` names it in ps (it would show PID 1's otherwise). Objects inherited
    from PID 1 never reach the garbage collector: collecting one could close an fd number the
    child has reused, and not scanning them keeps their pages shared. A `brief` child (it exits
    within milliseconds) runs with the collector off; a daemon freezes what it inherited.
    """
    import gc

    from osbase.quickexit import flush_stdio
    env = os.environ if env is None else env
    extra_fds = extra_fds or {}
    flush_stdio()  # buffered text would be written twice
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _ALL)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                gc.disable() if brief else gc.freeze()
                _default_signals()
                os.setsid()
                _place_fds(stdio, extra_fds)
                _close_all_but({0, 1, 2} | set(extra_fds))
                if env is not os.environ:
                    os.environ.clear()
                    os.environ.update(env)
                _become(user, cwd)
                if title:
                    from richinit.title import set_title
                    set_title(title)
                code = fn(*args)
                code = 0 if code is None else code if isinstance(code, int) else 1
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException as e:  # noqa: B036 - the child must never return into PID 1's loop
                try:
                    os.write(2, ("richinit: %s: %s: %s\n" % (getattr(fn, "__module__", "?"), type(e).__name__, e))
                             .encode("utf-8", "replace"))
                except OSError:
                    pass
                code = 1
            finally:
                try:
                    flush_stdio()
                finally:  # whatever happens, this child never returns into PID 1's code
                    os._exit(code & 0xff if isinstance(code, int) else 1)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return pid
