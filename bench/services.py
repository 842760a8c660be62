"""Issue 3's service targets: richinit's supervisor against the peers, in one run.

    python -m bench.services [--quick] [--json OUT] [--markdown OUT] [--only a,b] [--metrics m,n]

Needs root (unshare, mount, runc, /proc of other processes).

Metrics (medians with min/max over the repetitions):
  restart  SIGKILL of a supervised child that has been up longer than richinit's backoff reset
           (--restart-gap) -> the new child announces itself on a FIFO (ms). richinit
           (`richinit --services child -- sleep`, the definition in /etc/richinit/services.d of a
           private overlay over /etc), s6-svscan (s6-supervise), supervisord (autorestart=true),
           runsvdir when installed. All supervisors run side by side, each as PID 1 of its own
           namespace (bench.pid1's harness), and each repetition kills them in a rotated order.
  boot     the cached Debian image (sshd, cron, rsyslog) in runc, its own network namespace:
           (a) `runc run` -> the app announces itself on a FIFO in a bind mount, with richinit
           --services all --app-after syslog,sshd,cron as PID 1 (the app starts only once every
           service is ready; without --app-after it would not wait for them: bench.appstart);
           (b) the same with a bash script as PID 1 that starts the same daemons the same way, in
           the same order, and announces once /dev/log exists and port 22 accepts: the daemons'
           own start time. The overhead is (a) - (b), also per repetition (both run back to back).
           For the breakdown, the same container with no daemons: richinit without --services, and
           sh, each starting the app at once (runc + PID 1's own start-up).
  idle     the two containers of `boot` side by side, services up: voluntary+nonvoluntary context
           switches of each PID 1 (host pid, all threads) over --idle-secs; also PID 1's VmRSS.
"""

import argparse
import contextlib
import json
import os
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench import pid1
from bench.pid1 import Results, clock, log, rotated

RESET_AFTER = 2.0   # richinit's backoff reset in the benchmark's definition (default 10 s: shorter runs)
BOOT_SERVICES = ("syslog", "sshd", "cron")
SHELL = "plain shell"  # the name of the no-supervisor baseline in the tables
# Breakdown of the boot: the same container with no daemons at all, the app straight away.
RICHINIT_BARE, SHELL_BARE = "richinit-bare", "shell-bare"
BOOT_KINDS = {"richinit": ("boot_ms", "richinit"), SHELL: ("boot_ms", SHELL),
              RICHINIT_BARE: ("boot_bare_ms", "richinit"), SHELL_BARE: ("boot_bare_ms", SHELL)}

# ---------------------------------------------------------------------------------------------
# Metric 1: the supervisors. Each argv(child, scratch, metric) builds PID 1's command line.

CHILD_YAML = """\
# bench.services: the harness's child, restarted at once after a kill once it was up RESET_AFTER s.
command: {command}
restart: always
backoff: {{reset_after: {reset}}}
crash_loop: {{starts: 1000, within: 60}}
"""

# PID 1 starts as sh, in the private mount namespace unshare made: an overlay over /etc whose
# upper layer holds /etc/richinit/services.d/child.yaml, then exec richinit (same pid). Nothing
# is written to the host's /etc; the layers live in the scratch directory.
RICHINIT_WRAP = ('mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/upper,workdir=$1/work" /etc || exit 99\n'
                 'shift\nexec "$@"\n')


def _richinit_services(child, scratch, metric):
    sd = os.path.join(scratch, "upper", "richinit", "services.d")
    os.makedirs(sd)
    os.makedirs(os.path.join(scratch, "work"))
    os.makedirs(os.path.join(scratch, "control"))
    with open(os.path.join(sd, "child.yaml"), "w") as f:
        f.write(CHILD_YAML.format(command=json.dumps(child), reset=RESET_AFTER))
    return ["/bin/sh", "-c", RICHINIT_WRAP, "sh", scratch, pid1.RICHINIT, "--services", "child",
            "--control-dir", os.path.join(scratch, "control"), "--no-save-env", "--", "sleep", "1000000"]


def _supervisord_autorestart(child, scratch, metric):
    conf = pid1._supervisord_conf(child, scratch)  # [program:child] is the last section
    with open(conf, "a") as f:
        f.write("autorestart=true\n")
    return ["supervisord", "-n", "-c", conf]


