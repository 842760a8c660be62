"""The one place PID 1 blocks: epoll over a signal wakeup pipe and other fds.

Signal handlers do no work: the C-level handler writes the signal number into a
pipe (signal.set_wakeup_fd) and the Python-level handler is a no-op. The loop
reads the numbers and hands them to the state machine in order, then drains
waitpid. select() gets a timeout only when a timer is due, so an idle PID 1
never wakes up. (select.epoll directly: the selectors module pulls in collections
and math, about 0.3 MB PID 1 does not need.)
"""

import _signal as signal  # not the enum-heavy package: see signals.py
import os
import select
import time

from richinit import log
from richinit.signals import catchable

_READ = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
_WRITE = select.EPOLLOUT | select.EPOLLERR


def _noop(signum, frame):
    pass


class Loop:
    def __init__(self):
        self.ep = select.epoll()
        self.readers, self.writers = {}, {}  # fd -> callback(fd)
        self.masks = {}  # fd -> the events registered with epoll
        self.rfd, self.wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.ep.register(self.rfd, select.EPOLLIN)
        self.components = []  # objects with next_deadline() / on_timer(now)
        signal.set_wakeup_fd(self.wfd, warn_on_full_buffer=False)
        for sig in catchable():
            try:
                signal.signal(sig, _noop)
            except (OSError, ValueError):
                pass

    def add_reader(self, fd, callback):
        """callback(fd) when fd has data, an end of file or an error."""
        self.readers[fd] = callback
        self._watch(fd)

    def add_writer(self, fd, callback):
        """callback(fd) when fd can take data (or has an error)."""
        self.writers[fd] = callback
        self._watch(fd)

    def remove_reader(self, fd):
        if self.readers.pop(fd, None) is not None:
            self._watch(fd)

    def remove_writer(self, fd):
        if self.writers.pop(fd, None) is not None:
            self._watch(fd)

    def _watch(self, fd):
        mask = (select.EPOLLIN if fd in self.readers else 0) | (select.EPOLLOUT if fd in self.writers else 0)
        try:
            if not mask:
                self.masks.pop(fd, None)
                self.ep.unregister(fd)
            elif fd in self.masks:
                self.ep.modify(fd, mask)
            else:
                self.ep.register(fd, mask)
            if mask:
                self.masks[fd] = mask
        except OSError:  # unregistering an fd closed already: the kernel dropped it with the close
            pass

    def _pending_signals(self):
        out = []
        while True:
            try:
                data = os.read(self.rfd, 512)
            except BlockingIOError:
                return out
            if not data:
                return out
            out.extend(data)

    def _guard(self, what, fn, *args):
        """Run one handler; an exception in our own logic is logged, never fatal."""
        try:
            fn(*args)
        except Exception:
            log.exception("internal error in %s (survived)", what)

    def run(self, init, ops):
        """Dispatch events to `init` until it reaches DONE; returns its exit code."""
        self._reap(init, ops)
        while init.phase != "done":
            try:
                deadline = init.deadline
                timeout = -1 if deadline is None else max(0.0, deadline - ops.now())
                for fd, ev in self.ep.poll(timeout):
                    if fd == self.rfd:
                        for sig in self._pending_signals():
                            self._guard("signal %d" % sig, init.on_signal, sig)
                        continue
                    # An earlier callback may have removed either.
                    if ev & _READ and fd in self.readers:
                        self._guard("fd %d" % fd, self.readers[fd], fd)
                    if ev & _WRITE and fd in self.writers:
                        self._guard("fd %d" % fd, self.writers[fd], fd)
                if init.deadline is not None and ops.now() >= init.deadline:
                    self._guard("timer", init.on_timer, ops.now())
                self._reap(init, ops)
                self._guard("heal", init.heal)
            except Exception:
                # The loop itself must outlive its own bugs; the state machine is
                # unchanged by a failed iteration, so the next one retries.
                log.exception("internal error in the main loop (survived)")
                time.sleep(0.05)  # never spin if the same failure repeats
        return init.exit_code

    def _reap(self, init, ops):
        while True:
            exited, none_left = ops.reap()
            for pid, code in exited:
                self._guard("exit of %d" % pid, init.on_exit, pid, code)
            if none_left:
                self._guard("no children", init.on_no_children)
            if not exited or none_left:
                return
