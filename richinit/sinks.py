"""Where a service's output goes: the container's stdout, a log file or syslog."""

import _socket as socket  # the C module: socket.py's enums would cost PID 1 memory
import os

from richinit import log


class OutputSink:
    """A service's stdout+stderr: a pipe PID 1 reads, lines prefixed `[name] ` or written to a file."""

    RING = 200  # lines kept for `richctl logs`

    def __init__(self, mgr, name, spec_log):
        self.mgr, self.name, self.spec = mgr, name, spec_log
        self.rfd, self.wfd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        os.set_blocking(self.wfd, True)  # the writer (the service) blocks as usual
        self.partial = b""
        self.ring = []
        self.followers = []
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
        for line in lines:
            self._line(line)

    def _line(self, line):
        text = line.decode("utf-8", "replace")
        self.ring.append(text)
        del self.ring[:-self.RING]
        kind = self.spec.kind
        if kind == "file":
            self._to_file(line)
        elif kind == "syslog":
            self._to_syslog(line)
        elif kind == "stdout":
            try:
                os.write(1, b"[" + self.name.encode() + b"] " + line + b"\n")
            except OSError:
                pass
        for f in list(self.followers):
            f(text)

    def _to_file(self, line):
        path, limit, keep = self.spec.path, self.spec.max_size, self.spec.keep or 0
        try:
            if limit and os.path.exists(path) and os.path.getsize(path) + len(line) + 1 > limit:
                for i in range(keep - 1, 0, -1):
                    if os.path.exists("%s.%d" % (path, i)):
                        os.replace("%s.%d" % (path, i), "%s.%d" % (path, i + 1))
                if keep:
                    os.replace(path, path + ".1")
                else:
                    os.unlink(path)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
            try:
                os.write(fd, line + b"\n")
            finally:
                os.close(fd)
        except OSError as e:
            log.warning("%s: log file %s: %s", self.name, path, e.strerror)

    def _to_syslog(self, line):
        msg = b"<30>" + self.name.encode() + b": " + line  # daemon.info
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0)
            try:
                s.sendto(msg, "/dev/log")
            finally:
                s.close()
        except OSError:
            os.write(1, b"[" + self.name.encode() + b"] " + line + b"\n")

    def close(self):
        self._readable(self.rfd)
        self.mgr.loop.remove_reader(self.rfd)
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass
