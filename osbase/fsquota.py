"""Filesystem quotas and loop devices through ctypes: no chattr, setquota or losetup.

Three kernel interfaces, each wrapped with one error shape (OSError(errno, "<call>: <what>")):
- FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR: a file's project ID and FS_XFLAG_PROJINHERIT;
- quotactl_fd(2) (5.14+) or quotactl(2) on the block device: Q_XGETQUOTA/Q_XSETQLIM (xfs's
  interface, 512-byte basic blocks) and Q_GETQUOTA/Q_SETQUOTA (the generic one, 1 KiB blocks);
- /dev/loop-control and LOOP_CONFIGURE (LOOP_SET_FD + LOOP_SET_STATUS64 before 5.8) with
  LO_FLAGS_AUTOCLEAR, so a loop device lives exactly as long as the mount on it.

A kernel built without CONFIG_QUOTA answers quotactl with ENOSYS; callers turn that into
"this kernel cannot enforce project quotas".
"""

import ctypes
import errno
import os
import struct
import time

from osbase import libc

# statfs(2) f_type values
XFS_SUPER_MAGIC = 0x58465342
EXT4_SUPER_MAGIC = 0xEF53  # shared by ext2/3/4
TMPFS_MAGIC = 0x01021994
OVERLAYFS_SUPER_MAGIC = 0x794C7630
FS_NAMES = {XFS_SUPER_MAGIC: "xfs", EXT4_SUPER_MAGIC: "ext4", TMPFS_MAGIC: "tmpfs",
            OVERLAYFS_SUPER_MAGIC: "overlay", 0x9123683E: "btrfs", 0x01021997: "9p"}

# struct fsxattr and its ioctls (linux/fs.h)
FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = 0x401C5820
FS_XFLAG_PROJINHERIT = 0x00000200
_FSXATTR = struct.Struct("=IIIII8s")  # xflags, extsize, nextents, projid, cowextsize, pad

# quotactl(2): QCMD(cmd, type) = cmd << 8 | type
PRJQUOTA = 2
Q_GETQUOTA = 0x800007
Q_SETQUOTA = 0x800008
Q_XGETQUOTA = (ord("X") << 8) + 3
Q_XSETQLIM = (ord("X") << 8) + 4
QIF_BLIMITS = 1
QIF_SPACE = 2
QIF_DQBLKSIZE = 1024  # if_dqblk limits are in 1 KiB blocks
FS_DQUOT_VERSION = 1
FS_PROJ_QUOTA = 2
FS_DQ_BSOFT = 1 << 2
FS_DQ_BHARD = 1 << 3
BBSIZE = 512  # fs_disk_quota counts 512-byte basic blocks

_SYS_QUOTACTL_FD = 443  # x86_64 and the generic table agree

# loop devices (linux/loop.h)
LOOP_SET_FD = 0x4C00
LOOP_CLR_FD = 0x4C01
LOOP_SET_STATUS64 = 0x4C04
LOOP_SET_CAPACITY = 0x4C07
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_GET_FREE = 0x4C82
LO_FLAGS_AUTOCLEAR = 4


def _err(what):
    e = ctypes.get_errno()
    return OSError(e, "%s: %s" % (what, os.strerror(e)))


_ioctl_p = libc.proto("ioctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)
_ioctl_n = libc.proto("ioctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong)
_fstatfs = libc.proto("fstatfs", ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_quotactl_fd = libc.syscall_proto(ctypes.c_uint, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p)
_quotactl_dev = libc.proto("quotactl", ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p)


def _ioctl_ptr(fd, request, buf, what):
    ret = _ioctl_p(fd, request, ctypes.addressof(buf))
    if ret == -1:
        raise _err(what)
    return ret


def _ioctl_int(fd, request, arg, what):
    ret = _ioctl_n(fd, request, arg)
    if ret == -1:
        raise _err(what)
    return ret


# ---- statfs -------------------------------------------------------------------------------

class _Statfs(ctypes.Structure):
    # struct statfs on 64-bit Linux: every field is a long except f_fsid (two ints).
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long), ("f_blocks", ctypes.c_ulong),
                ("f_bfree", ctypes.c_ulong), ("f_bavail", ctypes.c_ulong), ("f_files", ctypes.c_ulong),
                ("f_ffree", ctypes.c_ulong), ("f_fsid", ctypes.c_int * 2), ("f_namelen", ctypes.c_long),
                ("f_frsize", ctypes.c_long), ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4)]


def fs_magic(fd):
    """statfs f_type of the filesystem holding fd (O_PATH fds work)."""
    buf = _Statfs()
    if _fstatfs(fd, ctypes.addressof(buf)) == -1:
        raise _err("fstatfs")
    return buf.f_type & 0xFFFFFFFF


def fs_name(fd):
    magic = fs_magic(fd)
    return FS_NAMES.get(magic, "0x%x" % magic)


# ---- project IDs ----------------------------------------------------------------------------

class FsXattr(ctypes.Structure):
    _fields_ = [("xflags", ctypes.c_uint32), ("extsize", ctypes.c_uint32), ("nextents", ctypes.c_uint32),
                ("projid", ctypes.c_uint32), ("cowextsize", ctypes.c_uint32), ("pad", ctypes.c_ubyte * 8)]


assert ctypes.sizeof(FsXattr) == _FSXATTR.size


def get_project(fd):
    """(projid, xflags) of an open file or directory (not O_PATH: the ioctl needs a real open)."""
    x = FsXattr()
    _ioctl_ptr(fd, FS_IOC_FSGETXATTR, x, "FS_IOC_FSGETXATTR")
    return x.projid, x.xflags


def set_project(fd, projid, inherit):
    """Set the project ID (and PROJINHERIT on or off), keeping every other flag as it is."""
    x = FsXattr()
    _ioctl_ptr(fd, FS_IOC_FSGETXATTR, x, "FS_IOC_FSGETXATTR")
    x.projid = projid
    x.xflags = (x.xflags | FS_XFLAG_PROJINHERIT) if inherit else (x.xflags & ~FS_XFLAG_PROJINHERIT)
    _ioctl_ptr(fd, FS_IOC_FSSETXATTR, x, "FS_IOC_FSSETXATTR projid %d" % projid)


# ---- quotactl ---------------------------------------------------------------------------------

class FsDiskQuota(ctypes.Structure):
    """struct fs_disk_quota (linux/dqblk_xfs.h), 112 bytes."""
    _fields_ = [("d_version", ctypes.c_int8), ("d_flags", ctypes.c_int8), ("d_fieldmask", ctypes.c_uint16),
                ("d_id", ctypes.c_uint32), ("d_blk_hardlimit", ctypes.c_uint64),
                ("d_blk_softlimit", ctypes.c_uint64), ("d_ino_hardlimit", ctypes.c_uint64),
                ("d_ino_softlimit", ctypes.c_uint64), ("d_bcount", ctypes.c_uint64), ("d_icount", ctypes.c_uint64),
                ("d_itimer", ctypes.c_int32), ("d_btimer", ctypes.c_int32), ("d_iwarns", ctypes.c_uint16),
                ("d_bwarns", ctypes.c_uint16), ("d_itimer_hi", ctypes.c_int8), ("d_btimer_hi", ctypes.c_int8),
                ("d_rtbtimer_hi", ctypes.c_int8), ("d_padding2", ctypes.c_int8),
                ("d_rtb_hardlimit", ctypes.c_uint64), ("d_rtb_softlimit", ctypes.c_uint64),
                ("d_rtbcount", ctypes.c_uint64), ("d_rtbtimer", ctypes.c_int32), ("d_rtbwarns", ctypes.c_uint16),
                ("d_padding3", ctypes.c_int16), ("d_padding4", ctypes.c_char * 8)]


class IfDqblk(ctypes.Structure):
    """struct if_dqblk (linux/quota.h), 72 bytes."""
    _fields_ = [("dqb_bhardlimit", ctypes.c_uint64), ("dqb_bsoftlimit", ctypes.c_uint64),
                ("dqb_curspace", ctypes.c_uint64), ("dqb_ihardlimit", ctypes.c_uint64),
                ("dqb_isoftlimit", ctypes.c_uint64), ("dqb_curinodes", ctypes.c_uint64),
                ("dqb_btime", ctypes.c_uint64), ("dqb_itime", ctypes.c_uint64), ("dqb_valid", ctypes.c_uint32)]


assert ctypes.sizeof(FsDiskQuota) == 112 and ctypes.sizeof(IfDqblk) == 72


def _quotactl(fd, device, cmd, qid, buf, what):
    """quotactl_fd(fd, ...) when the kernel has it, else quotactl(device, ...).

    quotactl_fd needs no block device path (a loop or dm device would have to be found in
    mountinfo otherwise). ENOSYS from both means the kernel was built without quota support.
    """
    if _quotactl_fd(_SYS_QUOTACTL_FD, fd, cmd, qid, ctypes.addressof(buf)) == 0:
        return
    e = ctypes.get_errno()
    if e != errno.ENOSYS or not device:
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))
    if _quotactl_dev(cmd, os.fsencode(device), qid, ctypes.addressof(buf)) == -1:
        raise _err(what)


