"""Where a service's output goes (the container's stdout, a log file, syslog), written without waiting.

PID 1 never blocks on a write. Each destination takes what it can now; the rest waits in a bounded
buffer or is dropped, oldest first, and counted per name. Once the destination takes data again,
one line says how much was lost: `[richinit] N bytes of NAME's output dropped`.

Outlet: one of PID 1's stdio fds (1 for services' `log: stdout`, 2 for PID 1's own log lines).
It writes through a private open file description of the same pipe or terminal, reopened through
/proc/self/fd/N with O_NONBLOCK, so the fd the app shares keeps its own (blocking) flags. A socket
is written with MSG_DONTWAIT (a socket cannot be reopened); a regular file or a device that is not
a terminal (/dev/null, /dev/full) directly. A pipe or terminal that cannot be reopened (owned by a
user outside the container's user namespace, no /proc) goes through a pump: a child forked from
PID 1 that does the blocking writes, fed through a non-blocking pipe.

FileLog (`log: {file: PATH}`) appends with size rotation; a full disk (ENOSPC, EDQUOT, EFBIG)
drops and counts. Syslog (`log: syslog`) sends datagrams to /dev/log from one non-blocking socket:
a full queue drops and counts; no syslogd at all sends the lines to the container's stdout.
"""

import _signal as signal  # not the enum-heavy package: see signals.py
import _socket as socket  # the C module: socket.py's enums would cost PID 1 memory
import os
from _collections import deque

from richinit import log

LIMIT = 256 * 1024  # bytes an Outlet holds for a sink that does not take them
DROPPED = "[richinit] %d bytes of %s's output dropped\n"
_FULL = (28, 122, 27)  # ENOSPC, EDQUOT, EFBIG: the disk, not the sink, is the problem
_PIPE = frozenset({signal.SIGPIPE})


def _pump(limit):
    """In the pump child: copy fd 0 to fd 1, blocking as long as the destination wants."""
    while True:
        try:
            data = os.read(0, limit)
        except InterruptedError:
            continue
        if not data:
            return 0
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(1, view):]
            except InterruptedError:
                continue
            except OSError:
                return 0


def writable(fd, reopen=True):
    """(fd, how) to write what `fd` is without blocking and without changing `fd`'s flags.

    how: "reopened" (our own O_NONBLOCK open file description), "socket" (a duplicate, sent with
    MSG_DONTWAIT), "direct" (a duplicate: a regular file or a device that never waits), "pump"
    (a pipe or terminal that could not be reopened: the caller needs a pump), "closed" (nothing
    there, or a pipe nobody will ever read).
    """
    try:
        st = os.fstat(fd)
    except OSError:
        return None, "closed"
    kind = st.st_mode & 0o170000
    if kind == 0o140000:
        return os.dup(fd), "socket"
    if kind == 0o100000 or (kind == 0o020000 and not os.isatty(fd)):
        return os.dup(fd), "direct"
    if reopen:
        try:
            return os.open("/proc/self/fd/%d" % fd, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC), \
                "reopened"
        except OSError as e:
            if e.errno == 6:  # ENXIO: a pipe without a reader
                return None, "closed"
            log.info("fd %d cannot be reopened (%s): written through a helper process", fd, e.strerror or e)
    return None, "pump"


