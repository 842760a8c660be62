"""Issue 10's targets: a Debian 12 VM image's own services under richinit against real systemd, in one run.

    sudo .venv/bin/python -m bench.vm_services [--reps N] [--idle-secs S] [--json OUT] [--markdown OUT]

The same image for both: the cached Debian 12 VM image (tests.support.debian_image.vm_image: systemd,
openssh-server, cron, rsyslog, nginx-light, redis-server, memcached, postgresql) with a small layer
(the PostgreSQL cluster 15-main, as postgresql-generator would link it; bench-sleep.service, a
trivial unit for the round trips; bench-idle.timer, armed for an hour). Each boot gets a fresh
overlay of its own and its own network namespace:

  richinit  `rich run --vm NAME ROOTFS -- /sbin/init` (the portable runtime built from this tree,
            real runc); richinit takes /sbin/init's place and runs the image's units
  systemd   `podman run -d --systemd=always --network none --rootfs ROOTFS /sbin/init` (its own
            containers.conf: runc, cgroupfs, file events, nofile/nproc ulimits)

Metrics (the two alternate, `--reps` boots each; medians):
  start_ms        the engine command launched -> every enabled service ready: ports 22, 80, 5432,
                  6379 and 11211 accept in the container's network namespace (a forked prober
                  setns()es into it) and cron and rsyslogd run in its PID namespace; polled every 5 ms
  init_start_ms   the same end, from PID 1's own start (its starttime in /proc): without the engine's
                  set-up, which differs (podman's is larger)
  own_pss_kib     richinit: Pss of every process of the container running richinit's interpreter
                  (PID 1, built-ins; the loader has exited by then); systemd: PID 1 + systemd-journald
                  (+ any other systemd-* process). --settle-secs after ready, services excluded.
                  Also their Private_Dirty: the anonymous memory, without the file pages (the
                  runtime's interpreter and libraries, shared by every container binding it)
  idle_wakeups    PID 1's voluntary + nonvoluntary context switches over --idle-secs, timers armed
                  (bench-idle.timer, dpkg-db-backup.timer), nothing due
  rtt_cpu_ms      PID 1's own CPU time (schedstat) for one `systemctl start|stop|restart bench-sleep`
                  run inside the container (the engine's exec, the client's start-up are not PID 1's)
  rtt_wall_ms     the same command's wall time measured inside the container (date +%s%N around it)

Everything started is removed: containers, overlays, podman's storage and run directories.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from bench import pid1

PORTS = (22, 80, 5432, 6379, 11211)
PROCESSES = ("cron", "rsyslogd")
TARGETS = {"start_ms": 0.5, "init_start_ms": 0.5, "own_pss_kib": 1 / 3}
RTT_TARGET_MS = 20.0
LAYER_UNITS = {
    "bench-sleep.service": "[Unit]\nDescription=bench round trips\n[Service]\nExecStart=/bin/sleep infinity\n",
    "bench-idle.timer": "[Unit]\nDescription=armed, due in an hour\n[Timer]\nOnBootSec=1h\nOnUnitActiveSec=1h\n"
                        "[Install]\nWantedBy=timers.target\n",
    "bench-idle.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n",
}


def log(msg):
    sys.stderr.write("vm_services: %s\n" % msg)
    sys.stderr.flush()


# ---------------------------------------------------------------- the image

def build_layer(work, base):
    """LAYER:BASE with the cluster, postgresql@15-main linked, the bench units."""
    from tests.integration.vmservices.conftest import _mount_overlay, _umount
    from tests.support import containers as ct
    layer, merged = os.path.join(work, "layer"), os.path.join(work, "merged")
    _mount_overlay(base, layer, os.path.join(work, "lwork"), merged)
    try:
        for name, text in LAYER_UNITS.items():
            with open(os.path.join(merged, "etc/systemd/system", name), "w") as f:
                f.write(text)
        for wants, unit, target in (
                ("multi-user.target.wants", "postgresql@15-main.service", "/lib/systemd/system/postgresql@.service"),
                ("timers.target.wants", "bench-idle.timer", "/etc/systemd/system/bench-idle.timer")):
            d = os.path.join(merged, "etc/systemd/system", wants)
            os.makedirs(d, exist_ok=True)
            os.symlink(target, os.path.join(d, unit))
        ct.make_bundle(os.path.join(work, "lbundle"), merged, ["/usr/bin/pg_createcluster", "15", "main"])
        r = ct.run(os.path.join(work, "lbundle"), timeout=120)
        if r.returncode != 0:
            raise RuntimeError("pg_createcluster: %s" % r.stderr[-300:])
    finally:
        _umount(merged)
    return "%s:%s" % (layer, base)


# ---------------------------------------------------------------- finding and probing the container

def _nspid_is_one(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("NSpid:"):
                    ids = line.split()[1:]
                    return len(ids) > 1 and ids[-1] == "1"
    except OSError:
        pass
    return False


def find_init(marker):
    """Host pid of the container's PID 1: a PID-namespace init whose /etc/bench-marker (read through
    /proc/PID/root) holds this boot's marker; None while there is none."""
    for d in os.listdir("/proc"):
        if d.isdigit() and _nspid_is_one(int(d)):
            try:
                with open("/proc/%s/root/etc/bench-marker" % d) as f:
                    if f.read() == marker:
                        return int(d)
            except OSError:
                continue
    return None


