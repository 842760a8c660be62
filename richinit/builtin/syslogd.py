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
- Socket activation: a unix datagram socket passed with LISTEN_FDS/LISTEN_PID (PID 1 binds
  /dev/log before any service starts) is used instead of binding --socket, and left in place at
  exit: what is logged while this daemon starts or restarts waits in it.
- Signals do no work: set_wakeup_fd + epoll; the loop does the rest.

Lean, as PID 1 is (one of these runs in every container): `_signal`, `_socket` and
`select.epoll` rather than signal/socket/selectors, parsing by hand rather than re, datetime
or argparse. tests/test_cron_builtin_lean.py checks that none of those creep back.
"""

import _signal as signal  # not the enum-heavy package: see richinit/signals.py
import _socket as socket  # not socket.py (enum, selectors): see richinit/control.py
import os
import select
import sys
import time

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
              "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
              "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7")
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
MAX_DATAGRAM = 65536
MAX_STREAM_CLIENTS = 64
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Control characters (all but TAB) -> rsyslog's #ooo, one str.translate.
_CTRL = {c: "#%03o" % c for c in [*range(0x00, 0x09), *range(0x0a, 0x20), 0x7f]}
_NOT_IN_TAG = frozenset("[]:<>")


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
    pri, end = _pri(data)
    if pri is not None:
        data = data[end:]
    text = data.decode("utf-8", "replace")
    rec = Record() if pri is None else Record(facility=pri >> 3, severity=pri & 7)
    if pri is not None and text.startswith("1 "):
        if _parse_5424(rec, text):
            return rec
    _parse_3164(rec, text, now)
    return rec


def _pri(data):
    """`<N>` (1-3 ASCII digits, N <= 191) at the start -> (N, its length); (None, 0) otherwise."""
    if data[:1] != b"<":
        return None, 0
    end = data.find(b">", 1, 5)
    digits = data[1:end]
    if end < 0 or not digits or not digits.isdigit():  # bytes.isdigit: ASCII digits only
        return None, 0
    n = int(digits)
    return (n, end + 1) if n <= 191 else (None, 0)


def _nil(v):
    return None if v == "-" else v


def _words(text, start, count):
    """`count` runs of non-space characters at `start`, each followed by exactly one " ".

    -> (words, end) or (None, start): RFC 5424's header fields.
    """
    words, i, n = [], start, len(text)
    for _ in range(count):
        j = i
        while j < n and not text[j].isspace():
            j += 1
        if j == i or j >= n or text[j] != " ":
            return None, start
        words.append(text[i:j])
        i = j + 1
    return words, i


def _parse_5424(rec, text):
    head, end = _words(text, 2, 5)  # after "1 "
    if head is None:
        return False
    ts, host, app, procid, msgid = head
    when = None
    if ts != "-":
        when = _parse_rfc3339(ts)
        if when is None:
            return False
    rest = text[end:]
    sd, rest = _split_sd(rest)
    if sd is None:
        return False
    if rest.startswith(" "):
        rest = rest[1:]
    if rest.startswith("\ufeff"):  # the BOM RFC 5424 puts before a UTF-8 MSG
        rest = rest[1:]
    rec.time, rec.host, rec.tag, rec.pid, rec.msgid = when, _nil(host), _nil(app), _nil(procid), _nil(msgid)
    sd = _drop_time_quality(sd)  # logger's clock metadata: noise in a text log
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


_TQ = "[timeQuality"


def _time_quality_end(sd, i):
    """End of a `[timeQuality( NAME="VALUE")*]` element starting at sd[i], or -1."""
    i += len(_TQ)
    n = len(sd)
    while i < n and sd[i] == " ":
        # NAME: anything up to `="`, with no `]` or `"` in it.
        j = i + 1
        while j < n and sd[j] not in ']"':
            j += 1
        if j >= n or sd[j] != '"' or sd[j - 1] != "=" or j - 1 < i + 1:
            break
        j += 1
        while j < n and sd[j] != '"':  # VALUE: backslash escapes any character but a newline
            if sd[j] == "\\":
                if j + 1 >= n or sd[j + 1] == "\n":
                    return -1
                j += 1
            j += 1
        if j >= n:
            return -1
        i = j + 1
    return i + 1 if i < n and sd[i] == "]" else -1


def _drop_time_quality(sd):
    out, pos = [], 0
    i = sd.find(_TQ)
    while i >= 0:
        end = _time_quality_end(sd, i)
        if end < 0:
            i = sd.find(_TQ, i + 1)
            continue
        out.append(sd[pos:i])
        pos = end
        i = sd.find(_TQ, end)
    if not out:
        return sd
    out.append(sd[pos:])
    return "".join(out)


def _digits(text, i, n):
    """int of text[i:i+n] if all n characters are digits (what re's \\d takes), else None."""
    part = text[i:i + n]
    return int(part) if len(part) == n and part.isdecimal() else None


_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in(year, month):
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]


