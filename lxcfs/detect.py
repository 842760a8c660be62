"""Which view backend a container gets: a running lxcfs, our server, or none (VM runtimes).

Annotation io.richinit.lxcfs = auto | lxcfs | builtin | off (default auto: lxcfs if running,
else ours). Kata and gVisor show their own VM's /proc, so views are skipped for them whatever
the annotation says.
"""

import errno
import os

from osbase import mountapi, procfs

ANNOTATION = "io.richinit.lxcfs"
MODES = ("auto", "lxcfs", "builtin", "off")
DEFAULT_LXCFS = "/var/lib/lxcfs"
SERVER_FSTYPE = "fuse.richviews"

_VM_RUNTIME_WORDS = ("runsc", "gvisor", "kata")
_VM_ANNOTATION_PREFIXES = ("io.katacontainers.", "dev.gvisor.")


class BadAnnotation(ValueError):
    pass


def fuse_mounts(fstype, proc="/proc"):
    """Mount points of a FUSE filesystem type in our mount namespace, in mount order."""
    return [m for m in procfs.mountinfo("self", proc) if m["fstype"] == fstype]


def _alive(path):
    try:
        os.stat(path)
        return True
    except OSError as e:
        if e.errno in (errno.ENOTCONN, errno.ECONNABORTED, errno.ENOENT):
            return False
        raise


def find_lxcfs(proc="/proc", prefer=DEFAULT_LXCFS):
    """The mountpoint of a live lxcfs (fuse.lxcfs in mountinfo, answering), or None."""
    cands = [m["mountpoint"] for m in fuse_mounts("fuse.lxcfs", proc)]
    cands.sort(key=lambda mp: mp != prefer)
    for mp in cands:
        if _alive(os.path.join(mp, "proc")):
            return mp
    return None


def mount_id(mountpoint, fstype, proc="/proc"):
    """Mount id of the topmost `fstype` mount at mountpoint (None if absent): changes on every restart."""
    ids = [m["mount_id"] for m in procfs.mountinfo("self", proc)
           if m["mountpoint"] == mountpoint and m["fstype"] == fstype]
    return ids[-1] if ids else None


def generation(mountpoint, fstype, proc="/proc"):
    """An id that changes every time a backend (re)mounts at mountpoint; None while it is down.

    The 64-bit unique mount id from statx: mountinfo's ids are reused at once, so a restarted
    server usually gets its old one back. A dead FUSE mount fails statx (ENOTCONN) -> None.
    """
    if mount_id(mountpoint, fstype, proc) is None:
        return None
    try:
        mid, unique = mountapi.mount_id_of(mountpoint)
    except OSError:
        return None
    return mid if unique else (mid, mount_id(mountpoint, fstype, proc))


def is_vm_runtime(runtime="", annotations=None):
    """True for gVisor (runsc) and Kata: their guests have their own /proc."""
    name = os.path.basename(runtime or "").lower()
    if any(w in name for w in _VM_RUNTIME_WORDS):
        return True
    for key, val in (annotations or {}).items():
        if any(key.startswith(p) for p in _VM_ANNOTATION_PREFIXES):
            return True
        # containerd/CRI name the runtime handler in annotations (io.containerd.runsc.v1, kata-*).
        if key in ("io.kubernetes.cri.runtime-handler", "io.containerd.runtime") and \
                any(w in str(val).lower() for w in _VM_RUNTIME_WORDS):
            return True
    return False


def requested_mode(annotations):
    val = (annotations or {}).get(ANNOTATION, "auto")
    if val not in MODES:
        raise BadAnnotation("config.json annotations[%s]=%r: must be one of %s" % (ANNOTATION, val, "|".join(MODES)))
    return val


def choose_backend(runtime="", annotations=None, lxcfs_mount=None):
    """'lxcfs', 'builtin' or None (no views). lxcfs_mount: find_lxcfs()'s answer (passed in for tests).

    An explicit 'lxcfs' with no lxcfs running is an error, not a silent switch to ours.
    """
    mode = requested_mode(annotations)
    if mode == "off" or is_vm_runtime(runtime, annotations):
        return None
    if mode == "lxcfs":
        if not lxcfs_mount:
            raise BadAnnotation("config.json annotations[%s]=lxcfs: no lxcfs is running on this host" % ANNOTATION)
        return "lxcfs"
    if mode == "builtin":
        return "builtin"
    return "lxcfs" if lxcfs_mount else "builtin"
