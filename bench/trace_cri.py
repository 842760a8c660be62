"""Where one CRI pod's start goes: every program containerd's shims run, timed (strace).

    sudo .venv/bin/python bench/trace_cri.py [--handler rich|runc] [--pods N] [--raw FILE]

containerd runs as bench/bench_cri.py runs it (tests/support/cri.py). After one warm-up pod per
handler, strace follows containerd and everything it starts (-f, execve and exits, wall clock
timestamps) while RunPodSandbox + CreateContainer + StartContainer run for N pods of the handler
(the app is `sleep`), then it is detached before the pods are removed. Each exec'd program becomes
one row: what ran (the runtime verb for runc and rich-runtime, the stage for rich-hook), when its
process exec'd it relative to the call that caused it, and how long until that process exited or
exec'd the next program (a wrapper's exec of runc closes the wrapper's row). Rows of the N pods are
summed per step and divided by N; the three CRI calls' own times are the first rows.
"""

import argparse
import os
import re
import signal
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

ANNOTATIONS = {"runc": {}, "rich": {"io.richinit.rich": "true"}}
LINE = re.compile(r"^(\d+) +(\d+\.\d+) (.*)$")
VERBS = ("create", "start", "state", "delete", "kill", "run", "features", "--version", "exec", "ps", "update")


def containerd_pid(sock):
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and os.path.basename(argv[0]) == b"containerd" and any(sock.encode() in a for a in argv[1:]):
                return int(d)
    # the config names the socket; containerd's argv names the config
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink("/proc/%s/exe" % d).endswith("/containerd"):
                    return int(d)
            except OSError:
                continue
    raise SystemExit("containerd not found")


def label(argv):
    """A short name for an exec'd program's argv."""
    prog = os.path.basename(argv[0]) if argv else "?"
    if prog in ("runc", "rich-runtime"):
        verb = next((a for a in argv[1:] if a in VERBS), "?")
        return "%s %s" % (prog, verb)
    if prog == "rich-hook":
        return "rich-hook %s" % (argv[1] if len(argv) > 1 else "?")
    if prog.startswith("python"):
        return label(argv[2:]) if len(argv) > 2 and argv[1].startswith("-") else label(argv[1:])
    if prog == "containerd-shim-runc-v2":
        return "shim %s" % ("start" if "start" in argv else "daemon")
    return prog


def parse(path):
    """[(pid, t, kind, argv-or-None)] from strace -f -ttt output (one file)."""
    events = []
    pending = {}
    with open(path, errors="replace") as f:
        for raw in f:
            m = LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, t, rest = int(m.group(1)), float(m.group(2)), m.group(3)
            if "<unfinished ...>" in rest:
                pending[pid] = rest.split(" <unfinished", 1)[0]
                continue
            if rest.startswith("<... "):
                rest = pending.pop(pid, "") + rest.split("resumed>", 1)[-1]
            if rest.startswith("execve("):
                if "= -1" in rest.rsplit(")", 1)[-1]:
                    continue
                args = re.search(r'execve\("[^"]*", \[(.*?)\](, 0x| /\*|, \[)', rest)
                argv = re.findall(r'"((?:[^"\\]|\\.)*)"', args.group(1)) if args else []
                events.append((pid, t, "exec", argv))
            elif rest.startswith("+++ exited") or rest.startswith("+++ killed"):
                events.append((pid, t, "exit", None))
    return events