def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _parse_rfc3339(ts):
    """RFC 3339 / ISO 8601 extended date-time -> epoch seconds; None if it is not one.

    YYYY-MM-DD[(T|t| )HH:MM[:SS[(.|,)FRACTION]]][Z|z|+HH[:]MM|-HH[:]MM|+HH], what
    datetime.fromisoformat accepted here before (fractions cut to microseconds, no
    leap second); without an offset the time is local.
    """
    if len(ts) < 10 or ts[4] != "-" or ts[7] != "-" or not ts.isascii():
        return None
    year, month, day = _digits(ts, 0, 4), _digits(ts, 5, 2), _digits(ts, 8, 2)
    if year is None or month is None or day is None or year < 1 or not 1 <= month <= 12 \
            or not 1 <= day <= _days_in(year, month):
        return None
    hour = minute = second = micro = 0
    offset = None
    i, n = 10, len(ts)
    if i < n:
        if ts[i] not in "Tt ":
            return None
        hour, minute = _digits(ts, i + 1, 2), _digits(ts, i + 4, 2)
        if hour is None or minute is None or ts[i + 3:i + 4] != ":":
            return None
        i += 6
        if ts[i:i + 1] == ":":
            second = _digits(ts, i + 1, 2)
            if second is None:
                return None
            i += 3
            if ts[i:i + 1] in (".", ","):
                j = i + 1
                while j < n and ts[j].isdecimal():
                    j += 1
                if j == i + 1:
                    return None
                micro = int(ts[i + 1:j][:6].ljust(6, "0"))
                i = j
        if hour > 23 or minute > 59 or second > 59:
            return None
        if i < n:
            offset = _offset(ts[i:])
            if offset is None:
                return None
    if offset is None:
        try:
            return time.mktime((year, month, day, hour, minute, second, 0, 0, -1)) + micro / 1e6
        except (OverflowError, ValueError):
            return None
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
    return (seconds * 10 ** 6 + micro) / 10 ** 6  # as timedelta.total_seconds() rounds


def _offset(text):
    """Z, +HH:MM, +HHMM, +HH (or -) -> seconds east of UTC; None if malformed or a day or more."""
    if text in ("Z", "z"):
        return 0
    if text[:1] not in "+-" or len(text) not in (3, 5, 6):
        return None
    hh = _digits(text, 1, 2)
    mm = 0
    if len(text) == 6:
        mm = _digits(text, 4, 2) if text[3] == ":" else None
    elif len(text) == 5:
        mm = _digits(text, 3, 2)
    if hh is None or mm is None or mm > 59 or hh > 23:
        return None
    return (hh * 3600 + mm * 60) * (-1 if text[0] == "-" else 1)


def _3164_stamp(text):
    """`Mmm dd HH:MM:SS ` at the start -> (month, day, hh, mm, ss); None if there is none."""
    if len(text) < 16 or text[3] != " " or text[6] != " " or text[9] != ":" or text[12] != ":" \
            or text[15] != " " or text[:3] not in _MONTHS:
        return None
    day = _digits(text, 5, 1)
    if day is None or not (text[4] == " " or text[4].isdecimal()):
        return None
    day = int(text[4:6])
    hh, mm, ss = _digits(text, 7, 2), _digits(text, 10, 2), _digits(text, 13, 2)
    if hh is None or mm is None or ss is None:
        return None
    return _MONTHS.index(text[:3]) + 1, day, hh, mm, ss


