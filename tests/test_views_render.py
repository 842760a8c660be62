"""Renderers and the reader on fixture trees: cgroup v1 (as runc lays it out here) and a hand-made pure v2."""

import logging
import os
import shutil

import pytest

from lxcfs import reader, render

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "views")
PROC = os.path.join(FIX, "proc")
MiB_KB = 1024



def fixture_mounts(root):
    """{controller: dir} for a fixture tree laid out like /sys/fs/cgroup (v1 dirs, or cgroup2 at root)."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        return {"": root}
    out = {}
    for name in os.listdir(root):
        if name == "unified":
            out[""] = os.path.join(root, name)
        elif os.path.isdir(os.path.join(root, name)):
            for ctrl in name.split(","):
                out[ctrl] = os.path.join(root, name)
    return out

def host(name):
    with open(os.path.join(PROC, name)) as f:
        return f.read()


def v1(tmp=None, warn=None):
    root = tmp or os.path.join(FIX, "v1")
    cg = {c: "/ctr" for c in ("memory", "cpu", "cpuacct", "cpuset", "blkio", "pids")}
    return reader.Container("c1", 4242, cg, fixture_mounts(root), proc=PROC, warn=warn)


def v2(tmp=None, warn=None):
    root = tmp or os.path.join(FIX, "v2")
    return reader.Container("c2", 4242, {"": "/sys/ctr"}, fixture_mounts(root), proc=PROC, warn=warn)


def meminfo_of(c):
    return render.parse_meminfo(render.render_meminfo(host("meminfo"), c.memory()))


# ---------- meminfo ----------

def test_meminfo_v1_uses_limit_usage_and_stat():
    m = meminfo_of(v1())
    assert m["MemTotal"] == 256 * MiB_KB
    assert m["MemFree"] == (256 - 100) * MiB_KB
    # free + active_file + inactive_file (20 MiB + 16 MiB)
    assert m["MemAvailable"] == (256 - 100 + 36) * MiB_KB
    assert m["Cached"] == 40 * MiB_KB and m["Shmem"] == 4 * MiB_KB and m["Buffers"] == 0
    assert m["Active(anon)"] == 50 * MiB_KB and m["Inactive(file)"] == 16 * MiB_KB
    assert m["Active"] == 70 * MiB_KB
    # swap: memsw limit 512 MiB - mem limit 256 MiB; used 110 MiB - 100 MiB
    assert m["SwapTotal"] == 256 * MiB_KB and m["SwapFree"] == 246 * MiB_KB
    # untouched lines stay the host's
    assert m["KernelStack"] == 1600 and m["HugePages_Total"] == 0


def test_meminfo_v2_uses_memory_max_current_and_slab():
    m = meminfo_of(v2())
    assert m["MemTotal"] == 192 * MiB_KB
    assert m["MemFree"] == (192 - 96) * MiB_KB
    assert m["MemAvailable"] == (192 - 96 + 20 + 16 + 2) * MiB_KB
    assert m["SReclaimable"] == 2 * MiB_KB and m["Slab"] == 3 * MiB_KB
    assert m["SwapTotal"] == 64 * MiB_KB and m["SwapFree"] == 56 * MiB_KB
    assert m["Mapped"] == 4 * MiB_KB and m["Dirty"] == 8


def test_meminfo_layout_matches_the_kernels():
    text = render.render_meminfo(host("meminfo"), v1().memory())
    assert text.splitlines()[0] == "MemTotal:         262144 kB"
    assert [ln.partition(":")[0] for ln in text.splitlines()] == [
        ln.partition(":")[0] for ln in host("meminfo").splitlines()]
    assert text.endswith("\n")


def test_meminfo_limit_above_host_is_capped_by_host():
    m = render.parse_meminfo(render.render_meminfo(host("meminfo"), {"limit": 2**40, "usage": 0, "stat": {}}))
    assert m["MemTotal"] == 8000000


def test_meminfo_limit_is_min_over_ancestors(tmp_path):
    root = str(tmp_path / "v1")
    shutil.copytree(os.path.join(FIX, "v1"), root)
    os.makedirs(os.path.join(root, "memory", "ctr", "inner"))
    for f in ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory.stat"):
        shutil.copy(os.path.join(root, "memory", "ctr", f), os.path.join(root, "memory", "ctr", "inner", f))
    with open(os.path.join(root, "memory", "ctr", "inner", "memory.limit_in_bytes"), "w") as f:
        f.write("9223372036854771712\n")  # unlimited below a 256 MiB parent
    c = v1(root)
    c.cgroups["memory"] = "/ctr/inner"
    assert c.memory()["limit"] == 256 * 2**20


# ---------- fallback ----------

def test_unparsable_value_falls_back_to_host_with_one_warning(tmp_path, caplog):
    root = str(tmp_path / "v1")
    shutil.copytree(os.path.join(FIX, "v1"), root)
    with open(os.path.join(root, "memory", "ctr", "memory.usage_in_bytes"), "w") as f:
        f.write("garbage\n")
    c = v1(root)
    with caplog.at_level(logging.WARNING, logger="lxcfs.views"):
        m1 = meminfo_of(c)
        m2 = meminfo_of(c)
    assert m1["MemTotal"] == 256 * MiB_KB  # the readable field is still the container's
    assert m1["MemFree"] == 6000000 and m2["MemFree"] == 6000000  # host value
    warnings = [r for r in caplog.records if r.getMessage().startswith("c1: memory usage unreadable")]
    assert len(warnings) == 1


def test_vanished_cgroup_shows_host_values(tmp_path, caplog):
    root = str(tmp_path / "v2")
    shutil.copytree(os.path.join(FIX, "v2"), root)
    shutil.rmtree(os.path.join(root, "sys", "ctr"))
    c = v2(root)
    with caplog.at_level(logging.WARNING, logger="lxcfs.views"):
        assert render.render_meminfo(host("meminfo"), c.memory()) == host("meminfo")
        assert render.render_stat(host("stat"), c.cpuset(), c.cpu_usage()) == host("stat")
        assert render.render_diskstats(host("diskstats"), c.io()) == host("diskstats")
    assert caplog.records, "each failing field must be reported"


def test_warning_repeats_after_recovery():
    w = reader.Warner(logging.getLogger("lxcfs.views.test"))
    w("c", "f", "e1")
    w("c", "f", "e2")
    w.ok("c", "f")
    w("c", "f", "e3")
    assert w.seen == {("c", "f")}


# ---------- CPUs ----------

def test_v1_cpu_count_is_min_of_cpuset_and_quota():
    c = v1()
    assert c.cpuset() == [1, 2, 3]
    assert c.quota_cpus() == 1.5
    cpus = render.visible_cpus(c.cpuset(), c.quota_cpus(), [0, 1, 2, 3])
    assert cpus == [1, 2]
    assert render.render_cpu_online(cpus) == "0-1\n"
    text = render.render_cpuinfo(host("cpuinfo"), cpus)
    assert [ln for ln in text.splitlines() if ln.startswith("processor")] == ["processor\t: 0", "processor\t: 1"]
    assert "core id\t\t: 1" in text and "core id\t\t: 2" in text and "core id\t\t: 0" not in text


def test_v2_cpu_count_from_cpu_max():
    c = v2()
    assert c.quota_cpus() == 0.5
    cpus = render.visible_cpus(c.cpuset(), c.quota_cpus(), [0, 1, 2, 3])
    assert cpus == [0]
    assert render.render_cpu_online(cpus) == "0\n"


def test_no_cpuset_no_quota_is_the_host():
    assert render.visible_cpus(None, None, [0, 1, 2, 3]) == [0, 1, 2, 3]


def test_bad_cpuset_text_raises():
    with pytest.raises(ValueError):
        render.parse_cpulist("3-1")


# ---------- stat ----------

def _stat_cpus(text):
    return {ln.split()[0]: [int(x) for x in ln.split()[1:]] for ln in text.splitlines() if ln.startswith("cpu")}


def test_stat_v1_shows_the_containers_ticks():
    c = v1()
    cpus = render.visible_cpus(c.cpuset(), c.quota_cpus(), [0, 1, 2, 3])  # host cpus 1, 2
    s = _stat_cpus(render.render_stat(host("stat"), cpus, c.cpu_usage()))
    assert set(s) == {"cpu", "cpu0", "cpu1"}
    # host cpu1: 1 s user, 0.5 s sys; cpu0 (hidden, outside the visible list) folds onto slot 0;
    # cpu2 = slot 1 (0.5 s user), cpu3 folds onto slot 1 too (nothing used).
    assert s["cpu0"][0] == 100 + 300 and s["cpu0"][2] == 50 + 100
    assert s["cpu1"][0] == 50 and s["cpu1"][2] == 0
    host_cpu_ticks = 10000 + 100 + 2000 + 100000 + 250 + 25
    assert s["cpu1"][3] == host_cpu_ticks - 50
    assert s["cpu"] == [a + b for a, b in zip(s["cpu0"], s["cpu1"], strict=True)]
    text = render.render_stat(host("stat"), cpus, c.cpu_usage())
    assert "btime 1764200000" in text and "ctxt 292828" in text


def test_stat_v2_splits_total_over_visible_cpus():
    c = v2()
    s = _stat_cpus(render.render_stat(host("stat"), [0, 1], c.cpu_usage()))
    assert s["cpu0"][0] == 100 and s["cpu1"][0] == 100 and s["cpu0"][2] == 50
    assert s["cpu"][0] == 200


# ---------- uptime, loadavg ----------

def test_uptime_counts_from_init_start():
    c = v1()
    assert c.start_seconds() == 900.0
    text = render.render_uptime(host("uptime"), c.start_seconds(), 6.0, 2)
    up, idle = map(float, text.split())
    assert up == pytest.approx(100.5) and idle == pytest.approx(2 * 100.5 - 6.0)


def test_uptime_without_start_is_the_host():
    assert render.render_uptime(host("uptime"), None, None, 2) == host("uptime")


def test_loadavg_follows_kernel_averaging():
    avgs = (0, 0, 0)
    for _ in range(12):  # one minute of 2 runnable tasks
        avgs = render.calc_load(avgs, 2)
    a1, a5, a15 = render.load_to_float(avgs)
    assert 1.2 < a1 < 1.3 and 0.3 < a5 < 0.4 and a15 < a5
    assert render.render_loadavg(host("loadavg"), (a1, a5, a15, 1, 4, 4243)).endswith(" 1/4 4243\n")
    assert render.render_loadavg(host("loadavg"), None) == host("loadavg")


def test_tasks_counts_threads_of_the_cgroup():
    active, total, last = v1().tasks()
    assert (active, total, last) == (0, 2, 4243)  # 4242 sleeps, 4243 has no /proc entry


# ---------- diskstats, swaps ----------

def test_diskstats_v1_from_blkio_throttle():
    text = render.render_diskstats(host("diskstats"), v1().io())
    lines = text.splitlines()
    assert len(lines) == 1
    f = lines[0].split()
    assert f[:3] == ["254", "0", "vda"]
    assert f[3] == "10" and f[5] == str(1048576 // 512) and f[7] == "20" and f[9] == str(2097152 // 512)
    assert len(f) == len(host("diskstats").splitlines()[1].split())


def test_diskstats_v2_from_io_stat():
    f = render.render_diskstats(host("diskstats"), v2().io()).split()
    assert f[2] == "vda" and f[3] == "1" and f[5] == "8" and f[7] == "2" and f[9] == "16"


def test_swaps_virtual_line():
    text = render.render_swaps(host("swaps"), v1().memory())
    lines = text.splitlines()
    assert lines[0].startswith("Filename")
    assert lines[1].split() == ["none", "virtual", str(256 * MiB_KB), str(10 * MiB_KB), "0"]
    assert render.render_swaps(host("swaps"), None) == host("swaps")


def test_swaps_hidden_when_host_has_none():
    header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    assert render.render_swaps(header, v1().memory()) == header
