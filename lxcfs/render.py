"""Pure renderers: (cgroup values already parsed, host /proc texts) -> the container's file text.

Nothing here touches the OS. Every cgroup input may be None, meaning "could not be read":
the field then keeps the host's value (the reader has already logged why). Inputs:

mem   {"limit", "usage", "swap_limit", "swap_usage": bytes or None (None limit = unlimited),
       "stat": {normalized memory.stat keys: bytes} or None}   (see reader.normalize_memory_stat)
cpus  list of host CPU ids the container may see (already cut to the quota), or None
usage {"percpu": {host_cpu: (user_ns, system_ns)}} (cgroup v1 cpuacct.usage_all) or
      {"total": (user_ns, system_ns)} (cgroup v2 cpu.stat), or None
io    {"MAJ:MIN": {"rbytes", "wbytes", "rios", "wios", "dbytes", "dios"}} or None
"""

import math

USER_HZ = 100  # the unit of /proc/stat (sysconf(_SC_CLK_TCK) is 100 on every Linux ABI we run on)
NS_PER_TICK = 1_000_000_000 // USER_HZ


# ---------- helpers ----------

def parse_meminfo(text):
    """{'MemTotal': kB, ...} (values without the kB suffix)."""
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            try:
                out[key] = int(parts[0])
            except ValueError:
                pass
    return out