def _tag(text):
    """`TAG[PID]: ` or `TAG: ` at the start -> (tag, pid or None, end); None if there is none.

    TAG: 1-48 characters, none a space or one of `[]:<>`; PID: 1-32, none a space or `]`.
    """
    i, n = 0, len(text)
    while i < n and i <= 48 and not text[i].isspace() and text[i] not in _NOT_IN_TAG:
        i += 1
    if i == 0 or i > 48 or i >= n:
        return None
    tag, pid = text[:i], None
    if text[i] == "[":
        j = i + 1
        while j < n and j - i <= 33 and text[j] != "]" and not text[j].isspace():
            j += 1
        if j == i + 1 or j - i > 33 or j >= n or text[j] != "]":
            return None
        pid, i = text[i + 1:j], j + 1
    if text[i:i + 1] != ":":
        return None
    i += 1
    if text[i:i + 1] == " ":
        i += 1
    return tag, pid, i


def _parse_3164(rec, text, now):
    rec.format = "3164"
    stamp = _3164_stamp(text)
    if stamp:
        rec.time = _3164_time(stamp, now)
        text = text[16:]
    else:
        # Some senders (rsyslog's legacy format with high-precision dates) use RFC 3339 here.
        word, sp, rest = text.partition(" ")
        when = _parse_rfc3339(word) if sp and word[:1].isdigit() and "T" in word else None
        if when is not None:
            rec.time, text = when, rest
    # HOSTNAME is optional on /dev/log (glibc leaves it out, `logger --rfc3164` puts it in):
    # a first word that is not a tag but is followed by one is a host.
    if not _tag(text):
        word, sp, rest = text.partition(" ")
        if sp and word and _tag(rest) and not word.endswith(":"):
            rec.host, text = word, rest
    m = _tag(text)
    if m:
        rec.tag, rec.pid, end = m
        text = text[end:]
    rec.msg = text


def _3164_time(stamp, now):
    mon, day, hh, mm, ss = stamp
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
    return text.translate(_CTRL)


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
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, 0)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    except OSError:
        pass
    s.bind(path)
    os.chmod(path, 0o666)  # every local user may log, as with any syslogd
    return s


def _bind_stream(path):
    _unlink_stale(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, 0)
    s.bind(path)
    os.chmod(path, 0o666)
    s.listen(64)
    return s


def _accept(listener):
    """A connected client as a non-blocking, close-on-exec socket; None if there is none (or no fd)."""
    try:
        fd, _ = listener._accept()  # _socket has no accept() wrapper
    except OSError:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
    os.set_inheritable(fd, False)
    conn.setblocking(False)
    return conn


