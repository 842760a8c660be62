"""Issue 12's target: the app exec'd <= 3 ms after PID 1 starts, whatever services are enabled.

    python -m bench.appstart [--reps N] [--base REV] [--json OUT] [--markdown OUT]

Needs root (runc, tracefs). Each variant runs as `runc run` of a busybox rootfs (the host's /usr and
the richinit trees bound in, its own pid, mount and network namespaces) with richinit as PID 1 and
the app a script of a unique name (`/bench-app-N`, which then sleeps until the harness kills the
container):

    this branch   richinit -- APP              this branch   richinit --services all -- APP
    REV (main)    richinit -- APP              REV (main)    richinit --services all -- APP

`--services all` in that image means the built-in syslogd and cron (no sshd: the image has none).
The times are the kernel's, not the harness's: a private tracefs instance records
sched_process_exec and epoll_create1, and the numbers are the app's exec minus PID 1's own exec
(runc's init exec'ing the interpreter) and minus PID 1's first epoll_create1 (its event loop: the
interpreter and richinit's own start-up are done, identically with or without services); runc's
own set-up is outside both. Also per repetition: services all minus no services, from the exec. REV's tree is
`git archive REV` in a scratch directory, run with the same interpreter; both trees are
byte-compiled first (they are bound read-only, as the portable runtime ships them compiled). Every repetition runs the
four variants in a rotated order. Medians, with min/max; the target is checked on this branch's
`--services all` variant, from PID 1's event loop.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench.pid1 import write_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_MS = 3.0


def log(text):
    sys.stderr.write("[appstart] %s\n" % text)


class Trace:
    """A private tracefs instance recording sched_process_exec (with the global clock's timestamps)."""

    def __init__(self, scratch):
        self.mnt = os.path.join(scratch, "tracefs")
        os.makedirs(self.mnt)
        subprocess.run(["mount", "-t", "tracefs", "nodev", self.mnt], check=True)
        self.inst = os.path.join(self.mnt, "instances", "richinit-appstart-%d" % os.getpid())
        os.mkdir(self.inst)
        self._write("trace_clock", "mono")
        self._write("buffer_size_kb", "4096")
        self._write("events/sched/sched_process_exec/enable", "1")
        self._write("events/syscalls/sys_enter_epoll_create1/enable", "1")

    def _write(self, name, value):
        with open(os.path.join(self.inst, name), "w") as f:
            f.write(value)

    def clear(self):
        self._write("trace", "")

    def events(self):
        """[(seconds, pid, what)] recorded since the last clear(): what is the exec'd file name, or
        "epoll" for an epoll_create1 (PID 1's event loop being made)."""
        out = []
        with open(os.path.join(self.inst, "trace")) as f:
            for line in f:
                if line.startswith("#"):
                    continue
                if "sched_process_exec:" in line:
                    head, _, fields = line.partition("sched_process_exec:")
                    kv = dict(w.split("=", 1) for w in fields.split() if "=" in w)
                    out.append((float(head.split()[-1].rstrip(":")), int(kv.get("pid", 0)), kv.get("filename", "")))
                elif "sys_epoll_create1(" in line:
                    head = line.partition(" sys_epoll_create1(")[0]
                    m = re.search(r"-(\d+)\s+\[\d+\]", head)  # "COMM-PID [CPU]" (COMM may have spaces)
                    if m:
                        out.append((float(head.split()[-1].rstrip(":")), int(m.group(1)), "epoll"))
        return out

    def close(self):
        try:
            self._write("events/sched/sched_process_exec/enable", "0")
            self._write("events/syscalls/sys_enter_epoll_create1/enable", "0")
            os.rmdir(self.inst)
        finally:
            subprocess.run(["umount", self.mnt], check=False)


def _bundle(bundle, rootfs, tree, services, app):
    from tests.support import containers as ct
    args = [sys.executable, "-m", "richinit", "--no-save-env"] + (["--services", "all"] if services else [])
    mounts = [] if tree == REPO else [{"destination": tree, "type": "bind", "source": tree,
                                       "options": ["rbind", "rprivate", "ro"]}]
    ct.make_bundle(bundle, rootfs, args + ["--", app], python=True, mounts=mounts,
                   env=["PYTHONPATH=%s" % tree])


def one_run(scratch, rootfs, trace, variant, n):
    """Start the container, wait for the app's exec; returns (app exec - PID 1's exec, app exec - PID 1's
    first epoll_create1) in ms, or None."""
    from tests.support import containers as ct
    name, tree, services = variant
    app = "/bench-app-%d" % n
    with open(os.path.join(rootfs, app.lstrip("/")), "w") as f:
        f.write("#!/bin/sh\nexec sleep 1000\n")
    os.chmod(os.path.join(rootfs, app.lstrip("/")), 0o755)
    bundle = os.path.join(scratch, "bundle-%d" % n)
    _bundle(bundle, rootfs, tree, services, app)
    cid = "appstart-%d-%d" % (os.getpid(), n)
    trace.clear()
    proc = subprocess.Popen(["runc", "run", "--bundle", bundle, cid], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            events = trace.events()
            app_ev = [e for e in events if e[2] == app]
            if app_ev:
                break
            time.sleep(0.02)
        else:
            return None
        state = json.loads(subprocess.run(["runc", "state", cid], capture_output=True, text=True).stdout)
        init = int(state["pid"])
        pid1 = [e for e in events if e[1] == init and e[2] == sys.executable]
        loop = [e for e in events if e[1] == init and e[2] == "epoll" and pid1 and e[0] > pid1[0][0]]
        if not pid1 or not loop:
            return None
        return (app_ev[0][0] - pid1[0][0]) * 1e3, (app_ev[0][0] - loop[0][0]) * 1e3
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        ct.delete(cid)
        os.unlink(os.path.join(rootfs, app.lstrip("/")))
        shutil.rmtree(bundle, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--base", default="main", help="the revision compared (default main)")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    opt = ap.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("runc"):
        sys.exit("bench.appstart needs root and runc")
    scratch = tempfile.mkdtemp(prefix="bench-appstart.", dir="/tmp")
    trace = None
    try:
        base_tree = os.path.join(scratch, "base")
        os.makedirs(base_tree)
        archive = subprocess.run(["git", "-C", REPO, "archive", opt.base], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", base_tree], input=archive, check=True)
        base_commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", opt.base], capture_output=True,
                                     text=True).stdout.strip()
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        for tree in (REPO, base_tree):  # the trees are bound read-only: byte-compile them first, as installed
            subprocess.run([sys.executable, "-m", "compileall", "-q", "richinit", "osbase"], cwd=tree, check=True,
                           env=dict(os.environ, PYTHONDONTWRITEBYTECODE=""), stdout=subprocess.DEVNULL)
        from tests.support import containers as ct
        rootfs = ct.busybox_rootfs(os.path.join(scratch, "rootfs"))
        trace = Trace(scratch)
        variants = [("branch, no services", REPO, False), ("branch, --services all", REPO, True),
                    ("%s, no services" % opt.base, base_tree, False),
                    ("%s, --services all" % opt.base, base_tree, True)]
        samples = {v[0]: {"exec": [], "loop": []} for v in variants}
        paired = {opt.base: [], "branch": []}  # per rep: services all - no services, from PID 1's exec
        n = 0
        for rep in range(opt.reps + 1):
            k = rep % len(variants)
            got = {}
            for v in variants[k:] + variants[:k]:
                n += 1
                got[v[0]] = one_run(scratch, rootfs, trace, v, n)
            if rep == 0:
                continue  # warms caches
            for name, r in got.items():
                if r is not None:
                    samples[name]["exec"].append(r[0])
                    samples[name]["loop"].append(r[1])
            for tree, (a, b) in (("branch", (variants[1][0], variants[0][0])),
                                 (opt.base, (variants[3][0], variants[2][0]))):
                if got[a] is not None and got[b] is not None:
                    paired[tree].append(got[a][0] - got[b][0])
            log("rep %d/%d" % (rep, opt.reps))
        load = os.getloadavg()

        def stats(xs):
            return {"median_ms": statistics.median(xs) if xs else None, "min_ms": min(xs, default=None),
                    "max_ms": max(xs, default=None), "n": len(xs), "samples": xs}
        rows = [dict(variant=name, exec=stats(d["exec"]), loop=stats(d["loop"])) for name, d in samples.items()]
        deltas = {tree: stats(xs) for tree, xs in paired.items()}
        ours = rows[1]["loop"]["median_ms"]
        ok = ours is not None and ours <= TARGET_MS
        result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "head": head,
                  "base": "%s (%s)" % (opt.base, base_commit), "reps": opt.reps, "load_after": load,
                  "rows": rows, "paired_services_cost": deltas, "target_ms": TARGET_MS, "target_ok": ok}

        def cell(st):
            if st["median_ms"] is None:
                return "-"
            return "%.2f (%.2f-%.2f)" % (st["median_ms"], st["min_ms"], st["max_ms"])
        md = ["# The app's exec after PID 1's start (%s)" % result["date"], "",
              "This branch %s against %s; busybox rootfs in runc, %d reps (+1 warm-up), variants rotated; "
              "load average after the run %.2f %.2f %.2f. Medians (min-max), ms, from the kernel's "
              "sched_process_exec and epoll_create1 events." % (head, result["base"], opt.reps, *load), "",
              "| variant | PID 1's exec -> app exec | PID 1's event loop -> app exec |", "|---|---|---|"]
        for r in rows:
            md.append("| %s | %s | %s |" % (r["variant"], cell(r["exec"]), cell(r["loop"])))
        md += ["", "What enabling the services adds to the app's start (paired per repetition, from PID 1's "
               "exec: services all - no services):", "",
               "| tree | median (min-max) ms |", "|---|---|"]
        for tree, st in deltas.items():
            md.append("| %s | %s |" % (tree, cell(st)))
        md += ["", "Target: the app exec'd <= %.0f ms after PID 1 starts (its event loop exists: the interpreter "
               "and richinit's own start-up, the same with or without services, are the no-services row), "
               "services enabled: %s (%s)." % (TARGET_MS, "%.2f ms" % ours if ours is not None else "-",
                                              "ok" if ok else "MISSED")]
        text = "\n".join(md) + "\n"
        sys.stdout.write(text)
        write_files(opt, result, text)
    finally:
        if trace is not None:
            trace.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
