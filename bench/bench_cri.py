"""A pod through containerd's CRI with the `rich` handler against the same pod with `runc`, in the
same run (targets: RunPodSandbox + CreateContainer + StartContainer <= 1.3x the runc handler's;
Pss per pod <= the runc pod's + 3 MiB).

    sudo .venv/bin/python bench/bench_cri.py [--runs N] [--json FILE]

containerd runs as tests/support/cri.py sets it up (its own root, sockets and network namespace,
the config `rich install --containerd` merged, local busybox pause and app images). Each round
starts one pod per variant, in turn (interleaved: drift spreads over all of them), timing the three
calls kubelet makes; the app is `sleep`. Then, once the app runs (and, in rich pods, richinit's
services are up), the Pss of every process of the pod is summed (the pause process, the
container's init and all its descendants; /proc/PID/smaps_rollup), and the pod is removed. Pss
charges shared pages to the processes sharing them, so a pod alone carries all of the portable
runtime's interpreter text: the Pss rows are also taken with --pods N (default 4) pods of a
variant running at once, as a node runs them (their total / N).
Variants: runc; rich (richinit with its built-in syslog and cron, the default); rich with
io.richinit.services=none (richinit alone). With --before REV, also `rich (REV)`: the host-side
programs (rich-runtime, rich-hook) of another revision of this repository (git archive), as that
revision's test shims ran them, behind a handler of their own in the same containerd and the same
interleaved rounds (the portable runtime, so richinit itself, is this tree's for both).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime_hooks import portable  # noqa: E402
from tests.integration.richcli.conftest import RichEnv, write_shims  # noqa: E402
from tests.support import containers as c  # noqa: E402
from tests.support import cri as cri_mod  # noqa: E402
from tests.support.wait import wait_until  # noqa: E402

VARIANTS = {"runc": ("runc", {}), "rich": ("rich", {"io.richinit.rich": "true"}),
            "rich, services none": ("rich", {"io.richinit.rich": "true", "io.richinit.services": "none"})}


def pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(pid):
    """pid and all its descendants (from /proc/*/stat's ppid)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def one_pod(cri, handler, annotations):
    pb, rt = cri.pb, cri.rt
    pod = cri.pod_config("bench-%s" % uuid.uuid4().hex[:8], annotations)
    cfg = cri.container_config(["/bin/sleep", "2147483647"])
    t0 = time.perf_counter()
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod, runtime_handler=handler)).pod_sandbox_id
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg, sandbox_config=pod)).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    ms = (time.perf_counter() - t0) * 1000
    try:
        init = cri_mod.init_pid(cid)
        want = 2 + (2 if handler != "runc" and annotations.get("io.richinit.services") != "none" else 0)
        # settled: the app (and richinit's syslog and cron) running
        wait_until(lambda: len(tree(init)) >= want, 10)
        time.sleep(0.3)
        pids = [cri_mod.init_pid(sid)] + tree(init)
        return ms, sum(pss_kib(p) for p in pids), len(pids)
    finally:
        cri.remove_pod(sid)


def pods_at_once(cri, handler, annotations, n):
    """Pss per pod with n pods of a variant running together (KiB)."""
    pb, rt = cri.pb, cri.rt
    sids, inits = [], []
    try:
        for _ in range(n):
            pod = cri.pod_config("bench-%s" % uuid.uuid4().hex[:8], annotations)
            sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod, runtime_handler=handler)).pod_sandbox_id
            sids.append(sid)
            cid = rt.CreateContainer(pb.CreateContainerRequest(
                pod_sandbox_id=sid, config=cri.container_config(["/bin/sleep", "2147483647"]),
                sandbox_config=pod)).container_id
            rt.StartContainer(pb.StartContainerRequest(container_id=cid))
            inits.append((cri_mod.init_pid(sid), cri_mod.init_pid(cid)))
        want = 2 + (2 if handler != "runc" and annotations.get("io.richinit.services") != "none" else 0)
        for _pause, init in inits:
            wait_until(lambda: len(tree(init)) >= want, 10)  # noqa: B023 - called at once
        time.sleep(0.3)
        return sum(pss_kib(p) for pause, init in inits for p in [pause] + tree(init)) // n
    finally:
        for sid in sids:
            cri.remove_pod(sid)


def before_tree(rev, dest, bake):
    """rev's rich-runtime and rich-hook in dest/bin, as that revision's test shims were: `#!PY -IS`
    scripts calling its entry points, the directories baked in (its own rich-hook for its hooks)."""
    import sysconfig
    src = os.path.join(dest, "src")
    os.makedirs(src)
    archive = subprocess.run(["git", "-C", REPO, "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
    bindir = os.path.join(dest, "bin")
    os.makedirs(bindir)
    env = dict(bake, RICHINIT_HOOK=os.path.join(bindir, "rich-hook"))
    lines = "".join("os.environ.setdefault(%r, %r)\n" % kv for kv in sorted(env.items()))
    for name, mod in (("rich-runtime", "runtime_hooks.wrapper"), ("rich-hook", "runtime_hooks.hook")):
        with open(os.path.join(bindir, name), "w") as f:
            f.write("#!%s -IS\nimport os, sys\n%ssys.path[1:1] = %r\nfrom %s import entry\nsys.exit(entry())\n"
                    % (sys.executable, lines, [src, sysconfig.get_paths()["purelib"]], mod))
        os.chmod(os.path.join(bindir, name), 0o755)
    return os.path.join(bindir, "rich-runtime")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--pods", type=int, default=4, help="pods of a variant at once for the shared Pss rows")
    ap.add_argument("--json")
    ap.add_argument("--before", metavar="REV", help="also time this git revision's rich-runtime (e.g. HEAD~3)")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    tmp = tempfile.mkdtemp(prefix="bench-cri.")
    views = "/run/bench-cri-%s" % uuid.uuid4().hex[:8]
    os.makedirs(views)
    env = None
    try:
        rt_dir = os.path.join(tmp, "runtime")
        portable.build(rt_dir)
        rootfs = c.busybox_rootfs(os.path.join(tmp, "rootfs"))
        env = RichEnv(os.path.join(tmp, "rich"), views, rt_dir)
        bindir = write_shims(os.path.join(tmp, "bin"), bake=env.vars)
        variants, handlers = dict(VARIANTS), {}
        if a.before:
            handlers["rich-before"] = before_tree(a.before, os.path.join(tmp, "before"), env.vars)
            variants["rich (%s)" % a.before] = ("rich-before", VARIANTS["rich"][1])
        with cri_mod.containerd_cri(os.path.join(tmp, "cri"), env.rich, bindir, rt_dir, rootfs, handlers) as cri:
            for handler, ann in variants.values():  # warm-up: images unpacked, the view server up
                one_pod(cri, handler, ann)
            load0 = os.getloadavg()
            samples = {k: [] for k in variants}
            for _ in range(a.runs):
                for name, (handler, ann) in variants.items():
                    samples[name].append(one_pod(cri, handler, ann))
            together = {name: pods_at_once(cri, handler, ann, a.pods) for name, (handler, ann) in variants.items()}
            load1 = os.getloadavg()
    finally:
        if env is not None:
            env.stop_services()
        import shutil
        shutil.rmtree(views, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    base_ms = statistics.median(s[0] for s in samples["runc"])
    base_pss = statistics.median(s[1] for s in samples["runc"])
    rows = []
    print("| pod (RunPodSandbox + CreateContainer + StartContainer) | median ms | vs runc | Pss, pod alone (KiB) "
          "| vs runc | Pss per pod, %d at once (KiB) | vs runc | processes |" % a.pods)
    print("|---|---|---|---|---|---|---|---|")
    for name, s in samples.items():
        ms = statistics.median(x[0] for x in s)
        pss = statistics.median(x[1] for x in s)
        n = statistics.median(x[2] for x in s)
        shared = together[name]
        rows.append({"variant": name, "ms": round(ms, 1), "ratio": round(ms / base_ms, 2), "pss_kib": pss,
                     "pss_delta_kib": pss - base_pss, "pss_shared_kib": shared,
                     "pss_shared_delta_kib": shared - together["runc"], "processes": n})
        print("| %s | %.1f | %.2fx | %d | %+d | %d | %+d | %d |" % (name, ms, ms / base_ms, pss, pss - base_pss,
                                                                    shared, shared - together["runc"], n))
    print("load average %.2f -> %.2f, %d runs" % (load0[0], load1[0], a.runs))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": a.runs, "pods": a.pods, "load": [load0[0], load1[0]], "rows": rows, "before": a.before,
                       "date": time.strftime("%Y-%m-%d")}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