def _in_pidns(ns, comm):
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.readlink("/proc/%s/ns/pid" % d) != ns:
                    continue
                with open("/proc/%s/comm" % d) as f:
                    if f.read().strip() == comm:
                        return True
            except OSError:
                continue
    return False


def probe_ready(init, timeout=60.0):
    """monotonic time when every service answers, from a forked child in the container's netns."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the prober
        import socket as sk
        os.close(r)
        code = 1
        try:
            from osbase import libc
            fd = os.open("/proc/%d/ns/net" % init, os.O_RDONLY)
            libc.setns(fd, libc.CLONE_NEWNET)
            pidns = os.readlink("/proc/%d/ns/pid" % init)
            left, procs = set(PORTS), set(PROCESSES)
            deadline = time.monotonic() + timeout
            while (left or procs) and time.monotonic() < deadline:
                for port in list(left):
                    c = sk.socket(sk.AF_INET, sk.SOCK_STREAM)
                    try:
                        c.settimeout(0.2)
                        c.connect(("127.0.0.1", port))
                        left.discard(port)
                    except OSError:
                        pass
                    finally:
                        c.close()
                for p in list(procs):
                    if _in_pidns(pidns, p):
                        procs.discard(p)
                if left or procs:
                    time.sleep(0.005)
            os.write(w, (repr(time.monotonic()) if not (left or procs) else "timeout %s %s" % (left, procs)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    out = b""
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        out += b
    os.close(r)
    os.waitpid(child, 0)
    text = out.decode()
    if not text or text.startswith("timeout"):
        raise RuntimeError("services not ready: %s" % text)
    return float(text)


def process_start_monotonic(pid):
    """PID 1's start as a CLOCK_MONOTONIC-comparable time (starttime is in ticks since boot)."""
    with open("/proc/%d/stat" % pid) as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    since_boot = start_ticks / os.sysconf("SC_CLK_TCK")
    return time.monotonic() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)


def own_processes(init, kind):
    """(pid, comm) of the init's own processes: those run from the runtime at /.richinit (their exe
    is its loader), or systemd and its journald."""
    ns = os.readlink("/proc/%d/ns/pid" % init)
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/ns/pid" % d) != ns:
                continue
            with open("/proc/%s/comm" % d) as f:
                comm = f.read().strip()
            exe = os.readlink("/proc/%s/exe" % d)
        except OSError:
            continue
        if kind == "richinit" and exe.startswith("/.richinit/"):
            out.append((int(d), comm))
        elif kind == "systemd" and comm.startswith("systemd"):
            out.append((int(d), comm))
    return out


# ---------------------------------------------------------------- the engines

