"""/var/log and /run on tiny tmpfs mounts that fill up: syslog and the services keep running, what was
logged before the disk filled is still there after the stop, and a log file that takes data again
says how much it lost."""

import os
import re
import select

from tests.support.wait import wait_until

from .conftest import GRACE, KILL_GRACE, bind, record

APP = ("logger -t app early-syslog-marker; trap 'exit 5' TERM; "
       "while :; do logger -t app later-line; (sleep 0.05 &); sleep 0.1; done")
SERVICES = {
    "filelog": 'command: "i=0; while :; do i=$((i+1)); echo filelog-line-$i; sleep 0.01; done"\n'
               "log: {file: /var/log/filelog.log}\n"
               "after: [syslog]\n",
    "tosyslog": 'command: "while :; do echo via-syslog; sleep 0.01; done"\n'
                "log: syslog\n"
                "after: [syslog]\n",
}

SELECTED = ["syslog", "filelog", "tosyslog"]


def fill(directory):
    """Write zeros into DIRECTORY/fill until the filesystem is full."""
    try:
        with open(os.path.join(directory, "fill"), "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    except OSError as e:
        assert e.errno == 28, e


def test_log_and_run_filesystems_fill_up(rich, tiny_tmpfs):
    varlog, run = tiny_tmpfs("varlog", "256k"), tiny_tmpfs("run", "256k")
    c = rich(APP, services=SERVICES, only=SELECTED,
             mounts=[bind(varlog, "/var/log"), bind(run, "/run")])
    c.start()
    c.wait_up("syslog", "filelog", "tosyslog")
    messages, filelog = os.path.join(varlog, "messages"), os.path.join(varlog, "filelog.log")
    assert wait_until(lambda: os.path.exists(messages) and b"early-syslog-marker" in open(messages, "rb").read()), \
        c.log()
    assert wait_until(lambda: os.path.exists(filelog) and b"filelog-line-1\n" in open(filelog, "rb").read())
    before = {n: s["pid"] for n, s in c.services().items()}

    fill(varlog)
    fill(run)
    assert wait_until(lambda: "log file /var/log/filelog.log: No space left on device" in c.log()), c.log()
    for _ in range(10):  # a while on full disks: everyone keeps running, PID 1 answers
        st = c.alive()
        select.select([], [], [], 0.2)
    assert {s["name"]: s["pid"] for s in st["services"]} == before, st
    assert all(s["state"] == "up" for s in st["services"] if s["name"] in SELECTED), st["services"]
    record("/var/log and /run full (ENOSPC)", c)

    os.unlink(os.path.join(varlog, "fill"))  # the disk takes data again: the lost stretch is noted
    pat = re.compile(rb"\[richinit\] (\d+) bytes of filelog's output dropped\n")
    assert wait_until(lambda: pat.search(open(filelog, "rb").read())), open(filelog, "rb").read()[-300:]
    assert int(pat.search(open(filelog, "rb").read()).group(1)) > 0

    rc, took = c.stop()
    assert rc == 5, c.log()
    assert took < GRACE + KILL_GRACE + 3
    # What was logged before the disks filled is still there after the stop.
    assert b"early-syslog-marker" in open(messages, "rb").read()
    assert open(filelog, "rb").read().startswith(b"filelog-line-1\n")
