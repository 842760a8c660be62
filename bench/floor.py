"""What Python itself costs in memory, beside what richinit costs: the floor under the Pss targets.

    sudo .venv/bin/python -m bench.floor [--pods 4] [--json FILE] [--markdown FILE]

Each variant runs under real runc from the portable runtime built from the tree (the same argv
richinit's rich mode uses), busybox rootfs, `/.richinit` bind-mounted read-only:
  bare interpreter        the portable interpreter with `import time; time.sleep(...)` as its
                          program: nothing of ours, the least any Python PID 1 can hold;
  richinit -- sleep       richinit as PID 1, its app a busybox sleep;
  richinit --services all the same with services.d's built-ins (syslogd and cron on busybox).
For each, once alone and once with --pods N containers of the variant running together (file pages
of the shared runtime divided among them, as on a host with many containers): the Pss of every
process of the container whose executable is the portable interpreter (the app, busybox's sleep, is
left out), summed per container, from /proc/PID/smaps_rollup; also Private_Dirty. Measured once the
tree is complete and every process sleeps (polled every 50 ms).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.bench_cri import tree  # noqa: E402
from runtime_hooks import portable  # noqa: E402
from tests.support import containers as c  # noqa: E402
from tests.support.wait import wait_until  # noqa: E402

SLEEP = "import time; time.sleep(1e6)"


def _rollup(pid):
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Pss", "Private_Dirty"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def _ours(pid, exe):
    try:
        return os.readlink("/proc/%d/exe" % pid).endswith(exe)
    except OSError:
        return False


def _settled(pid, expect):
    """The tree of pid has `expect` processes, all sleeping: returns it."""
    pids = tree(pid)
    if len(pids) < expect:
        return None
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "S":
                    return None
        except OSError:
            return None
    return pids


def measure(bundle, expect, n, exe):
    """Start n containers of `bundle`, return (Pss KiB, Private_Dirty KiB) per container (means)."""
    running = []
    try:
        for _ in range(n):
            running.append(c.Detached(bundle).start())
        totals = []
        for d in running:
            pids = wait_until(lambda d=d: _settled(d.pid, expect), timeout=30)
            if not pids:
                raise SystemExit("%s: the container's processes did not settle" % bundle)
            totals.append(pids)
        pss = dirty = 0
        for pids in totals:
            for p in pids:
                if _ours(p, exe):
                    r = _rollup(p)
                    pss += r.get("Pss", 0)
                    dirty += r.get("Private_Dirty", 0)
        return pss // n, dirty // n
    finally:
        for d in running:
            c.delete(d.cid)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=4)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    tmp = tempfile.mkdtemp(prefix="bench-floor.")
    try:
        rt = os.path.join(tmp, "runtime")
        portable.build(rt)
        os.sync()  # freshly written runtime files would count as dirty pages of whoever maps them first
        rootfs = c.busybox_rootfs(os.path.join(tmp, "rootfs"))
        mounts = [{"destination": "/.richinit", "type": "bind", "source": rt,
                   "options": ["rbind", "ro", "nosuid", "nodev"]},
                  {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}]
        argv = portable.load_manifest(rt)["argv"]
        exe = os.path.basename(argv[0])  # the runtime's own loader: /proc/PID/exe of its interpreter
        variants = {  # name: (process.args, processes in the settled tree)
            "bare interpreter": (argv[:-1] + [SLEEP], 1),
            "richinit -- sleep": (argv + ["--", "/bin/sleep", "1000000"], 2),
            "richinit --services all": (argv + ["--services", "all", "--", "/bin/sleep", "1000000"], 4),
        }
        rows = []
        for name, (args, expect) in variants.items():
            bundle = os.path.join(tmp, name.replace(" ", "_").replace("-", ""))
            c.make_bundle(bundle, rootfs, args, mounts=mounts)
            alone = measure(bundle, expect, 1, exe)
            shared = measure(bundle, expect, a.pods, exe)
            rows.append({"variant": name, "pss_kib": alone[0], "private_dirty_kib": alone[1],
                         "pss_shared_kib": shared[0], "private_dirty_shared_kib": shared[1]})
        lines = ["| variant | Pss alone (KiB) | Private_Dirty alone | Pss, %d together | Private_Dirty, %d together |"
                 % (a.pods, a.pods), "|---|---|---|---|---|"]
        for r in rows:
            lines.append("| %s | %d | %d | %d | %d |" % (r["variant"], r["pss_kib"], r["private_dirty_kib"],
                                                       r["pss_shared_kib"], r["private_dirty_shared_kib"]))
        print("\n".join(lines))
        doc = {"date": time.strftime("%Y-%m-%d"), "pods": a.pods, "loadavg": os.getloadavg(), "rows": rows}
        if a.json:
            with open(a.json, "w") as f:
                json.dump(doc, f, indent=1)
        if a.markdown:
            with open(a.markdown, "w") as f:
                f.write("\n".join(lines) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
