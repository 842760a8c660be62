"""PID 1 under faults: its reaction to TERM while a sink is blocked, and its CPU time and memory
through each fault of the integration suite.

    sudo .venv/bin/python -m bench.faults [--reps N] [--json OUT] [--markdown OUT] [--no-suite]

1. TERM while a sink is blocked. Each init runs as PID 1 of a runc container (busybox rootfs, the
   host's /usr bound in): richinit with a chatty service (`while :; do echo ...; done`, `log: stdout`),
   tini and dumb-init with the same loop as a background child of the app (they never write to the
   container's stdout themselves, so theirs is the reference a never-blocking PID 1 must match). The
   container's stdout is a pipe the harness either drains ("drained") or never reads ("blocked": full
   within milliseconds). 1 s after the app is up, SIGTERM goes to PID 1 from the host; the app traps
   it and writes to a FIFO. Times: TERM -> the app's trap ran (ms), TERM -> PID 1 gone (ms); also
   PID 1's CPU time over that 1 s. Conditions and inits are rotated across repetitions.
2. Through each fault: runs tests/integration/faults with RICHINIT_FAULTS_RESULTS set; each test
   appends PID 1's control-socket status latencies (median, max), CPU seconds and VmRSS at the end of
   its fault window; the 100-container test its start/stop wall times.
"""

import argparse
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading

from bench.pid1 import INITS, Results, _loadavg, clock, describe_machine, log, rotated, write_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHATTY = "while :; do echo chatter-chatter-chatter-chatter-chatter-chatter; done"
APP = ("trap 'echo term > /shared/fifo; exit 143' TERM\n"
       "echo up > /shared/fifo\n"
       "sleep 1000000 &\n"
       "wait\n")
CONDITIONS = ("drained", "blocked")
NAMES = ("richinit", "tini", "dumb-init")


def _argv(name):
    from tests.support import containers as ct
    if name == "richinit":
        return ct.richinit_argv("--services", "chatty", "--", "sh", "/shared/app.sh")
    app = ["sh", "-c", "(%s) & exec sh /shared/app.sh" % CHATTY]
    return ["/usr/bin/tini", "--", *app] if name == "tini" else ["/usr/bin/dumb-init", *app]


class Bench:
    def __init__(self, scratch):
        from tests.support import containers as ct
        self.ct = ct
        self.scratch = scratch
        rootfs = ct.busybox_rootfs(os.path.join(scratch, "rootfs"))
        sd = os.path.join(rootfs, "etc/richinit/services.d")
        os.makedirs(sd, exist_ok=True)
        with open(os.path.join(sd, "chatty.yaml"), "w") as f:
            f.write("command: %s\n" % json.dumps(CHATTY))
        self.shared = os.path.join(scratch, "shared")
        os.makedirs(self.shared)
        with open(os.path.join(self.shared, "app.sh"), "w") as f:
            f.write(APP)
        self.fifo = os.path.join(self.shared, "fifo")
        os.mkfifo(self.fifo)
        self.bundles = {}
        for name in NAMES:
            b = os.path.join(scratch, "bundle-" + name)
            ct.make_bundle(b, rootfs, _argv(name), python=True,
                           mounts=[{"destination": "/shared", "type": "bind", "source": self.shared,
                                    "options": ["rbind", "rw"]}])
            self.bundles[name] = b

    def once(self, name, condition, res):
        """One container: up, 1 s of chatter (drained or not), SIGTERM to PID 1, PID 1 gone."""
        key = "%s (%s)" % (name, condition)
        cid = self.ct.new_id("bflt")
        ctl = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        r, w = os.pipe()
        stop = threading.Event()
        drain = None
        pidfd = None
        try:
            with open(os.path.join(self.scratch, "stderr-" + name), "wb") as err:
                subprocess.run(["runc", "run", "-d", "--bundle", self.bundles[name], cid], stdin=subprocess.DEVNULL,
                               stdout=w, stderr=err, check=True, timeout=60)
            os.close(w)
            w = None
            pid = int(json.loads(subprocess.run(["runc", "state", cid], capture_output=True, text=True).stdout)["pid"])
            pidfd = os.pidfd_open(pid)
            if condition == "drained":
                def reader():
                    while not stop.is_set():
                        if select.select([r], [], [], 0.05)[0]:
                            os.read(r, 1 << 20)
                drain = threading.Thread(target=reader)
                drain.start()
            if _line(ctl, 30) != "up":
                res.note("term_ms", key, "the app did not come up")
                return
            cpu0 = _cpu_ms(pid)
            select.select([], [], [], 1.0)  # the chatter runs; a blocked pipe is full long before this ends
            cpu = _cpu_ms(pid) - cpu0
            if condition == "blocked" and _unread(r) < fcntl.fcntl(r, 1032) - 8192:
                res.note("term_ms", key, "the pipe was not full at TERM")
            t0 = clock()
            os.kill(pid, signal.SIGTERM)
            got = _line(ctl, 30)
            t_term = clock()
            gone = select.select([pidfd], [], [], 30)[0]
            t_exit = clock()
            res.add("term_ms", key, (t_term - t0) * 1e3 if got == "term" else None)
            res.add("term_exit_ms", key, (t_exit - t0) * 1e3 if gone else None)
            res.add("cpu_ms", key, cpu)
        finally:
            stop.set()
            if drain is not None:
                drain.join()
            subprocess.run(["runc", "delete", "--force", cid], capture_output=True)
            if pidfd is not None:
                os.close(pidfd)
            for fd in (r, w, ctl):
                if fd is not None:
                    os.close(fd)


