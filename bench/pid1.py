"""richinit against the peers, each as PID 1 of a fresh PID namespace, in one run.

    python -m bench.pid1 [--quick] [--json OUT] [--markdown OUT] [--only a,b] [--metrics m,n]

Needs root (unshare --pid, /proc of other processes). Every init runs as
    unshare --fork --pid --mount-proc --kill-child INIT ... CHILD
and every repetition runs all inits in a rotated order, so drift (other load on
the machine, caches, frequency) spreads over all of them instead of biasing one.

Metrics (medians with min/max over the repetitions):
  start    harness starts unshare -> the child writes "up" to a FIFO (ms)
  idle     PID 1 VmRSS, Pss, Private_Dirty (smaps_rollup) once the child sleeps, then
           voluntary+nonvoluntary context switches of PID 1 over --idle-secs (all inits
           idle side by side in the same window)
  reap     the child double-forks N grandchildren that block on a FIFO barrier; closing
           the harness's writer releases them at once; done when PID 1 has none of them
           left as a child (alive or zombie), i.e. no zombie and no grandchild (ms); also
           PID 1's own CPU time meanwhile (schedstat, ms)
  term     the child traps TERM and reports; SIGTERM to PID 1 -> report (ms), -> PID 1
           exits (ms), and PID 1's exit code
  ignore   the child ignores TERM; SIGTERM to PID 1: does PID 1 exit, is the child
           killed, after how long. richinit runs with --grace 2 --kill-grace 1 here
           (defaults 10 and 5) to keep the run short; an init still running after
           --ignore-timeout is marked "hangs" and killed by its pid.

Times are taken by this harness on arrival of the child's FIFO message, so they include
unshare's fork/exec and the harness's own scheduling, equally for every init.
"""

import argparse
import datetime
import json
import os
import platform
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RICHINIT = os.path.join(REPO, ".venv", "bin", "richinit")
UNSHARE = ["unshare", "--fork", "--pid", "--mount-proc", "--kill-child"]
IGNORE_GRACE = ["--grace", "2", "--kill-grace", "1"]  # richinit's options in the ignore metric only

clock = time.monotonic

# ---------------------------------------------------------------------------------------------
# The inits. argv(child, scratch, metric) builds the init's command line around the child argv.


def _richinit(child, scratch, metric):
    extra = IGNORE_GRACE if metric == "ignore" else []
    return [RICHINIT, *extra, "--", *child]


def _scandir(child, scratch):
    """A one-service s6 scan directory whose run script execs the child."""
    svc = os.path.join(scratch, "scan", "child")
    os.makedirs(svc, exist_ok=True)
    run = os.path.join(svc, "run")
    with open(run, "w") as f:
        f.write("#!/bin/sh\nexec %s\n" % shlex.join(child))
    os.chmod(run, 0o755)
    return os.path.dirname(svc)


SUPERVISORD_CONF = """\
[supervisord]
nodaemon=true
user=root
logfile={scratch}/supervisord.log
pidfile={scratch}/supervisord.pid
childlogdir={scratch}

[program:child]
command={command}
autostart=true
"""


def _supervisord_conf(child, scratch):
    path = os.path.join(scratch, "supervisord.conf")
    with open(path, "w") as f:
        # supervisord expands %(name)s in command=, so a literal % must be doubled.
        f.write(SUPERVISORD_CONF.format(scratch=scratch, command=shlex.join(child).replace("%", "%%")))
    return path


class InitSpec:
    def __init__(self, name, binary, package, argv, compiled, template):
        self.name = name
        self.template = template  # the command line, for the report
        self.binary = binary      # what must exist for this init to run
        self.package = package    # Debian package, for the version in the report
        self.argv = argv
        self.compiled = compiled  # a C init: the reference for the reap target

    def available(self):
        return os.access(self.binary, os.X_OK) if os.path.isabs(self.binary) else bool(shutil.which(self.binary))


INITS = [
    InitSpec("richinit", RICHINIT, None, _richinit, False,
             RICHINIT + " [--grace 2 --kill-grace 1 in the ignore metric] -- CHILD"),
    InitSpec("tini", "tini", "tini", lambda c, s, m: ["tini", "--", *c], True, "tini -- CHILD"),
    InitSpec("dumb-init", "dumb-init", "dumb-init", lambda c, s, m: ["dumb-init", *c], True, "dumb-init CHILD"),
    InitSpec("catatonit", "catatonit", "catatonit", lambda c, s, m: ["catatonit", "--", *c], True,
             "catatonit -- CHILD"),
    InitSpec("s6-svscan", "s6-svscan", "s6", lambda c, s, m: ["s6-svscan", _scandir(c, s)], True,
             "s6-svscan SCANDIR (SCANDIR/child/run: exec CHILD)"),
    InitSpec("supervisord", "supervisord", "supervisor",
             lambda c, s, m: ["supervisord", "-n", "-c", _supervisord_conf(c, s)], False,
             "supervisord -n -c CONF ([program:child] command=CHILD)"),
]