class Outlet:
    """A bounded, non-blocking writer to one of PID 1's stdio fds (see the module doc)."""

    def __init__(self, fd, loop=None, limit=LIMIT, reopen=True):
        self.loop, self.limit, self.target = loop, limit, fd
        self.chunks = deque()  # (name, bytes): what the sink has not taken yet, oldest first
        self.size = 0
        self.head = 0          # bytes of chunks[0] written already (never dropped: the line would tear)
        self.dropped = {}      # name -> bytes dropped since the sink last drained
        self.waiting = False   # registered with the loop for "writable"
        self.sock = self.pump = None
        self.fd, self.how = writable(fd, reopen)
        if self.how == "socket":
            self.sock = socket.socket(fileno=self.fd)
        elif self.how == "pump":
            self._start_pump()
        if self.how == "closed" and fd != 2:
            log.warning("fd %d of richinit leads nowhere: services' output to it is dropped", fd)

    def _start_pump(self):
        from richinit.spawn import spawn_call
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        try:
            self.pump = spawn_call(_pump, (65536,), stdio=(rfd, self.target, 2), title="richinit-output %d"
                                   % self.target)
            os.set_blocking(wfd, False)  # our end only: the pump's end blocks as usual
            self.fd, self.how = wfd, "pump"
        except Exception as e:
            os.close(wfd)
            self.fd, self.how = None, "closed"
            log.warning("cannot start a writer for fd %d: %s", self.target, e)
        finally:
            os.close(rfd)

    def attach(self, loop):
        """Wait for a blocked sink through `loop` from now on (without a loop: retry on each write)."""
        self.loop = loop
        if self.chunks and not self.waiting:
            self.flush()

    def write(self, name, data):
        """Queue `data` (whole lines) for the sink; drop the oldest queued data beyond the limit."""
        if self.fd is None:
            return
        self.chunks.append((name, data))
        self.size += len(data)
        while self.size > self.limit:
            i = 1 if self.head else 0  # a half-written chunk stays: the line would tear
            if i >= len(self.chunks):
                break
            old, lost = self.chunks[i]
            del self.chunks[i]
            self.size -= len(lost)
            self.dropped[old] = self.dropped.get(old, 0) + len(lost)
        if not self.waiting:
            self.flush()

    def _send(self, view):
        if self.sock is not None:
            return self.sock.send(view, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        if self.how == "direct":
            return os.write(self.fd, view)
        # A pipe whose reader is gone raises SIGPIPE in us: kept pending here and consumed, so
        # it is not taken for a signal someone sent (and forwarded to the app).
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _PIPE)
        try:
            return os.write(self.fd, view)
        except BrokenPipeError:
            if signal.SIGPIPE in signal.sigpending():
                signal.sigtimedwait(_PIPE, 0)
            raise
        finally:
            if signal.SIGPIPE not in old:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def flush(self, fd=None):
        """Write what the sink takes now; wait for it to become writable if it takes less."""
        while self.chunks:
            name, data = self.chunks[0]
            try:
                n = self._send(memoryview(data)[self.head:])
            except (BlockingIOError, InterruptedError):
                return self._wait(True)
            except OSError as e:
                if e.errno in _FULL and self.how == "direct":
                    self.chunks.popleft()
                    self.size -= len(data) - self.head
                    self.dropped[name] = self.dropped.get(name, 0) + len(data) - self.head
                    self.head = 0
                    continue
                return self._gone(e)
            self.head += n
            if self.head >= len(data):
                self.chunks.popleft()
                self.size -= len(data)
                self.head = 0
            if self.dropped and self.size <= self.limit // 2 and not self.head:
                self._tell_dropped()
        self._wait(False)

    def _tell_dropped(self):
        for name, n in reversed(self.dropped.items()):
            line = (DROPPED % (n, name)).encode("utf-8", "replace")
            self.chunks.appendleft(("richinit", line))
            self.size += len(line)
        self.dropped = {}

    def _wait(self, on):
        if on == self.waiting or self.loop is None or self.fd is None:
            return
        self.waiting = on
        if on:
            self.loop.add_writer(self.fd, self.flush)
        else:
            self.loop.remove_writer(self.fd)

    def _gone(self, e):
        """The sink is gone for good (EPIPE, a hung-up terminal): drop everything from now on."""
        self._wait(False)
        self.chunks.clear()
        self.size = self.head = 0
        self.dropped = {}
        if self.sock is not None:
            self.sock.close()
        else:
            os.close(self.fd)
        self.fd = self.sock = None
        self.how = "closed"
        if self.target != 2:
            log.warning("fd %d of richinit is gone (%s): services' output to it is dropped", self.target,
                        e.strerror or e)

    def close(self):
        """One last attempt (without waiting), then let go of the fd."""
        if self.fd is None:
            return
        self._wait(False)
        loop, self.loop = self.loop, None
        self.flush()
        self.loop = loop
        if self.sock is not None:
            self.sock.close()
        elif self.fd is not None:
            os.close(self.fd)
        self.fd = self.sock = None


_outlets = {}  # fd -> the Outlet of PID 1's stdout (services' output)


def outlet(fd, loop):
    """The one Outlet for PID 1's `fd`, created on first use."""
    out = _outlets.get(fd)
    if out is None:
        out = _outlets[fd] = Outlet(fd, loop)
    return out