def _line(fd, timeout):
    deadline = clock() + timeout
    buf = b""
    while clock() < deadline:
        if select.select([fd], [], [], max(0.0, deadline - clock()))[0]:
            data = os.read(fd, 4096)
            buf += data
            if b"\n" in buf:
                return buf.split(b"\n", 1)[0].decode()
            if not data:  # no writer yet: wait for one
                select.select([], [], [], 0.002)
    return None


def _unread(fd):
    buf = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return int.from_bytes(buf, "little")


def _cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def run_suite():
    """The fault suite with results recording on; returns its rows."""
    fd, path = tempfile.mkstemp(prefix="bench-faults.", suffix=".jsonl")
    os.close(fd)
    try:
        env = dict(os.environ, RICHINIT_FAULTS_RESULTS=path)
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            os.path.join(REPO, "tests", "integration", "faults")], cwd=REPO, env=env)
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return rows, r.returncode
    finally:
        os.unlink(path)


def render(res, rows, suite_rc, machine):
    keys = ["%s (%s)" % (n, c) for n in NAMES for c in CONDITIONS]
    out = ["# bench.faults, %s" % machine.get("date", ""), "",
           "Machine: %s" % machine.get("summary", ""), "",
           "## TERM while PID 1's stdout sink is blocked (medians, min-max)", "",
           "| init (stdout) | TERM -> app's trap (ms) | TERM -> PID 1 gone (ms) | PID 1 CPU over 1 s of chatter (ms) |",
           "|---|---|---|---|"]

    def cell(metric, key):
        s = res.summary(metric, key)
        if not s or s[0] is None:
            return "-"
        return "%.2f (%.2f-%.2f)" % (s[0], s[1], s[2])
    for k in keys:
        out.append("| %s | %s | %s | %s |" % (k, cell("term_ms", k), cell("term_exit_ms", k), cell("cpu_ms", k)))
    for metric, per in res.notes.items():
        for k, notes in per.items():
            out.append("")
            out.append("note: %s %s: %s" % (metric, k, "; ".join(notes)))
    if rows:
        out += ["", "## PID 1 through each fault (tests/integration/faults, exit %s)" % suite_rc, "",
                "| fault | status p50 (ms) | status max (ms) | probes | PID 1 CPU (s) | PID 1 VmRSS (KiB) |",
                "|---|---|---|---|---|---|"]
        for row in rows:
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                row["fault"], row.get("status_p50_ms", "-"), row.get("status_max_ms", "-"), row.get("probes", "-"),
                row.get("pid1_cpu_s", "-"), row.get("pid1_rss_kib", "-")))
            if "start_all_s" in row:
                out.append("| (start all / stop all, s; probe rounds) | %s / %s | | %s | | |" % (
                    row["start_all_s"], row["stop_all_s"], row.get("probe_rounds")))
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench.faults", description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--json")
    p.add_argument("--markdown")
    p.add_argument("--no-suite", action="store_true", help="only the TERM measurement")
    opt = p.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("runc"):
        p.error("needs root and runc")
    specs = [s for s in INITS if s.name in NAMES and s.available()]
    machine = describe_machine(specs)
    scratch = tempfile.mkdtemp(prefix="bench-faults.")
    res = Results()
    try:
        bench = Bench(scratch)
        pairs = [(s.name, c) for s in specs for c in CONDITIONS]
        for rep in range(opt.reps):
            log("rep %d/%d" % (rep + 1, opt.reps))
            for name, cond in rotated(pairs, rep):
                bench.once(name, cond, res)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows, rc = ([], None) if opt.no_suite else run_suite()
    machine["loadavg_end"] = _loadavg()
    machine["summary"] = "kernel %s, %d x %s; %s; load average at start %s, at end %s" % (
        machine["kernel"], machine["cores"], machine["cpu_model"],
        ", ".join("%s %s" % kv for kv in sorted(machine["versions"].items())), machine["loadavg_start"],
        machine["loadavg_end"])
    md = render(res, rows, rc, machine)
    print(md)
    opt_out = argparse.Namespace(json=opt.json, markdown=opt.markdown)
    write_results(opt_out, res, machine, {"reps": opt.reps, "chatty": CHATTY, "fault_suite_rows": rows,
                                          "fault_suite_exit": rc}, [], md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
