"""The act layer of `rich import`: every kernel object it makes, each undone from an UndoStack.

- export(): qemu-storage-daemon opens the image read-only (a shared lock: a VM holding the image
  makes it refuse) and exports it as a raw, read-only FUSE file;
- attach(): a read-only loop device over a byte range of that file, made with LOOP_CONFIGURE and
  LO_FLAGS_AUTOCLEAR, so it goes away with its last user even if we are killed;
- probe(): blkid's low-level probe of a device (TYPE, UUID, LABEL, ...);
- lvm_segments(): lvm's report of the logical volumes on our loop devices, read with a filter
  admitting only them and activation off: the host's own volume groups and its device-mapper
  state are never touched (this kernel may have no device-mapper at all). Linear LVs then become
  loop devices over their extents;
- mount(): read-only, nosuid/nodev/noexec, at a directory given as an fd (/proc/self/fd/N).

OSError and failed tools are translated to DiskError (one line) here, at the boundary.
"""

import errno
import fcntl
import json
import os
import signal
import struct
import subprocess
import tempfile

from osbase import libc, safepath
from runtime_hooks.vmimport.parse import DiskError

LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_READ_ONLY, LO_FLAGS_AUTOCLEAR = 1, 4
QSD = "qemu-storage-daemon"
TOOL_TIMEOUT = 120
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


class UndoStack:
    """Undo actions, run newest first by close(); each failure is collected, none stops the rest."""

    def __init__(self):
        self._items = []
        self.errors = []

    def push(self, what, fn, *args):
        self._items.append((what, fn, args))

    def close(self):
        # Ctrl-C or TERM while undoing waits until everything is undone (then it is raised as usual).
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            while self._items:
                what, fn, args = self._items.pop()
                try:
                    fn(*args)
                except (OSError, DiskError, subprocess.SubprocessError) as e:
                    self.errors.append("%s: %s" % (what, e))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run(argv, what, timeout=TOOL_TIMEOUT, **kw):
    """A host tool's stdout; DiskError naming WHAT with the tool's last line on failure."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_ENV,
                           stdin=subprocess.DEVNULL, **kw)
    except FileNotFoundError:
        raise DiskError("%s: %s is not installed" % (what, argv[0])) from None
    except subprocess.TimeoutExpired:
        raise DiskError("%s: %s took longer than %d s" % (what, argv[0], timeout)) from None
    if r.returncode != 0:
        lines = [ln.strip() for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
        raise DiskError("%s: %s" % (what, lines[-1] if lines else "%s failed (%d)" % (argv[0], r.returncode)))
    return r.stdout


# ---------------------------------------------------------------- the image

F_OFD_GETLK = 36
QEMU_LOCK_WRITE = 101  # qemu's lock protocol: byte 100 + bit of BLK_PERM_WRITE (1 << 1)


def held_for_writing(path):
    """True when a qemu process holds PATH with write permission (its OFD lock on byte 101): a
    running VM. qemu lets readers share raw images with a writer; a copy of a disk being written
    is not a disk, so we refuse whatever the format."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        query = struct.pack("=hh4xqqi4x", fcntl.F_WRLCK, os.SEEK_SET, QEMU_LOCK_WRITE, 1, 0)
        got = fcntl.fcntl(fd, F_OFD_GETLK, query)
        return struct.unpack("=hh4xqqi4x", got)[0] != fcntl.F_UNLCK
    except OSError:
        return False  # a filesystem without OFD locks: qemu could not have locked it either
    finally:
        os.close(fd)