class FileLog:
    """`log: {file: PATH, max_size, keep}`: appended line batches, rotated by size; a full disk drops."""

    def __init__(self, name, spec):
        self.name, self.path = name, spec.path
        self.limit, self.keep = spec.max_size, spec.keep or 0
        self.dropped = 0

    def _rotate(self, path, incoming):
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return
        if size + incoming <= self.limit:
            return
        for i in range(self.keep - 1, 0, -1):
            try:
                os.replace("%s.%d" % (path, i), "%s.%d" % (path, i + 1))
            except FileNotFoundError:
                pass
        if self.keep:
            os.replace(path, path + ".1")
        else:
            os.unlink(path)

    def write(self, data):
        """Append `data` (whole lines), after the note of what was dropped if the disk was full."""
        note = (DROPPED % (self.dropped, self.name)).encode("utf-8", "replace") if self.dropped else b""
        view = memoryview(note + data)
        fd = None
        try:
            if self.limit:
                self._rotate(self.path, len(data))
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o640)
            while view:
                view = view[os.write(fd, view):]
        except OSError as e:
            if not self.dropped:
                log.warning("%s: log file %s: %s: lines are dropped until it takes data again", self.name,
                            self.path, e.strerror or e)
            noted = len(note) + len(data) - len(view) >= len(note)
            self.dropped = (0 if noted else self.dropped) + min(len(data), len(view))
            return
        finally:
            if fd is not None:
                os.close(fd)
        if self.dropped:
            log.info("%s: log file %s takes data again", self.name, self.path)
            self.dropped = 0


class Syslog:
    """`log: syslog`: one datagram per line to /dev/log (daemon.info), never waiting for the reader."""

    PATH = "/dev/log"

    def __init__(self, name, fallback):
        self.name, self.fallback = name, fallback  # fallback(lines): no syslogd to send to
        self.tag = b"<30>" + name.encode() + b": "
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, 0)
        self.dropped = 0

    def write(self, lines):
        send, tag, path = self.sock.sendto, self.tag, self.PATH
        for i, line in enumerate(lines):
            try:
                if self.dropped:
                    send(b"<28>" + self.tag[4:] + (DROPPED % (self.dropped, self.name)).encode().rstrip(), path)
                    self.dropped = 0
                send(tag + line, path)
            except (BlockingIOError, InterruptedError):  # syslogd's queue is full
                self.dropped += sum(len(x) + 1 for x in lines[i:])
                return
            except OSError:  # no syslogd (yet): the container's stdout, as before it runs
                self.fallback(lines[i:])
                return

    def close(self):
        self.sock.close()


class OutputSink:
    """A service's stdout+stderr: a pipe PID 1 reads; lines kept for `richctl logs` and sent on."""

    RING = 200  # lines kept for `richctl logs`

    def __init__(self, mgr, name, spec_log):
        self.mgr, self.name, self.spec = mgr, name, spec_log
        self.rfd, self.wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.set_blocking(self.wfd, True)  # the writer (the service) blocks as usual
        self.partial = b""
        self.ring = []
        self.followers = []
        self.prefix = b"[" + name.encode() + b"] "
        kind = spec_log.kind
        self.dest = FileLog(name, spec_log) if kind == "file" else \
            Syslog(spec_log.identifier or name, self._to_stdout) if kind == "syslog" else None  # SyslogIdentifier=
        self.out = outlet(1, mgr.loop) if kind in ("stdout", "syslog") else None
        mgr.loop.add_reader(self.rfd, self._readable)

    def _readable(self, fd):
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            return
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > 8192:  # a line without end: cut it
            lines.append(self.partial)
            self.partial = b""
        if lines:
            self._lines(lines)

    def _lines(self, lines):
        texts = [line.decode("utf-8", "replace") for line in lines[-self.RING:]]
        self.ring.extend(texts)
        del self.ring[:-self.RING]
        if self.followers:
            texts = texts if len(texts) == len(lines) else [line.decode("utf-8", "replace") for line in lines]
            for f in list(self.followers):
                for text in texts:
                    f(text)
        kind = self.spec.kind
        if kind == "stdout":
            self._to_stdout(lines)
        elif kind == "file":
            self.dest.write(b"\n".join(lines) + b"\n")
        elif kind == "syslog":
            self.dest.write(lines)

    def _to_stdout(self, lines):
        p = self.prefix
        self.out.write(self.name, p + (b"\n" + p).join(lines) + b"\n")

    def close(self):
        self._readable(self.rfd)
        self.mgr.loop.remove_reader(self.rfd)
        if isinstance(self.dest, Syslog):
            self.dest.close()
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass
