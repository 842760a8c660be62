"""Our /proc view server: one FUSE filesystem per host, one directory per registered container.

    MOUNT/<container-id>/proc/{meminfo,cpuinfo,stat,uptime,loadavg,diskstats,swaps}
    MOUNT/<container-id>/sys/devices/system/cpu/online

Which container a read is for is decided by the path alone (the hook registered the id with its
init pid and cgroup paths in the registry directory), never by the reader's pid. A container
registered before its init existed (`rich run` runs no hook) is registered with its rootfs'
identity instead; its init is then found from the first reader inside it (lxcfs.locate checks
that the reader's namespace init has that root, so the reader only helps find the container the
path named). Files are rendered once at open() into a per-handle buffer, so a reader that reads
in pieces sees one consistent text.

It never crashes on a container's behalf: cgroup problems fall back to host values (reader.py),
and any unexpected error while rendering serves the host's file.

Threads: requests are served by ONE libfuse thread (-s). Measured here, libfuse's thread pool
costs ~160 us per file read in GIL hand-offs between its workers (loadavg 325 -> 173 us, meminfo
545 -> 336 us), more than the whole render. Single-threaded is safe because nothing on the request
path can stall: it reads only kernfs cgroup files and /proc/<init>/stat (no disk, no locks held
by containers); the one walk over a container's tasks (loadavg) runs on the sampler thread.

    python -m lxcfs.server [--mount DIR] [--registry DIR] [--pidfile FILE] [--daemon] [--log FILE]
"""

import argparse
import errno
import itertools
import logging
import os
import stat as stat_mod
import sys
import threading
import time

from lxcfs import locate, pidlock, reader, registry, render
from osbase import cgroup, libc, procfs

log = logging.getLogger("lxcfs.server")

from lxcfs.registry import DEFAULT_MOUNT, DEFAULT_PIDFILE  # noqa: E402,F401 (defined there: cheap to import)

FSNAME = "richviews"  # the mount shows as fstype fuse.richviews

PROC_FILES = ("meminfo", "cpuinfo", "stat", "uptime", "loadavg", "diskstats", "swaps")
CPU_ONLINE = "sys/devices/system/cpu/online"
VIEW_FILES = tuple("proc/" + f for f in PROC_FILES) + (CPU_ONLINE,)

# Directory tree inside one container's view directory.
_DIRS = {"": ("proc", "sys"), "proc": PROC_FILES, "sys": ("devices",), "sys/devices": ("system",),
         "sys/devices/system": ("cpu",), "sys/devices/system/cpu": ("online",)}

HOST_TTL = 0.5       # host /proc texts (meminfo's passthrough lines, stat, diskstats) may be this old
HOST_TTL_SLOW = 10.0  # cpuinfo, swaps, cpu/online hardly ever change
LIMIT_TTL = 1.0      # cgroup limits (memory.max up the tree, cpuset, quota) are re-read this often
LOAD_INTERVAL = 5.0  # the kernel's loadavg period


class HostFiles:
    """Host /proc texts, re-read at most every `ttl` seconds."""

    def __init__(self, proc="/proc", sys_root="/sys"):
        self.proc, self.sys_root, self.cache, self.lock = proc, sys_root, {}, threading.Lock()

    def get(self, name, ttl=HOST_TTL):
        now = time.monotonic()
        hit = self.cache.get(name)
        if hit and now - hit[0] < ttl:
            return hit[1]
        path = (self.sys_root + "/" + name[4:]) if name.startswith("sys/") else (self.proc + "/" + name)
        text = procfs.read_text(path) or ""
        self.cache[name] = (now, text)
        return text