SUPERVISORS = [
    pid1.InitSpec("richinit", pid1.RICHINIT, None, _richinit_services, False,
                  "sh -c 'overlay on /etc; exec richinit --services child --control-dir D --no-save-env -- sleep'"
                  " (/etc/richinit/services.d/child.yaml: command CHILD, restart always, reset_after %g s)"
                  % RESET_AFTER),
    pid1.InitSpec("s6-svscan", "s6-svscan", "s6", lambda c, s, m: ["s6-svscan", pid1._scandir(c, s)], True,
                  "s6-svscan SCANDIR (SCANDIR/child/run: exec CHILD)"),
    pid1.InitSpec("supervisord", "supervisord", "supervisor", _supervisord_autorestart, False,
                  "supervisord -n -c CONF ([program:child] command=CHILD, autorestart=true)"),
    pid1.InitSpec("runsvdir", "runsvdir", "runit", lambda c, s, m: ["runsvdir", "-P", pid1._scandir(c, s)], True,
                  "runsvdir -P SCANDIR (SCANDIR/child/run: exec CHILD)"),
]


def measure_restart(bench, specs, res, opt):
    """All supervisors up side by side; per repetition each child is SIGKILLed once, in rotated order."""
    log("restart after SIGKILL: %d kills per supervisor, child up >= %g s before each" % (opt.reps_restart,
                                                                                          opt.restart_gap))
    spaces, live = [], {}  # live: Namespace -> (time the current child announced itself, its host pid)
    try:
        for spec in specs:
            spaces.append(bench.start(spec, "up", "restart"))
        for ns in spaces:
            t, fields = ns.wait_for("up", 20)
            child = ns.host_pid(int(fields[1])) if t and ns.find_pid1() else None
            if child is None:
                res.note("restart_ms", ns.spec.name, "did not start")
                continue
            live[ns] = (t, child)
        for rep in range(opt.reps_restart):
            for ns in rotated([ns for ns in spaces if ns in live], rep):
                t_up, child = live.pop(ns)
                time.sleep(max(0.0, t_up + opt.restart_gap - clock()))
                try:
                    fd = os.pidfd_open(child)
                except ProcessLookupError:
                    res.note("restart_ms", ns.spec.name, "the child died on its own")
                    continue
                try:
                    t0 = clock()
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                finally:
                    os.close(fd)
                t, fields = ns.wait_for("up", opt.restart_timeout)
                new = ns.host_pid(int(fields[1])) if t else None
                if new is None or new == child:
                    res.add("restart_ms", ns.spec.name, None)
                    res.note("restart_ms", ns.spec.name, "no new child within %g s" % opt.restart_timeout)
                    continue
                res.add("restart_ms", ns.spec.name, (t - t0) * 1e3, uptime_s=round(t0 - t_up, 3))
                live[ns] = (t, new)
    finally:
        for ns in spaces:
            ns.close()


# ---------------------------------------------------------------------------------------------
# Metrics 2 and 3: the Debian image in runc.

APP = 'echo "up $$" > /bench/ctl; exec sleep 1000000'

# What richinit's defaults (services.d/) run, in their order, without a supervisor: syslog first and
# ready once /dev/log exists; then cron and sshd (with its `pre` commands) in parallel; ready once
# port 22 accepts. Polls every 10 ms (richinit probes every 50 ms): this is the daemons' own time.
BASELINE_SH = """\
#!/bin/bash
rsyslogd -n -iNONE &
until [ -S /dev/log ]; do sleep 0.01; done
cron -f &
{ ssh-keygen -A && mkdir -p -m 0755 /run/sshd && exec /usr/sbin/sshd -D -e; } &
until (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null; do sleep 0.01; done
echo "up $$" > /bench/ctl
wait
"""


class DebianEnv:
    """The cached image and the portable runtime, built once per run."""

    def __init__(self, root):
        from runtime_hooks import portable
        from tests.support import debian_image
        self.root = root
        self.base = debian_image.cached_image()
        self.runtime_dir = os.path.join(root, "runtime")
        self.runtime_argv = list(portable.build(self.runtime_dir)["argv"])


