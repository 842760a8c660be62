"""The new mount API (Linux 5.2+) through ctypes: open_tree and move_mount.

Why: a classic bind mount (mount(2) with MS_BIND) needs source and target in the caller's mount
namespace. To put a host file into an already running container we clone the source as a
detached mount tree while still in the host namespace (open_tree(OPEN_TREE_CLONE)), then setns()
into the container and attach it with move_mount(). Both take file descriptors, so nothing is
resolved by a path string after the checks. Errors are OSError(errno, "<call>: <what>").
"""

import ctypes
import os

from osbase import libc

# Syscall numbers from 424 on are shared by every architecture (asm-generic unified table).
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100

OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC

MOVE_MOUNT_F_SYMLINKS = 0x1
MOVE_MOUNT_F_AUTOMOUNTS = 0x2
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_SYMLINKS = 0x10
MOVE_MOUNT_T_AUTOMOUNTS = 0x20
MOVE_MOUNT_T_EMPTY_PATH = 0x40


_check = libc._check
_open_tree = libc.syscall_proto(ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
_move_mount = libc.syscall_proto(ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
_statx = libc.proto("statx", ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p)


def open_tree(dirfd, path, flags):
    """open_tree(2); returns an fd. With OPEN_TREE_CLONE the fd holds a detached copy of the mount."""
    return _check(_open_tree(_SYS_OPEN_TREE, dirfd, os.fsencode(path), flags), "open_tree %s" % path)


def clone_tree(path_or_fd, recursive=False):
    """A detached bind-mount copy of a host path (or of an O_PATH fd with AT_EMPTY_PATH)."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    if isinstance(path_or_fd, int):
        return open_tree(path_or_fd, "", flags | AT_EMPTY_PATH)
    return open_tree(AT_FDCWD, path_or_fd, flags | AT_SYMLINK_NOFOLLOW)


def move_mount(from_dirfd, from_path, to_dirfd, to_path, flags):
    return _check(_move_mount(_SYS_MOVE_MOUNT, from_dirfd, os.fsencode(from_path), to_dirfd, os.fsencode(to_path),
                              flags), "move_mount")


def attach(tree_fd, target_fd):
    """Attach a detached tree (from clone_tree) on top of the file or directory target_fd names."""
    move_mount(tree_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)


# statx(2) for the mount a path is on. Mount ids from mountinfo are small integers the kernel
# reuses at once (a FUSE server restarted on the same directory often gets its old id back);
# STATX_MNT_ID_UNIQUE (6.8+) is a 64-bit id never reused while the system runs.
STATX_MNT_ID = 0x1000
STATX_MNT_ID_UNIQUE = 0x4000
AT_STATX_DONT_SYNC = 0x4000
_STATX_SIZE = 256
_STX_MNT_ID_OFFSET = 0x90


def mount_id_of(path, unique=True):
    """(id, is_unique) of the mount `path` is on (not following a final symlink)."""
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    mask = STATX_MNT_ID_UNIQUE if unique else STATX_MNT_ID
    _check(_statx(AT_FDCWD, os.fsencode(path), AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, mask, buf), "statx %s" % path)
    got = int.from_bytes(buf.raw[0:4], "little")
    mnt = int.from_bytes(buf.raw[_STX_MNT_ID_OFFSET:_STX_MNT_ID_OFFSET + 8], "little")
    return mnt, bool(got & STATX_MNT_ID_UNIQUE)
