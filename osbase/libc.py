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


def proto(name, restype, *argtypes):
    """A foreign function of libc with its own prototype (set once, never changed per call on the
    shared CDLL attribute): errno is kept for ctypes.get_errno()."""
    return ctypes.CFUNCTYPE(restype, *argtypes, use_errno=True)((name, _libc))


def syscall_proto(*argtypes):
    """syscall(2) with this prototype (number first): one per system call that libc does not wrap."""
    return proto("syscall", ctypes.c_long, ctypes.c_long, *argtypes)

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


_prctl = proto("prctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_mount = proto("mount", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
               ctypes.c_char_p)
_umount2 = proto("umount2", ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
_setns = proto("setns", ctypes.c_int, ctypes.c_int, ctypes.c_int)
_unshare = proto("unshare", ctypes.c_int, ctypes.c_int)


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(_prctl(option, arg2, arg3, arg4, arg5), "prctl(%d)" % option)


def set_child_subreaper(on=True):
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)




def mount(source, target, fstype=None, flags=0, data=None):
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(_mount(enc(source), enc(target), enc(fstype), flags, enc(data)),
           "mount %s on %s" % (source, target))


def umount(target, flags=0):
    _check(_umount2(os.fsencode(target), flags), "umount %s" % target)


def setns(fd, nstype=0):
    _check(_setns(fd, nstype), "setns")


def unshare(flags):
    _check(_unshare(flags), "unshare")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


_openat2 = syscall_proto(ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t)


def openat2(dirfd, path, flags, mode=0, resolve=0):
    """openat2(2); raises OSError(ENOSYS) on kernels older than 5.6."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    ret = _openat2(_SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.addressof(how), ctypes.sizeof(how))
    return _check(ret, "openat2 %s" % path)


_pidfd_open = syscall_proto(ctypes.c_int, ctypes.c_uint)


def pidfd_open(pid):
    return _check(_pidfd_open(_SYS_PIDFD_OPEN, pid, 0), "pidfd_open %d" % pid)

