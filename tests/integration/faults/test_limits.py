"""Resource limits hit from inside: a fork bomb against pids.max 128, an app leaking past memory 64M,
a service stopped with SIGSTOP when the container stops."""

import os
import select
import signal

from tests.support.wait import wait_until

from .conftest import GRACE, KILL_GRACE, record

STEADY = {"steady": 'command: "exec sleep 1000"\n'}


def cgroup_file(pid, controller, name):
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return "/sys/fs/cgroup/%s%s/%s" % (controller, path, name)
    raise AssertionError("no %s cgroup for %d" % (controller, pid))


def read(path):
    with open(path) as f:
        return f.read()


def test_fork_bomb_against_pids_max(rich):
    app = "f() { f & f & wait; }; f & exec sleep 1000"
    # --app-after: the bomb goes off once the service runs (an app waits for no service by default,
    # and with every pid taken neither the loader nor the service could be forked)
    c = rich(app, services=STEADY, only=["steady"], pids=128, opts=("--app-after", "steady"))
    c.start()
    c.wait_up("steady")
    events = cgroup_file(c.pid, "pids", "pids.events")
    assert wait_until(lambda: int(read(events).split()[1]) > 0, 15), read(events)  # forks refused: at the limit
    for _ in range(10):
        c.alive()
        select.select([], [], [], 0.2)
    assert c.services()["steady"]["state"] == "up"
    record("fork bomb, pids.max 128", c)
    rc, took = c.stop()
    assert rc == 128 + signal.SIGTERM, c.log()  # the app (sleep) died of the TERM
    assert took < GRACE + KILL_GRACE + 3, took
    assert "SIGTERM received: stopping" in c.log()


def test_leaking_app_is_taken_by_the_oom_killer_not_pid1(rich):
    app = ("while [ ! -e /shared/go ]; do sleep 0.05; done; "
           "x=leak; while :; do x=$x$x$x$x; done")
    c = rich(app, services=STEADY, only=["steady"], memory=64 * 1024 * 1024)
    c.start()
    c.wait_up("steady")
    c.alive()
    open(os.path.join(c.shared, "go"), "w").close()
    rc = c.wait(60)
    assert rc == 128 + signal.SIGKILL, c.log()  # the app's death, not PID 1's (that would be -9)
    assert "app (pid" in c.log() and "killed by the OOM killer" in c.log(), c.log()
    assert "main child" in c.log() and "exiting with 137" in c.log()


def host_pid(c, inner):
    """The host pid of the container process `inner` (a child of PID 1)."""
    with open("/proc/%d/task/%d/children" % (c.pid, c.pid)) as f:
        for k in f.read().split():
            with open("/proc/%s/status" % k) as st:
                ns = next(line.split()[1:] for line in st if line.startswith("NSpid:"))
            if int(ns[-1]) == inner:
                return int(k)
    raise AssertionError("no child %d of PID 1" % inner)


def test_a_service_stopped_with_sigstop_gets_sigcont_at_shutdown(rich):
    frozen = {"frozen": "command: \"trap 'echo got-term >> /shared/term; exit 0' TERM; "
                        "while :; do sleep 0.1; done\"\n"
                        "stop_timeout: 30\n"}  # without a SIGCONT the stop would wait this long, then KILL
    c = rich("trap 'exit 5' TERM; while :; do sleep 0.1; done", services=frozen, only=["frozen"])
    c.start()
    c.wait_up("frozen")
    pid = host_pid(c, c.services()["frozen"]["pid"])
    os.kill(pid, signal.SIGSTOP)
    assert wait_until(lambda: read("/proc/%d/stat" % pid).rsplit(")", 1)[1].split()[0] == "T")
    c.alive()
    rc, took = c.stop()
    assert rc == 5, c.log()
    assert read(os.path.join(c.shared, "term")) == "got-term\n"  # it woke up and handled its TERM
    assert took < GRACE + KILL_GRACE + 3, took