class Boot:
    """One container of the Debian image, booting with richinit or the baseline script as PID 1.

    Its rootfs is an overlay over the cached image; /bench is a bind of a scratch directory holding
    the FIFO the app announces itself on. close() kills and deletes the container and removes all.
    """

    def __init__(self, env, kind):
        from tests.support import containers as ct
        from tests.support import debian_image
        self.kind, self.env, self.ct = kind, env, ct
        self.work = tempfile.mkdtemp(prefix=kind.replace(" ", "-") + ".", dir=env.root)
        self.stack = contextlib.ExitStack()
        self.proc = self.cid = self.ctl_fd = self.out = None
        try:
            rootfs = self.stack.enter_context(debian_image.image_copy(env.base, self.work))
            share = os.path.join(self.work, "share")
            os.mkdir(share)
            os.mkfifo(os.path.join(share, "ctl"))
            # Read-write: we are a writer too, so the FIFO never reports EOF.
            self.ctl_fd = os.open(os.path.join(share, "ctl"), os.O_RDWR | os.O_NONBLOCK)
            mounts = [{"destination": "/bench", "type": "bind", "source": share, "options": ["rbind", "rprivate"]}]
            if kind.startswith("richinit"):
                # --app-after: the app announces once every service is ready, as the shell does
                services = ["--services", "all", "--app-after", ",".join(BOOT_SERVICES)] if kind == "richinit" else []
                argv = env.runtime_argv + services + ["--", "/bin/sh", "-c", APP]
                mounts.append({"destination": "/.richinit", "type": "bind", "source": env.runtime_dir,
                               "options": ["rbind", "rprivate", "ro"]})
            elif kind == SHELL:
                with open(os.path.join(share, "boot.sh"), "w") as f:
                    f.write(BASELINE_SH)
                argv = ["/bin/bash", "/bench/boot.sh"]
            else:  # SHELL_BARE
                argv = ["/bin/sh", "-c", APP]
            bundle = os.path.join(self.work, "bundle")
            # No netns path: runc gives the container a fresh network namespace (lo up).
            ct.make_bundle(bundle, rootfs, argv, mounts=mounts, hostname="bench")
            self.cid = ct.new_id("bsv")
            self.out = open(os.path.join(self.work, "output.log"), "wb")
            self.t0 = clock()
            self.proc = subprocess.Popen(["runc", "run", "--bundle", bundle, self.cid], stdin=subprocess.DEVNULL,
                                         stdout=self.out, stderr=subprocess.STDOUT)
        except BaseException:
            self.close()
            raise

    def wait_up(self, timeout):
        """Arrival time of the app's announcement, or None (timeout, or the container ended)."""
        deadline = clock() + timeout
        while clock() < deadline:
            if select.select([self.ctl_fd], [], [], 0.05)[0]:
                arrived = clock()
                try:
                    if os.read(self.ctl_fd, 4096).startswith(b"up "):
                        return arrived
                except BlockingIOError:
                    pass
            if self.proc.poll() is not None:
                return None
        return None

    def pid1(self):
        r = subprocess.run(["runc", "state", self.cid], capture_output=True, text=True, timeout=30)
        return int(json.loads(r.stdout)["pid"]) if r.returncode == 0 else None

    def status(self):
        """richctl status --json from inside the container (richinit only), or None."""
        python = self.env.runtime_argv[:-2]  # without "-m richinit"
        r = subprocess.run(["runc", "exec", self.cid, *python, "-m", "richinit.ctl", "status", "--json"],
                           capture_output=True, text=True, timeout=30)
        try:
            return json.loads(r.stdout) if r.returncode == 0 else None
        except ValueError:
            return None

    def output(self):
        with open(os.path.join(self.work, "output.log"), errors="replace") as f:
            return f.read()

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(["runc", "kill", self.cid, "KILL"], capture_output=True, timeout=30)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.cid:
            self.ct.delete(self.cid)
        for f in (self.out,):
            if f is not None:
                f.close()
        if self.ctl_fd is not None:
            os.close(self.ctl_fd)
            self.ctl_fd = None
        self.stack.close()  # unmounts the overlay
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_services(boot, res, metric):
    """richinit's own view once the app is up: every default service up and ready (a note if not)."""
    st = boot.status()
    if st is None:
        res.note(metric, "richinit", "richctl status failed")
        return
    svcs = {s["name"]: s for s in st.get("services", [])}
    bad = ["%s=%s%s" % (n, svcs.get(n, {}).get("state"), "" if svcs.get(n, {}).get("ready") else " (not ready)")
           for n in BOOT_SERVICES if not (svcs.get(n, {}).get("state") == "up" and svcs[n].get("ready"))]
    if bad:
        res.note(metric, "richinit", "not all services ready: " + ", ".join(bad))