def _unlink_stale(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if (st.st_mode & 0o170000) != 0o140000:  # S_ISSOCK
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


def _octet_count(buf):
    """RFC 6587 octet counting: `LEN <...` (LEN: 1-5 ASCII digits) -> (LEN, offset of "<"); None if not."""
    i = 0
    while i < 6 and i < len(buf) and 0x30 <= buf[i] <= 0x39:
        i += 1
    if not 1 <= i <= 5 or buf[i:i + 2] != b" <":
        return None
    return int(buf[:i]), i + 1


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
            counted = _octet_count(self.buf)
            if counted:
                n, start = counted
                if len(self.buf) < start + n:
                    return
                handler.handle(self.buf[start:start + n])
                self.buf = self.buf[start + n:]
                continue
            cut = min((i for i in (self.buf.find(b"\n"), self.buf.find(b"\0")) if i >= 0), default=-1)
            if cut < 0:
                return
            msg, self.buf = self.buf[:cut], self.buf[cut + 1:]
            if msg:
                handler.handle(msg)


def inherited_dgram(environ=None):
    """The unix datagram socket passed by socket activation (LISTEN_FDS, LISTEN_PID ours), or None."""
    environ = os.environ if environ is None else environ
    n = environ.get("LISTEN_FDS", "")
    if not n.isdigit() or environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    for fd in range(3, 3 + int(n)):
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        if s.family == socket.AF_UNIX and s.type == socket.SOCK_DGRAM:
            os.close(fd)
            s.setblocking(False)
            return s
        s.close()
    return None


def setup(sock_path, out, hostname, *, stream_path=None, echo_fd=None, dgram=None):
    """Signals, handler, sockets, epoll: everything serve() needs before its first wait. `dgram`:
    an inherited socket to read instead of binding sock_path."""
    rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _noop)
    handler = Syslogd(out, hostname, echo_fd)
    if dgram is None:
        dgram = _bind_dgram(sock_path)
    stream = _bind_stream(stream_path) if stream_path else None
    ep = select.epoll()
    ep.register(rfd, select.EPOLLIN)
    ep.register(dgram.fileno(), select.EPOLLIN)
    if stream is not None:
        ep.register(stream.fileno(), select.EPOLLIN)
    return rfd, handler, dgram, stream, ep


def serve(sock_path, out, hostname, *, stream_path=None, echo_fd=None, notify_fd=None, dgram=None):
    """Run until SIGTERM/SIGINT; returns the exit code. With an inherited `dgram` socket,
    sock_path is neither bound nor removed."""
    if dgram is not None:
        sock_path = None
    rfd, handler, dgram, stream, ep = setup(sock_path, out, hostname, stream_path=stream_path, echo_fd=echo_fd,
                                            dgram=dgram)
    dgram_fd = dgram.fileno()
    stream_fd = stream.fileno() if stream is not None else -1
    if notify_fd is not None:
        try:
            os.write(notify_fd, b"\n")
            os.close(notify_fd)
        except OSError as e:
            sys.stderr.write("syslogd: notification fd %d: %s\n" % (notify_fd, e.strerror))
    conns = {}  # fd -> _StreamConn
    accepting = True
    stopping = False
    while not stopping:
        other_activity = False
        # Signals first: after a SIGHUP, what is read next goes to the reopened file.
        for fd, _ in sorted(ep.poll(), key=lambda ev: ev[0] != rfd):
            if fd == dgram_fd:
                _drain(dgram, handler)
                other_activity = True
            elif fd == rfd:
                for sig in _read_signals(rfd):
                    if sig == signal.SIGHUP:
                        try:
                            out.reopen()
                        except OSError as e:
                            sys.stderr.write("richinit-syslogd: reopen: %s\n" % e)
                    else:
                        stopping = True
            elif fd == stream_fd:
                conn = _accept(stream) if accepting else None
                if conn is not None:
                    conns[conn.fileno()] = _StreamConn(conn)
                    ep.register(conn.fileno(), select.EPOLLIN)
                if accepting and (conn is None or len(conns) >= MAX_STREAM_CLIENTS):
                    ep.unregister(stream_fd)  # out of fds or clients: pause accepting, do not spin
                    accepting = False
            elif fd in conns:
                c = conns[fd]
                if not c.feed(handler):
                    ep.unregister(fd)
                    c.conn.close()
                    del conns[fd]
                    other_activity = True
        # Accepting resumes once a client left or other work came in, so a persistent
        # EMFILE costs one retry per event, not a spin.
        if not accepting and other_activity and len(conns) < MAX_STREAM_CLIENTS:
            ep.register(stream_fd, select.EPOLLIN)
            accepting = True
    # Clean stop: what the kernel already queued for us is ours to write. The queue holds
    # net.unix.max_dgram_qlen datagrams plus what blocked senders push as it empties; the
    # cap only matters against a sender flooding us forever.
    _drain(dgram, handler, limit=100000)
    if stream is not None:  # clients still in the listen backlog have sent their lines too
        for _ in range(1024):
            conn = _accept(stream)
            if conn is None:
                break
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


