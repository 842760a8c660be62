"""The re-binding watcher: after lxcfs or our view server restarts, re-bind every registered running
container's views inside its mount namespace, so "Transport endpoint is not connected" lasts only
for the gap (well under the 2 s target).

It sleeps in poll(POLLPRI) on /proc/self/mountinfo, which the kernel wakes on every mount-table
change (a FUSE server mounting again is one), and also re-checks once a second. A container is
re-bound when the generation of its backend mount (detect.generation: the unique mount id)
differs from the one its views were bound from (recorded by register(), then by us).
Single-threaded on purpose: bind_into forks.

    python -m lxcfs.watch [--registry DIR] [--mount DIR] [--pidfile FILE] [--daemon] [--log FILE]
"""

import argparse
import fcntl
import logging
import os
import select
import sys
import time

from lxcfs import bind, detect, registry, server

log = logging.getLogger("lxcfs.watch")


class Watcher:
    def __init__(self, registry_dir, proc="/proc", bind_fn=None):
        self.registry_dir, self.proc = registry_dir, proc
        self.bind_fn = bind_fn or bind.bind_into
        self.bound = {}  # id -> mount id its views were last bound from
        self.failed = {}  # id -> (mount id, errno) of the last failure, to log once

    def pass_once(self):
        """One reconciliation; returns the ids re-bound."""
        gens = {}  # (mountpoint, fstype) -> detect.generation, computed once per pass
        done = []
        for cid, e in registry.read_all(self.registry_dir).items():
            if not e.get("pid") or not e.get("mount"):
                continue
            key = (e["mount"], e.get("fstype"))
            if key not in gens:
                gens[key] = detect.generation(*key, proc=self.proc)
            mid = gens[key]
            if mid is None:
                continue  # the backend is down: nothing to bind from yet
            last = self.bound.get(cid, e.get("mnt_id"))
            if last == mid:
                continue
            if bind.start_ticks(e["pid"], self.proc) != e.get("pid_start"):
                continue  # the container's init is gone; its poststop will unregister it
            try:
                self.bind_fn(e["pid"], e["source"], pid_start=e.get("pid_start"))
            except OSError as err:
                if self.failed.get(cid) != (mid, err.errno):
                    log.warning("%s: re-binding views failed: %s", cid, err)
                    self.failed[cid] = (mid, err.errno)
                continue
            self.bound[cid] = mid
            self.failed.pop(cid, None)
            done.append(cid)
            log.info("%s: views re-bound from %s (mount %s)", cid, e["source"], mid)
        live = set(registry.read_all(self.registry_dir))
        for cid in list(self.bound):
            if cid not in live:
                del self.bound[cid]
        return done

    def run(self, stop=lambda: False):
        fd = os.open(self.proc + "/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        try:
            while not stop():
                os.lseek(fd, 0, os.SEEK_SET)
                while os.read(fd, 65536):  # reading to the end re-arms the notification
                    pass
                try:
                    self.pass_once()
                except Exception:
                    log.exception("watch pass failed")
                poller.poll(1000)
                time.sleep(0.05)  # let a just-mounted FUSE server finish its init before we bind
        finally:
            os.close(fd)


def running(pidfile):
    """True when some watcher holds the lock on pidfile."""
    try:
        fd = os.open(pidfile, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m lxcfs.watch", description=__doc__.split("\n\n")[0])
    p.add_argument("--registry", default=registry.DEFAULT_DIR)
    p.add_argument("--mount", default=server.DEFAULT_MOUNT, help="our server's mount (for the record)")
    p.add_argument("--pidfile", default="/run/richinit/views-watch.pid")
    p.add_argument("--daemon", action="store_true")
    p.add_argument("--log", default=None)
    a = p.parse_args(argv)
    fd = server._lock_pidfile(a.pidfile)
    if fd is None:
        print("lxcfs.watch: already running (lock held on %s)" % a.pidfile, file=sys.stderr)
        return 0
    if a.daemon:
        server._daemonize(a.log)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s lxcfs.watch[%(process)d] %(levelname)s %(message)s")
    server._write_pid(fd)
    log.info("watching %s", a.registry)
    try:
        Watcher(a.registry).run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