def measure_boot(env, res, opt):
    kinds = list(BOOT_KINDS)
    log("boot of syslog, cron, sshd + app: %d reps (+1 warm-up) of richinit and %s, and of both with no daemons,"
        " back to back" % (opt.reps_boot, SHELL))
    for rep in range(opt.reps_boot + 1):
        took = {}
        for kind in rotated(kinds, rep):
            metric, name = BOOT_KINDS[kind]
            with Boot(env, kind) as b:
                t = b.wait_up(opt.boot_timeout)
                if t is None:
                    res.note(metric, name, "app never announced itself: %s" % b.output()[-300:].replace("\n", " | "))
                    continue
                if kind == "richinit":
                    _check_services(b, res, "boot_ms")
                took[kind] = (t - b.t0) * 1e3
        if rep == 0:
            continue  # warm-up: page cache of the image, the runtime's files
        for kind in kinds:
            res.add(*BOOT_KINDS[kind], took.get(kind))
        if "richinit" in took and SHELL in took:
            res.add("boot_overhead_ms", "richinit", took["richinit"] - took[SHELL])
        log("  rep %d: %s" % (rep, ", ".join("%s %.0f ms" % (k, v) for k, v in took.items())))


def measure_idle(env, res, opt):
    log("idle with services up: %d reps x %g s, richinit and %s side by side" % (opt.reps_idle, opt.idle_secs, SHELL))
    for rep in range(opt.reps_idle):
        with contextlib.ExitStack() as stack:
            boots = [stack.enter_context(Boot(env, kind)) for kind in rotated(["richinit", SHELL], rep)]
            watched = []
            for b in boots:
                if b.wait_up(opt.boot_timeout) is None:
                    res.note("idle_wakeups", b.kind, "did not boot")
                    continue
                watched.append((b, b.pid1()))
            time.sleep(opt.settle)
            before = {}
            for b, pid in watched:
                if b.kind == "richinit":
                    _check_services(b, res, "idle_wakeups")
                res.add("idle_rss_kib", b.kind, pid1.memory_kib(pid)["rss"])
            for b, pid in watched:  # after the richctl calls, which wake PID 1 on purpose
                before[b] = pid1.context_switches(pid)
            t0 = clock()
            time.sleep(opt.idle_secs)
            for b, pid in watched:
                res.add("idle_wakeups", b.kind, pid1.context_switches(pid) - before[b], window_s=round(clock() - t0, 3))


# ---------------------------------------------------------------------------------------------
# Targets and the report

ROWS = [  # (metric, label)
    ("restart_ms", "restart after SIGKILL -> new child up (ms)"),
    ("boot_ms", "runc run -> syslog, cron, sshd ready + app up (ms)"),
    ("boot_overhead_ms", "boot overhead over the daemons' own start, per rep (ms)"),
    ("boot_bare_ms", "runc run -> app up, no daemons (richinit without --services / sh) (ms)"),
    ("idle_wakeups", "PID 1 wake-ups in idle window, services up"),
    ("idle_rss_kib", "PID 1 VmRSS, services up (KiB)"),
]


def evaluate_targets(res):
    """[(target text, richinit's value text, ok)]; ok is None when not measured."""
    out = []
    r = res.summary("restart_ms", "richinit")
    details = res.extra.get("restart_ms", {}).get("richinit", [])
    if r and r[0] is not None:
        past = all(d["uptime_s"] >= RESET_AFTER for d in details)
        out.append(("restart after SIGKILL <= 100 ms (child up past the %g s backoff reset)" % RESET_AFTER,
                    "%s ms (max %s)%s" % (pid1._fmt(r[0]), pid1._fmt(r[2]), "" if past else ", NOT past the reset"),
                    r[0] <= 100 and past))
    else:
        out.append(("restart after SIGKILL <= 100 ms", "-", None))
    a, b = res.median("boot_ms", "richinit"), res.median("boot_ms", SHELL)
    if a is not None and b is not None:
        paired = res.median("boot_overhead_ms", "richinit")
        out.append(("boot to all ready <= 300 ms beyond the daemons' own start",
                    "%s - %s = %s ms (paired: %s ms)" % (pid1._fmt(a), pid1._fmt(b), pid1._fmt(a - b),
                                                         pid1._fmt(paired)), a - b <= 300))
    else:
        out.append(("boot to all ready <= 300 ms beyond the daemons' own start", "-", None))
    w = res.summary("idle_wakeups", "richinit")
    out.append(("0 wake-ups of PID 1 in the idle window, services up", "-" if not w else "max %s" % pid1._fmt(w[2]),
                None if not w or w[2] is None else w[2] == 0))
    return out