def _boot(kind, env_or_box_factory, work, lower, rep):
    from tests.integration.vmservices.conftest import _mount_overlay
    d = os.path.join(work, "%s-%d" % (kind, rep))
    os.makedirs(os.path.join(d, "shared"))
    rootfs = os.path.join(d, "rootfs")
    _mount_overlay(lower, os.path.join(d, "upper"), os.path.join(d, "work"), rootfs)
    name = "vmbench-%s-%s" % (kind, uuid.uuid4().hex[:6])
    with open(os.path.join(rootfs, "etc/bench-marker"), "w") as f:
        f.write(name)
    t0 = time.monotonic()
    box = env_or_box_factory(name, os.path.join(d, "shared"), rootfs, d)
    return box, rootfs, t0, d


def measure_one(kind, factory, work, lower, rep, opt, res):
    from tests.integration.vmservices.conftest import _umount
    box, rootfs, t0, d = _boot(kind, factory, work, lower, rep)
    try:
        init = None
        deadline = time.monotonic() + 30
        while init is None and time.monotonic() < deadline:
            init = find_init(box.name)
            if init is None:
                time.sleep(0.002)
        if init is None:
            raise RuntimeError("%s: no PID 1 found for %s" % (kind, box.name))
        ready = probe_ready(init)
        if hasattr(box, "started") and not box.started()[0]:
            raise RuntimeError("%s: podman run failed" % kind)
        res.add("start_ms", kind, (ready - t0) * 1000)
        res.add("init_start_ms", kind, (ready - process_start_monotonic(init)) * 1000)
        if rep == 0:
            time.sleep(opt.settle_secs)
            own = own_processes(init, kind)
            mem = [pid1.memory_kib(p) for p, _ in own]
            res.add("own_pss_kib", kind, sum(m["pss"] for m in mem))
            res.add("own_private_dirty_kib", kind, sum(m["private_dirty"] for m in mem))
            res.extra.setdefault("own_processes", {})[kind] = sorted(c for _, c in own)
            before = pid1.context_switches(init)
            time.sleep(opt.idle_secs)
            res.add("idle_wakeups", kind, pid1.context_switches(init) - before)
            for _ in range(opt.rtt_reps):
                for verb in ("start", "stop", "restart"):
                    if verb == "restart":
                        box.exec(["systemctl", "start", "bench-sleep"])
                    c0 = pid1.cpu_ns(init)
                    r = box.exec(["sh", "-c", "a=$(date +%%s%%N); systemctl %s bench-sleep; b=$(date +%%s%%N); "
                                  "echo $((b - a))" % verb])
                    c1 = pid1.cpu_ns(init)
                    if r.returncode != 0 or not r.stdout.strip().isdigit():
                        raise RuntimeError("%s: systemctl %s: %s %s" % (kind, verb, r.stdout, r.stderr))
                    res.add("rtt_cpu_ms", kind, (c1 - c0) / 1e6)
                    res.add("rtt_wall_ms", kind, int(r.stdout.strip()) / 1e6)
                    res.add("rtt_%s_cpu_ms" % verb, kind, (c1 - c0) / 1e6)
    finally:
        box.remove()
        _umount(rootfs)
        shutil.rmtree(d, ignore_errors=True)


class Results:
    def __init__(self):
        self.samples, self.extra = {}, {}

    def add(self, metric, kind, value):
        self.samples.setdefault(metric, {}).setdefault(kind, []).append(value)

    def median(self, metric, kind):
        v = self.samples.get(metric, {}).get(kind)
        return statistics.median(v) if v else None


