"""Timer lateness: how late PID 1's timer wheel starts a timer's service, from the kernel's clock.

    python -m bench.timers [--ticks N] [--json OUT] [--markdown OUT]

Needs root (runc, tracefs). richinit runs as PID 1 of `runc run` on a busybox rootfs with
`--units yes` and one timer: OnActiveSec=1s, OnUnitActiveSec=1s, AccuracySec=1us, activating a
oneshot `/bench-tick` script (StartLimitIntervalSec=0: a start a second is more than systemd's
default start limit allows). OnUnitActiveSec= counts from the service's last start, so each start
is due 1 s after the previous one; a private tracefs instance records every exec of the script
(sched_process_exec), and the lateness of tick k is (exec k - exec k-1) - 1 s: PID 1's wake-up, its
bookkeeping and the fork/exec of the service. The first tick is measured from PID 1's own exec + 1 s
(it includes richinit's start-up, reported apart). Medians with min/max; nothing is asserted.
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench.appstart import Trace
from bench.pid1 import write_files

UNITS = {
    "tick.timer": "[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=1s\nAccuracySec=1us\n[Install]\nWantedBy=timers.target\n",
    # a start a second is more than systemd's default start limit (5 in 10 s) allows
    "tick.service": "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=oneshot\nExecStart=/bench-tick\n",
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ticks", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    opt = ap.parse_args(argv)
    if os.geteuid() != 0 or not shutil.which("runc"):
        sys.exit("bench.timers needs root and runc")
    from tests.support import containers as ct
    scratch = tempfile.mkdtemp(prefix="bench-timers.", dir="/tmp")
    trace = proc = cid = None
    try:
        rootfs = ct.busybox_rootfs(os.path.join(scratch, "rootfs"))
        etc = os.path.join(rootfs, "etc/systemd/system")
        os.makedirs(os.path.join(etc, "timers.target.wants"))
        for name, text in UNITS.items():
            with open(os.path.join(etc, name), "w") as f:
                f.write(text)
        os.symlink("../tick.timer", os.path.join(etc, "timers.target.wants", "tick.timer"))
        with open(os.path.join(rootfs, "bench-tick"), "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(os.path.join(rootfs, "bench-tick"), 0o755)
        mounts = [{"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["ro", "mode=755"]}
                  for d in ("/usr/lib/systemd", "/lib/systemd")]  # the host's units are not the image's
        bundle = os.path.join(scratch, "bundle")
        ct.make_bundle(bundle, rootfs, ct.richinit_argv("--units", "yes", "--no-save-env", "--", "sleep", "100000"),
                       python=True, mounts=mounts)
        trace = Trace(scratch)
        trace.clear()
        cid = "benchtimers-%d" % os.getpid()
        proc = subprocess.Popen(["runc", "run", "--bundle", bundle, cid], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + opt.ticks + 30
        ticks = []
        while time.monotonic() < deadline and len(ticks) < opt.ticks + 1:
            time.sleep(0.5)
            ticks = [t for t, _pid, what in trace.events() if what == "/bench-tick"]
        state = json.loads(subprocess.run(["runc", "state", cid], capture_output=True, text=True).stdout)
        init = int(state["pid"])
        starts = [t for t, pid, what in trace.events() if pid == init and what == sys.executable]
        late = [((b - a) - 1.0) * 1e3 for a, b in zip(ticks, ticks[1:], strict=False)]
        first = (ticks[0] - starts[0] - 1.0) * 1e3 if ticks and starts else None
        load = os.getloadavg()
        result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "ticks": len(ticks),
                  "lateness_ms": {"median": statistics.median(late) if late else None,
                                  "min": min(late, default=None), "max": max(late, default=None),
                                  "samples": late},
                  "first_tick_after_pid1_exec_ms": first, "load_after": load}
        md = ["# Timer lateness (%s)" % result["date"], "",
              "OnUnitActiveSec=1s, AccuracySec=1us; %d ticks; load average after %.2f %.2f %.2f." % (
                  len(ticks), *load), "",
              "| metric | median | min | max |", "|---|---|---|---|",
              "| tick k's exec - (tick k-1's exec + 1 s) (ms) | %s |" % " | ".join(
                  "%.2f" % result["lateness_ms"][k] if result["lateness_ms"][k] is not None else "-"
                  for k in ("median", "min", "max")),
              "", "First tick: PID 1's exec + 1 s -> the tick's exec: %s ms (richinit's start-up and the loader "
              "included)." % ("%.1f" % first if first is not None else "-")]
        text = "\n".join(md) + "\n"
        sys.stdout.write(text)
        write_files(opt, result, text)
    finally:
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if cid is not None:
            ct.delete(cid)
        if trace is not None:
            trace.close()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