USAGE = ("usage: richinit-syslogd [-h] [--socket SOCKET] [--stream-socket STREAM_SOCKET] [--file FILE]\n"
         "                        [--max-size MAX_SIZE] [--keep KEEP] [-o {file,stdout,both}]\n"
         "                        [--hostname HOSTNAME] [--notify-fd NOTIFY_FD]\n")

HELP = USAGE + """
richinit's built-in /dev/log listener

options:
  -h, --help            show this help message and exit
  --socket SOCKET       datagram socket to bind (default /dev/log), unless one is
                        passed by socket activation (LISTEN_FDS)
  --stream-socket STREAM_SOCKET
                        also accept a unix stream socket (newline/NUL/octet framed)
  --file FILE           log file (default /var/log/messages)
  --max-size MAX_SIZE   rotate when the file would exceed this (0: never)
  --keep KEEP           rotated files to keep (default 5)
  -o {file,stdout,both}, --output {file,stdout,both}
                        write lines to the file, stdout, or both
  --hostname HOSTNAME   host name for messages without one (default: uname)
  --notify-fd NOTIFY_FD
                        write a newline to this fd once ready (s6 protocol)
"""

_OPTIONS = {"--socket": "socket", "--stream-socket": "stream_socket", "--file": "file", "--max-size": "max_size",
            "--keep": "keep", "-o": "output", "--output": "output", "--hostname": "hostname",
            "--notify-fd": "notify_fd"}


class UsageError(Exception):
    pass


class Options:
    socket = "/dev/log"
    stream_socket = None
    file = "/var/log/messages"
    max_size = "10M"
    keep = "5"
    output = "file"
    hostname = None
    notify_fd = None


def parse_args(argv, options=_OPTIONS, defaults=Options):
    """argv -> an Options instance (values as strings); `--opt V`, `--opt=V`, `-oV`; -h/--help prints HELP.

    Raises UsageError for what argparse would have refused.
    """
    a = defaults()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg in ("-h", "--help"):
            return None
        name, eq, val = arg.partition("=") if arg.startswith("--") else (arg[:2], bool(arg[2:]), arg[2:])
        if name not in options or arg in ("-", "--"):
            raise UsageError("unrecognized arguments: %s" % arg)
        if not eq:
            if i >= len(argv) or (argv[i].startswith("-") and argv[i] != "-" and not _number(argv[i])):
                raise UsageError("argument %s: expected one argument" % name)
            val = argv[i]
            i += 1
        setattr(a, options[name], val)
    return a


def _number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _int(text, what):
    try:
        return int(text)
    except ValueError:
        raise UsageError("argument %s: invalid int value: %r" % (what, text)) from None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        a = parse_args(list(argv))
        if a is None:
            sys.stdout.write(HELP)
            return 0
        keep = _int(a.keep, "--keep")
        notify_fd = None if a.notify_fd is None else _int(a.notify_fd, "--notify-fd")
        if a.output not in ("file", "stdout", "both"):
            raise UsageError("argument -o/--output: invalid choice: %r (choose from 'file', 'stdout', 'both')"
                             % a.output)
        try:
            max_bytes = parse_size(a.max_size)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if keep < 0:
            raise UsageError("--keep must be >= 0")
    except UsageError as e:
        sys.stderr.write("%srichinit-syslogd: error: %s\n" % (USAGE, e))
        return 2
    hostname = a.hostname or socket.gethostname().split(".")[0] or "localhost"
    echo = 1 if a.output in ("stdout", "both") else None
    out = _NullFile()
    if a.output != "stdout":
        try:
            out = RotatingFile(a.file, max_bytes, keep)
        except OSError as e:
            # A read-only /var/log must not leave the container without syslog (and every
            # logger blocked on a full /dev/log): keep listening, write to stdout instead.
            sys.stderr.write("richinit-syslogd: %s: %s; writing to stdout instead\n" % (a.file, e.strerror))
            echo = 1
    try:
        return serve(a.socket, out, hostname, stream_path=a.stream_socket, echo_fd=echo, notify_fd=notify_fd,
                     dgram=inherited_dgram())
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