# ---------------------------------------------------------------------------------------------
# The children. Each gets the control FIFO as $1 / argv[1] and reports lines on it.

CHILD_SCRIPTS = {
    # Announce, then sleep as the same pid.
    "up.sh": 'echo "up $$" > "$1"\nexec sleep 1000000\n',
    # A TERM trap runs only between commands, so sleep in the background and `wait`,
    # which the trap interrupts.
    "trap.sh": ('trap \'echo "term $$" > "$1"; kill $! 2>/dev/null; exit 143\' TERM\n'
                'echo "up $$" > "$1"\n'
                'sleep 1000000 &\n'
                'wait\n'),
    # An ignored disposition survives exec, so sleep ignores TERM too.
    "ignore.sh": 'trap "" TERM\necho "up $$" > "$1"\nexec sleep 1000000\n',
    # Double fork: each ( ... & ) subshell starts a reader of the barrier and exits at once, so
    # the reader is an orphan, reparented to PID 1. The readers are small forks of dash, whose
    # exits are cheap, so the time measured is mostly the init's, not 2000 address-space teardowns.
    # The harness holds the barrier's only writer: opening it does not block, and closing it gives
    # every reader EOF at the same moment.
    "orphans.sh": ('ctl=$1 barrier=$2 n=$3\n'
                   'echo "up $$" > "$ctl"\n'
                   'exec 3< "$barrier"\n'
                   'i=0\n'
                   'while [ "$i" -lt "$n" ]; do\n'
                   '    ( read x <&3 & )\n'
                   '    i=$((i + 1))\n'
                   'done\n'
                   'exec 3<&-\n'
                   'echo "spawned $n" > "$ctl"\n'
                   'exec sleep 1000000\n'),
}


# ---------------------------------------------------------------------------------------------
# /proc helpers (host view)

def _status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def children(pid):
    """Direct children of pid over all its threads, zombies included (they stay listed until reaped)."""
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids.extend(int(x) for x in f.read().split())
    except (FileNotFoundError, ProcessLookupError):
        pass
    return kids


def descendants(pid):
    out, todo = [], children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def memory_kib(pid):
    """VmRSS from status; Pss and Private_Dirty from smaps_rollup (all in KiB)."""
    mem = {"rss": int(_status(pid)["VmRSS"].split()[0])}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Pss", "Private_Dirty"):
                mem[key.lower()] = int(rest.split()[0])
    return mem


