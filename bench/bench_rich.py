"""`rich run /bin/true` against plain `runc run /bin/true`, in the same run (target: <= 1.5x).

    sudo .venv/bin/python bench/bench_rich.py [--runs N] [--json FILE]

`rich run` here is the whole user-visible path: the CLI builds and checks config.json, saves its
plan and applies it (runtime_hooks.pipeline, engine "run": an overlay over the busybox rootfs, the
rewrite, the /proc views registered by the rootfs, config.json), and runs `runc run`; richinit
starts from the portable runtime as PID 1 with the built-in syslog and cron and runs /bin/true;
rich then undoes the plan (views, overlay, bundle). Variants take pieces away so the cost of each shows:
views off (io.richinit.lxcfs=off), services off (--no-services), both, and the host side alone
(`--runtime /bin/true`: everything rich does, with a runtime that returns at once).
The peer is `runc run` of a prepared bundle (busybox rootfs, /bin/true, deleted afterwards). Two more
rows split the cost: the same `runc run` with richinit from the runtime as PID 1 (no wrapper, no hooks,
no views), without services and with `--services all` (the busybox image gets richinit's built-in
syslog and cron). One more: a single rich-hook call (what an engine's poststop costs).
Two floor rows show what Python itself costs, whatever our code does: the portable runtime's interpreter
run bare as the container's process (`runc run PYTHON -c pass`, richinit's own argv with `pass` for its
program) and the host interpreter bare (`python -IS -c pass`, as the rich launcher starts it). Their sum
over runc is the least any Python PID 1 plus Python CLI can cost; it is printed as "floor of rich run".
Runs are interleaved (each round visits every variant) so drift spreads over all of them.
Everything lives in a temporary directory; the view server and watcher rich starts are stopped by
PID at the end.
"""

import argparse
import json
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
# Our view server, always: with `auto` a running lxcfs (another program's, here) would be chosen.
VIEWS = ["--annotation", "io.richinit.lxcfs=builtin"]
sys.path.insert(0, REPO)

from runtime_hooks import portable  # noqa: E402
from tests.integration.richcli.conftest import write_shims  # noqa: E402
from tests.support import containers as c  # noqa: E402


def _ms(argv, env=None):
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        raise SystemExit("failed (%d): %s: %s" % (r.returncode, " ".join(argv), r.stderr.decode()[-300:]))
    return dt


