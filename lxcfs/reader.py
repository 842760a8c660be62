"""Gather the renderers' inputs from a cgroup mount layout and a proc root (both parameters).

A container is described by `cgroups` ({controller: path}, '' = the cgroup2 path, as in
/proc/PID/cgroup) and `mounts` ({controller: mountpoint}, '' = the cgroup2 mount, as from
osbase.cgroup.mounts). A controller mounted as v1 is read the v1 way; otherwise the v2 files
under the unified path are used. Anything unreadable or unparsable becomes None (the renderer
then shows the host value) and is reported once per container and field through `warn`.
"""

import os

from lxcfs import render
from osbase import cgroup

_V1_UNLIMITED = 1 << 62  # v1 reports "unlimited" as PAGE_COUNTER_MAX * PAGE_SIZE (≈ 2**63)

# memory.stat keys -> the names the renderer uses. v1 uses the hierarchical total_* counters.
_V1_STAT = {
    "total_cache": "cache", "total_rss": "anon", "total_shmem": "shmem", "total_mapped_file": "mapped",
    "total_dirty": "dirty", "total_writeback": "writeback", "total_active_anon": "active_anon",
    "total_inactive_anon": "inactive_anon", "total_active_file": "active_file",
    "total_inactive_file": "inactive_file", "total_unevictable": "unevictable", "total_swap": "swap",
}
_V2_STAT = {
    "file": "cache", "anon": "anon", "shmem": "shmem", "file_mapped": "mapped", "file_dirty": "dirty",
    "file_writeback": "writeback", "active_anon": "active_anon", "inactive_anon": "inactive_anon",
    "active_file": "active_file", "inactive_file": "inactive_file", "unevictable": "unevictable",
    "slab_reclaimable": "slab_reclaimable", "slab_unreclaimable": "slab_unreclaimable",
}


class Warner:
    """Logs the first failure of each (container, field); later ones are silent until it recovers."""

    def __init__(self, logger=None):
        self.logger, self.seen = logger, set()

    def __call__(self, who, field, err):
        key = (who, field)
        if key not in self.seen:
            self.seen.add(key)
            if self.logger is None:
                import logging  # only when something goes wrong: hooks import this module on every run
                self.logger = logging.getLogger("lxcfs.views")
            self.logger.warning("%s: %s unreadable (%s); showing the host value", who, field, err)

    def ok(self, who, field):
        self.seen.discard((who, field))


def normalize_memory_stat(raw, v2):
    table = _V2_STAT if v2 else _V1_STAT
    return {table[k]: v for k, v in raw.items() if k in table}


