"""Quota checks run INSIDE the throwaway VM (Debian's kernel, with quota support).

Not a pytest file: test_quota_vm.py boots the VM once with `python3 vm_checks.py OUT.json` as the
job and asserts every check recorded here. Each check is independent and records
{"ok": bool, "detail": str, ...}; an exception in one check fails that check only.
"""

import errno
import json
import os
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, REPO)

from osbase import fsquota  # noqa: E402
from runtime_hooks import quota  # noqa: E402
from runtime_hooks.quota.ids import IdAllocator  # noqa: E402

MiB = 1 << 20
TMP = "/tmp/quota-vm"
STATE = TMP + "/state"


def sh(*argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r.stdout


def loop_fs(name, size, mkfs, opts):
    img, mnt = "%s/%s.img" % (TMP, name), "%s/%s" % (TMP, name)
    os.makedirs(mnt)
    with open(img, "wb") as f:
        f.truncate(size)
    sh(*mkfs, img)
    sh("mount", "-o", "loop," + opts, img, mnt)
    return mnt


def config(vol, rule, backend="auto"):
    rootfs = TMP + "/rootfs"
    os.makedirs(rootfs, exist_ok=True)
    return {"root": {"path": rootfs},
            "mounts": [{"destination": "/data", "type": "bind", "source": vol, "options": ["rbind"]}],
            "annotations": {"io.richinit.quota": rule, "io.richinit.quota-backend": backend}}


def xattr(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        projid, flags = fsquota.get_project(fd)
        return projid, bool(flags & fsquota.FS_XFLAG_PROJINHERIT)
    finally:
        os.close(fd)


def write_until_error(path, total, as_nobody):
    """Write `total` bytes in 64 KiB chunks (as nobody: no CAP_SYS_RESOURCE); -> (bytes, errno)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        written, err = 0, 0
        try:
            if as_nobody:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            chunk = b"\xab" * 65536
            while written < total:
                written += os.write(fd, chunk)
            os.fsync(fd)
            os.close(fd)
        except OSError as e:
            err = e.errno
        os.write(w, json.dumps([written, err]).encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 4096)
    os.waitpid(pid, 0)
    os.close(r)
    return tuple(json.loads(data))


def fill(vol, n):
    os.makedirs(vol + "/sub", exist_ok=True)
    for i in range(n):
        with open("%s/sub/f%d" % (vol, i), "w") as f:
            f.write("x" * 100)


def enforce(fsname, mnt, as_nobody, want_errno):
    vol = mnt + "/vol"
    os.mkdir(vol)
    os.chmod(vol, 0o777)
    fill(vol, 20)
    cid = "vm-%s" % fsname
    plan = quota.plan(cid, config(vol, "/data=10M"), TMP, state_dir=STATE)
    g = plan.groups[0]
    out = {"backend": g.backend}
    quota.apply(plan)
    try:
        qid = quota.list_quotas(STATE)[0]["id"]
        out["id"] = qid
        out["tags"] = [xattr(vol), xattr(vol + "/sub"), xattr(vol + "/sub/f3")]
        fd = os.open(vol, os.O_RDONLY)
        try:
            get = fsquota.xfs_get_quota if fsname == "xfs" else fsquota.get_quota
            out["limit"] = get(fd, qid)[0]
        finally:
            os.close(fd)
        st = os.statvfs(vol)
        out["df_size"] = st.f_blocks * st.f_frsize
        out["written"], err = write_until_error(vol + "/big", 20 * MiB, as_nobody)
        out["errno"] = errno.errorcode.get(err, err)
        if fsname == "ext4":  # root keeps CAP_SYS_RESOURCE and passes ext4's limit
            out["root_written"], rerr = write_until_error(vol + "/root", 4 * MiB, False)
            out["root_errno"] = errno.errorcode.get(rerr, rerr)
        out["used"] = quota.list_quotas(STATE)[0]["used"]
    finally:
        out["release_problems"] = quota.release(cid, state_dir=STATE)
    out["ids_after"] = IdAllocator(STATE).owned()
    out["tags_after"] = [xattr(vol), xattr(vol + "/sub/f3")]
    ok = (out["backend"] == "project" and out["limit"] == 10 * MiB and out["errno"] == want_errno
          and 9 * MiB <= out["written"] <= 10 * MiB and out["tags"][0] == (qid, True)
          and out["tags"][2] == (qid, False) and out["release_problems"] == [] and out["ids_after"] == {}
          and out["tags_after"] == [(0, False), (0, False)])
    out["ok"] = ok
    return out


def _one(i, mnt):
    vol = "%s/c%03d" % (mnt, i)
    os.mkdir(vol)
    plan = quota.plan("c%03d" % i, config(vol, "/data=1M"), TMP, state_dir=STATE)
    quota.apply(plan)
    return xattr(vol)[0]


def _rel(i):
    return quota.release("c%03d" % i, state_dir=STATE)


def hundred(mnt):
    with ProcessPoolExecutor(8) as ex:
        ids = list(ex.map(_one, range(100), [mnt] * 100))
    recorded = sorted(IdAllocator(STATE).owned())
    with ProcessPoolExecutor(8) as ex:
        problems = [p for ps in ex.map(_rel, range(100)) for p in ps]
    after = IdAllocator(STATE).owned()
    tags_after = {xattr("%s/c%03d" % (mnt, i))[0] for i in range(100)}
    return {"ok": len(set(ids)) == 100 and 0 not in ids and recorded == sorted(ids) and not problems
            and after == {} and tags_after == {0},
            "distinct": len(set(ids)), "min": min(ids), "max": max(ids), "problems": problems[:3],
            "left": len(after), "tags_after": sorted(tags_after)}


def timings(mnt):
    """Project backend cost on a real quota-enabled xfs: apply for an empty dir, tagging rate."""
    times = []
    for i in range(20):
        vol = "%s/t%02d" % (mnt, i)
        os.mkdir(vol)
        t0 = time.perf_counter()
        quota.apply(quota.plan("t%02d" % i, config(vol, "/data=10M"), TMP, state_dir=STATE))
        times.append(time.perf_counter() - t0)
        quota.release("t%02d" % i, state_dir=STATE)
    vol = mnt + "/many"
    os.mkdir(vol)
    fill(vol, 3000)
    t0 = time.perf_counter()
    quota.apply(quota.plan("many", config(vol, "/data=100M"), TMP, state_dir=STATE))
    dt = time.perf_counter() - t0
    quota.release("many", state_dir=STATE)
    times.sort()
    return {"ok": True, "empty_apply_ms_median": round(times[len(times) // 2] * 1000, 2),
            "tag_files_per_s": round(3002 / dt), "note": "guest under TCG emulation: slower than the host"}


def holders(path):
    """Processes with a file, cwd or root below path (why an umount says busy)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for sub in ("cwd", "root", *("fd/" + f for f in _ls("/proc/%s/fd" % pid))):
            try:
                target = os.readlink("/proc/%s/%s" % (pid, sub))
            except OSError:
                continue
            if target.startswith(path):
                out.append("%s %s -> %s" % (pid, sub, target))
    return out[:10]


def _ls(d):
    try:
        return os.listdir(d)
    except OSError:
        return []


def main(out_path, bench=False):
    os.makedirs(STATE, exist_ok=True)
    results = {}
    mounts = {}

    def check(name, fn, *args):
        t0 = time.monotonic()
        try:
            results[name] = fn(*args)
        except Exception:
            results[name] = {"ok": False, "detail": traceback.format_exc()[-2000:]}
        results[name]["seconds"] = round(time.monotonic() - t0, 2)

    try:
        mounts["xfs"] = loop_fs("xfs", 320 * MiB, ["mkfs.xfs", "-q"], "prjquota")
        mounts["ext4"] = loop_fs("ext4", 64 * MiB, ["mkfs.ext4", "-q", "-O", "quota,project"], "prjquota")
        if bench:  # bench/bench_quota.py --vm: only the timings
            check("timings", timings, mounts["xfs"])
        else:
            check("xfs_enforce", enforce, "xfs", mounts["xfs"], False, "ENOSPC")
            check("ext4_enforce", enforce, "ext4", mounts["ext4"], True, "EDQUOT")
            check("hundred_parallel", hundred, mounts["xfs"])
    except Exception:
        results["setup"] = {"ok": False, "detail": traceback.format_exc()[-2000:]}
    finally:
        for m in mounts.values():
            r = subprocess.run(["umount", m], capture_output=True, text=True)
            if r.returncode:
                results["umount " + m] = {"ok": False, "detail": r.stderr.strip(), "holders": holders(m)}
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1, default=str)
    return 0 if all(r.get("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], "--bench" in sys.argv[2:]))
