"""Built-in syslog: a /dev/log listener writing traditional lines to /var/log/messages.

    python -m richinit.builtin.syslogd [--socket /dev/log] [--file /var/log/messages]
        [--max-size 10M] [--keep 5] [--stream-socket PATH] [-o stdout] [--notify-fd N]

- Messages: RFC 3164 (what glibc's syslog(3), busybox and util-linux logger send to
  /dev/log, with or without a host name) and RFC 5424. Anything else is logged as is,
  under the sender's priority if it has one; a bad datagram never stops the daemon.
- Lines: `Mmm dd HH:MM:SS HOST TAG[PID]: MSG`, control characters escaped as #ooo
  (rsyslog's convention) so one message is one line. The time is the message's own
  (it was stamped when the event happened), the receive time when it has none.
- Rotation by size: messages -> messages.1 -> ... -> messages.KEEP (dropped after).
  SIGHUP reopens the file (for an external logrotate).
- Stop (SIGTERM/SIGINT): every datagram already queued on the socket is read and
  written, the file fsynced, exit 0: nothing accepted by the kernel is lost.
- Readiness: with --notify-fd N, "\\n" is written to fd N once the sockets are bound
  (s6's notification-fd protocol), then N is closed.
- Signals do no work: set_wakeup_fd + a selector; the loop does the rest.
"""

import datetime
import os
import re
import selectors
import signal
import socket
import sys
import time

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
              "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
              "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7")
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
MAX_DATAGRAM = 65536
MAX_STREAM_CLIENTS = 64
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PRI = re.compile(rb"^<(\d{1,3})>")
_3164_TS = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ \d]\d) (\d\d):(\d\d):(\d\d) ")
_5424_HEAD = re.compile(r"^1 (\S+) (\S+) (\S+) (\S+) (\S+) ")
_TAG = re.compile(r"^([^\s\[\]:<>]{1,48})(?:\[([^\]\s]{1,32})\])?: ?")
_TIME_QUALITY = re.compile(r'\[timeQuality(?: [^\]"]*="(?:[^"\\]|\\.)*")*\]')
_CTRL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Record:
    """One parsed message. time: epoch seconds or None; pid/host/tag: str or None."""

    __slots__ = ("facility", "severity", "time", "host", "tag", "pid", "msgid", "sd", "msg", "format")

    def __init__(self, facility=1, severity=5, time=None, host=None, tag=None, pid=None, msgid=None,
                 sd=None, msg="", format="raw"):
        self.facility, self.severity, self.time = facility, severity, time
        self.host, self.tag, self.pid, self.msgid, self.sd = host, tag, pid, msgid, sd
        self.msg, self.format = msg, format

    def __repr__(self):
        return "Record(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.__slots__)


def parse(data, now=None):
    """A datagram (bytes) -> Record. Never raises on hostile input."""
    now = time.time() if now is None else now
    data = data.rstrip(b"\0\n")
    m = _PRI.match(data)
    pri = None
    if m and int(m.group(1)) <= 191:
        pri = int(m.group(1))
        data = data[m.end():]
    text = data.decode("utf-8", "replace")
    rec = Record() if pri is None else Record(facility=pri >> 3, severity=pri & 7)
    if pri is not None and text.startswith("1 "):
        if _parse_5424(rec, text):
            return rec
    _parse_3164(rec, text, now)
    return rec


def _nil(v):
    return None if v == "-" else v


def _parse_5424(rec, text):
    m = _5424_HEAD.match(text)
    if not m:
        return False
    ts, host, app, procid, msgid = m.groups()
    when = None
    if ts != "-":
        when = _parse_rfc3339(ts)
        if when is None:
            return False
    rest = text[m.end():]
    sd, rest = _split_sd(rest)
    if sd is None:
        return False
    if rest.startswith(" "):
        rest = rest[1:]
    if rest.startswith("\ufeff"):  # the BOM RFC 5424 puts before a UTF-8 MSG
        rest = rest[1:]
    rec.time, rec.host, rec.tag, rec.pid, rec.msgid = when, _nil(host), _nil(app), _nil(procid), _nil(msgid)
    sd = _TIME_QUALITY.sub("", sd)  # logger's clock metadata: noise in a text log
    rec.sd, rec.msg, rec.format = (sd if sd not in ("-", "") else None), rest, "5424"
    return True


