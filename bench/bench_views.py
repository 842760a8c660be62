"""/proc view read latency: our view server vs lxcfs vs the kernel's own files, in one run.

    sudo .venv/bin/python bench/bench_views.py [--reads N] [--readers N] [--seconds S]

Starts a private lxcfs (-l --enable-cfs) and a private view server in a temp dir, puts a sleeping
process into a fresh v1 cgroup (256 MiB, cpuset 0-1, quota 1.5) and registers it with our server.
lxcfs is read from the host, so it answers for the host's cgroup: the same work as for a
container. Reports per file the mean/median latency of open+read+close (N reads each, interleaved
in rounds so drift hits everyone alike) and the ratios ours/lxcfs and ours/native. Then --readers
processes read meminfo in a loop for --seconds against each server; the server's CPU time per
1000 reads is compared (issue target: ours <= lxcfs).
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lxcfs import api, detect, server  # noqa: E402
from osbase import cgroup, libc  # noqa: E402

FILES = server.VIEW_FILES
CLK = os.sysconf("SC_CLK_TCK")


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def read_once(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, 65536):
            pass
    finally:
        os.close(fd)


def latency(paths, reads, rounds=10):
    """{label: [per-read µs]}: rounds of reads/rounds reads per label, interleaved."""
    out = {k: [] for k in paths}
    per = max(1, reads // rounds)
    for _ in range(rounds):
        for label, path in paths.items():
            for _ in range(per):
                t = time.perf_counter_ns()
                read_once(path)
                out[label].append((time.perf_counter_ns() - t) / 1000)
    return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def load_test(server_pid, paths, seconds):
    """len(paths) reader processes loop over their path; returns (server CPU s, total reads)."""
    rfds, pids = [], []
    start_at = time.monotonic() + 0.5
    for path in paths:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            n = 0
            while time.monotonic() < start_at:
                time.sleep(0.01)
            end = start_at + seconds
            while time.monotonic() < end:
                read_once(path)
                n += 1
            os.write(w, str(n).encode())
            os._exit(0)
        os.close(w)
        rfds.append(r)
        pids.append(pid)
    while time.monotonic() < start_at:
        time.sleep(0.005)
    c0 = cpu_seconds(server_pid)
    total = 0
    for r, pid in zip(rfds, pids, strict=True):
        total += int(os.read(r, 64) or b"0")
        os.close(r)
        os.waitpid(pid, 0)
    return cpu_seconds(server_pid) - c0, total


def make_cgroup(name):
    mounts = cgroup.mounts()
    dirs = []
    for c, files in (("memory", {"memory.limit_in_bytes": str(256 << 20)}),
                     ("cpuset", {"cpuset.mems": "0", "cpuset.cpus": "0-1"}),
                     ("cpu", {"cpu.cfs_quota_us": "150000"}), ("cpuacct", {}), ("blkio", {}), ("pids", {})):
        d = os.path.join(mounts[c], name)
        os.makedirs(d, exist_ok=True)
        for f, v in files.items():
            with open(os.path.join(d, f), "w") as fh:
                fh.write(v)
        dirs.append(d)

    def join():
        for d in dirs:
            with open(os.path.join(d, "cgroup.procs"), "w") as fh:
                fh.write(str(os.getpid()))
    proc = subprocess.Popen(["sleep", "3600"], preexec_fn=join)
    return proc, dirs


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reads", type=int, default=2000)
    p.add_argument("--readers", type=int, default=50)
    p.add_argument("--seconds", type=float, default=3.0)
    a = p.parse_args()
    if os.geteuid() != 0 or not shutil.which("lxcfs"):
        sys.exit("bench_views: needs root and lxcfs")
    base = tempfile.mkdtemp(prefix="bench-views-", dir="/run")
    lx_mnt = os.path.join(base, "lxcfs")
    os.makedirs(lx_mnt)
    lx = subprocess.Popen(["lxcfs", "-f", "-l", "--enable-cfs", "-p", os.path.join(base, "lxcfs.pid"), lx_mnt],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sv_mnt, reg, pidfile = os.path.join(base, "views"), os.path.join(base, "views.d"), os.path.join(base, "views.pid")
    sv_pid = None
    proc, dirs = make_cgroup("bench-views-%s" % uuid.uuid4().hex[:8])
    try:
        if not wait_for(lambda: os.path.exists(lx_mnt + "/proc/meminfo")):
            sys.exit("lxcfs did not start")
        sv_pid = api.ensure_server_running(sv_mnt, reg, pidfile, os.path.join(base, "views.log"))
        view = api.register("bench", proc.pid, mount=sv_mnt, registry_dir=reg)
        for rel in FILES:  # warm both (lxcfs's first cpuinfo/stat reads set up its caches)
            read_once(os.path.join(view, rel))
            read_once(os.path.join(lx_mnt, rel))
        time.sleep(1.2)  # our loadavg sampler's first pass
        print("read latency, open+read+close, %d reads per file (µs)" % a.reads)
        print("%-32s %9s %9s %9s %9s %9s %11s %11s" % ("file", "native", "lxcfs", "ours", "lxcfs p50", "ours p50",
                                                     "ours/lxcfs", "ours/native"))
        for rel in FILES:
            native = "/" + rel
            r = latency({"native": native, "lxcfs": os.path.join(lx_mnt, rel), "ours": os.path.join(view, rel)},
                        a.reads)
            m = {k: statistics.fmean(v) for k, v in r.items()}
            med = {k: statistics.median(v) for k, v in r.items()}
            print("%-32s %9.1f %9.1f %9.1f %9.1f %9.1f %10.2fx %10.1fx" % (
                rel, m["native"], m["lxcfs"], m["ours"], med["lxcfs"], med["ours"],
                m["ours"] / m["lxcfs"], m["ours"] / m["native"]))
        if a.readers:
            for i in range(a.readers):
                api.register("bench%d" % i, proc.pid, mount=sv_mnt, registry_dir=reg)
            ours_paths = [os.path.join(sv_mnt, "bench%d" % i, "proc/meminfo") for i in range(a.readers)]
            lx_paths = [os.path.join(lx_mnt, "proc/meminfo")] * a.readers
            lx_cpu, lx_n = load_test(lx.pid, lx_paths, a.seconds)
            our_cpu, our_n = load_test(sv_pid, ours_paths, a.seconds)
            print("\n%d readers looping on meminfo for %.0f s each" % (a.readers, a.seconds))
            print("%-8s %10s %12s %18s" % ("server", "reads", "server CPU s", "CPU ms/1000 reads"))
            for name, cpu, n in (("lxcfs", lx_cpu, lx_n), ("ours", our_cpu, our_n)):
                print("%-8s %10d %12.2f %18.1f" % (name, n, cpu, cpu * 1e6 / max(1, n)))
            print("ours/lxcfs CPU per read: %.2fx" % ((our_cpu / max(1, our_n)) / (lx_cpu / max(1, lx_n))))
    finally:
        proc.kill()
        proc.wait()
        if sv_pid:
            os.kill(sv_pid, signal.SIGTERM)
            wait_for(lambda: detect.mount_id(sv_mnt, detect.SERVER_FSTYPE) is None, 5)
        lx.terminate()
        lx.wait()
        for mp, fs in ((sv_mnt, detect.SERVER_FSTYPE), (lx_mnt, "fuse.lxcfs")):
            if detect.mount_id(mp, fs) is not None:
                libc.umount(mp, libc.MNT_DETACH)
        for d in dirs:
            try:
                os.rmdir(d)
            except OSError:
                pass
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
