"""The host-side programs of one CRI pod start, each timed alone (no containerd, no strace).

    sudo .venv/bin/python bench/cri_steps.py [--rounds N] [--before REV]

What containerd's runc shim runs for a pod with the `rich` handler, in its order, on bundles like
its own (a busybox rootfs, the CRI annotations): rich-runtime create and start of the pause
container, rich-runtime create of the app, rich-hook createRuntime when the rewritten config.json
registers it, rich-runtime start of the app. The runtime behind rich-runtime is /bin/true, so each
row is our program's own cost (its interpreter start included). The programs are the launchers the
integration tests install (tests/integration/richcli/conftest.write_shims); with --before REV,
the same rounds also run that revision's (bench.bench_cri.before_tree), alternating. Medians of
all rounds but the first.
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
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.bench_cri import before_tree  # noqa: E402
from runtime_hooks import portable  # noqa: E402
from tests.integration.richcli.conftest import RichEnv, write_shims  # noqa: E402
from tests.support import containers as c  # noqa: E402

STEPS = ("sandbox create", "sandbox start", "container create", "createRuntime hook", "container start")
KINDS = {"sandbox": {"io.kubernetes.cri.container-type": "sandbox", "io.richinit.rich": "true"},
         "container": {"io.kubernetes.cri.container-type": "container", "io.richinit.rich": "true"}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--before", metavar="REV")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    tmp = tempfile.mkdtemp(prefix="cri-steps.")
    views = "/run/cri-steps-%s" % uuid.uuid4().hex[:8]
    os.makedirs(views)
    env = None
    try:
        rt_dir = os.path.join(tmp, "runtime")
        portable.build(rt_dir)
        rootfs = c.busybox_rootfs(os.path.join(tmp, "rootfs"))
        env = RichEnv(os.path.join(tmp, "rich"), views, rt_dir)
        bins = {"now": write_shims(os.path.join(tmp, "bin"), bake=env.vars)}
        if a.before:
            bins[a.before] = os.path.dirname(before_tree(a.before, os.path.join(tmp, "before"), env.vars))
        run_env = dict(os.environ, RICHINIT_RUNTIME="/bin/true")
        res = {(v, s): [] for v in bins for s in STEPS}

        def timed(key, argv, **kw):
            t0 = time.perf_counter()
            r = subprocess.run(argv, env=run_env, capture_output=True, text=True, **kw)
            res[key].append((time.perf_counter() - t0) * 1000)
            if r.returncode != 0:
                raise SystemExit("%s: %s" % (" ".join(argv), r.stderr))

        for i in range(a.rounds):
            for v, bindir in bins.items():
                glob = ["--root", os.path.join(tmp, "root"), "--log", os.path.join(tmp, "log.json"), "--log-format",
                        "json"]
                for kind, ann in KINDS.items():
                    b = os.path.join(tmp, "b-%d-%s-%d" % (list(bins).index(v), kind, i))
                    c.make_bundle(b, rootfs, ["/bin/sleep", "10"], annotations=ann)
                    cid = "steps-%s-%d-%d" % (kind, list(bins).index(v), i)
                    timed((v, kind + " create"), [bindir + "/rich-runtime"] + glob +
                          ["create", "--bundle", b, "--pid-file", b + "/pid", cid])
                    state = json.dumps({"ociVersion": "1.0.2", "id": cid, "pid": os.getpid(), "bundle": b})
                    if kind == "container":
                        with open(os.path.join(b, "config.json")) as f:
                            hooks = json.load(f).get("hooks") or {}
                        if "createRuntime" in hooks:
                            timed((v, "createRuntime hook"), [bindir + "/rich-hook", "createRuntime"], input=state)
                        else:
                            res[(v, "createRuntime hook")].append(0.0)
                    timed((v, kind + " start"), [bindir + "/rich-runtime"] + glob + ["start", cid])
                    if kind == "container":  # what runc delete runs: the plan undone
                        subprocess.run([bindir + "/rich-hook", "poststop"], input=state, env=run_env,
                                       capture_output=True, text=True)
        print("| step (runtime /bin/true) | %s |" % " | ".join("%s ms" % v for v in bins))
        print("|---|%s" % ("---|" * len(bins)))
        for s in STEPS + ("per pod",):
            cells = []
            for v in bins:
                xs = [sum(res[(v, t)][r] for t in STEPS) for r in range(1, a.rounds)] if s == "per pod" \
                    else res[(v, s)][1:]
                cells.append("%.1f" % statistics.median(xs))
            print("| %s | %s |" % (s, " | ".join(cells)))
        print("load average %.2f, %d rounds" % (os.getloadavg()[0], a.rounds))
    finally:
        if env is not None:
            env.stop_services()
        shutil.rmtree(views, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
