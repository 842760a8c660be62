"""libc through ctypes: the calls Python's os module does not wrap.

Every wrapper checks the return value and raises OSError(errno, "<call>: <what>")
so callers see one error shape. ctypes is imported when this module is, so PID 1
imports it only on the paths that need it (subreaper mode, never the steady state).
"""

import ctypes
import os


def _load_libc():
    # Try the soname first: find_library runs /sbin/ldconfig, a process we do not need.
    for name in ("libc.so.6", "libc.so"):
        try:
            return ctypes.CDLL(name, use_errno=True)
        except OSError:
            pass
    from ctypes import util
    return ctypes.CDLL(util.find_library("c"), use_errno=True)


_libc = _load_libc()

# prctl(2)
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_PDEATHSIG = 1

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 0x2

# setns(2) namespace types
CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

_SYS_OPENAT2 = 437  # x86_64 and aarch64 share this number
_SYS_PIDFD_OPEN = 434


def _check(ret, what):
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return ret


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    fn = _libc.prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return _check(fn(option, arg2, arg3, arg4, arg5), "prctl(%d)" % option)


def set_child_subreaper(on=True):
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def is_child_subreaper():
    val = ctypes.c_int(0)
    prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(val))
    return bool(val.value)


def mount(source, target, fstype=None, flags=0, data=None):
    fn = _libc.mount
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(fn(enc(source), enc(target), enc(fstype), flags, enc(data)),
           "mount %s on %s" % (source, target))


def umount(target, flags=0):
    fn = _libc.umount2
    fn.argtypes = [ctypes.c_char_p, ctypes.c_int]
    _check(fn(os.fsencode(target), flags), "umount %s" % target)


def setns(fd, nstype=0):
    fn = _libc.setns
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    _check(fn(fd, nstype), "setns")


def unshare(flags):
    fn = _libc.unshare
    fn.argtypes = [ctypes.c_int]
    _check(fn(flags), "unshare")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


def openat2(dirfd, path, flags, mode=0, resolve=0):
    """openat2(2); raises OSError(ENOSYS) on kernels older than 5.6."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fn = _libc.syscall
    fn.restype = ctypes.c_long
    fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
    ret = fn(_SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.addressof(how), ctypes.sizeof(how))
    return _check(ret, "openat2 %s" % path)


def pidfd_open(pid):
    fn = _libc.syscall
    fn.restype = ctypes.c_long
    fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_uint]
    return _check(fn(_SYS_PIDFD_OPEN, pid, 0), "pidfd_open %d" % pid)


def ioctl_buffer(fd, request, buf):
    """ioctl(fd, request, buf) where buf is a ctypes object or bytearray-backed buffer."""
    fn = _libc.ioctl
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    _check(fn(fd, request, ctypes.addressof(buf)), "ioctl 0x%x" % request)