def _split_sd(text):
    """STRUCTURED-DATA at the start of text -> (sd, rest); (None, text) if malformed."""
    if text.startswith("-"):
        return "-", text[1:]
    if not text.startswith("["):
        return None, text
    i, n = 0, len(text)
    while i < n and text[i] == "[":
        i += 1
        quoted = False
        while i < n:
            c = text[i]
            if quoted and c == "\\":
                i += 2
                continue
            if c == '"':
                quoted = not quoted
            elif c == "]" and not quoted:
                break
            i += 1
        if i >= n:
            return None, text
        i += 1
    return text[:i], text[i:]


def _parse_rfc3339(ts):
    t = ts.replace("Z", "+00:00").replace("z", "+00:00")
    try:
        dt = datetime.datetime.fromisoformat(t)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return time.mktime(dt.timetuple()) + dt.microsecond / 1e6
    return dt.timestamp()


def _parse_3164(rec, text, now):
    rec.format = "3164"
    m = _3164_TS.match(text)
    if m:
        rec.time = _3164_time(m, now)
        text = text[m.end():]
    else:
        # Some senders (rsyslog's legacy format with high-precision dates) use RFC 3339 here.
        word, sp, rest = text.partition(" ")
        when = _parse_rfc3339(word) if sp and word[:1].isdigit() and "T" in word else None
        if when is not None:
            rec.time, text = when, rest
    # HOSTNAME is optional on /dev/log (glibc leaves it out, `logger --rfc3164` puts it in):
    # a first word that is not a tag but is followed by one is a host.
    if not _TAG.match(text):
        word, sp, rest = text.partition(" ")
        if sp and word and _TAG.match(rest) and not word.endswith(":"):
            rec.host, text = word, rest
    m = _TAG.match(text)
    if m:
        rec.tag, rec.pid = m.group(1), m.group(2)
        text = text[m.end():]
    rec.msg = text


