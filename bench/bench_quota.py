"""Quota directories: what they add to container creation, against PouchContainer's way in one run.

    sudo .venv/bin/python bench/bench_quota.py [--runs N] [--files N] [--vm]

Reports (medians):
  - project backend, empty directory: plan + tag (FS_IOC_FSSETXATTR) on a loop-mounted xfs here,
    next to the peer's way (PouchContainer execs `chattr -p ID +P DIR`); target <= 20 ms. This
    kernel has no quotactl, so the full apply (tag + Q_XSETQLIM) is timed in the VM with --vm;
  - tagging existing content: files/s, ours vs `chattr -R -p ID +P`;
  - loop backend: creation time for a 1 GiB limit (sparse image, mkfs.ext4, loop, mount) and release.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime_hooks import quota  # noqa: E402
from runtime_hooks.quota import project  # noqa: E402
from tests.support import qemu_vm  # noqa: E402


def cfg(root, vol, rule, backend):
    return {"root": {"path": root},
            "mounts": [{"destination": "/data", "type": "bind", "source": vol, "options": ["rbind"]}],
            "annotations": {"io.richinit.quota": rule, "io.richinit.quota-backend": backend}}


def ms(xs):
    return round(statistics.median(xs) * 1000, 2)


def fill(d, n):
    os.makedirs(d)
    for i in range(0, n, 100):
        sub = os.path.join(d, "d%d" % i)
        os.mkdir(sub)
        for j in range(min(100, n - i)):
            with open(os.path.join(sub, "f%d" % j), "w") as f:
                f.write("x")


def bench_project_host(base, runs, files):
    img, mnt = os.path.join(base, "xfs.img"), os.path.join(base, "xfs")
    os.mkdir(mnt)
    with open(img, "wb") as f:
        f.truncate(320 << 20)
    subprocess.run(["mkfs.xfs", "-q", img], check=True)
    subprocess.run(["mount", "-o", "loop", img, mnt], check=True)
    root = os.path.join(base, "rootfs")
    os.makedirs(root, exist_ok=True)
    out = {}
    try:
        ours, peer = [], []
        for i in range(runs):
            vol = os.path.join(mnt, "e%d" % i)
            os.mkdir(vol)
            t0 = time.perf_counter()
            plan = quota.plan("b%d" % i, cfg(root, vol, "/data=10M", "loop"), base, state_dir=base)
            fd = project.open_verified(plan.groups[0].dirs[0])
            project.tag_tree(fd, 16777216 + i)
            os.close(fd)
            ours.append(time.perf_counter() - t0)
            vol2 = os.path.join(mnt, "p%d" % i)
            os.mkdir(vol2)
            t0 = time.perf_counter()
            subprocess.run(["chattr", "-p", str(16777216 + i), "+P", vol2], check=True)
            peer.append(time.perf_counter() - t0)
        out["project_empty_plan_and_tag_ms"] = ms(ours)
        out["peer_chattr_empty_ms"] = ms(peer)
        out["ratio_ours_to_peer_empty"] = round(statistics.median(ours) / statistics.median(peer), 3)
        a, b = os.path.join(mnt, "many_ours"), os.path.join(mnt, "many_peer")
        fill(a, files)
        fill(b, files)
        n = files + files // 100 + 1
        fd = os.open(a, os.O_RDONLY | os.O_DIRECTORY)
        t0 = time.perf_counter()
        project.tag_tree(fd, 16777300)
        dt = time.perf_counter() - t0
        os.close(fd)
        t0 = time.perf_counter()
        subprocess.run(["chattr", "-R", "-p", "16777301", "+P", b], check=True, capture_output=True)
        dp = time.perf_counter() - t0
        out["tag_files_per_s"] = round(n / dt)
        out["peer_chattr_R_files_per_s"] = round(n / dp)
        out["ratio_files_per_s_ours_to_peer"] = round(dp / dt, 2)
    finally:
        subprocess.run(["umount", mnt])
    return out


def bench_loop(base, runs):
    root = os.path.join(base, "rootfs")
    os.makedirs(root, exist_ok=True)
    create, release = [], []
    for i in range(runs):
        vol = os.path.join(base, "loop%d" % i)
        os.mkdir(vol)
        t0 = time.perf_counter()
        quota.apply(quota.plan("l%d" % i, cfg(root, vol, "/data=1G", "loop"), base, state_dir=base))
        create.append(time.perf_counter() - t0)
        st = os.statvfs(vol)
        size = st.f_blocks * st.f_frsize
        t0 = time.perf_counter()
        assert quota.release("l%d" % i, state_dir=base) == []
        release.append(time.perf_counter() - t0)
    return {"loop_create_1GiB_ms": ms(create), "loop_release_ms": ms(release), "loop_df_size_bytes": size}


def bench_vm():
    reason = qemu_vm.unavailable()
    if reason:
        return {"vm": "skipped: " + reason}
    kernel = qemu_vm.Kernel.ensure()
    work = tempfile.mkdtemp(prefix="bench-quota-vm-")
    try:
        job, out = os.path.join(work, "job.sh"), os.path.join(work, "out.json")
        with open(job, "w") as f:
            f.write("cd %s && PYTHONDONTWRITEBYTECODE=1 exec /usr/bin/python3 "
                    "tests/integration/quota/vm_checks.py %s --bench\n" % (REPO, out))
        res = kernel.run_job(job, work, modules=["loop", "xfs", "ext4", "quota_v2"], timeout=300)
        with open(out) as f:
            t = json.load(f)["timings"]
        return {"vm_project_empty_apply_ms": t.get("empty_apply_ms_median"),
                "vm_tag_files_per_s": t.get("tag_files_per_s"),
                "vm_note": "full apply with Q_XSETQLIM, guest under TCG emulation (boot %.0f s)" % res.seconds}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--vm", action="store_true", help="also time the full project apply in the VM")
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="bench-quota-")
    results = {}
    try:
        results.update(bench_project_host(base, args.runs, args.files))
        results.update(bench_loop(base, max(3, args.runs // 3)))
        if args.vm:
            results.update(bench_vm())
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