def render(res, machine, opt):
    rows = []
    for metric, label in (("start_ms", "start -> every enabled service ready (ms)"),
                          ("init_start_ms", "PID 1 start -> every enabled service ready (ms)"),
                          ("own_pss_kib", "init's own Pss (KiB): richinit / systemd + journald"),
                          ("own_private_dirty_kib", "init's own Private_Dirty (KiB)"),
                          ("idle_wakeups", "PID 1 wake-ups in %g s idle, timers armed" % opt.idle_secs),
                          ("rtt_cpu_ms", "systemctl start/stop/restart: PID 1 CPU time (ms)"),
                          ("rtt_wall_ms", "systemctl start/stop/restart: wall time inside (ms)")):
        a, b = res.median(metric, "richinit"), res.median(metric, "systemd")
        ratio = "%.2fx" % (a / b) if a is not None and b else "n/a"
        target = ""
        if metric in TARGETS:
            target = "<= %.2fx: %s" % (TARGETS[metric], "met" if a is not None and b and a / b <= TARGETS[metric]
                                        else "NOT met")
        elif metric == "idle_wakeups":
            target = "0: %s" % ("met" if a == 0 else "NOT met")
        elif metric == "rtt_cpu_ms":
            worst = max(res.samples.get(metric, {}).get("richinit") or [float("inf")])
            target = "<= %g ms (worst %.2f): %s" % (RTT_TARGET_MS, worst, "met" if worst <= RTT_TARGET_MS
                                                    else "NOT met")
        rows.append((label, _fmt(a), _fmt(b), ratio, target))
    lines = ["| metric | richinit | systemd (podman) | ratio | target |", "|---|---|---|---|---|"]
    lines += ["| %s |" % " | ".join(r) for r in rows]
    lines.append("")
    lines.append("Machine: %s, kernel %s, %d cores; load average %s at the start, %s at the end."
                 % (machine["cpu_model"], machine["kernel"], machine["cores"], machine["loadavg_start"],
                    machine.get("loadavg_end")))
    lines.append("Own processes measured: %s." % json.dumps(res.extra.get("own_processes", {})))
    return "\n".join(lines) + "\n"


def _fmt(x):
    if x is None:
        return "n/a"
    return "%.0f" % x if abs(x) >= 100 else "%.2f" % x


def _loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def describe_machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    podman = subprocess.run(["podman", "--version"], capture_output=True, text=True).stdout.strip()
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "kernel": platform.release(),
            "cpu_model": model, "cores": os.cpu_count(), "podman": podman, "loadavg_start": _loadavg()}


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench.vm_services", description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=3, help="boots per init (default 3)")
    p.add_argument("--rtt-reps", type=int, default=5, help="start/stop/restart rounds (default 5)")
    p.add_argument("--idle-secs", type=float, default=10.0)
    p.add_argument("--settle-secs", type=float, default=5.0, help="after ready, before Pss and idle (default 5)")
    p.add_argument("--json")
    p.add_argument("--markdown")
    opt = p.parse_args(argv)
    if os.geteuid() != 0:
        p.error("needs root (runc, podman, overlay mounts, /proc of other processes)")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from runtime_hooks import portable
    from tests.integration.richcli.conftest import RichEnv
    from tests.integration.vmservices.conftest import Podman, RichRun
    from tests.support import debian_image

    machine = describe_machine()
    work = tempfile.mkdtemp(prefix="bench-vm-")
    views = "/run/bench-vm-%s" % uuid.uuid4().hex[:6]
    os.makedirs(views)
    env = None
    res = Results()
    try:
        log("building the portable runtime and the image layer")
        runtime_dir = os.path.join(work, "runtime")
        portable.build(runtime_dir)
        env = RichEnv(os.path.join(work, "rich"), views, runtime_dir)
        lower = build_layer(work, debian_image.vm_image())

        factories = {
            "richinit": lambda name, shared, rootfs, d: RichRun(name, shared, env, rootfs),
            "systemd": lambda name, shared, rootfs, d: Podman(name, shared, rootfs, d),
        }
        for rep in range(opt.reps):
            for kind in (("richinit", "systemd") if rep % 2 == 0 else ("systemd", "richinit")):
                log("rep %d: %s" % (rep + 1, kind))
                measure_one(kind, factories[kind], work, lower, rep, opt, res)
    finally:
        if env is not None:
            env.stop_services()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(views, ignore_errors=True)
    machine["loadavg_end"] = _loadavg()
    text = render(res, machine, opt)
    print(text)
    if opt.json:
        with open(opt.json, "w") as f:
            json.dump({"machine": machine, "samples": res.samples, "extra": res.extra,
                       "options": vars(opt)}, f, indent=1)
    if opt.markdown:
        with open(opt.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
