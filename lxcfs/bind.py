"""Put view files over a container's /proc and /sys files: as config.json mounts (before create),
or inside an already running container's mount namespace (the createRuntime hook, the watcher).

How the running-container bind works, and why this way (tried on this kernel, 6.18):
- mount(2) MS_BIND cannot take a source from one mount namespace and a target in another: after
  setns() into the container the host's view directory is not reachable, and before it the
  container's /proc/meminfo is not. /proc/PID/root paths do not help: the kernel refuses a bind
  whose target is outside the caller's namespace (EINVAL).
- So: open_tree(OPEN_TREE_CLONE) each view file while still in the host namespace (a detached
  mount, held by an fd), then setns(pidfd, CLONE_NEWNS) and move_mount() the detached copy onto
  the target fd. Detached trees may be attached in any namespace we have CAP_SYS_ADMIN over.
- Binding the whole view directory into the container first would need a spare directory in
  the image and leaves the host path visible inside; the per-file clone needs neither.
- setns() into a mount namespace fails (EINVAL) in a multi-threaded process (shared fs_struct),
  so the work happens in a forked child that reports back through a pipe.
- Inside the container /proc is the container's procfs, where /proc/self does not exist for us
  (our pid is not in its pid namespace). The child keeps an fd of the HOST /proc and uses
  relative "self/fd/N" paths under it: for unmounting a dead view by fd, and for mountinfo.
- Targets are resolved inside the container root with osbase.safepath (RESOLVE_IN_ROOT), never
  by following the image's symlinks; missing targets are skipped, never created under /proc.
  mode=0 is passed explicitly: openat2(2) rejects a non-zero mode without O_CREAT (EINVAL).
- A dead FUSE mount ("Transport endpoint is not connected") left by a restart is detached first
  (only FUSE mounts sitting exactly on the target), so binds do not pile up.
"""

import errno
import os

from osbase import libc, mountapi, procfs, safepath, standin

PROC_FILES = ("meminfo", "cpuinfo", "stat", "uptime", "loadavg", "diskstats", "swaps")
VIEW_FILES = tuple("proc/" + f for f in PROC_FILES) + ("sys/devices/system/cpu/online",)


class BindError(OSError):
    pass


def available(source_dir, files=VIEW_FILES):
    """The view files present under source_dir (a live lxcfs mount or our MOUNT/<id>)."""
    out = []
    for rel in files:
        try:
            os.stat(os.path.join(source_dir, rel))
        except OSError:
            continue
        out.append(rel)
    return out


def oci_mounts(source_dir, files=VIEW_FILES, check=True):
    """config.json "mounts" entries binding each view file over its /proc or /sys twin: the ones
    available under source_dir, or (check=False) all of them."""
    return [{"destination": "/" + rel, "type": "bind", "source": os.path.join(source_dir, rel),
             "options": ["rbind", "rprivate", "ro"]} for rel in (available(source_dir, files) if check else files)]


def start_ticks(pid, proc="/proc"):
    f = procfs.stat_fields(pid, proc)
    return None if f is None else int(f[1][19])


def bind_into(pid, source_dir, *, root="/", pid_start=None, files=VIEW_FILES):
    """Bind the available view files of source_dir over ROOT/<file> in pid's mount namespace.

    root is the container's root as seen inside its mount namespace: "/" once it runs, the
    rootfs path during createRuntime (before pivot_root). pid_start (from start_ticks) guards
    against a reused pid. Returns the targets bound; raises BindError with one clear line.
    """
    rels = available(source_dir, files)
    if not rels:
        raise BindError(errno.ENOENT, "no view files under %s" % source_dir)
    rfd, wfd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, reported through the pipe
        os.close(rfd)
        code = 0
        try:
            result = {"bound": _bind_in_child(pid, source_dir, rels, root, pid_start)}
        except BaseException as e:  # noqa: B036 - the child must always report and _exit
            result, code = {"error": str(e), "errno": getattr(e, "errno", None) or errno.EIO}, 1
        try:
            os.write(wfd, standin.json_dumps(result).encode())
        finally:
            os._exit(code)
    os.close(wfd)
    chunks = []
    while True:
        b = os.read(rfd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(rfd)
    os.waitpid(child, 0)
    try:
        result = standin.json_loads(b"".join(chunks) or b"{}")
    except ValueError:
        result = {}
    if "bound" not in result:
        raise BindError(result.get("errno") or errno.EIO,
                        "binding views into pid %d: %s" % (pid, result.get("error", "child died")))
    return result["bound"]


def _mnt_id(host_proc, fd):
    text = _read_rel(host_proc, "self/fdinfo/%d" % fd)
    for line in text.splitlines():
        if line.startswith("mnt_id:"):
            return int(line.split()[1])
    return None


def _read_rel(dirfd, rel):
    fd = os.open(rel, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        out = b""
        while True:
            b = os.read(fd, 65536)
            if not b:
                return out.decode()
            out += b
    finally:
        os.close(fd)


def _mounts_by_id(host_proc):
    out = {}
    for line in _read_rel(host_proc, "self/mountinfo").splitlines():
        pre, _, post = line.partition(" - ")
        a = pre.split()
        if len(a) >= 5 and post:
            out[int(a[0])] = (procfs._unescape(a[4]), post.split()[0])
    return out


def _bind_in_child(pid, source_dir, rels, root, pid_start):
    # 1. In the host namespace: detached copies of the sources, the host /proc, the container's pidfd.
    trees = {rel: mountapi.clone_tree(os.path.join(source_dir, rel)) for rel in rels}
    host_proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    pidfd = libc.pidfd_open(pid)
    if pid_start is not None and start_ticks(pid) != pid_start:
        raise BindError(errno.ESRCH, "pid %d is no longer the container's init" % pid)
    # 2. Into the container's mount namespace (its root and cwd become the namespace's root).
    libc.setns(pidfd, libc.CLONE_NEWNS)
    os.fchdir(host_proc)  # relative "self/..." paths now mean the host /proc, where we exist
    rootfd = safepath.open_root(root)
    done = []
    try:
        for rel in rels:
            target = "/" + rel
            try:
                tfd = safepath.open_in_root(rootfd, target, safepath.O_PATH, mode=0)
            except FileNotFoundError:
                continue  # only where the target exists
            try:
                where = os.path.normpath(root.rstrip("/") + target)  # as mountinfo names it
                tfd = _detach_dead_views(host_proc, rootfd, target, where, tfd)
                mountapi.attach(trees[rel], tfd)
                done.append((target, tfd))
            except BaseException:
                os.close(tfd)
                raise
    except BaseException:
        for _, fd in reversed(done):  # nothing half-applied
            try:
                libc.umount("self/fd/%d" % fd, libc.MNT_DETACH)
            except OSError:
                pass
        raise
    return [t for t, _ in done]


def _detach_dead_views(host_proc, rootfd, target, where, tfd):
    """Detach FUSE mounts stacked exactly on target (earlier views, dead or alive); returns a fresh fd."""
    for _ in range(16):
        mounts = _mounts_by_id(host_proc)
        mid = _mnt_id(host_proc, tfd)
        mp, fstype = mounts.get(mid, (None, None))
        if not (fstype and fstype.startswith("fuse") and mp == where):
            return tfd
        libc.umount("self/fd/%d" % tfd, libc.MNT_DETACH)
        os.close(tfd)
        tfd = safepath.open_in_root(rootfd, target, safepath.O_PATH, mode=0)
    return tfd
