"""The control socket under abuse, with RLIMIT_NOFILE 64 for the container: 2000 connections held
open, half-written requests, 1 MiB of garbage, binary junk. PID 1 runs out of fds on the way (its
services' pipes take most of them) and stays usable: status answers, richctl works, a stop ends it."""

import random
import resource
import select
import socket
import subprocess
import sys

from .conftest import GRACE, KILL_GRACE, record

APP = "trap 'exit 5' TERM; while :; do (sleep 0.05 &); sleep 0.2; done"
# Enough services that their output pipes and PID 1's own fds come near 64 with a few clients.
SLEEPERS = {"s%02d" % i: 'command: "exec sleep 1000"\n' for i in range(24)}


def connect(path):
    """A connection, waiting while the listen backlog is full (a unix socket says EAGAIN then)."""
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            select.select([], [], [], 0.001)


def test_control_socket_abuse_under_a_low_fd_limit(rich):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 8192), max(hard, 8192)))
    c = rich(APP, services=SLEEPERS, only=sorted(SLEEPERS), nofile=64)
    c.start()
    held = []
    try:
        c.wait_up(*SLEEPERS)
        path = c.path("/run/richinit/control.sock")
        rng = random.Random(11)
        for i in range(2000):
            s = connect(path)
            held.append(s)
            try:
                if i % 2:
                    s.send(b"stat")  # half a request, never finished
            except OSError:
                pass  # pushed out already
            if i % 250 == 0:
                c.alive()
        big = connect(path)
        try:
            big.setblocking(True)
            big.settimeout(10)
            big.sendall(b"A" * (1 << 20))  # 1 MiB without a newline
        except OSError:
            pass  # refused once over the limit: the connection is closed under us
        big.close()
        for _ in range(20):  # binary junk, with and without newlines
            s = connect(path)
            try:
                s.send(bytes(rng.getrandbits(8) for _ in range(4096)))
            except OSError:
                pass
            held.append(s)
        st = c.alive()
        assert st["phase"] == "running"
        assert "control socket: out of file descriptors" in c.log()
        r = subprocess.run(["runc", "exec", c.cid, sys.executable, "-m", "richinit.ctl", "status"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "s00" in r.stdout, r.stderr
        record("control socket: 2000 connections, junk, RLIMIT_NOFILE 64", c)
    finally:
        for s in held:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    rc, took = c.stop()
    assert rc == 5, c.log()
    assert took < GRACE + KILL_GRACE + 3
