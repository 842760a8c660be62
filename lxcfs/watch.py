"""The re-binding watcher: after lxcfs or our view server restarts, re-bind every registered running
container's views inside its mount namespace, so "Transport endpoint is not connected" lasts only
for the gap (well under the 2 s target).

It sleeps in poll(POLLPRI) on /proc/self/mountinfo, which the kernel wakes on every mount-table
change (a FUSE server mounting again is one), and also re-checks once a second. It binds at once
after the change: the kernel holds every request to a fresh FUSE mount until the server has
answered INIT, so there is nothing to wait for. A container is
re-bound when the generation of its backend mount (detect.generation: the unique mount id)
differs from the one its views were bound from (recorded by register(), then by us). A container
registered without its init's pid (rich run) is found by its rootfs (lxcfs.locate.init_by_scan).
Single-threaded on purpose: bind_into forks.

    python -m lxcfs.watch [--registry DIR] [--mount DIR] [--pidfile FILE] [--daemon] [--log FILE]
"""

import argparse
import logging
import os
import select
import sys

from lxcfs import bind, detect, locate, pidlock, registry, server

log = logging.getLogger("lxcfs.watch")


class Watcher:
    def __init__(self, registry_dir, proc="/proc", bind_fn=None):
        self.registry_dir, self.proc = registry_dir, proc
        self.bind_fn = bind_fn or bind.bind_into
        self.bound = {}  # id -> mount id its views were last bound from
        self.failed = {}  # id -> (mount id, errno) of the last failure, to log once
        self.found = {}  # id -> init pid found by its rootfs (entries registered without a pid)
        self.found_start = {}  # id -> that init's start time

    def pass_once(self):
        """One reconciliation; returns the ids re-bound."""
        gens = {}  # (mountpoint, fstype) -> detect.generation, computed once per pass
        done = []
        for cid, e in registry.read_all(self.registry_dir).items():
            if not (e.get("pid") or e.get("root")) or not e.get("mount"):
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
            pid, pid_start = e.get("pid"), e.get("pid_start")
            if not pid:
                # Registered by its rootfs only (rich run): find the init now that it is needed.
                pid = self.found.get(cid) or locate.init_by_scan(e["root"], self.proc)
                if pid is None:
                    continue  # not started yet, or gone
                self.found[cid] = pid
                pid_start = self.found_start.setdefault(cid, bind.start_ticks(pid, self.proc))
            if bind.start_ticks(pid, self.proc) != pid_start:
                self.found.pop(cid, None)
                self.found_start.pop(cid, None)
                continue  # the container's init is gone; its poststop will unregister it
            try:
                self.bind_fn(pid, e["source"], pid_start=pid_start)
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
        for table in (self.bound, self.found, self.found_start):
            for cid in list(table):
                if cid not in live:
                    del table[cid]
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
                poller.poll(1000)  # no settling sleep: see the module docstring
        finally:
            os.close(fd)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m lxcfs.watch", description=__doc__.split("\n\n")[0])
    p.add_argument("--registry", default=registry.DEFAULT_DIR)
    p.add_argument("--mount", default=server.DEFAULT_MOUNT, help="our server's mount (for the record)")
    p.add_argument("--pidfile", default="/run/richinit/views-watch.pid")
    p.add_argument("--daemon", action="store_true")
    p.add_argument("--log", default=None)
    p.add_argument("--notify-fd", type=int, default=None, help="write a newline on this fd once watching")
    a = p.parse_args(argv)
    fd = pidlock.lock(a.pidfile)
    if fd is None:
        print("lxcfs.watch: already running (lock held on %s)" % a.pidfile, file=sys.stderr)
        return 0
    if a.daemon:
        server.daemonize(a.log, (fd,) + ((a.notify_fd,) if a.notify_fd is not None else ()))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s lxcfs.watch[%(process)d] %(levelname)s %(message)s")
    pidlock.write_pid(fd)
    log.info("watching %s", a.registry)
    server.notify(a.notify_fd)
    try:
        Watcher(a.registry).run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