def context_switches(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def cpu_ns(pid):
    """CPU time the process has run, all threads (schedstat's first field, in ns: finer than clock ticks)."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
            total += int(f.read().split()[0])
    return total


def zombies_in(proc_root):
    count = 0
    for name in os.listdir(proc_root):
        if not name.isdigit():
            continue
        try:
            with open("%s/%s/stat" % (proc_root, name)) as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if stat[stat.rindex(")") + 2] == "Z":
            count += 1
    return count


# ---------------------------------------------------------------------------------------------
# One init as PID 1 of a fresh namespace


class Namespace:
    """unshare + one init + one child; all stopped and reaped by close()."""

    def __init__(self, scratch_root, spec, child, metric, barrier=False):
        self.spec = spec
        self.scratch = tempfile.mkdtemp(prefix=spec.name + ".", dir=scratch_root)
        ctl = os.path.join(self.scratch, "ctl")
        os.mkfifo(ctl)
        # Read-write: we are a writer too, so the FIFO never reports EOF between messages.
        self.ctl_fd = os.open(ctl, os.O_RDWR | os.O_NONBLOCK)
        self.barrier_fd = None
        if barrier:
            path = os.path.join(self.scratch, "barrier")
            os.mkfifo(path)
            self.barrier_fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
        child = [a.replace("{ctl}", ctl).replace("{scratch}", self.scratch) for a in child]
        argv = UNSHARE + spec.argv(child, self.scratch, metric)
        self.output = open(os.path.join(self.scratch, "output.log"), "wb")
        self.pending, self.lines = b"", []
        self.pid1 = self.pidfd = None
        self.t0 = clock()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.output, stderr=subprocess.STDOUT,
                                     cwd=self.scratch, start_new_session=True)

    # -- messages from the child ----------------------------------------------------------
    def _read(self, timeout, arrived=None):
        """Read pending messages; `arrived` (default: now) is the time they are stamped with."""
        if not select.select([self.ctl_fd], [], [], max(timeout, 0))[0]:
            return
        arrived = clock() if arrived is None else arrived
        try:
            self.pending += os.read(self.ctl_fd, 65536)
        except BlockingIOError:
            return
        *done, self.pending = self.pending.split(b"\n")
        self.lines.extend((arrived, line.decode(errors="replace").split()) for line in done)

    def take(self, word):
        """The first pending message starting with word as (arrival time, fields), or (None, None)."""
        for i, (t, fields) in enumerate(self.lines):
            if fields[:1] == [word]:
                del self.lines[i]
                return t, fields
        return None, None

    def wait_for(self, word, timeout):
        deadline = clock() + timeout
        while True:
            t, fields = self.take(word)
            if t is not None:
                return t, fields
            left = deadline - clock()
            if left <= 0:
                return None, None
            if self.proc.poll() is not None:  # nothing more will come; drain what is there
                self._read(0)
                return self.take(word)
            self._read(min(left, 0.05))

    # -- pids -----------------------------------------------------------------------------
    def find_pid1(self, timeout=5.0):
        """Host pid of the namespace's PID 1 (unshare's only child), held through a pidfd."""
        deadline = clock() + timeout
        while self.pid1 is None and clock() < deadline and self.proc.poll() is None:
            for pid in children(self.proc.pid):
                try:
                    fd = os.pidfd_open(pid)
                except ProcessLookupError:
                    continue
                try:
                    ns_pids = _status(pid)["NSpid"].split()
                except (FileNotFoundError, KeyError):
                    ns_pids = []
                if ns_pids[-1:] == ["1"]:
                    self.pid1, self.pidfd = pid, fd
                    break
                os.close(fd)
            else:
                time.sleep(0.001)
        return self.pid1

    def host_pid(self, ns_pid):
        for pid in descendants(self.pid1):
            try:
                if _status(pid)["NSpid"].split()[-1] == str(ns_pid):
                    return pid
            except (FileNotFoundError, KeyError):
                pass
        return None

    def proc_root(self):
        return "/proc/%d/root/proc" % self.pid1

    def signal_pid1(self, sig):
        signal.pidfd_send_signal(self.pidfd, sig)

    def exit_code(self):
        """PID 1's exit status as unshare passes it on: a number, or 'killed by SIGx'."""
        rc = self.proc.returncode
        if rc is None or rc >= 0:
            return rc
        try:
            return "killed by " + signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc

    def close(self):
        """SIGKILL PID 1 by its pidfd (the kernel then kills the whole namespace) and reap unshare."""
        if self.proc.poll() is None:
            if self.pidfd is None:
                self.find_pid1(timeout=1.0)
            if self.pidfd is not None:
                try:
                    self.signal_pid1(signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # --kill-child: PID 1 gets SIGKILL when unshare dies
                self.proc.wait()
        for fd in (self.ctl_fd, self.barrier_fd, self.pidfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.ctl_fd = self.barrier_fd = self.pidfd = None
        self.output.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _poll(fds, timeout):
    p = select.poll()
    for fd in fds:
        p.register(fd, select.POLLIN)
    return {fd for fd, _ in p.poll(max(timeout, 0) * 1000)}


# ---------------------------------------------------------------------------------------------
# Results


class Results:
    def __init__(self):
        self.samples = {}  # metric -> init -> [values]
        self.notes = {}    # metric -> init -> [text]
        self.extra = {}    # metric -> init -> list of dicts (per-sample detail)

    def add(self, metric, init, value, **detail):
        self.samples.setdefault(metric, {}).setdefault(init, []).append(value)
        if detail:
            self.extra.setdefault(metric, {}).setdefault(init, []).append(detail)

    def note(self, metric, init, text):
        lst = self.notes.setdefault(metric, {}).setdefault(init, [])
        if text not in lst:
            lst.append(text)

    def summary(self, metric, init):
        """(median, min, max, n numeric, n total) or None."""
        xs = self.samples.get(metric, {}).get(init)
        if not xs:
            return None
        nums = [x for x in xs if isinstance(x, (int, float)) and not isinstance(x, bool)]
        if not nums:
            return (None, None, None, 0, len(xs))
        return (statistics.median(nums), min(nums), max(nums), len(nums), len(xs))

    def median(self, metric, init):
        s = self.summary(metric, init)
        return s[0] if s else None

    def to_json(self):
        out = {}
        for metric, per_init in self.samples.items():
            out[metric] = {}
            for init, xs in per_init.items():
                s = self.summary(metric, init)
                out[metric][init] = {"samples": xs, "median": s[0], "min": s[1], "max": s[2], "n": s[3],
                                     "notes": self.notes.get(metric, {}).get(init, []),
                                     "detail": self.extra.get(metric, {}).get(init, [])}
        for metric, per_init in self.notes.items():  # notes of inits without samples
            for init, notes in per_init.items():
                out.setdefault(metric, {}).setdefault(init, {"samples": [], "notes": notes})
        return out


def log(text):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), text), file=sys.stderr, flush=True)


def rotated(items, k):
    k %= max(len(items), 1)
    return items[k:] + items[:k]


# ---------------------------------------------------------------------------------------------
# The metrics. Each takes (bench, specs, results, options).


