"""A test child that runs under the real richinit and reports what happens to it.

It writes one line per event to the report file REPORT (opened O_APPEND, so lines
from several processes interleave whole): "ready PID", "sig N PID", "status KEY VALUE".
Usage: python child.py REPORT MODE [ARGS...]

Modes:
  signals          catch every catchable signal except CHLD, report each, exit 0 on TERM
  ignore-term      ignore SIGTERM, report ready, sleep forever
  daemon           double-fork a daemon that traps TERM (reports it) and sleeps; the middle exits
  orphans N        fork N grandchildren that wait on a barrier FIFO (ARGS[1]), then exit together
  group-usr1       ignore USR1 itself; a child in the same process group reports USR1
"""

import os
import signal
import sys
import time


def say(report, line):
    fd = os.open(report, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def sleep_forever():
    while True:
        time.sleep(3600)


def main():
    report, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    me = os.getpid()
    if mode == "signals":
        def handler(sig, frame):
            say(report, "sig %d %d" % (sig, me))
            if sig == signal.SIGTERM:
                os._exit(0)
        for s in range(1, 32):
            if s in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
                continue
            signal.signal(s, handler)
        say(report, "ready %d" % me)
        sleep_forever()
    elif mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say(report, "ready %d" % me)
        sleep_forever()
    elif mode == "daemon":
        if os.fork() == 0:
            os.setsid()
            middle = os.getpid()
            if os.fork() == 0:
                # Report only once the middle process is gone and we were reparented.
                for _ in range(500):
                    if os.getppid() != middle:
                        break
                    time.sleep(0.01)

                def on_term(sig, frame):
                    say(report, "daemon-term %d" % os.getpid())
                    os._exit(0)
                signal.signal(signal.SIGTERM, on_term)
                say(report, "daemon %d ppid %d" % (os.getpid(), os.getppid()))
                sleep_forever()
            os._exit(0)
        say(report, "ready %d" % me)
        sleep_forever()
    elif mode == "orphans":
        n, barrier = int(args[0]), args[1]
        for _ in range(n):
            if os.fork() == 0:
                # Grandchild: its parent (us) exits below, so it is reparented to
                # PID 1; it blocks until the harness closes the barrier.
                if os.fork() == 0:
                    # O_NONBLOCK: a blocking open would wait for ever for a writer if the harness
                    # closed the barrier before this grandchild got here; read() then sees EOF.
                    fd = os.open(barrier, os.O_RDONLY | os.O_NONBLOCK)
                    os.set_blocking(fd, True)
                    os.read(fd, 1)
                    os._exit(0)
                os._exit(0)
        say(report, "ready %d" % me)
        sleep_forever()
    elif mode == "group-usr1":
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGUSR1, lambda s, f: (say(report, "grandchild-usr1 %d" % os.getpid()),
                                                        os._exit(0)))
            say(report, "grandchild %d" % os.getpid())
            sleep_forever()
        say(report, "ready %d" % me)
        os.waitpid(pid, 0)
        sleep_forever()
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()