def rows(events):
    """[(label, start, end)]: each exec to its process's next exec or exit."""
    out, open_ = [], {}
    for pid, t, kind, argv in events:
        if pid in open_:
            name, t0 = open_.pop(pid)
            out.append((name, t0, t))
        if kind == "exec":
            open_[pid] = (label(argv), t)
    for name, t0 in open_.values():
        out.append((name + " (running)", t0, None))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--handler", choices=sorted(ANNOTATIONS), default="rich")
    ap.add_argument("--pods", type=int, default=3)
    ap.add_argument("--raw", help="keep strace's output here")
    ap.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE",
                    help="more pod annotations (e.g. io.richinit.services=none)")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    tmp = tempfile.mkdtemp(prefix="trace-cri.")
    views = "/run/trace-cri-%s" % uuid.uuid4().hex[:8]
    os.makedirs(views)
    env = None
    raw = a.raw or os.path.join(tmp, "strace.out")
    try:
        rt_dir = os.path.join(tmp, "runtime")
        portable.build(rt_dir)
        rootfs = c.busybox_rootfs(os.path.join(tmp, "rootfs"))
        env = RichEnv(os.path.join(tmp, "rich"), views, rt_dir)
        bindir = write_shims(os.path.join(tmp, "bin"), bake=env.vars)
        with cri_mod.containerd_cri(os.path.join(tmp, "cri"), env.rich, bindir, rt_dir, rootfs) as cri:
            pb, rt = cri.pb, cri.rt
            for handler, ann in (("runc", {}), ("rich", ANNOTATIONS["rich"])):  # warm-up
                pod = cri.pod_config("warm-%s" % uuid.uuid4().hex[:8], ann)
                sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod, runtime_handler=handler)).pod_sandbox_id
                cid = rt.CreateContainer(pb.CreateContainerRequest(
                    pod_sandbox_id=sid, config=cri.container_config(["/bin/sleep", "1000"]),
                    sandbox_config=pod)).container_id
                rt.StartContainer(pb.StartContainerRequest(container_id=cid))
                cri.remove_pod(sid)
            cpid = containerd_pid(cri.sock)
            tracer = subprocess.Popen(["strace", "-f", "--seccomp-bpf", "-ttt", "-q", "-e", "trace=execve",
                                       "-s", "200", "-o", raw, "-p", str(cpid)], stderr=subprocess.PIPE)
            wait_until(lambda: os.path.exists(raw) and _traced(cpid), 10)
            calls, sids = [], []
            try:
                for _ in range(a.pods):
                    pod = cri.pod_config("trace-%s" % uuid.uuid4().hex[:8], dict(
                        ANNOTATIONS[a.handler], **dict(kv.split("=", 1) for kv in a.annotation)))
                    t0 = time.time()
                    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod,
                                                                   runtime_handler=a.handler)).pod_sandbox_id
                    sids.append(sid)
                    t1 = time.time()
                    cid = rt.CreateContainer(pb.CreateContainerRequest(
                        pod_sandbox_id=sid, config=cri.container_config(["/bin/sleep", "1000"]),
                        sandbox_config=pod)).container_id
                    t2 = time.time()
                    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
                    t3 = time.time()
                    calls.append((t0, t1, t2, t3))
            finally:
                tracer.send_signal(signal.SIGINT)
                tracer.wait(timeout=30)
                for sid in sids:
                    cri.remove_pod(sid)
    finally:
        if env is not None:
            env.stop_services()
        import shutil
        shutil.rmtree(views, ignore_errors=True)
        if a.raw is None:
            report(raw, calls, a)
        shutil.rmtree(tmp, ignore_errors=True)
    if a.raw is not None:
        report(raw, calls, a)
    return 0


def _traced(pid):
    with open("/proc/%d/status" % pid) as f:
        return any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in f)


def report(raw, calls, a):
    spans = rows(parse(raw))
    print("handler %s %s, %d pods, load average %.2f" % (a.handler, " ".join(a.annotation), a.pods,
                                                          os.getloadavg()[0]))
    print("| step | call | starts at ms (after the call began) | ms |")
    print("|---|---|---|---|")
    names = ("RunPodSandbox", "CreateContainer", "StartContainer")
    for i, name in enumerate(names):
        print("| %s (CRI call) | | 0 | %.1f |" % (name, sum(x[i + 1] - x[i] for x in calls) * 1000 / len(calls)))
    per = {}
    for name, t0, t1 in spans:
        for x in calls:
            if x[0] <= t0 <= x[3]:
                i = 0 if t0 < x[1] else 1 if t0 < x[2] else 2
                key = (i, name)
                s = per.setdefault(key, [0.0, 0.0, 0])
                s[0] += (t0 - x[i]) * 1000
                s[1] += ((t1 - t0) * 1000) if t1 else 0.0
                s[2] += 1
    for (i, name), (start, dur, n) in sorted(per.items(), key=lambda kv: (kv[0][0], kv[1][0] / kv[1][2])):
        print("| %s | %s | %.1f | %.1f%s |" % (name, names[i], start / n, dur / len(calls),
                                            "" if n == len(calls) else " (%d runs in %d pods)" % (n, len(calls))))


if __name__ == "__main__":
    sys.exit(main())