class Bench:
    """Scratch space and child commands shared by all metrics of one run."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="bench-pid1.", dir="/tmp")
        self.scripts = {}
        for name, text in CHILD_SCRIPTS.items():
            path = os.path.join(self.root, name)
            with open(path, "w") as f:
                f.write(text)
            self.scripts[name] = path

    def child(self, kind, n=0):
        if kind == "orphans":
            return ["/bin/sh", self.scripts["orphans.sh"], "{ctl}", "{scratch}/barrier", str(n)]
        return ["/bin/sh", self.scripts[kind + ".sh"], "{ctl}"]

    def start(self, spec, kind, metric, n=0):
        return Namespace(self.root, spec, self.child(kind, n), metric, barrier=(kind == "orphans"))

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def measure_start(bench, specs, res, opt):
    log("start -> child running: %d reps (+1 warm-up)" % opt.reps_start)
    for rep in range(opt.reps_start + 1):
        for spec in rotated(specs, rep):
            with bench.start(spec, "up", "start") as ns:
                t, _ = ns.wait_for("up", 20)
            if rep == 0:
                continue  # warm-up: page cache, dentries, pyc files
            res.add("start_ms", spec.name, (t - ns.t0) * 1e3 if t else None)
            if t is None:
                res.note("start_ms", spec.name, "child never reported")


def measure_idle(bench, specs, res, opt):
    """Memory and wake-ups; all inits idle side by side, so they share the same window."""
    log("memory + wake-ups: %d reps x %gs idle, all inits at once" % (opt.reps_idle, opt.idle_secs))
    for rep in range(opt.reps_idle):
        spaces = []
        try:
            for spec in rotated(specs, rep):
                spaces.append(bench.start(spec, "up", "idle"))
            watched = []
            for ns in spaces:
                t, fields = ns.wait_for("up", 20)
                if t is None or ns.find_pid1() is None:
                    res.note("rss_kib", ns.spec.name, "did not start")
                    continue
                watched.append((ns, ns.host_pid(int(fields[1]))))
            time.sleep(opt.settle)
            before = {}
            for ns, child in watched:
                name = ns.spec.name
                mem = memory_kib(ns.pid1)
                res.add("rss_kib", name, mem["rss"])
                res.add("pss_kib", name, mem["pss"])
                res.add("private_dirty_kib", name, mem["private_dirty"])
                # Processes the init needs besides itself and the child (s6-supervise).
                childs = {child, *descendants(child)} if child else set()
                helpers = [p for p in descendants(ns.pid1) if p not in childs]
                res.add("helpers_pss_kib", name, sum(memory_kib(p)["pss"] for p in helpers))
                if helpers:
                    res.note("helpers_pss_kib", name, "%d helper process(es)" % len(helpers))
                before[ns] = context_switches(ns.pid1)
            t0 = clock()
            time.sleep(opt.idle_secs)
            for ns, _ in watched:
                res.add("wakeups", ns.spec.name, context_switches(ns.pid1) - before[ns],
                        window_s=round(clock() - t0, 3))
        finally:
            for ns in spaces:
                ns.close()


def measure_reap(bench, specs, res, opt):
    log("reaping %d released orphans: %d reps, timeout %gs" % (opt.reap_n, opt.reps_reap, opt.reap_timeout))
    given_up = set()
    for rep in range(opt.reps_reap):
        for spec in rotated(specs, rep):
            if spec.name in given_up:
                continue
            with bench.start(spec, "orphans", "reap", n=opt.reap_n) as ns:
                if ns.wait_for("up", 20)[0] is None or ns.find_pid1() is None:
                    res.note("reap_ms", spec.name, "child did not start")
                    given_up.add(spec.name)
                    continue
                t, fields = ns.wait_for("spawned", 120)
                if t is None or int(fields[1]) != opt.reap_n:
                    res.note("reap_ms", spec.name, "could not spawn the orphans: %s" % (fields,))
                    given_up.add(spec.name)
                    continue
                time.sleep(0.2)
                # Every orphan is now a child of PID 1 (nobody else is a subreaper); a reaped one
                # leaves PID 1's children list, a zombie stays on it. Counting that list is cheap,
                # unlike scanning 2000 /proc entries, so the harness steals little CPU meanwhile.
                baseline = len(children(ns.pid1))
                if baseline < opt.reap_n:  # a fork failed in the child, or an orphan went elsewhere
                    res.note("reap_ms", spec.name, "only %d children of PID 1 before the release" % baseline)
                    given_up.add(spec.name)
                    continue
                target = baseline - opt.reap_n
                cpu0 = cpu_ns(ns.pid1)
                t0 = clock()
                os.close(ns.barrier_fd)  # release every orphan at once
                ns.barrier_fd = None
                took = None
                while clock() - t0 < opt.reap_timeout:
                    if ns.proc.poll() is not None:
                        res.note("reap_ms", spec.name, "PID 1 exited during the test")
                        break
                    if len(children(ns.pid1)) <= target:
                        took = (clock() - t0) * 1e3
                        break
                    time.sleep(0.002)
                left = zombies_in(ns.proc_root()) if ns.proc.poll() is None else None
                res.add("reap_ms", spec.name, took, zombies_after=left)
                if took is not None:
                    # PID 1's own CPU time for the reaping: unlike the wall time, it leaves out the
                    # 2000 exits themselves and most of the other load on the machine.
                    res.add("reap_cpu_ms", spec.name, (cpu_ns(ns.pid1) - cpu0) / 1e6)
                if took is None:
                    given_up.add(spec.name)
                    if left is not None:
                        res.note("reap_ms", spec.name, "not done after %gs: %d zombies left"
                                 % (opt.reap_timeout, left))
                elif left:
                    res.note("reap_ms", spec.name, "%d zombies elsewhere in the namespace" % left)
                log("  %-12s rep %d: %s" % (spec.name, rep, "%.0f ms" % took if took else "not done"))


def measure_term(bench, specs, res, opt):
    log("SIGTERM forwarding: %d reps" % opt.reps_term)
    for rep in range(opt.reps_term):
        for spec in rotated(specs, rep):
            with bench.start(spec, "trap", "term") as ns:
                if ns.wait_for("up", 20)[0] is None or ns.find_pid1() is None:
                    res.note("term_ms", spec.name, "did not start")
                    continue
                time.sleep(opt.term_settle)  # supervisord acts on signals only once it runs its loop
                t0 = clock()
                ns.signal_pid1(signal.SIGTERM)
                reported = exited = None
                stalled = 0.0
                while exited is None:
                    left = opt.term_timeout - (clock() - t0)
                    if left <= 0:
                        break
                    ready = _poll([ns.ctl_fd, ns.pidfd], left)
                    now = clock()
                    stalled = max(stalled, now - t0 - opt.term_timeout)
                    # Both stamped with the poll's return: read later, a report seen in the same
                    # round as the exit would otherwise look later than the exit.
                    if ns.ctl_fd in ready:
                        ns._read(0, now)
                    if ns.pidfd in ready:
                        exited = now
                        ns.proc.wait(timeout=10)
                        ns._read(0, now)
                    if reported is None:
                        reported = ns.take("term")[0]
                if stalled > 1.0:
                    # The harness itself did not run for seconds (seen on this shared machine):
                    # neither a latency nor a hang can be told from that repetition.
                    res.note("term_ms", spec.name, "1 rep dropped: the harness stalled %.0f s" % stalled)
                    continue
                res.add("term_ms", spec.name, (reported - t0) * 1e3 if reported else None)
                res.add("term_exit_ms", spec.name, (exited - t0) * 1e3 if exited else None)
                res.add("term_rc", spec.name, ns.exit_code() if exited else "still running")
                if reported is None:
                    res.note("term_ms", spec.name, "the child's TERM trap never ran")
                if exited is None:
                    res.note("term_exit_ms", spec.name, "PID 1 still running after %gs" % opt.term_timeout)


def measure_ignore(bench, specs, res, opt):
    log("child ignoring SIGTERM: %d rep(s), all inits at once, limit %gs" % (opt.reps_ignore, opt.ignore_timeout))
    for rep in range(opt.reps_ignore):
        spaces, state = [], []
        try:
            for spec in rotated(specs, rep):
                spaces.append(bench.start(spec, "ignore", "ignore"))
            for ns in spaces:
                t, fields = ns.wait_for("up", 20)
                child = ns.host_pid(int(fields[1])) if t and ns.find_pid1() else None
                if child is None:
                    res.note("ignore", ns.spec.name, "did not start")
                    continue
                state.append({"ns": ns, "child_fd": os.pidfd_open(child), "child_dead": None, "exited": None})
            time.sleep(opt.term_settle)
            for s in state:
                s["t0"] = clock()
                s["ns"].signal_pid1(signal.SIGTERM)
            start = clock()
            while clock() - start < opt.ignore_timeout:
                fds = [s["ns"].pidfd for s in state if s["exited"] is None]
                fds += [s["child_fd"] for s in state if s["child_dead"] is None]
                if not fds:
                    break
                ready = _poll(fds, 0.5)
                now = clock()
                for s in state:
                    if s["child_dead"] is None and s["child_fd"] in ready:
                        s["child_dead"] = now - s["t0"]
                    if s["exited"] is None and s["ns"].pidfd in ready:
                        s["exited"] = now - s["t0"]
            for s in state:
                ns = s["ns"]
                os.close(s["child_fd"])
                if s["exited"] is not None:
                    ns.proc.wait(timeout=10)
                rc = ns.exit_code() if s["exited"] is not None else None
                verdict = _ignore_verdict(s, rc, opt)
                res.add("ignore_exit_s", ns.spec.name, s["exited"],
                        exit_code=rc, child_dead_s=s["child_dead"], verdict=verdict)
                if s["exited"] is None:
                    res.note("ignore_exit_s", ns.spec.name, "still running after %g s (child %s); SIGKILLed by pid"
                             % (opt.ignore_timeout, "alive" if s["child_dead"] is None else "dead"))
        finally:
            for ns in spaces:
                ns.close()  # a hanging init is SIGKILLed here, by its pidfd


def _ignore_verdict(s, rc, opt):
    dead, exited = s["child_dead"], s["exited"]
    if exited is None:
        return "hangs (> %g s)" % opt.ignore_timeout
    # 137 = the init passes on its child's death by SIGKILL; a gap between the two deaths = the init
    # killed the child and went on. Otherwise the child died with PID 1, by the namespace teardown.
    if dead is not None and (rc == 128 + signal.SIGKILL or exited - dead > 0.05):
        return "kills child @%.1f s, exit %s" % (dead, rc)
    return "exit %s @%.1f s, child only died with the namespace" % (rc, exited)


METRICS = {
    "start": measure_start,
    "idle": measure_idle,
    "reap": measure_reap,
    "term": measure_term,
    "ignore": measure_ignore,
}

# ---------------------------------------------------------------------------------------------
# Targets (issue 2) and the report

MIB = 1024


def evaluate_targets(res, specs):
    """[(target text, richinit's value text, ok)]; ok is None when not measured."""
    r = "richinit"
    out = []

    def num(metric, text, limit, unit):
        v = res.median(metric, r)
        out.append((text, "-" if v is None else "%s %s" % (_fmt(v), unit), None if v is None else v <= limit))

    num("start_ms", "start -> child running <= 30 ms", 30, "ms")
    num("rss_kib", "PID 1 VmRSS <= 10 MiB", 10 * MIB, "KiB")
    num("private_dirty_kib", "PID 1 private dirty <= 4 MiB", 4 * MIB, "KiB")
    wake = res.summary("wakeups", r)
    out.append(("0 wake-ups while idle", "-" if not wake else "max %s" % _fmt(wake[2]),
                None if not wake or wake[2] is None else wake[2] == 0))
    c_inits = [s.name for s in specs if s.compiled and res.median("reap_ms", s.name) is not None]
    mine = res.median("reap_ms", r)
    if c_inits and mine is not None:
        best = min(c_inits, key=lambda n: res.median("reap_ms", n))
        limit = 1.25 * res.median("reap_ms", best)
        out.append(("reap <= 1.25x fastest C init (%s: %s ms)" % (best, _fmt(res.median("reap_ms", best))),
                    "%s ms (%.2fx)" % (_fmt(mine), mine / res.median("reap_ms", best)), mine <= limit))
    else:
        out.append(("reap <= 1.25x fastest C init", "-", None))
    num("term_ms", "SIGTERM forwarded <= 5 ms", 5, "ms")
    rcs = res.samples.get("term_rc", {}).get(r)
    out.append(("exit code 143 on TERM", "-" if not rcs else ",".join(sorted({str(x) for x in rcs})),
                None if not rcs else all(x == 143 for x in rcs)))
    ign = res.extra.get("ignore_exit_s", {}).get(r)
    if ign:
        ok = all(d["exit_code"] == 137 and d["child_dead_s"] is not None for d in ign)
        out.append(("child ignoring TERM killed, exit 137 (--grace 2 --kill-grace 1)",
                    "; ".join(sorted({d["verdict"] for d in ign})), ok))
    else:
        out.append(("child ignoring TERM killed, exit 137", "-", None))
    return out


ROWS = [  # (metric, label)
    ("start_ms", "start -> child running (ms)"),
    ("rss_kib", "PID 1 VmRSS (KiB)"),
    ("pss_kib", "PID 1 Pss (KiB)"),
    ("private_dirty_kib", "PID 1 Private_Dirty (KiB)"),
    ("helpers_pss_kib", "helper processes' Pss (KiB)"),
    ("wakeups", "PID 1 wake-ups in idle window"),
    ("reap_ms", "reap released orphans (ms)"),
    ("reap_cpu_ms", "PID 1 CPU time while reaping (ms)"),
    ("term_ms", "SIGTERM -> child's trap (ms)"),
    ("term_exit_ms", "SIGTERM -> PID 1 exits (ms)"),
]


def _fmt(x):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, int) or abs(x) >= 100:
        return "%.0f" % x
    if abs(x) >= 10:
        return "%.1f" % x
    return "%.2f" % x


def _cell(res, metric, name):
    v = res.median(metric, name)
    if v is None:
        xs = res.samples.get(metric, {}).get(name)
        return "NOT DONE" if xs else "-"
    if any(x is None for x in res.samples[metric][name]):
        return "%s (some failed)" % _fmt(v)
    mine = res.median(metric, "richinit")
    if name == "richinit" or mine is None:
        return _fmt(v)
    ratio = "n/a" if mine == 0 else "%.2fx" % (v / mine)
    return "%s (%s)" % (_fmt(v), ratio)


def _ignore_cell(res, name):
    detail = res.extra.get("ignore_exit_s", {}).get(name)
    if not detail:
        return "-"
    return " / ".join(sorted({d["verdict"] for d in detail}))


def table_rows(res, names):
    rows = [[label] + [_cell(res, metric, n) for n in names] for metric, label in ROWS if metric in res.samples]
    if "term_rc" in res.samples:
        rows.append(["exit code on TERM"] + [",".join(sorted({str(x) for x in res.samples["term_rc"].get(n, [])}))
                                              or "-" for n in names])
    if "ignore_exit_s" in res.extra:
        rows.append(["child ignores TERM"] + [_ignore_cell(res, n) for n in names])
    return rows


DETAIL_ROWS = ROWS + [("ignore_exit_s", "child ignores TERM: SIGTERM -> PID 1 exits (s)")]


def detail_rows(res, names):
    rows = []
    for metric, label in DETAIL_ROWS:
        for n in names:
            s = res.summary(metric, n)
            if not s:
                continue
            notes = "; ".join(res.notes.get(metric, {}).get(n, []))
            rows.append([label, n, _fmt(s[0]), _fmt(s[1]), _fmt(s[2]), "%d/%d" % (s[3], s[4]), notes])
    return rows


def machine_line(machine):
    v = machine["versions"]
    return ("kernel %s, %s x %s, Python %s (richinit's) / %s (harness), load %s -> %s; %s"
            % (machine["kernel"], machine["cores"], machine["cpu_model"], machine["richinit_python"],
               machine["harness_python"], " ".join(machine["loadavg_start"]), " ".join(machine.get("loadavg_end", [])),
               ", ".join("%s %s" % (k, v[k]) for k in sorted(v))))


def render_text(res, names, machine, config):
    out = ["richinit vs peers as PID 1 -- %s" % machine["date"], machine_line(machine)]
    if config.get("note"):
        out.append("note: " + config["note"])
    out.append("medians; (ratio) = init / richinit; reps: %s; idle window %g s" % (config["reps"], config["idle_secs"]))
    out.append("")
    out += _text_table(["metric"] + names, table_rows(res, names))
    out += ["", "targets (richinit):"]
    out += _text_table(["target", "richinit", "ok"],
                       [[t, v, {True: "ok", False: "MISS", None: "?"}[ok]] for t, v, ok in evaluate_targets(
                           res, [s for s in INITS if s.name in names])])
    out += ["", "detail:"]
    out += _text_table(["metric", "init", "median", "min", "max", "n", "notes"], detail_rows(res, names))
    return "\n".join(out) + "\n"


def _text_table(head, rows):
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]

    def line(r):
        return "  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip()
    return [line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def _md_table(head, rows):
    esc = lambda c: str(c).replace("|", "\\|")
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + \
        ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]