def table_rows(res, names):
    return [[label] + [pid1._cell(res, metric, n) for n in names] for metric, label in ROWS if metric in res.samples]


def detail_rows(res, names):
    rows = []
    for metric, label in ROWS:
        for n in names:
            s = res.summary(metric, n)
            if not s:
                notes = res.notes.get(metric, {}).get(n)
                if notes:
                    rows.append([label, n, "-", "-", "-", "0/0", "; ".join(notes)])
                continue
            xs = [x for x in res.samples[metric][n] if isinstance(x, (int, float))]
            spread = "%s" % pid1._fmt(statistics.pstdev(xs)) if len(xs) > 1 else "-"
            rows.append([label, n, pid1._fmt(s[0]), pid1._fmt(s[1]), pid1._fmt(s[2]), spread, "%d/%d" % (s[3], s[4]),
                         "; ".join(res.notes.get(metric, {}).get(n, []))])
    return rows


DETAIL_HEAD = ["metric", "init", "median", "min", "max", "stdev", "n", "notes"]


def machine_line(machine):
    v = machine["versions"]
    return ("kernel %s, %s x %s, Python %s (richinit's) / %s (harness), load %s -> %s; %s"
            % (machine["kernel"], machine["cores"], machine["cpu_model"], machine["richinit_python"],
               machine["harness_python"], " ".join(machine["loadavg_start"]), " ".join(machine.get("loadavg_end", [])),
               ", ".join("%s %s" % (k, v[k]) for k in sorted(v) if v[k])))


def render_text(res, names, machine, config):
    out = ["richinit's services vs peers -- %s" % machine["date"], machine_line(machine)]
    if config.get("note"):
        out.append("note: " + config["note"])
    out += ["medians; (ratio) = value / richinit's; reps: %s" % config["reps"], ""]
    out += pid1._text_table(["metric"] + names, table_rows(res, names))
    out += ["", "targets (richinit):"]
    out += pid1._text_table(["target", "richinit", "ok"], [[t, v, {True: "ok", False: "MISS", None: "?"}[ok]]
                                                         for t, v, ok in evaluate_targets(res)])
    out += ["", "detail:"]
    out += pid1._text_table(DETAIL_HEAD, detail_rows(res, names))
    return "\n".join(out) + "\n"


def render_markdown(res, names, machine, config):
    out = ["# richinit's services vs peers (%s)" % machine["date"], "", "Machine: " + machine_line(machine) + "."]
    if config.get("note"):
        out += ["", "**Note:** " + config["note"]]
    out += ["", "Medians (%s); `(0.50x)` = that column's value / richinit's." % config["reps"],
            "Command: `%s`" % config["command"], ""]
    out += pid1._md_table(["metric"] + names, table_rows(res, names))
    out += ["", "## Targets (richinit)", ""]
    out += pid1._md_table(["target", "richinit", "ok"], [[t, v, {True: "ok", False: "**MISS**", None: "?"}[ok]]
                                                       for t, v, ok in evaluate_targets(res)])
    out += ["", "## Detail", ""]
    out += pid1._md_table(DETAIL_HEAD, detail_rows(res, names))
    out += ["", "## Command lines", ""] + ["- %s: `%s`" % (k, v) for k, v in config["commands"].items()]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Command line

METRICS = ("restart", "boot", "idle")