def _stop(pidfile):
    try:
        pid = int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    tmp = tempfile.mkdtemp(prefix="bench-rich.")
    views = "/run/bench-rich-%s" % uuid.uuid4().hex[:8]
    os.makedirs(views)
    env = None
    try:
        rt = os.path.join(tmp, "runtime")
        portable.build(rt)
        rootfs = c.busybox_rootfs(os.path.join(tmp, "rootfs"))
        bin_dir = write_shims(os.path.join(tmp, "bin"))
        conf = os.path.join(tmp, "runtime.yaml")
        with open(conf, "w") as f:
            f.write("runtime: runc\nruntime_dir: %s\n" % rt)
        env = dict(os.environ, RICHINIT_RUNTIME_CONFIG=conf, RICHINIT_CONTAINERS_DIR=tmp + "/containers",
                   RICHINIT_RUN_ROOT=tmp + "/runroot", RICHINIT_STATE_DIR=tmp + "/state",
                   RICHINIT_LOG_DIR=tmp + "/log", RICHINIT_VIEWS_MOUNT=views + "/views",
                   RICHINIT_VIEWS_REGISTRY=views + "/views.d", RICHINIT_VIEWS_PIDFILE=views + "/views.pid",
                   RICHINIT_VIEWS_WATCH_PIDFILE=views + "/watch.pid", RICHINIT_HOOK=bin_dir + "/rich-hook")
        env.pop("RICHINIT_RUNTIME", None)
        rich = os.path.join(bin_dir, "rich")
        bundle = os.path.join(tmp, "plain")
        c.make_bundle(bundle, rootfs, ["/bin/true"])
        root = os.path.join(tmp, "runc-root")
        rt_mount = [{"destination": "/.richinit", "type": "bind", "source": rt,
                     "options": ["rbind", "ro", "nosuid", "nodev"]},
                    {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}]
        argv = portable.load_manifest(rt)["argv"]
        init_only = os.path.join(tmp, "init-only")
        c.make_bundle(init_only, rootfs, argv + ["--", "/bin/true"], mounts=rt_mount)
        bare_py = os.path.join(tmp, "bare-python")
        c.make_bundle(bare_py, rootfs, argv[:-1] + ["pass"], mounts=rt_mount)
        init_services = os.path.join(tmp, "init-services")
        c.make_bundle(init_services, rootfs, argv + ["--services", "all", "--", "/bin/true"], mounts=rt_mount)

        def runc_of(b):
            def go():
                cid = c.new_id("bench")
                dt = _ms(["runc", "--root", root, "run", "--bundle", b, cid])
                subprocess.run(["runc", "--root", root, "delete", "--force", cid], capture_output=True)
                return dt
            return go

        def plain():
            cid = c.new_id("bench")
            dt = _ms(["runc", "--root", root, "run", "--bundle", bundle, cid])
            subprocess.run(["runc", "--root", root, "delete", "--force", cid], capture_output=True)
            return dt

        variants = {
            "runc run /bin/true": plain,
            "runc run PYTHON -c pass (floor)": runc_of(bare_py),
            "host python -IS -c pass (floor)": lambda: _ms([sys.executable, "-IS", "-c", "pass"]),
            "runc run richinit -- /bin/true": runc_of(init_only),
            "runc run richinit --services all": runc_of(init_services),
            "rich run /bin/true": lambda: _ms([rich, "run"] + VIEWS + [rootfs, "--", "/bin/true"], env),
            "rich run, views off": lambda: _ms([rich, "run", "--annotation", "io.richinit.lxcfs=off", rootfs,
                                                "--", "/bin/true"], env),
            "rich run --no-services": lambda: _ms([rich, "run", "--no-services"] + VIEWS + [rootfs, "--", "/bin/true"],
                                                  env),
            "rich run, views and services off": lambda: _ms([rich, "run", "--no-services", "--annotation",
                                                             "io.richinit.lxcfs=off", rootfs, "--", "/bin/true"], env),
            "rich run --runtime /bin/true (host side)": lambda: _ms([rich, "run", "--runtime", "/bin/true"] + VIEWS
                                                                    + [rootfs, "--", "/bin/true"], env),
            "rich-hook poststop (one hook call)": lambda: _hook_ms(bin_dir, env),
        }
        load0 = os.getloadavg()
        for fn in variants.values():  # warm-up: starts the view server, fills caches
            fn()
        samples = {k: [] for k in variants}
        for i in range(a.runs):
            keys = list(variants)
            keys = keys[i % len(keys):] + keys[:i % len(keys)]
            for k in keys:
                samples[k].append(variants[k]())
        base = statistics.median(samples["runc run /bin/true"])
        rows = []
        print("%-42s %10s %10s %8s" % ("", "median ms", "min ms", "ratio"))
        for k, xs in samples.items():
            med = statistics.median(xs)
            rows.append({"what": k, "median_ms": round(med, 1), "min_ms": round(min(xs), 1),
                         "ratio_vs_runc": round(med / base, 2)})
            print("%-42s %10.1f %10.1f %7.2fx" % (k, med, min(xs), med / base))
        med = {k: statistics.median(xs) for k, xs in samples.items()}
        floor = med["runc run PYTHON -c pass (floor)"] + med["host python -IS -c pass (floor)"]
        print("floor of rich run (bare container interpreter + bare host interpreter): %.1f ms, %.2fx"
              % (floor, floor / base))
        rows.append({"what": "floor of rich run (sum of the two floor rows)", "median_ms": round(floor, 1),
                     "min_ms": None, "ratio_vs_runc": round(floor / base, 2)})
        ratio = statistics.median(samples["rich run /bin/true"]) / base
        print("target rich run <= 1.5x runc run: %s (%.2fx), %d runs each" % ("met" if ratio <= 1.5 else "NOT met",
                                                                            ratio, a.runs))
        if a.json:
            commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()
            with open(a.json, "w") as f:
                json.dump({"date": time.strftime("%Y-%m-%d"), "commit": commit, "runs": a.runs,
                           "loadavg_start": load0, "loadavg_end": os.getloadavg(), "rows": rows}, f, indent=1)
    finally:
        if env:
            _stop(env["RICHINIT_VIEWS_WATCH_PIDFILE"])
            _stop(env["RICHINIT_VIEWS_PIDFILE"])
            subprocess.run(["umount", "-l", views + "/views"], capture_output=True)
        shutil.rmtree(views, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _hook_ms(bin_dir, env):
    state = json.dumps({"id": "bench-none", "bundle": "/nonexistent"}).encode()
    t0 = time.perf_counter()
    subprocess.run([os.path.join(bin_dir, "rich-hook"), "poststop"], input=state, env=env, capture_output=True)
    return (time.perf_counter() - t0) * 1000


if __name__ == "__main__":
    main()