class CachedContainer(reader.Container):
    """A reader.Container whose slowly-changing values (limits, cpuset, quota) are memoized briefly."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._memo = {}

    def _cached(self, key, fn):
        now = time.monotonic()
        hit = self._memo.get(key)
        if hit and now - hit[0] < LIMIT_TTL:
            return hit[1]
        val = fn()
        self._memo[key] = (now, val)
        return val

    def _mem_limit(self):
        return self._cached("mem_limit", super()._mem_limit)

    def _min_limit(self, v1_file, v2_file):
        parent = super()._min_limit
        return self._cached(("min", v1_file, v2_file), lambda: parent(v1_file, v2_file))

    def cpuset(self):
        return self._cached("cpuset", super().cpuset)

    def start_seconds(self):
        start = self._memo.get("start")
        if start is None:  # an init's start time never changes
            start = super().start_seconds()
            if start is not None:
                self._memo["start"] = start
        return start

    def quota_cpus(self):
        return self._cached("quota", super().quota_cpus)


class Views:
    """Everything but FUSE: the registered containers and rendering their files."""

    def __init__(self, registry_dir, proc="/proc", sys_root="/sys", mounts=None):
        self.registry_dir, self.proc = registry_dir, proc
        self.mounts = mounts if mounts is not None else cgroup.mounts(proc)
        self.host = HostFiles(proc, sys_root)
        self.warn = reader.Warner(log)
        self.containers = {}  # id -> (entry, CachedContainer or None while the pid is unknown)
        self.loads = {}       # id -> (fixed-point averages, (active, total, last_pid))
        self._stamp = object()
        self._lock = threading.Lock()
        self.reload()

    def reload(self, force=False):
        st = registry.stamp(self.registry_dir)
        if st == self._stamp and not force:
            return
        with self._lock:
            self._stamp = st
            fresh = {}
            for cid, entry in registry.read_all(self.registry_dir).items():
                if entry.get("backend", "builtin") != "builtin":
                    continue
                old = self.containers.get(cid)
                if old and old[0] == entry:
                    fresh[cid] = old
                    continue
                c = None
                if entry.get("pid"):
                    c = CachedContainer(cid, entry["pid"], entry.get("cgroups") or {}, self.mounts,
                                        proc=self.proc, warn=self.warn)
                fresh[cid] = (entry, c)
            self.containers = fresh
            self.loads = {k: v for k, v in self.loads.items() if k in fresh}

    def lookup(self, cid, reader_pid=None):
        hit = self.containers.get(cid)
        if hit is None:
            # A container registered since we last looked. Forced: the registry directory's mtime
            # comes from the kernel's coarse clock, so an entry written in the same tick as our
            # last reload leaves the stamp unchanged.
            self.reload(force=True)
            hit = self.containers.get(cid)
        if hit is not None and hit[1] is None and reader_pid and hit[0].get("root"):
            hit = self._adopt(cid, hit[0], reader_pid) or hit
        return hit

    def _adopt(self, cid, entry, reader_pid):
        """An entry without a pid, read from inside a container: find that container's init."""
        pid = locate.init_for_reader(reader_pid, entry["root"], self.mounts, self.proc)
        if pid is None:
            return None
        c = CachedContainer(cid, pid, procfs.cgroup_paths(pid, self.proc), self.mounts, proc=self.proc,
                            warn=self.warn)
        with self._lock:
            if self.containers.get(cid, (None,))[0] is not entry:
                return None  # replaced meanwhile
            self.containers[cid] = hit = (entry, c)
        log.info("%s: init pid %d found from reader %d", cid, pid, reader_pid)
        return hit

    def host_online(self):
        try:
            return render.parse_cpulist(self.host.get(CPU_ONLINE, HOST_TTL_SLOW))
        except ValueError:
            return list(range(os.cpu_count() or 1))

    def _cpus(self, c):
        return render.visible_cpus(c.cpuset(), c.quota_cpus(), self.host_online())

    def render(self, cid, name, reader_pid=None):
        """The text of one view file (str). Unknown name -> KeyError. reader_pid: who reads (FUSE)."""
        self.reload()  # one stat(): a re-registration (the init's pid arriving) shows at once
        hit = self.lookup(cid, reader_pid)
        if hit is None:
            raise KeyError(cid)
        c = hit[1]
        if name == CPU_ONLINE:
            return render.render_cpu_online(self._cpus(c)) if c else self.host.get(name, HOST_TTL_SLOW)
        if not name.startswith("proc/") or name[5:] not in PROC_FILES:
            raise KeyError(name)
        f = name[5:]
        slow = f in ("cpuinfo", "swaps")
        host = self.host.get(f, HOST_TTL_SLOW if slow else HOST_TTL) if f != "uptime" else \
            (procfs.read_text(self.proc + "/uptime") or "0 0\n")
        if c is None:  # registered before its init existed: the host's view until the hook adds the pid
            return host
        try:
            return self._render(c, f, host)
        except Exception:  # a renderer bug must not take the file away: show the host's
            log.exception("%s: rendering %s failed; serving the host's", cid, f)
            return host

    def _render(self, c, f, host):
        if f == "meminfo":
            return render.render_meminfo(host, c.memory())
        if f == "swaps":
            return render.render_swaps(host, c.memory())
        if f == "cpuinfo":
            return render.render_cpuinfo(host, self._cpus(c))
        if f == "stat":
            return render.render_stat(host, self._cpus(c), c.cpu_usage())
        if f == "uptime":
            usage = c.cpu_usage()
            used = None if usage is None else \
                sum(u + s for u, s in (usage["percpu"].values() if "percpu" in usage else [usage["total"]])) / 1e9
            return render.render_uptime(host, c.start_seconds(), used, len(self._cpus(c)))
        if f == "loadavg":
            return render.render_loadavg(host, self.load_of(c))
        if f == "diskstats":
            return render.render_diskstats(host, c.io())
        raise KeyError(f)

    def load_of(self, c):
        """The sampled load; None (the host's line) until the sampler's first pass, at most ~1 s."""
        hit = self.loads.get(c.cid)
        if hit is None:
            return None
        avgs, (running, total, last) = hit
        return (*render.load_to_float(avgs), running, total, last)

    def sample_one(self, c):
        tasks = c.tasks()
        if tasks is None:
            return
        avgs = self.loads.get(c.cid, ((0, 0, 0), None))[0]
        self.loads[c.cid] = (render.calc_load(avgs, tasks[0]), tasks)

    def sample_all(self, only_new=False):
        for _, c in list(self.containers.values()):
            if c is not None and not (only_new and c.cid in self.loads):
                try:
                    self.sample_one(c)
                except Exception:
                    log.exception("%s: load sample failed", c.cid)


