"""Start a child with a clean slate: default signal dispositions, empty mask, own session.

fork + exec by hand (not subprocess) because PID 1 reaps every child itself with
waitpid(-1); subprocess.Popen keeps its own bookkeeping and would race the reaper
for exit statuses. Exec errors come back through a close-on-exec pipe, so the
parent knows "command not found" (127) from "not executable" (126) before it
treats the pid as running.
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


def _child(argv, env, cwd, new_session, listen_fds, user, stdio, extra_fds, wfd):
    try:
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
        if new_session:
            os.setsid()
        if extra_fds:
            # Move the error pipe out of the way of the fds we are about to place.
            import fcntl
            wfd = fcntl.fcntl(wfd, fcntl.F_DUPFD_CLOEXEC, 256)
        # stdio and extra fds: dup2 clears close-on-exec on the target, which is
        # exactly what we want for fds the child must inherit.
        for target, fd in list(enumerate(stdio)) + sorted(extra_fds.items()):
            if fd is not None and fd != target:
                os.dup2(fd, target)
            elif fd is not None:
                os.set_inheritable(fd, True)
        if listen_fds:
            for fd in listen_fds:
                os.set_inheritable(fd, True)
            env = dict(env, LISTEN_PID=str(os.getpid()))
        if user is not None:
            uid, gid, groups = user
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
        if cwd is not None:
            os.chdir(cwd)
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