def _3164_time(m, now):
    mon = _MONTHS.index(m.group(1)) + 1
    day, hh, mm, ss = int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5))
    cur = time.localtime(now)
    year = cur.tm_year
    # No year in RFC 3164: a December stamp received in January is last year's.
    if mon - cur.tm_mon > 6:
        year -= 1
    elif cur.tm_mon - mon > 6:
        year += 1
    try:
        return time.mktime((year, mon, day, hh, mm, ss, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def _escape(text):
    return _CTRL.sub(lambda m: "#%03o" % ord(m.group(0)), text)


def format_line(rec, hostname, received):
    """Record -> the traditional one-line form, ending in "\\n"."""
    tm = time.localtime(rec.time if rec.time is not None else received)
    stamp = "%s %2d %02d:%02d:%02d" % (_MONTHS[tm.tm_mon - 1], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
    parts = [stamp, _escape(rec.host or hostname)]
    if rec.tag:
        parts.append("%s[%s]:" % (_escape(rec.tag), _escape(rec.pid)) if rec.pid else _escape(rec.tag) + ":")
    msg = rec.msg
    if rec.sd:
        msg = rec.sd + (" " + msg if msg else "")
    parts.append(_escape(msg))
    return " ".join(parts) + "\n"


class RotatingFile:
    """Append-only file rotated by size: PATH, PATH.1 ... PATH.KEEP."""

    def __init__(self, path, max_bytes, keep):
        self.path, self.max_bytes, self.keep = path, max_bytes, keep
        self.fd = None
        self.size = 0
        self.open()

    def open(self):
        d = os.path.dirname(self.path)
        if d:
            os.makedirs(d, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def reopen(self):
        self.close()
        self.open()

    def write(self, data):
        if self.fd is None:  # an earlier reopen or rotation failed: try again, per message
            self.open()
        if self.max_bytes and self.size and self.size + len(data) > self.max_bytes:
            self.rotate()
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.size += n

    def rotate(self):
        try:
            os.fsync(self.fd)
        finally:
            self.close()
        if self.keep <= 0:
            os.unlink(self.path)
        else:
            for i in range(self.keep - 1, 0, -1):
                src = "%s.%d" % (self.path, i)
                if os.path.exists(src):
                    os.rename(src, "%s.%d" % (self.path, i + 1))
            os.rename(self.path, self.path + ".1")
        self.open()

    def sync(self):
        if self.fd is not None:
            try:
                os.fsync(self.fd)
            except OSError:
                pass  # nothing more we can do at exit; the data is in the page cache

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Syslogd:
    def __init__(self, out, hostname, echo_fd=None):
        self.out, self.hostname, self.echo_fd = out, hostname, echo_fd
        self.count = 0
        self.lost = 0

    def handle(self, data, received=None):
        received = time.time() if received is None else received
        try:
            line = format_line(parse(data, received), self.hostname, received).encode("utf-8", "replace")
        except Exception as e:  # a parser bug must not cost the message or the daemon
            line = ("%s %s syslogd: unparsable message (%s): %s\n" % (
                time.strftime("%b %e %H:%M:%S"), self.hostname, type(e).__name__,
                _escape(data.decode("utf-8", "replace")))).encode()
        try:
            self.out.write(line)
        except OSError as e:  # disk full, file removed under us...: keep serving, say so
            self.lost += 1
            if self.lost == 1 or self.lost % 1000 == 0:
                sys.stderr.write("richinit-syslogd: cannot write log (%s); %d message(s) lost\n"
                                 % (e.strerror, self.lost))
        if self.echo_fd is not None:
            try:
                os.write(self.echo_fd, line)
            except OSError:
                pass
        self.count += 1


def _bind_dgram(path):
    _unlink_stale(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    except OSError:
        pass
    s.bind(path)
    os.chmod(path, 0o666)  # every local user may log, as with any syslogd
    return s


def _bind_stream(path):
    _unlink_stale(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    s.bind(path)
    os.chmod(path, 0o666)
    s.listen(64)
    return s


def _unlink_stale(path):
    import stat

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(17, "%s exists and is not a socket" % path)
    os.unlink(path)


def _noop(signum, frame):
    pass


def _drain(sock, handler, limit=1000):
    """Read the datagrams queued on sock (at most `limit`: a flood must not starve signals)."""
    n = 0
    while n < limit:
        try:
            data = sock.recv(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return n
        handler.handle(data)
        n += 1
    return n


class _StreamConn:
    """A stream client: messages end in "\\n" or "\\0" (or are octet-counted, RFC 6587)."""

    def __init__(self, conn):
        self.conn, self.buf = conn, b""

    def feed(self, handler):
        """Read what is there; False when the peer has closed."""
        while True:
            try:
                data = self.conn.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                data = b""
            if not data:
                if self.buf.strip(b"\0\n"):
                    handler.handle(self.buf)
                self.buf = b""
                return False
            self.buf += data
            self._split(handler)
            if len(self.buf) > MAX_DATAGRAM:  # a line with no end: cut it, keep going
                handler.handle(self.buf)
                self.buf = b""

    def _split(self, handler):
        while self.buf:
            m = re.match(rb"^(\d{1,5}) <", self.buf)
            if m:
                n = int(m.group(1))
                if len(self.buf) < m.end() - 1 + n:
                    return
                start = m.end() - 1
                handler.handle(self.buf[start:start + n])
                self.buf = self.buf[start + n:]
                continue
            cut = min((i for i in (self.buf.find(b"\n"), self.buf.find(b"\0")) if i >= 0), default=-1)
            if cut < 0:
                return
            msg, self.buf = self.buf[:cut], self.buf[cut + 1:]
            if msg:
                handler.handle(msg)


def serve(sock_path, out, hostname, *, stream_path=None, echo_fd=None, notify_fd=None):
    """Run until SIGTERM/SIGINT; returns the exit code."""
    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _noop)
    handler = Syslogd(out, hostname, echo_fd)
    dgram = _bind_dgram(sock_path)
    stream = _bind_stream(stream_path) if stream_path else None
    sel = selectors.DefaultSelector()
    sel.register(rfd, selectors.EVENT_READ, "signal")
    sel.register(dgram, selectors.EVENT_READ, "dgram")
    if stream is not None:
        sel.register(stream, selectors.EVENT_READ, "accept")
    if notify_fd is not None:
        try:
            os.write(notify_fd, b"\n")
            os.close(notify_fd)
        except OSError as e:
            sys.stderr.write("syslogd: notification fd %d: %s\n" % (notify_fd, e.strerror))
    conns = {}
    accepting = True
    stopping = False
    while not stopping:
        other_activity = False
        for key, _ in sel.select():
            what = key.data
            if what == "dgram":
                _drain(dgram, handler)
                other_activity = True
            elif what == "signal":
                for sig in _read_signals(rfd):
                    if sig == signal.SIGHUP:
                        try:
                            out.reopen()
                        except OSError as e:
                            sys.stderr.write("richinit-syslogd: reopen: %s\n" % e)
                    else:
                        stopping = True
            elif what == "accept":
                try:
                    conn, _ = stream.accept()
                except OSError:
                    conn = None
                if conn is not None:
                    conn.setblocking(False)
                    conns[conn.fileno()] = _StreamConn(conn)
                    sel.register(conn, selectors.EVENT_READ, "conn")
                if conn is None or len(conns) >= MAX_STREAM_CLIENTS:
                    sel.unregister(stream)  # out of fds or clients: pause accepting, do not spin
                    accepting = False
            else:
                c = conns[key.fd]
                if not c.feed(handler):
                    sel.unregister(c.conn)
                    c.conn.close()
                    del conns[key.fd]
                    other_activity = True
        # Accepting resumes once a client left or other work came in, so a persistent
        # EMFILE costs one retry per event, not a spin.
        if not accepting and other_activity and len(conns) < MAX_STREAM_CLIENTS:
            sel.register(stream, selectors.EVENT_READ, "accept")
            accepting = True
    # Clean stop: what the kernel already queued for us is ours to write. The queue holds
    # net.unix.max_dgram_qlen datagrams plus what blocked senders push as it empties; the
    # cap only matters against a sender flooding us forever.
    _drain(dgram, handler, limit=100000)
    if stream is not None:  # clients still in the listen backlog have sent their lines too
        for _ in range(1024):
            try:
                conn, _ = stream.accept()
            except OSError:
                break
            conn.setblocking(False)
            conns[conn.fileno()] = _StreamConn(conn)
    for c in conns.values():
        c.feed(handler)
        if c.buf.strip(b"\0\n"):
            handler.handle(c.buf)
    out.sync()
    out.close()
    for path in (sock_path, stream_path):
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass
    return 0


def _read_signals(rfd):
    out = []
    while True:
        try:
            data = os.read(rfd, 64)
        except BlockingIOError:
            return out
        if not data:
            return out
        out.extend(data)


def parse_size(text):
    t = text.strip().upper()
    mult = 1
    for suffix, m in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
        if t.endswith(suffix):
            t, mult = t[:-1], m
            break
    if not t.isdigit():
        raise ValueError("bad size %r (e.g. 512K, 10M)" % text)
    return int(t) * mult


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(prog="richinit-syslogd", description="richinit's built-in /dev/log listener")
    ap.add_argument("--socket", default="/dev/log", help="datagram socket to bind (default /dev/log)")
    ap.add_argument("--stream-socket", help="also accept a unix stream socket (newline/NUL/octet framed)")
    ap.add_argument("--file", default="/var/log/messages", help="log file (default /var/log/messages)")
    ap.add_argument("--max-size", default="10M", help="rotate when the file would exceed this (0: never)")
    ap.add_argument("--keep", type=int, default=5, help="rotated files to keep (default 5)")
    ap.add_argument("-o", "--output", choices=("file", "stdout", "both"), default="file",
                    help="write lines to the file, stdout, or both")
    ap.add_argument("--hostname", help="host name for messages without one (default: uname)")
    ap.add_argument("--notify-fd", type=int, help="write a newline to this fd once ready (s6 protocol)")
    a = ap.parse_args(argv)
    try:
        max_bytes = parse_size(a.max_size)
    except ValueError as e:
        ap.error(str(e))
    if a.keep < 0:
        ap.error("--keep must be >= 0")
    hostname = a.hostname or socket.gethostname().split(".")[0] or "localhost"
    echo = 1 if a.output in ("stdout", "both") else None
    out = _NullFile()
    if a.output != "stdout":
        try:
            out = RotatingFile(a.file, max_bytes, a.keep)
        except OSError as e:
            # A read-only /var/log must not leave the container without syslog (and every
            # logger blocked on a full /dev/log): keep listening, write to stdout instead.
            sys.stderr.write("richinit-syslogd: %s: %s; writing to stdout instead\n" % (a.file, e.strerror))
            echo = 1
    try:
        return serve(a.socket, out, hostname, stream_path=a.stream_socket, echo_fd=echo, notify_fd=a.notify_fd)
    except OSError as e:
        sys.stderr.write("richinit-syslogd: %s\n" % (e if not e.filename else "%s: %s" % (e.filename, e.strerror)))
        return 1


class _NullFile:
    def write(self, data):
        pass

    def reopen(self):
        pass

    def sync(self):
        pass

    def close(self):
        pass


if __name__ == "__main__":
    sys.exit(main())