def _reader_pid():
    """The pid of the process whose request is being served (libfuse's context), or None."""
    try:
        from mfusepy import fuse_get_context
        return fuse_get_context()[2] or None
    except Exception:  # outside a request (tests drive ViewFS directly)
        return None


class ViewFS:
    """The mfusepy Operations: a read-only tree over Views (raw_fi=True: we set direct_io per open)."""

    use_ns = True

    def init(self, path):
        """libfuse has mounted us and answers requests from now on: tell whoever started us."""
        notify(self.notify_fd)
        self.notify_fd = None

    def __init__(self, views, notify_fd=None):
        self.views = views
        self.notify_fd = notify_fd
        self.handles = {}
        self.fh = itertools.count(1)
        self.t0 = int(time.time() * 1e9)
        self.recent = {}  # (cid, file) -> (monotonic, bytes): getattr's render, reused by the open after it

    # sendfile/splice (busybox cat) reads through the page cache, bounded by the file size the
    # kernel has from getattr: direct_io does not cover that path. So getattr reports the real
    # length of a fresh render, and the open that follows (stat, then open, as cat does) serves
    # that same render, so size and content agree. attr_timeout is short for the same reason.
    RECENT = 0.5

    def _render(self, cid, rest, fresh=False):
        now = time.monotonic()
        self.views.reload()  # one stat(): a re-registration must not be served a stale render
        reader_pid = _reader_pid()
        hit = self.recent.pop((cid, rest), None)
        if hit is not None and not fresh and now - hit[0] < self.RECENT and \
                hit[1] is self.views.lookup(cid, reader_pid):
            return hit[2]
        data = self.views.render(cid, rest, reader_pid).encode()
        if fresh:
            if len(self.recent) > 1024:
                self.recent.clear()
            self.recent[(cid, rest)] = (now, self.views.lookup(cid), data)
        return data

    @staticmethod
    def split(path):
        parts = path.strip("/").split("/", 1)
        return parts[0], (parts[1] if len(parts) > 1 else "")

    def _dir_attr(self):
        return {"st_mode": stat_mod.S_IFDIR | 0o555, "st_nlink": 2, "st_uid": 0, "st_gid": 0,
                "st_mtime": self.t0, "st_atime": self.t0, "st_ctime": self.t0}

    def getattr(self, path, fh=None):
        from mfusepy import FuseOSError
        if path == "/":
            return self._dir_attr()
        cid, rest = self.split(path)
        if self.views.lookup(cid) is None:
            raise FuseOSError(errno.ENOENT)
        if rest in _DIRS:
            return self._dir_attr()
        if rest in VIEW_FILES:
            try:
                size = len(self._render(cid, rest, fresh=True))
            except Exception:
                size = 0
            return {"st_mode": stat_mod.S_IFREG | 0o444, "st_nlink": 1, "st_size": size, "st_uid": 0, "st_gid": 0,
                    "st_mtime": self.t0, "st_atime": self.t0, "st_ctime": self.t0}
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        from mfusepy import FuseOSError
        if path == "/":
            self.views.reload()
            return [".", ".."] + sorted(self.views.containers)
        cid, rest = self.split(path)
        if self.views.lookup(cid) is None or rest not in _DIRS:
            raise FuseOSError(errno.ENOENT)
        return [".", ".."] + list(_DIRS[rest])

    def open(self, path, fi):
        from mfusepy import FuseOSError
        if fi.flags & (os.O_WRONLY | os.O_RDWR):
            raise FuseOSError(errno.EACCES)
        cid, rest = self.split(path)
        try:
            data = self._render(cid, rest)
        except KeyError:
            raise FuseOSError(errno.ENOENT) from None
        fh = next(self.fh)
        self.handles[fh] = data
        fi.fh = fh
        fi.direct_io = 1
        return 0

    def read(self, path, size, offset, fi):
        data = self.handles.get(fi.fh, b"")
        return data[offset:offset + size]

    def release(self, path, fi):
        self.handles.pop(fi.fh, None)
        return 0


