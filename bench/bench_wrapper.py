"""rich-runtime and the portable runtime, measured against bare runc in the same run.

    sudo .venv/bin/python bench/bench_wrapper.py [--runs N] [--containers N] [--runtime-dir DIR]

Reports (medians; ratios against the peer measured in the same run):
  - size of the portable runtime directory (target <= 40 MB);
  - pass-through added latency: wrapper -> /bin/true vs /bin/true, and `state missing` wrapped vs bare
    runc (target <= 10 ms), next to the bare interpreter start-up floor (engines call the Python
    wrapper itself: one argv parser, one runtime.yaml reader);
  - richinit start-up from the portable runtime (host, via the bundled loader);
  - rich `run /bin/true` through the wrapper (rewrite + richinit as PID 1) vs plain `runc run /bin/true`
    (target <= 1.5x);
  - RSS / Pss of richinit as PID 1 in N idle rich containers sharing the runtime (target Pss <= 5 MiB).
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

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime_hooks import portable  # noqa: E402
from tests.support import containers as c  # noqa: E402


def timed(argv, runs, env=None, before=None):
    xs = []
    for _ in range(runs):
        if before:
            before()
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        xs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(xs)


def shim(d):
    path = os.path.join(d, "rich-runtime")
    with open(path, "w") as f:
        f.write("#!%s -IS\nimport sys\nsys.path.insert(0, %r)\nfrom runtime_hooks.wrapper import main\n"
                "sys.exit(main())\n" % (sys.executable, REPO))
    os.chmod(path, 0o755)
    return path


def smaps(pid):
    """{"Rss", "Pss"} of a process in KiB (psutil reads /proc/PID/smaps_rollup)."""
    m = psutil.Process(pid).memory_full_info()
    return {"Rss": m.rss // 1024, "Pss": m.pss // 1024}


def descendants(pid):
    """Every process below pid (the built-in syslogd and cron, a service's children...)."""
    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--containers", type=int, default=5)
    ap.add_argument("--runtime-dir", help="use this built runtime instead of building one")
    ap.add_argument("--smaps", action="store_true", help="print one richinit's smaps_rollup")
    ap.add_argument("--services", help="io.richinit.services of the idle containers (e.g. all; default: none)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_wrapper: needs root (runs containers)")
    work = tempfile.mkdtemp(prefix="bench-wrapper-")
    try:
        rt = a.runtime_dir or os.path.join(work, "runtime")
        if not a.runtime_dir:
            t0 = time.monotonic()
            portable.build(rt)
            print("build: %.2f s" % (time.monotonic() - t0))
        m = portable.load_manifest(rt)
        print("runtime dir: %.1f MB (target <= 40)" % (m["size"] / 1e6))
        conf = os.path.join(work, "runtime.yaml")
        with open(conf, "w") as f:
            f.write("runtime: runc\nruntime_dir: %s\n" % rt)
        wrapper = shim(work)
        env = dict(os.environ, RICHINIT_RUNTIME_CONFIG=conf)

        floor = timed([os.path.realpath(sys.executable), "-IS", "-c", "pass"], a.runs)
        true = timed(["/bin/true"], a.runs)
        wtrue = timed([wrapper, "state", "x"], a.runs, dict(env, RICHINIT_RUNTIME="/bin/true"))
        bare_state = timed(["runc", "state", "missing"], a.runs)
        w_state = timed([wrapper, "state", "missing"], a.runs, env)
        print("pass-through: wrapper->/bin/true %.1f ms vs /bin/true %.1f ms: +%.1f ms (interpreter floor "
              "python -IS -c pass: %.1f ms; the wrapper's own code: +%.1f ms)"
              % (wtrue, true, wtrue - true, floor, wtrue - floor))
        print("pass-through: `state missing` wrapped %.1f ms vs runc %.1f ms: +%.1f ms (target <= 10)"
              % (w_state, bare_state, w_state - bare_state))

        lib = os.path.join(rt, "lib")
        host_argv = [os.path.join(lib, m["loader"]), "--library-path", lib, os.path.join(rt, "bin", "python3"),
                     "-m", "richinit", "--", "/bin/true"]
        print("richinit start-up from the portable runtime (host, -- /bin/true): %.1f ms"
              % timed(host_argv, a.runs, env={}))

        rootfs = c.busybox_rootfs(os.path.join(work, "rootfs"))
        plain = os.path.join(work, "plain")
        c.make_bundle(plain, rootfs, ["/bin/true"])
        rich = os.path.join(work, "rich")
        c.make_bundle(rich, rootfs, ["/bin/true"], annotations={"io.richinit.rich": "true"})
        pristine = open(os.path.join(rich, "config.json"), "rb").read()

        def reset():
            with open(os.path.join(rich, "config.json"), "wb") as f:
                f.write(pristine)
        n = [0]

        def run_argv(prog, bundle):
            n[0] += 1
            return [prog, "run", "--bundle", bundle, "b%d" % n[0]]
        xs_plain, xs_rich = [], []
        for _ in range(a.runs):  # interleaved so both see the same machine load
            t0 = time.perf_counter()
            subprocess.run(run_argv("runc", plain), stdin=subprocess.DEVNULL, capture_output=True)
            xs_plain.append((time.perf_counter() - t0) * 1000)
            reset()
            t0 = time.perf_counter()
            r = subprocess.run(run_argv(wrapper, rich), env=env, stdin=subprocess.DEVNULL, capture_output=True)
            xs_rich.append((time.perf_counter() - t0) * 1000)
            if r.returncode != 0:
                sys.exit("rich run failed: %s" % r.stderr.decode())
        p, r_ = statistics.median(xs_plain), statistics.median(xs_rich)
        print("run /bin/true: rich %.1f ms vs plain runc %.1f ms: %.2fx (target <= 1.5x)" % (r_, p, r_ / p))

        ids = []
        try:
            for i in range(a.containers):
                b = os.path.join(work, "idle%d" % i)
                ann = {"io.richinit.rich": "true"}
                if a.services:
                    ann["io.richinit.services"] = a.services
                c.make_bundle(b, rootfs, ["/bin/sleep", "100000"], annotations=ann)
                cid = c.new_id("idle")
                with open(os.path.join(work, "idle.log"), "ab") as log:
                    subprocess.run([wrapper, "run", "-d", "--bundle", b, cid], env=env, check=True,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log)
                ids.append(cid)
            time.sleep(1.0)
            if a.smaps:
                pid0 = json.loads(subprocess.run(["runc", "state", ids[0]], capture_output=True,
                                                 text=True).stdout)["pid"]
                with open("/proc/%d/smaps_rollup" % pid0) as f:
                    print(f.read())
            stats, whole = [], []
            for cid in ids:
                pid = json.loads(subprocess.run(["runc", "state", cid], capture_output=True, text=True).stdout)["pid"]
                stats.append(smaps(pid))
                # PID 1 and what richinit runs beside the app: the built-in syslogd and cron (forked
                # from PID 1, so they share its pages), minus the app (sleep) itself.
                kids = [k for k in descendants(pid) if os.readlink("/proc/%d/exe" % k).rsplit("/", 1)[-1]
                        not in ("busybox", "sleep")]
                whole.append(sum(smaps(p)["Pss"] for p in [pid] + kids))
            print("richinit as PID 1, %d idle rich containers: Rss %.1f MiB, Pss %.1f MiB each (target Pss <= 5)"
                  % (len(stats), statistics.mean(s["Rss"] for s in stats) / 1024,
                     statistics.mean(s["Pss"] for s in stats) / 1024))
            print("richinit's processes (PID 1 and its built-ins), per container: Pss %.1f MiB"
                  % (statistics.mean(whole) / 1024))
        finally:
            for cid in ids:
                c.delete(cid)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