def _options(argv):
    p = argparse.ArgumentParser(prog="python -m bench.services", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few reps, short waits")
    p.add_argument("--json", metavar="OUT", help="write samples, summaries and the machine to OUT")
    p.add_argument("--markdown", metavar="OUT", help="write the tables as markdown to OUT")
    p.add_argument("--only", help="comma-separated supervisors for the restart metric (default: all installed)")
    p.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset of %s" % ",".join(METRICS))
    p.add_argument("--note", default="", help="a line recorded with the results (e.g. other load on the machine)")
    p.add_argument("--reps-restart", type=int, default=9)
    p.add_argument("--restart-gap", type=float, default=RESET_AFTER + 0.5,
                   help="the child's uptime before each kill (richinit's reset_after is %g s)" % RESET_AFTER)
    p.add_argument("--restart-timeout", type=float, default=15.0)
    p.add_argument("--reps-boot", type=int, default=7)
    p.add_argument("--boot-timeout", type=float, default=60.0)
    p.add_argument("--reps-idle", type=int, default=3)
    p.add_argument("--idle-secs", type=float, default=10.0)
    p.add_argument("--settle", type=float, default=3.0, help="wait after the app is up before the idle window")
    if "--quick" in argv:
        p.set_defaults(reps_restart=3, reps_boot=2, reps_idle=1, idle_secs=5, settle=2)
    return p, p.parse_args(argv)


def select_supervisors(only):
    return pid1.select_inits(only, SUPERVISORS, "bench.services: unknown supervisor(s)")


def run(specs, metrics, opt, bench=None):
    """Run the chosen metrics; returns Results. Everything started is stopped and removed.

    bench: a bench.pid1.Bench for the restart metric's scratch (made and removed here if None).
    """
    res = Results()
    own = bench is None
    bench = bench or pid1.Bench()
    root = tempfile.mkdtemp(prefix="bench-services.", dir="/tmp")
    try:
        if "restart" in metrics:
            measure_restart(bench, specs, res, opt)
        if "boot" in metrics or "idle" in metrics:
            try:
                env = DebianEnv(root)
            except Exception as e:  # no debootstrap/mirror, no runc, no python3.11 for the runtime
                for m in ("boot_ms", "idle_wakeups"):
                    res.note(m, "richinit", "not measured: %s" % e)
                log("Debian metrics skipped: %s" % e)
            else:
                if "boot" in metrics:
                    measure_boot(env, res, opt)
                if "idle" in metrics:
                    measure_idle(env, res, opt)
    finally:
        if own:
            bench.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    return res


def describe_machine(specs):
    from tests.support import debian_image
    machine = pid1.describe_machine(specs)
    machine["versions"]["runc"] = pid1._dpkg_version("runc")
    machine["debian_image"] = "%s %s + %s (cache %s)" % (debian_image.SUITE, debian_image.VARIANT,
                                                          ", ".join(debian_image.PACKAGES), debian_image.image_dir())
    return machine


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p, opt = _options(argv)
    metrics = [m for m in opt.metrics.split(",") if m]
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        p.error("unknown metric(s): %s" % ", ".join(bad))
    if os.geteuid() != 0:
        p.error("needs root (unshare, mount, runc, /proc of other processes)")
    for tool in ["unshare"] + (["runc"] if set(metrics) & {"boot", "idle"} else []):
        if shutil.which(tool) is None:
            p.error("%s not found" % tool)
    specs = select_supervisors(opt.only) if "restart" in metrics else []
    machine = describe_machine(specs)
    reps = {"restart": "restart %d (gap %g s)" % (opt.reps_restart, opt.restart_gap),
            "boot": "boot %d + 1 warm-up" % opt.reps_boot,
            "idle": "idle %d x %g s" % (opt.reps_idle, opt.idle_secs)}
    commands = {s.name: " ".join(pid1.UNSHARE) + " " + s.template for s in specs}
    commands["richinit (boot)"] = ("runc run: /.richinit/... -m richinit --services all --app-after %s "
                                   "-- /bin/sh -c '%s'" % (",".join(BOOT_SERVICES), APP))
    commands[SHELL + " (boot)"] = "runc run: /bin/bash boot.sh: " + BASELINE_SH.replace("\n", "; ")
    commands["no daemons (boot)"] = "runc run: /.richinit/... -m richinit -- APP; and runc run: /bin/sh -c APP"
    config = {"command": "python -m bench.services " + " ".join(shlex.quote(a) for a in argv),
              "metrics": metrics, "note": opt.note, "reset_after_s": RESET_AFTER,
              "reps": ", ".join(reps[m] for m in metrics), "commands": commands}
    # A SIGTERM to the harness unwinds through the finally blocks, which stop everything.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    t0 = clock()
    try:
        res = run(specs, metrics, opt)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    machine["loadavg_end"] = pid1._loadavg()
    config["duration_s"] = round(clock() - t0, 1)
    names = [s.name for s in specs] + ([SHELL] if set(metrics) & {"boot", "idle"} else [])
    if "richinit" not in names:
        names.insert(0, "richinit")
    print(render_text(res, names, machine, config))
    pid1.write_results(opt, res, machine, config, evaluate_targets(res), render_markdown(res, names, machine, config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