# ---------- process management ----------

def clear_stale_mount(mountpoint):
    """A server killed with SIGKILL leaves 'Transport endpoint is not connected' behind: detach it.
    (Called with the pid-file lock held: any mount of ours at mountpoint is a dead server's.)"""
    for _ in range(8):  # stacked dead mounts from repeated crashes
        try:
            os.stat(mountpoint)
        except FileNotFoundError:
            break
        except OSError as e:
            if e.errno != errno.ENOTCONN:
                raise
        else:
            if not any(m["mountpoint"] == mountpoint and m["fstype"] == "fuse." + FSNAME
                       for m in procfs.mountinfo()):
                break
        libc.umount(mountpoint, libc.MNT_DETACH)
    # After the checks: os.makedirs on a dead mount point fails (EEXIST, and then stat: ENOTCONN).
    os.makedirs(mountpoint, exist_ok=True)


def daemonize(log_file, keep_fds=()):
    """Detach (python-daemon: double fork, setsid, cwd /, stdio on /dev/null or the log file), keeping
    keep_fds open (the pid-file lock). Signal handlers are left alone: libfuse installs its own."""
    import daemon
    out = open(log_file, "a", buffering=1) if log_file else None  # noqa: SIM115 - the daemon's stdout/stderr
    daemon.DaemonContext(files_preserve=list(keep_fds) + ([out] if out else []), stdout=out, stderr=out,
                         umask=0o022, signal_map={}, detach_process=True).open()


def _sampler(views, stop):
    ticks = 0
    while not stop.wait(1.0):
        try:
            views.reload()
            ticks += 1
            # Every 5 s like the kernel; a container seen for the first time gets its first sample now.
            views.sample_all(only_new=ticks % int(LOAD_INTERVAL) != 0)
        except Exception:
            log.exception("sampler")


def notify(fd):
    """s6-style readiness: a newline on fd, which is then closed."""
    if fd is not None:
        try:
            os.write(fd, b"\n")
        finally:
            os.close(fd)


def serve(mount, registry_dir, pidfile, daemon=False, log_file=None, notify_fd=None):
    fd = pidlock.lock(pidfile)
    if fd is None:
        print("lxcfs.server: already running (lock held on %s)" % pidfile, file=sys.stderr)
        return 0
    mount = os.path.abspath(mount)
    clear_stale_mount(mount)
    os.makedirs(registry_dir, mode=0o700, exist_ok=True)
    if daemon:
        daemonize(log_file, (fd,) + ((notify_fd,) if notify_fd is not None else ()))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s lxcfs.server[%(process)d] %(levelname)s %(message)s")
    pidlock.write_pid(fd)
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy
    views = Views(registry_dir)
    stop = threading.Event()
    threading.Thread(target=_sampler, args=(views, stop), daemon=True, name="sampler").start()
    log.info("serving views on %s for registry %s", mount, registry_dir)
    try:
        mfusepy.FUSE(ViewFS(views, notify_fd), mount, raw_fi=True, foreground=True, nothreads=True, allow_other=True,
                     ro=True, fsname=FSNAME, subtype=FSNAME, default_permissions=True,
                     entry_timeout=60, attr_timeout=0.5, direct_io=True)
    finally:
        stop.set()
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m lxcfs.server", description=__doc__.split("\n\n")[0])
    p.add_argument("--mount", default=DEFAULT_MOUNT)
    p.add_argument("--registry", default=registry.DEFAULT_DIR)
    p.add_argument("--pidfile", default=DEFAULT_PIDFILE)
    p.add_argument("--daemon", action="store_true", help="detach (double fork, setsid)")
    p.add_argument("--log", default=None, help="log file when daemonized")
    p.add_argument("--notify-fd", type=int, default=None, help="write a newline on this fd once mounted")
    a = p.parse_args(argv)
    try:
        return serve(a.mount, a.registry, a.pidfile, a.daemon, a.log, a.notify_fd)
    except OSError as e:
        print("lxcfs.server: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