def parse_cpulist(text):
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]; raises ValueError on garbage."""
    out = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        lo_i = int(lo)
        hi_i = int(hi) if hi else lo_i
        if hi_i < lo_i or hi_i > 65535:
            raise ValueError("bad cpu range %r" % part)
        out.extend(range(lo_i, hi_i + 1))
    return sorted(set(out))


def visible_cpus(cpuset, quota_cpus, host_online):
    """The host CPUs a container sees: its cpuset (or the host's), cut to ceil(quota/period).

    quota_cpus is the smallest quota/period up the hierarchy (None: no quota).
    """
    cpus = [c for c in (cpuset if cpuset else host_online) if c in set(host_online)] or list(host_online)
    if quota_cpus is not None and quota_cpus > 0:
        cpus = cpus[:max(1, math.ceil(quota_cpus))]
    return cpus


def _kb(v):
    return int(v) // 1024


def _fmt_meminfo_line(key, value_kb, template_line):
    # Keep the host's layout: "Key:" padded to 16 columns then the number right-aligned, then " kB".
    unit = " kB" if template_line.rstrip().endswith("kB") else ""
    return "%-15s %8d%s" % (key + ":", value_kb, unit)


# ---------- meminfo ----------

def container_memory(host, mem):
    """{meminfo key: kB} for the fields the container's cgroup decides; the rest stays the host's."""
    out = {}
    if not mem:
        return out
    host_total = host.get("MemTotal")
    limit, usage, st = mem.get("limit"), mem.get("usage"), mem.get("stat")
    total = None
    if host_total is not None:
        total = host_total if limit is None else min(_kb(limit), host_total)
        out["MemTotal"] = total
    if total is not None and usage is not None:
        free = max(0, total - _kb(usage))
        out["MemFree"] = free
        if st is not None:
            # What the kernel could hand back without swapping: free + reclaimable page cache and slab.
            reclaim = st.get("active_file", 0) + st.get("inactive_file", 0) + st.get("slab_reclaimable", 0)
            out["MemAvailable"] = min(total, free + _kb(reclaim))
    if st is not None:
        out.update({
            "Buffers": 0,
            "Cached": _kb(st.get("cache", 0)),
            "SwapCached": 0,
            "Active": _kb(st.get("active_anon", 0) + st.get("active_file", 0)),
            "Inactive": _kb(st.get("inactive_anon", 0) + st.get("inactive_file", 0)),
            "Active(anon)": _kb(st.get("active_anon", 0)),
            "Inactive(anon)": _kb(st.get("inactive_anon", 0)),
            "Active(file)": _kb(st.get("active_file", 0)),
            "Inactive(file)": _kb(st.get("inactive_file", 0)),
            "Unevictable": _kb(st.get("unevictable", 0)),
            "Dirty": _kb(st.get("dirty", 0)),
            "Writeback": _kb(st.get("writeback", 0)),
            "AnonPages": _kb(st.get("anon", 0)),
            "Mapped": _kb(st.get("mapped", 0)),
            "Shmem": _kb(st.get("shmem", 0)),
        })
        if "slab_reclaimable" in st or "slab_unreclaimable" in st:
            sr, su = st.get("slab_reclaimable", 0), st.get("slab_unreclaimable", 0)
            out.update({"Slab": _kb(sr + su), "SReclaimable": _kb(sr), "SUnreclaim": _kb(su)})
    swap = container_swap(host, mem)
    if swap is not None:
        out["SwapTotal"], used = swap
        out["SwapFree"] = max(0, swap[0] - used)
    return out


def container_swap(host, mem):
    """(total kB, used kB) of the container's swap, or None to keep the host's."""
    if not mem:
        return None
    host_swap = host.get("SwapTotal")
    limit, usage = mem.get("swap_limit"), mem.get("swap_usage")
    if host_swap is None or usage is None:
        return None
    total = host_swap if limit is None else min(_kb(limit), host_swap)
    return total, min(total, _kb(usage))


_meminfo_memo = (None, None)  # (host text, its parsed form): the server caches the host text for a while


def _parse_host_meminfo(host_text):
    """(lines, keys, values) of a host meminfo text, memoized on the text itself (one atomic tuple)."""
    global _meminfo_memo
    text, parsed = _meminfo_memo
    if text is not host_text:
        lines = host_text.splitlines()
        parsed = (lines, [ln.partition(":")[0] for ln in lines], parse_meminfo(host_text))
        _meminfo_memo = (host_text, parsed)
    return parsed


def render_meminfo(host_text, mem):
    lines, keys, host = _parse_host_meminfo(host_text)
    mine = container_memory(host, mem)
    out = [_fmt_meminfo_line(k, mine[k], ln) if k in mine else ln for k, ln in zip(keys, lines, strict=True)]
    return "\n".join(out) + "\n"


def render_swaps(host_text, mem):
    host_lines = host_text.splitlines()
    header = host_lines[0] if host_lines else "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority"
    # Host swap totals come from the device lines (kB), the same numbers meminfo's SwapTotal sums.
    host_total = sum(int(ln.split()[2]) for ln in host_lines[1:] if len(ln.split()) >= 4 and ln.split()[2].isdigit())
    swap = container_swap({"SwapTotal": host_total}, mem)
    if swap is None:
        return host_text
    out = header + "\n"
    if swap[0] > 0:
        out += "none%s\tvirtual\t\t%d\t\t%d\t\t0\n" % (" " * 36, swap[0], swap[1])
    return out


# ---------- CPUs ----------

def render_cpu_online(cpus):
    n = len(cpus)
    return "0\n" if n <= 1 else "0-%d\n" % (n - 1)


def render_cpuinfo(host_text, cpus):
    """Keep the blocks of the visible CPUs, renumbered from 0 (x86 and arm 'processor : N' blocks)."""
    if cpus is None:
        return host_text
    want = {c: i for i, c in enumerate(cpus)}
    blocks = host_text.strip("\n").split("\n\n")
    out = []
    header = []  # arm64 and others put shared lines before/after the per-cpu blocks
    for block in blocks:
        first = block.split("\n", 1)[0]
        key, _, val = first.partition(":")
        if key.strip() != "processor" or not val.strip().isdigit():
            header.append(block)
            continue
        cpu = int(val.strip())
        if cpu in want:
            out.append("%s: %d%s" % (key, want[cpu], block[len(first):]))
    if not out:  # a format we do not understand: the host's text beats an empty file
        return host_text
    return "\n\n".join(out + header) + "\n\n"


def _stat_cpu_fields(line):
    parts = line.split()
    return parts[0], [int(x) for x in parts[1:]]


def render_stat(host_text, cpus, usage):
    """/proc/stat with one line per visible CPU: the container's user/system ticks, the rest idle.

    idle = host ticks of that CPU - the container's busy ticks on it, so per-interval deltas show the
    container's own utilisation; iowait, irq, steal... are 0 (the cgroup does not account them).
    """
    if cpus is None or usage is None:
        return host_text
    host_lines = host_text.splitlines()
    host_cpu = {}
    rest = []
    for line in host_lines:
        if line.startswith("cpu") and line[3:4].isdigit():
            name, vals = _stat_cpu_fields(line)
            host_cpu[int(name[3:])] = vals
        elif not line.startswith("cpu "):
            rest.append(line)
    n = len(cpus)
    busy = [[0, 0] for _ in cpus]  # [user_ns, system_ns] per visible cpu
    if "percpu" in usage:
        slot = {c: i for i, c in enumerate(cpus)}
        for k, (cpu, (u, s)) in enumerate(sorted(usage["percpu"].items())):
            # Usage on a CPU the container cannot see (quota cut the list) is folded onto a visible one.
            i = slot.get(cpu, k % n)
            busy[i][0] += u
            busy[i][1] += s
    else:
        u, s = usage["total"]
        for i in range(n):
            busy[i][0] += u // n
            busy[i][1] += s // n
    lines, total = [], [0] * 10
    for i, cpu in enumerate(cpus):
        hv = host_cpu.get(cpu, [])
        host_ticks = sum(hv[:8]) if hv else 0  # guest time is already inside user
        user, system = busy[i][0] // NS_PER_TICK, busy[i][1] // NS_PER_TICK
        idle = max(0, host_ticks - user - system)
        vals = [user, 0, system, idle, 0, 0, 0, 0, 0, 0]
        total = [a + b for a, b in zip(total, vals, strict=True)]
        lines.append("cpu%d %s" % (i, " ".join(map(str, vals))))
    return "\n".join(["cpu  " + " ".join(map(str, total))] + lines + rest) + "\n"


# ---------- time and load ----------

def render_uptime(host_uptime_text, start_s, cpu_used_s, ncpus):
    """Seconds since the container's init started; idle = the CPU time it left unused on its CPUs."""
    if start_s is None:
        return host_uptime_text
    now = float(host_uptime_text.split()[0])
    up = max(0.0, now - start_s)
    if cpu_used_s is None:
        idle = float(host_uptime_text.split()[1])
        idle = min(idle, up * max(1, ncpus))
    else:
        idle = max(0.0, up * max(1, ncpus) - cpu_used_s)
    return "%.2f %.2f\n" % (up, idle)


def render_loadavg(host_text, load):
    """load = (avg1, avg5, avg15, runnable, total, last_pid) from the server's sampler, or None."""
    if load is None:
        return host_text
    a1, a5, a15, running, total, last = load
    return "%.2f %.2f %.2f %d/%d %d\n" % (a1, a5, a15, running, total, last)


# The kernel's fixed-point load average (kernel/sched/loadavg.c), sampled every 5 s.
FSHIFT = 11
FIXED_1 = 1 << FSHIFT
EXP = (1884, 2014, 2037)  # 1/exp(5s/1min), 1/exp(5s/5min), 1/exp(5s/15min) in fixed point


def calc_load(avgs, active):
    """One 5-second step of the kernel's exponential averages; avgs and the result are fixed point."""
    active_fp = active * FIXED_1
    out = []
    for load, exp in zip(avgs, EXP, strict=True):
        new = load * exp + active_fp * (FIXED_1 - exp)
        if active_fp >= load:
            new += FIXED_1 - 1
        out.append(new // FIXED_1)
    return tuple(out)


def load_to_float(avgs):
    # The kernel rounds to two decimals the same way (LOAD_INT/LOAD_FRAC with FIXED_1/200 added).
    return tuple(int((a + FIXED_1 // 200) * 100 // FIXED_1) / 100 for a in avgs)


# ---------- disks ----------

def render_diskstats(host_text, io):
    """Host devices the container did I/O on, with its own counters (ops and 512-byte sectors)."""
    if io is None:
        return host_text
    out = []
    for line in host_text.splitlines():
        parts = line.split()
        if len(parts) < 14:
            continue
        st = io.get("%s:%s" % (parts[0], parts[1]))
        if not st or not any(st.values()):
            continue
        vals = [st.get("rios", 0), 0, st.get("rbytes", 0) // 512, 0,
                st.get("wios", 0), 0, st.get("wbytes", 0) // 512, 0, 0, 0, 0]
        extra = len(parts) - 14
        if extra >= 4:  # discard fields (4.18+)
            vals += [st.get("dios", 0), 0, st.get("dbytes", 0) // 512, 0]
            extra -= 4
        vals += [0] * extra  # flush fields (5.5+) and anything newer
        out.append("%4s %7s %s %s" % (parts[0], parts[1], parts[2], " ".join(map(str, vals))))
    return "".join(line + "\n" for line in out)
