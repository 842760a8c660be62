"""The pid files our view server and watcher hold locked for their lifetime.

Liveness is the lock, not the pid written in the file: a killed process drops its flock at once,
while a stale pid may name someone else. Kept apart from server.py and watch.py (which import
logging, argparse and threading) because every rich-runtime create checks it.
"""

import fcntl
import os


def lock(pidfile):
    """Hold an exclusive flock on the pid file for our lifetime: its fd, or None if another holds it."""
    os.makedirs(os.path.dirname(pidfile) or ".", exist_ok=True)
    fd = os.open(pidfile, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def write_pid(fd):
    os.ftruncate(fd, 0)
    os.pwrite(fd, b"%d\n" % os.getpid(), 0)


def running(pidfile):
    """True when some process holds the lock on pidfile."""
    try:
        fd = os.open(pidfile, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