def check_image(path, fmt, disk):
    """qemu-img check for formats that have one: a corrupt or truncated image stops here."""
    if held_for_writing(path):
        raise DiskError("%s: the image is in use by another process (qemu's lock: open for writing)" % disk)
    if fmt not in ("qcow2", "qcow", "vdi", "vhdx"):
        return
    try:
        r = subprocess.run(["qemu-img", "check", "-f", fmt, "--output=json", path], capture_output=True, text=True,
                           timeout=TOOL_TIMEOUT, env=_ENV, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return  # qemu-storage-daemon still refuses what it cannot open
    except subprocess.TimeoutExpired:
        raise DiskError("%s: qemu-img check took longer than %d s" % (disk, TOOL_TIMEOUT)) from None
    if r.returncode in (0, 3, 63):  # clean, leaked clusters only, format without checks
        return
    try:
        info = json.loads(r.stdout)
        why = "%d corrupt cluster(s)" % info.get("corruptions", 0) if info.get("corruptions") else \
            "%d check error(s)" % info.get("check-errors", 0)
    except ValueError:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        why = lines[-1].split(": ", 1)[-1] if lines else "qemu-img check failed"
        if "lock" in r.stderr:
            raise DiskError("%s: the image is in use by another process (qemu's lock)" % disk) from None
    raise DiskError("%s: corrupt %s image: %s" % (disk, fmt, why))


def export(path, fmt, undo, workdir, window=None):
    """A raw, read-only view of the image as a file (FUSE export); window=(offset, size) of PATH
    to read the image from (a .vmdk inside an .ova). Returns the export's path and virtual size."""
    target = os.path.join(workdir, "disk.raw")
    with open(target, "w"):
        pass
    pidfile = os.path.join(workdir, "qsd.pid")
    file_node = "driver=file,node-name=file0,filename=%s,read-only=on" % _qemu_escape(path)
    nodes = ["--blockdev", file_node]
    below = "file0"
    if window:
        nodes += ["--blockdev", "driver=raw,node-name=win0,file=file0,offset=%d,size=%d,read-only=on" % window]
        below = "win0"
    nodes += ["--blockdev", "driver=%s,node-name=disk0,file=%s,read-only=on" % (fmt, below)]
    argv = [QSD] + nodes + ["--export", "type=fuse,id=exp0,node-name=disk0,mountpoint=%s,writable=off"
                            % _qemu_escape(target), "--daemonize", "--pidfile", pidfile]
    try:
        run(argv, path)
    except DiskError as e:
        msg = str(e)
        if "lock" in msg:
            raise DiskError("%s: the image is in use by another process (qemu's lock): %s"
                            % (path, msg.split(": ", 1)[-1])) from None
        raise
    with open(pidfile) as f:
        pid = int(f.read().strip())
    undo.push("stop qemu-storage-daemon %d" % pid, _stop_daemon, pid, target)
    return target, os.stat(target).st_size


def _qemu_escape(value):
    return value.replace(",", ",,")


def _stop_daemon(pid, mountpoint):
    try:
        fd = libc.pidfd_open(pid)
    except OSError:
        fd = None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if fd is not None:
        import select
        select.select([fd], [], [], 10)  # a pidfd is readable when the process has exited
        os.close(fd)
    if os.path.ismount(mountpoint):
        subprocess.run(["fusermount3", "-u", "-z", mountpoint], capture_output=True, env=_ENV)


def read_at(path):
    """A read(offset, length) function over a file, for the partition-table parser."""
    def read(offset, length):
        with open(path, "rb") as f:
            return os.pread(f.fileno(), length, offset)
    return read


# ---------------------------------------------------------------- loop devices

def attach(backing, offset, size, undo, what):
    """A read-only loop device over SIZE bytes of BACKING from OFFSET; its /dev path."""
    bfd = os.open(backing, os.O_RDONLY | os.O_CLOEXEC)
    try:
        ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        os.close(bfd)
        raise DiskError("%s: no loop devices (/dev/loop-control: %s)" % (what, e.strerror)) from None
    try:
        for _ in range(64):  # another process may take the free device between the two calls
            n = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
            dev = "/dev/loop%d" % n
            try:
                lfd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            info = struct.pack("=QQQQQIIII64s64s32s2Q", 0, 0, 0, offset, size, 0, 0, 0,
                               LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR, os.path.basename(backing).encode()[:63],
                               b"", b"", 0, 0)
            config = struct.pack("=II", bfd, 0) + info + b"\0" * 64
            try:
                fcntl.ioctl(lfd, LOOP_CONFIGURE, config)
            except OSError as e:
                os.close(lfd)
                if e.errno == errno.EBUSY:
                    continue
                raise DiskError("%s: loop device: %s" % (what, e.strerror)) from None
            undo.push("detach %s" % dev, os.close, lfd)  # autoclear: gone with its last user
            return dev
        raise DiskError("%s: no free loop device" % what)
    finally:
        os.close(ctl)
        os.close(bfd)


def probe(dev):
    """blkid's low-level probe of DEV as a dict (TYPE, UUID, LABEL, ...); {} when nothing is found."""
    r = subprocess.run(["blkid", "-p", "-o", "export", dev], capture_output=True, text=True, env=_ENV,
                       timeout=TOOL_TIMEOUT, stdin=subprocess.DEVNULL)
    out = {}
    for line in r.stdout.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


# ---------------------------------------------------------------- LVM

def lvm_config(devices):
    accept = ",".join('"a|^%s$|"' % d for d in devices)
    return ('devices { filter=[%s,"r|.*|"] global_filter=[%s,"r|.*|"] use_devicesfile=0 } '
            'global { activation=0 } backup { backup=0 archive=0 }' % (accept, accept))


def lvm_segments(pv_devices, disk):
    """[(vg, lv, segtype, [(pv_device, first_pe, last_pe)], extent_size)] and {pv: pe_start} for the
    volume groups on PV_DEVICES, through lvm's read-only report."""
    cfg = lvm_config(pv_devices)
    base = ["lvm"]
    common = ["--config", cfg, "--nolocking", "--readonly", "--reportformat", "json", "--units", "b", "--nosuffix"]
    try:
        segs = json.loads(run(base + ["lvs"] + common + ["--segments", "-a", "-o",
                              "vg_name,lv_name,segtype,seg_pe_ranges,vg_extent_size,seg_start_pe"],
                              "%s: lvm" % disk))["report"][0]["seg"]
        pvs = json.loads(run(base + ["pvs"] + common + ["-o", "pv_name,pe_start,vg_name"],
                             "%s: lvm" % disk))["report"][0]["pv"]
    except (ValueError, KeyError, IndexError) as e:
        raise DiskError("%s: unreadable lvm report: %s" % (disk, e)) from None
    lvs = {}
    for s in segs:
        ranges = []
        for r in s["seg_pe_ranges"].split():
            dev, _, span = r.rpartition(":")
            first, _, last = span.partition("-")
            ranges.append((dev, int(first), int(last)))
        key = (s["vg_name"], s["lv_name"])
        lvs.setdefault(key, []).append((int(s["seg_start_pe"]), s["segtype"], ranges, int(s["vg_extent_size"])))
    return lvs, {p["pv_name"]: int(p["pe_start"]) for p in pvs}


# ---------------------------------------------------------------- mounts

# Options that keep a filesystem from writing (journal replay), most specific first: the first the
# kernel accepts is used (btrfs spells nologreplay as rescue=nologreplay since 5.9). xfs also takes
# nouuid: it refuses a second mount of one UUID machine-wide (the same disk imported twice at once,
# a clone of the VM's disk mounted on the host).
MOUNT_OPTIONS = {
    "ext2": [[]], "ext3": [["noload"]], "ext4": [["noload"]],
    "xfs": [["norecovery", "nouuid"]], "btrfs": [["rescue=nologreplay"], ["nologreplay"]],
}
FLAGS = libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC


def mount(dev, fstype, target_fd, undo, extra=(), what="mount"):
    """Mount DEV read-only on the directory open as TARGET_FD; the undo unmounts it."""
    target = safepath.fd_path(target_fd)
    err = None
    for opts in MOUNT_OPTIONS[fstype]:
        try:
            libc.mount(dev, target, fstype, FLAGS, ",".join(opts + list(extra)) or None)
            break
        except OSError as e:
            err = e
    else:
        raise DiskError("%s: cannot mount %s (%s): %s" % (what, dev, fstype, err.strerror or err)) from None
    where = safepath.where(target_fd)
    undo.push("unmount %s" % where, _umount, where)
    return where


def _umount(path):
    try:
        libc.umount(path)
    except OSError:
        libc.umount(path, libc.MNT_DETACH)


def private_mount_namespace():
    """This process's mounts in a namespace of its own: none of them is ever seen by the host, and
    all of them go when the process (and its children) are gone, even after SIGKILL."""
    libc.unshare(libc.CLONE_NEWNS)
    libc.mount("none", "/", None, libc.MS_REC | libc.MS_PRIVATE)


def scratch_dir(parent=None):
    return tempfile.mkdtemp(prefix="rich-import-", dir=parent)