def _read(path):
    """A small cgroup or /proc file as str: os.open/os.read is several times cheaper than open()."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def _read_int(path):
    text = _read(path).strip()
    return None if text == "max" else int(text)


def _read_stat(path, table):
    """memory.stat / cpu.stat lines whose key is in `table`, renamed; parses only what we use."""
    out = {}
    for line in _read(path).splitlines():
        key, _, val = line.partition(" ")
        name = table.get(key)
        if name is not None:
            out[name] = int(val)
    return out


class Container:
    """One registered container: where its cgroup files are, and its init's pid."""

    def __init__(self, cid, pid, cgroups, mounts, proc="/proc", warn=None):
        self.cid, self.pid, self.cgroups, self.mounts, self.proc = cid, pid, dict(cgroups), dict(mounts), proc
        self.warn = warn or Warner()
        self._dirs = {}

    # -- locating files --
    def _dir(self, controller):
        """(directory, is_v2) of the cgroup holding `controller`, or raises LookupError."""
        hit = self._dirs.get(controller)
        if hit is None:
            hit = self._dirs[controller] = self._find_dir(controller)
        return hit

    def _find_dir(self, controller):
        if controller in self.mounts and controller in self.cgroups:
            return os.path.join(self.mounts[controller], self.cgroups[controller].lstrip("/")), False
        if "" in self.mounts and "" in self.cgroups:
            return os.path.join(self.mounts[""], self.cgroups[""].lstrip("/")), True
        raise LookupError("no %s cgroup" % controller)

    def _ancestors(self, controller):
        base, v2 = self._dir(controller)
        mount = self.mounts["" if v2 else controller]
        rel = os.path.relpath(base, mount)
        paths = cgroup.ancestors("/" if rel == "." else rel)
        return [os.path.join(mount, p.lstrip("/")) for p in paths], v2

    def _guard(self, field, fn):
        try:
            value = fn()
        except (OSError, ValueError, LookupError, KeyError, IndexError) as e:
            self.warn(self.cid, field, e)
            return None
        self.warn.ok(self.cid, field)
        return value

    # -- memory --
    def memory(self):
        usage = self._guard("memory usage", self._mem_usage)
        return {
            "limit": self._guard("memory limit", self._mem_limit),
            "usage": usage,
            "stat": self._guard("memory.stat", self._mem_stat),
            **self._guard_swap(usage),
        }

    def _min_limit(self, v1_file, v2_file):
        dirs, v2 = self._ancestors("memory")
        best = None
        for i, d in enumerate(dirs):
            path = os.path.join(d, v2_file if v2 else v1_file)
            try:
                val = _read_int(path)
            except FileNotFoundError:
                if i == 0:
                    raise
                continue  # the root cgroup has no limit file
            if val is not None and val < _V1_UNLIMITED:
                best = val if best is None else min(best, val)
        return best

    def _mem_limit(self):
        return self._min_limit("memory.limit_in_bytes", "memory.max")

    def _mem_usage(self):
        d, v2 = self._dir("memory")
        return _read_int(d + ("/memory.current" if v2 else "/memory.usage_in_bytes"))

    def _mem_stat(self):
        d, v2 = self._dir("memory")
        return _read_stat(d + "/memory.stat", _V2_STAT if v2 else _V1_STAT)

    def _guard_swap(self, mem_usage):
        def limit():
            d, v2 = self._dir("memory")
            if v2:
                return self._min_limit(None, "memory.swap.max")
            memsw, mem = self._min_limit("memory.memsw.limit_in_bytes", None), self._mem_limit()
            return None if memsw is None else max(0, memsw - (mem or 0))

        def usage():
            d, v2 = self._dir("memory")
            if v2:
                return _read_int(os.path.join(d, "memory.swap.current"))
            if mem_usage is None:
                raise ValueError("memory usage unknown")
            return max(0, _read_int(os.path.join(d, "memory.memsw.usage_in_bytes")) - mem_usage)

        return {"swap_limit": self._guard("swap limit", limit), "swap_usage": self._guard("swap usage", usage)}

    # -- cpu --
    def cpuset(self):
        def read():
            d, v2 = self._dir("cpuset")
            for name in (("cpuset.cpus.effective",) if v2 else ("cpuset.effective_cpus", "cpuset.cpus")):
                try:
                    return render.parse_cpulist(_read(os.path.join(d, name)))
                except FileNotFoundError:
                    continue
            raise FileNotFoundError("no cpuset file in %s" % d)
        return self._guard("cpuset", read)

    def quota_cpus(self):
        """Smallest quota/period up the hierarchy as a float, or None for no quota."""
        def read():
            dirs, v2 = self._ancestors("cpu")
            best = None
            for i, d in enumerate(dirs):
                try:
                    if v2:
                        q, _, p = _read(os.path.join(d, "cpu.max")).partition(" ")
                        q = None if q.strip() == "max" else int(q)
                        p = int(p)
                    else:
                        q = int(_read(os.path.join(d, "cpu.cfs_quota_us")))
                        p = int(_read(os.path.join(d, "cpu.cfs_period_us")))
                        q = None if q < 0 else q
                except FileNotFoundError:
                    if i == 0:
                        raise
                    continue
                if q is not None and p > 0:
                    best = q / p if best is None else min(best, q / p)
            return best
        return self._guard("cpu quota", read)

    def cpu_usage(self):
        def read():
            d, v2 = self._dir("cpuacct")
            if v2:
                st = _read_stat(os.path.join(d, "cpu.stat"), {"user_usec": "user_usec", "system_usec": "system_usec"})
                return {"total": (st["user_usec"] * 1000, st["system_usec"] * 1000)}
            percpu = {}
            lines = _read(os.path.join(d, "cpuacct.usage_all")).splitlines()
            for line in lines[1:]:
                cpu, user, system = line.split()
                percpu[int(cpu)] = (int(user), int(system))
            return {"percpu": percpu}
        return self._guard("cpu usage", read)

    # -- init start, tasks, io --
    def start_seconds(self):
        """When the container's init started, in seconds since boot (from /proc/PID/stat)."""
        def read():
            with open("%s/%d/stat" % (self.proc, self.pid)) as f:
                text = f.read()
            fields = text[text.rfind(")") + 2:].split()
            return int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return self._guard("init start time", read)

    def tasks(self):
        """(runnable + uninterruptible, total threads, last pid) of the container's cgroup, or None."""
        def read():
            d, v2 = self._dir("pids" if "pids" in self.mounts else "cpuacct")
            name = "cgroup.threads" if v2 else "tasks"
            tids = [int(t) for t in _read(os.path.join(d, name)).split()]
            active = 0
            for tid in tids:
                try:
                    with open("%s/%d/stat" % (self.proc, tid), "rb") as f:
                        s = f.read()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                if s[s.rfind(b")") + 2:s.rfind(b")") + 3] in (b"R", b"D"):
                    active += 1
            return active, len(tids), max(tids) if tids else 0
        return self._guard("tasks", read)

    def io(self):
        def read():
            d, v2 = self._dir("blkio" if "blkio" in self.mounts else "io")
            out = {}
            if v2:
                for line in _read(os.path.join(d, "io.stat")).splitlines():
                    dev, *kv = line.split()
                    out[dev] = {k: int(v) for k, _, v in (x.partition("=") for x in kv) if v.isdigit()}
                return out
            for fname, kind in (("blkio.throttle.io_service_bytes_recursive", "bytes"),
                                ("blkio.throttle.io_serviced_recursive", "ios")):
                for line in _read(os.path.join(d, fname)).splitlines():
                    parts = line.split()
                    if len(parts) != 3:
                        continue
                    op = {"Read": "r", "Write": "w", "Discard": "d"}.get(parts[1])
                    if op:
                        out.setdefault(parts[0], {})[op + kind] = int(parts[2])
            return out
        return self._guard("io", read)