def render_markdown(res, names, machine, config):
    out = ["# richinit vs peers as PID 1 (%s)" % machine["date"], "", "Machine: " + machine_line(machine) + "."]
    if config.get("note"):
        out += ["", "**Note:** " + config["note"]]
    out += ["", "Medians over the repetitions (%s; idle window %g s); `(0.50x)` = that init's value / richinit's."
            % (config["reps"], config["idle_secs"]),
            "Command: `%s`" % config["command"], ""]
    out += _md_table(["metric"] + names, table_rows(res, names))
    out += ["", "## Targets (richinit)", ""]
    out += _md_table(["target", "richinit", "ok"],
                     [[t, v, {True: "ok", False: "**MISS**", None: "?"}[ok]] for t, v, ok in evaluate_targets(
                         res, [s for s in INITS if s.name in names])])
    out += ["", "## Detail", ""]
    out += _md_table(["metric", "init", "median", "min", "max", "n", "notes"], detail_rows(res, names))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Machine description


def _dpkg_version(package):
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


def _script_python(script):
    """The interpreter named in a console script's shebang, and its version."""
    try:
        with open(script) as f:
            first = f.readline()
        py = first[2:].split()[0] if first.startswith("#!") else sys.executable
        v = subprocess.run([py, "-c", "import platform; print(platform.python_version())"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
        return v or None
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def _git_describe():
    """' (commit abc1234)' of the tree richinit runs from, '+edits' when richinit/ or osbase/ differ from it."""
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "richinit", "osbase"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return " (commit %s%s)" % (head, "+edits" if dirty else "") if head else ""


def describe_machine(specs):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {s.name: _dpkg_version(s.package) for s in specs if s.package}
    try:
        from richinit import __version__ as richinit_version
    except ImportError:
        richinit_version = "?"
    versions["richinit"] = richinit_version + _git_describe()
    versions["util-linux (unshare)"] = _dpkg_version("util-linux")
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "cpu_model": model,
        "cores": os.cpu_count(),
        "harness_python": platform.python_version(),
        "richinit_python": _script_python(RICHINIT),
        "richinit_command": RICHINIT,
        "versions": versions,
        "loadavg_start": _loadavg(),
    }


def _loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


# ---------------------------------------------------------------------------------------------
# Command line


def _options(argv):
    p = argparse.ArgumentParser(prog="python -m bench.pid1", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few reps, short waits, 300 orphans (about a minute)")
    p.add_argument("--json", metavar="OUT", help="write samples, summaries and the machine to OUT")
    p.add_argument("--markdown", metavar="OUT", help="write the tables as markdown to OUT")
    p.add_argument("--only", help="comma-separated inits (default: all installed)")
    p.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset of %s" % ",".join(METRICS))
    p.add_argument("--note", default="", help="a line recorded with the results (e.g. other load on the machine)")
    p.add_argument("--reps-start", type=int, default=15)
    p.add_argument("--reps-idle", type=int, default=3)
    p.add_argument("--reps-reap", type=int, default=5)
    p.add_argument("--reps-term", type=int, default=7)
    p.add_argument("--reps-ignore", type=int, default=1)
    p.add_argument("--idle-secs", type=float, default=10.0)
    p.add_argument("--settle", type=float, default=2.0, help="wait after the child is up before memory/idle")
    p.add_argument("--term-settle", type=float, default=1.2,
                   help="wait after the child is up before SIGTERM (supervisord's loop ticks once a second)")
    p.add_argument("--reap-n", type=int, default=2000)
    p.add_argument("--reap-timeout", type=float, default=60.0)
    p.add_argument("--term-timeout", type=float, default=15.0)
    p.add_argument("--ignore-timeout", type=float, default=15.0)
    if "--quick" in argv:
        p.set_defaults(reps_start=3, reps_idle=1, reps_reap=1, reps_term=2, idle_secs=3, settle=1,
                       reap_n=300, reap_timeout=20, ignore_timeout=12)
    return p, p.parse_args(argv)


def select_inits(only, table=None, what="bench.pid1: unknown init(s)"):
    """The entries of `table` (default INITS) named in `only` (comma-separated, all when empty)
    whose binary is installed; bench.services uses it for its supervisors."""
    table = INITS if table is None else table
    specs = table
    if only:
        wanted = only.split(",")
        unknown = [w for w in wanted if w not in {s.name for s in table}]
        if unknown:
            raise SystemExit("%s: %s" % (what, ", ".join(unknown)))
        specs = [s for s in table if s.name in wanted]
    ready = []
    for s in specs:
        if s.available():
            ready.append(s)
        else:
            log("skipping %s: %s not found" % (s.name, s.binary))
    return ready


def run(specs, metrics, opt):
    """Run the chosen metrics over specs; returns Results. Everything started is stopped."""
    res = Results()
    bench = Bench()
    try:
        for m in metrics:
            METRICS[m](bench, specs, res, opt)
    finally:
        bench.cleanup()
    return res


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p, opt = _options(argv)
    metrics = [m for m in opt.metrics.split(",") if m]
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        p.error("unknown metric(s): %s" % ", ".join(bad))
    if os.geteuid() != 0:
        p.error("needs root (unshare --pid, /proc of other processes)")
    if shutil.which("unshare") is None:
        p.error("unshare (util-linux) not found")
    specs = select_inits(opt.only)
    if not specs:
        p.error("no init to run")
    machine = describe_machine(specs)
    reps = {"start": opt.reps_start, "idle": opt.reps_idle, "reap": opt.reps_reap, "term": opt.reps_term,
            "ignore": opt.reps_ignore}
    config = {"command": "python -m bench.pid1 " + " ".join(shlex.quote(a) for a in argv),
              "metrics": metrics, "note": opt.note, "idle_secs": opt.idle_secs, "reap_n": opt.reap_n,
              "richinit_ignore_options": IGNORE_GRACE,
              "reps": ", ".join("%s %d" % (m, reps[m]) for m in metrics),
              "inits": {s.name: " ".join(UNSHARE) + " " + s.template for s in specs}}
    # A SIGTERM to the harness unwinds through the finally blocks, which stop every namespace.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    t0 = clock()
    try:
        res = run(specs, metrics, opt)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    machine["loadavg_end"] = _loadavg()
    config["duration_s"] = round(clock() - t0, 1)
    names = [s.name for s in specs]
    text = render_text(res, names, machine, config)
    print(text)
    write_results(opt, res, machine, config, evaluate_targets(res, specs), render_markdown(res, names, machine, config))
    return 0


def write_results(opt, res, machine, config, targets, markdown):
    """--json and --markdown outputs (bench.services writes its results the same way)."""
    write_files(opt, {"machine": machine, "config": config, "results": res.to_json(),
                      "targets": [{"target": t, "richinit": v, "ok": ok} for t, v, ok in targets]}, markdown)


def write_files(opt, data, markdown):
    """opt.json gets `data`, opt.markdown the text; each only when asked for (every benchmark's outputs)."""
    if opt.json:
        with open(opt.json, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        log("wrote %s" % opt.json)
    if opt.markdown:
        with open(opt.markdown, "w") as f:
            f.write(markdown)
        log("wrote %s" % opt.markdown)


if __name__ == "__main__":
    sys.exit(main())