def xfs_set_limit(fd, projid, limit_bytes, device=None):
    """Q_XSETQLIM: hard and soft block limit of a project (limit rounded up to 512 B)."""
    d = FsDiskQuota()
    d.d_version, d.d_flags, d.d_id = FS_DQUOT_VERSION, FS_PROJ_QUOTA, projid
    d.d_fieldmask = FS_DQ_BSOFT | FS_DQ_BHARD
    d.d_blk_hardlimit = d.d_blk_softlimit = -(-limit_bytes // BBSIZE)
    _quotactl(fd, device, (Q_XSETQLIM << 8) | PRJQUOTA, projid, d, "quotactl Q_XSETQLIM project %d" % projid)


def xfs_get_quota(fd, projid, device=None):
    """Q_XGETQUOTA: (hard limit bytes, used bytes) of a project."""
    d = FsDiskQuota()
    _quotactl(fd, device, (Q_XGETQUOTA << 8) | PRJQUOTA, projid, d, "quotactl Q_XGETQUOTA project %d" % projid)
    return d.d_blk_hardlimit * BBSIZE, d.d_bcount * BBSIZE


def set_limit(fd, projid, limit_bytes, device=None):
    """Q_SETQUOTA (PRJQUOTA): hard and soft block limit (rounded up to 1 KiB)."""
    q = IfDqblk()
    q.dqb_bhardlimit = q.dqb_bsoftlimit = -(-limit_bytes // QIF_DQBLKSIZE)
    q.dqb_valid = QIF_BLIMITS
    _quotactl(fd, device, (Q_SETQUOTA << 8) | PRJQUOTA, projid, q, "quotactl Q_SETQUOTA project %d" % projid)


def get_quota(fd, projid, device=None):
    """Q_GETQUOTA (PRJQUOTA): (hard limit bytes, used bytes)."""
    q = IfDqblk()
    _quotactl(fd, device, (Q_GETQUOTA << 8) | PRJQUOTA, projid, q, "quotactl Q_GETQUOTA project %d" % projid)
    return q.dqb_bhardlimit * QIF_DQBLKSIZE, q.dqb_curspace


# ---- loop devices ----------------------------------------------------------------------------

class LoopInfo64(ctypes.Structure):
    _fields_ = [("lo_device", ctypes.c_uint64), ("lo_inode", ctypes.c_uint64), ("lo_rdevice", ctypes.c_uint64),
                ("lo_offset", ctypes.c_uint64), ("lo_sizelimit", ctypes.c_uint64), ("lo_number", ctypes.c_uint32),
                ("lo_encrypt_type", ctypes.c_uint32), ("lo_encrypt_key_size", ctypes.c_uint32),
                ("lo_flags", ctypes.c_uint32), ("lo_file_name", ctypes.c_char * 64),
                ("lo_crypt_name", ctypes.c_char * 64), ("lo_encrypt_key", ctypes.c_char * 32),
                ("lo_init", ctypes.c_uint64 * 2)]


class LoopConfig(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_uint32), ("block_size", ctypes.c_uint32), ("info", LoopInfo64),
                ("reserved", ctypes.c_uint64 * 8)]


def loop_attach(image_fd, name=b""):
    """Attach an open image to a free loop device with AUTOCLEAR; returns (path, device fd).

    The caller mounts the device and then closes the fd: from then on the mount holds the
    only reference and unmounting frees the device. Two attachers racing for the same free
    number get EBUSY; we ask for another one, as losetup does.
    """
    ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(32):
            num = _ioctl_int(ctl, LOOP_CTL_GET_FREE, 0, "LOOP_CTL_GET_FREE")
            path = "/dev/loop%d" % num
            try:
                dev = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:  # no devtmpfs node yet (udev-less systems): make it
                os.mknod(path, 0o660 | 0o060000, os.makedev(7, num))
                dev = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                _configure(dev, image_fd, name)
                return path, dev
            except OSError as e:
                os.close(dev)
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.001)
        raise OSError(errno.EBUSY, "loop_attach: no free loop device after 32 tries")
    finally:
        os.close(ctl)


def _configure(dev, image_fd, name):
    cfg = LoopConfig()
    cfg.fd = image_fd
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR
    cfg.info.lo_file_name = name[:63]
    try:
        _ioctl_ptr(dev, LOOP_CONFIGURE, cfg, "LOOP_CONFIGURE")
        return
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTTY):  # kernels before 5.8
            raise
    _ioctl_int(dev, LOOP_SET_FD, image_fd, "LOOP_SET_FD")
    try:
        _ioctl_ptr(dev, LOOP_SET_STATUS64, cfg.info, "LOOP_SET_STATUS64")
    except OSError:
        _ioctl_int(dev, LOOP_CLR_FD, 0, "LOOP_CLR_FD")
        raise


def loop_detach(dev_fd):
    _ioctl_int(dev_fd, LOOP_CLR_FD, 0, "LOOP_CLR_FD")

