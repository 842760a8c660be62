"""Built-in syslog: message parsing, line format, rotation (no sockets here; see integration/builtins)."""

import datetime
import os
import random
import re
import time

import pytest

from richinit.builtin import syslogd
from richinit.builtin.syslogd import RotatingFile, format_line, parse, parse_size
from tests.support.wait import wait_until

NOW = time.mktime((2026, 11, 27, 12, 0, 0, 0, 0, -1))


def line(data, now=NOW, host="box"):
    return format_line(parse(data, now), host, now)


# ---------------------------------------------------------------- RFC 3164


def test_glibc_style_without_host():
    r = parse(b"<13>Nov 27 11:59:58 root: hello world", NOW)
    assert (r.facility, r.severity, r.host, r.tag, r.pid, r.msg) == (1, 5, None, "root", None, "hello world")
    assert r.time == NOW - 2
    assert line(b"<13>Nov 27 11:59:58 root: hello world") == "Nov 27 11:59:58 box root: hello world\n"


def test_tag_with_pid():
    r = parse(b"<86>Nov  3 01:02:03 sshd[812]: Accepted publickey for root", NOW)
    assert (r.facility, r.severity, r.tag, r.pid) == (10, 6, "sshd", "812")  # authpriv.info
    assert r.msg == "Accepted publickey for root"
    assert line(b"<86>Nov  3 01:02:03 sshd[812]: x").startswith("Nov  3 01:02:03 box sshd[812]: x")


def test_with_host_like_logger_rfc3164():
    r = parse(b"<13>Nov 27 11:59:58 vm app[42]: rfc3164 host", NOW)
    assert (r.host, r.tag, r.pid, r.msg) == ("vm", "app", "42", "rfc3164 host")
    assert line(b"<13>Nov 27 11:59:58 vm app[42]: m") == "Nov 27 11:59:58 vm app[42]: m\n"


def test_december_message_in_january_is_last_year():
    jan = time.mktime((2027, 1, 1, 0, 0, 5, 0, 0, -1))
    r = parse(b"<13>Dec 31 23:59:59 root: late", jan)
    assert time.localtime(r.time)[:6] == (2026, 12, 31, 23, 59, 59)


def test_no_timestamp_uses_receive_time():
    r = parse(b"<30>myapp: started", NOW)
    assert (r.facility, r.severity, r.time, r.tag, r.msg) == (3, 6, None, "myapp", "started")
    assert line(b"<30>myapp: started") == "Nov 27 12:00:00 box myapp: started\n"


def test_rfc3339_timestamp_in_legacy_format():
    r = parse(b"<13>2026-11-27T11:00:00+00:00 host tag: m", NOW)
    assert r.time == 1795777200.0 and r.host == "host" and r.tag == "tag"


# ---------------------------------------------------------------- RFC 5424


def test_5424_full():
    data = b'<165>1 2026-11-27T10:20:30.123Z web01 evntslog 1234 ID47 [exampleSDID@32473 iut="3" ' \
           b'eventSource="App\\"lic]ation"][x@1 a="b"] \xef\xbb\xbfAn application event'
    r = parse(data, NOW)
    assert (r.facility, r.severity, r.format) == (20, 5, "5424")
    assert (r.host, r.tag, r.pid, r.msgid) == ("web01", "evntslog", "1234", "ID47")
    assert r.time == pytest.approx(1795774830.123)
    assert r.sd == '[exampleSDID@32473 iut="3" eventSource="App\\"lic]ation"][x@1 a="b"]'
    assert r.msg == "An application event"  # BOM stripped


def test_5424_nil_values_and_logger_time_quality_dropped():
    r = parse(b'<13>1 - - - - - - just text', NOW)
    assert (r.time, r.host, r.tag, r.pid, r.sd, r.msg) == (None, None, None, None, None, "just text")
    r = parse(b'<13>1 2026-11-27T11:00:00.5+01:00 vm root - - [timeQuality tzKnown="1" isSynced="0"] hi', NOW)
    assert r.sd is None and r.msg == "hi" and r.tag == "root" and r.host == "vm"
    assert line(b'<13>1 2026-11-27T11:00:00+00:00 vm app 7 - - hi').endswith(" vm app[7]: hi\n")


def test_5424_without_msg():
    r = parse(b"<13>1 2026-11-27T11:00:00Z h a p m -", NOW)
    assert r.msg == "" and r.format == "5424"


# ---------------------------------------------------------------- garbage


@pytest.mark.parametrize("data", [
    b"", b"\0", b"<", b"<>", b"<999>x", b"<13>", b"<13>1", b"<13>1 bad", b"<13>1 2026-13-99T99:99:99Z h a p m - x",
    b"<13>1 - h a p m [unterminated sd", b"\xff\xfe\x00garbage", b"<13>Nov 99 99:99:99 x: y",
    b"<13>Feb 31 10:00:00 x: y", b"<13>" + b"A" * 70000, b"[[[[:::]]]]", b"<13>1 - - - - - [a b=\"\\",
])
def test_garbage_never_raises_and_keeps_the_text(data):
    r = parse(data, NOW)
    out = format_line(r, "box", NOW)
    assert out.endswith("\n") and out.count("\n") == 1


def test_control_characters_escaped_one_line():
    assert line(b"<13>t: a\nb\tc\x01\x7f\n") == "Nov 27 12:00:00 box t: a#012b\tc#001#177\n"


def test_invalid_pri_is_kept_as_text():
    r = parse(b"<192>x: y", NOW)
    assert (r.facility, r.severity, r.tag, r.msg) == (1, 5, None, "<192>x: y")  # user.notice, text as is


def test_handler_survives_a_parser_bug(tmp_path, monkeypatch):
    out = RotatingFile(str(tmp_path / "m"), 0, 1)
    h = syslogd.Syslogd(out, "box")

    def boom(data, now=None):
        raise RuntimeError("bug")
    monkeypatch.setattr(syslogd, "parse", boom)
    h.handle(b"<13>t: precious")
    out.close()
    text = (tmp_path / "m").read_text()
    assert "unparsable message (RuntimeError): <13>t: precious" in text


# ---------------------------------------------------------------- rotation


def test_rotation_keeps_n(tmp_path):
    p = str(tmp_path / "messages")
    f = RotatingFile(p, 100, 2)
    for i in range(12):
        f.write(("line %02d " % i + "x" * 20 + "\n").encode())  # 30 bytes: 3 per file
    f.close()
    names = sorted(os.listdir(tmp_path))
    assert names == ["messages", "messages.1", "messages.2"]
    read = lambda n: (tmp_path / n).read_text().split()[1::3]  # noqa: E731
    assert read("messages") == ["09", "10", "11"]
    assert read("messages.1") == ["06", "07", "08"]
    assert read("messages.2") == ["03", "04", "05"]
    assert all(os.path.getsize(tmp_path / n) <= 100 for n in names)


def test_rotation_keep_zero_truncates(tmp_path):
    p = str(tmp_path / "messages")
    f = RotatingFile(p, 50, 0)
    for _ in range(5):
        f.write(b"x" * 29 + b"\n")
    f.close()
    assert os.listdir(tmp_path) == ["messages"] and os.path.getsize(p) == 30


def test_existing_file_size_counts(tmp_path):
    p = tmp_path / "messages"
    p.write_bytes(b"y" * 90)
    f = RotatingFile(str(p), 100, 1)
    f.write(b"z" * 20)
    f.close()
    assert (tmp_path / "messages.1").read_bytes() == b"y" * 90 and p.read_bytes() == b"z" * 20


def test_parse_size():
    assert parse_size("512K") == 512 << 10 and parse_size("10m") == 10 << 20 and parse_size("0") == 0
    with pytest.raises(ValueError):
        parse_size("ten")


# ---------------------------------------------------------------- hand parsers = the regexes they replaced
# The daemon parses without re (it runs in every container); these are the patterns it had, as the spec.

_PRI = re.compile(rb"^<(\d{1,3})>")
_3164_TS = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([ \d]\d) (\d\d):(\d\d):(\d\d) ")
_5424_HEAD = re.compile(r"^1 (\S+) (\S+) (\S+) (\S+) (\S+) ")
_TAG = re.compile(r"^([^\s\[\]:<>]{1,48})(?:\[([^\]\s]{1,32})\])?: ?")
_TIME_QUALITY = re.compile(r'\[timeQuality(?: [^\]"]*="(?:[^"\\]|\\.)*")*\]')
_CTRL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_OCTETS = re.compile(rb"^(\d{1,5}) <")

PIECES = ["<13>", "<191>", "<192>", "<01>", "<0013>", "<", ">", "1 ", "- ", "-", " ", "  ", "\t", "\n", "\x00",
          "\x01", "\x7f", "\u00e9", "\u0663", "\u2003", "Nov 27 11:59:58 ", "Dec  3 01:02:03 ", "Nov 3 01:02:03 ",
          "Nov 27 1:59:58 ",
          "Nov \u0663\u0663 11:59:58 ", "2026-11-27T10:20:30.123Z ", "host ", "tag:", "tag: ", "sshd[812]: ", "a[]: ",
          "x[" + "9" * 33 + "]: ", "y[" + "9" * 32 + "]: ", "[9]", "t" * 48 + ": ", "t" * 49 + ": ", "[x@1 a=\"b\"]",
          "[timeQuality tzKnown=\"1\" isSynced=\"0\"]", "[timeQuality]", "[timeQuality a=\"\\\"\"]",
          "[timeQuality a b=\"c\"]", "[timeQuality =\"c\"]", "[timeQuality a=\"c\\\n\"]", "[timeQuality a=\"c\" ]",
          "[timeQuality a=\"c\"][y@2 b=\"]\"]", "[timeQuality a=\"x]\"]", "]", "[", "\"", "\\", "=", ":", "12345 <",
          "123456 <", "7 <", "msg"]


def corpus(n=4000, seed=7):
    rnd = random.Random(seed)
    yield from PIECES
    for _ in range(n):
        yield "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 7)))


def test_pri_and_octet_counting_as_the_regexes():
    for text in corpus():
        data = text.encode("utf-8")
        m = _PRI.match(data)
        want = (int(m.group(1)), m.end()) if m and int(m.group(1)) <= 191 else (None, 0)
        assert syslogd._pri(data) == want, data
        m = _OCTETS.match(data)
        assert syslogd._octet_count(data) == ((int(m.group(1)), m.end() - 1) if m else None), data


def test_3164_stamp_tag_and_header_words_as_the_regexes():
    for text in corpus():
        m = _3164_TS.match(text)
        want = None
        if m:
            want = (syslogd._MONTHS.index(m.group(1)) + 1, *(int(m.group(i)) for i in range(2, 6)))
        assert syslogd._3164_stamp(text) == want, text
        m = _TAG.match(text)
        assert syslogd._tag(text) == ((m.group(1), m.group(2), m.end()) if m else None), text
        head = "1 " + text  # parse() looks for the header only after "1 "
        m = _5424_HEAD.match(head)
        assert syslogd._words(head, 2, 5) == ((list(m.groups()), m.end()) if m else (None, 2)), head


def test_time_quality_removal_and_escaping_as_the_regexes():
    for text in corpus():
        assert syslogd._drop_time_quality(text) == _TIME_QUALITY.sub("", text), text
        assert syslogd._escape(text) == _CTRL.sub(lambda m: "#%03o" % ord(m.group(0)), text), text


def _fromisoformat(ts):
    """What the daemon did before: datetime.fromisoformat (Z as +00:00); naive means local time."""
    try:
        dt = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return time.mktime(dt.timetuple()) + dt.microsecond / 1e6
    return dt.timestamp()


RFC3339 = ["2026-11-27T10:20:30Z", "2026-11-27T10:20:30.123Z", "2026-11-27t10:20:30z", "2026-11-27 10:20:30Z",
           "2026-11-27T10:20:30.123456789+01:00", "2026-11-27T10:20:30,5-05:30", "2026-11-27T10:20:30.1+0100",
           "2026-11-27T10:20:30+01", "2026-11-27T10:20:30-00:00", "2026-11-27T10:20:30", "2026-11-27T10:20",
           "2026-11-27", "2024-02-29T00:00:00Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.5Z",
           "0001-01-01T00:00:00Z",
           "9999-12-31T23:59:59.999999Z", "2000-03-01T00:00:00+23:59", "2026-06-15T12:00:00.000001"]
NOT_RFC3339 = ["2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-31T00:00:00Z", "2026-11-27T24:00:00Z",
               "2026-11-27T10:60:00Z", "2026-11-27T10:20:60Z", "2026-11-27T10:20:30+24:00", "\u0662026-11-27T10:20:30Z",
               "2026-11-27T10:20:30+1:00", "2026-11-27T10:20:30 ", "26-11-27T10:20:30", "2026-11-2",
               "0000-01-01T00:00:00Z", "2026-11-27T10:20:30+01:00junk", "2026-11-27T1:20:30", "-", "", "T",
               "2026-11-27T10:20:30ZZ"]
# fromisoformat's leniencies beyond RFC 3339 and ISO 8601's extended form: such a message is now
# logged with its receive time and the stamp left in the text, rather than under a guessed time.
NO_LONGER_TAKEN = ["2026-11-27X10:20:30", "2026-11-27T10:20:30.Z",
                   "2026-11-27T10:20:30+01:60", "20261127T102030Z", "2026-W48-5T10:20:30Z", "2026-11-27T10Z"]


@pytest.mark.parametrize("ts", RFC3339)
def test_rfc3339_as_fromisoformat(ts):
    want = _fromisoformat(ts)
    assert want is not None
    assert syslogd._parse_rfc3339(ts) == want


@pytest.mark.parametrize("ts", NOT_RFC3339)
def test_not_rfc3339_refused_as_fromisoformat_did(ts):
    assert _fromisoformat(ts) is None
    assert syslogd._parse_rfc3339(ts) is None


@pytest.mark.parametrize("ts", NO_LONGER_TAKEN)
def test_fromisoformat_leniencies_refused(ts):
    assert _fromisoformat(ts) is not None
    assert syslogd._parse_rfc3339(ts) is None


# ---------------------------------------------------------------- options, without argparse


def test_options():
    a = syslogd.parse_args(["--socket", "/s", "--file=/f", "-o", "both", "--keep", "3", "--max-size", "1M",
                            "--notify-fd", "4", "--stream-socket", "/t", "--hostname", "h"])
    assert (a.socket, a.file, a.output, a.keep, a.max_size, a.notify_fd, a.stream_socket, a.hostname) == (
        "/s", "/f", "both", "3", "1M", "4", "/t", "h")
    assert syslogd.parse_args(["-ostdout"]).output == "stdout" and syslogd.parse_args(["--keep", "-1"]).keep == "-1"
    assert syslogd.parse_args(["-h"]) is None and syslogd.parse_args(["--socket", "/s", "--help"]) is None
    d = syslogd.parse_args([])
    assert (d.socket, d.file, d.output, d.keep, d.max_size, d.notify_fd) == (
        "/dev/log", "/var/log/messages", "file", "5", "10M", None)


@pytest.mark.parametrize("argv,message", [
    (["--bogus"], "unrecognized arguments: --bogus"), (["stray"], "unrecognized arguments: stray"),
    (["--socket"], "argument --socket: expected one argument"), (["--keep", "x"], "invalid int value: 'x'"),
    (["--keep", "-1"], "--keep must be >= 0"), (["--max-size", "ten"], "bad size 'ten'"),
    (["-o", "syslog"], "invalid choice: 'syslog'"), (["--notify-fd", "three"], "invalid int value: 'three'"),
])
def test_bad_options_exit_2_with_usage_and_one_line(capsys, argv, message):
    assert syslogd.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: richinit-syslogd ") and err.count("richinit-syslogd: error:") == 1
    assert message in err.splitlines()[-1] and "Traceback" not in err


def test_help(capsys):
    assert syslogd.main(["--help"]) == 0
    out, _ = capsys.readouterr()
    for opt in ("--socket SOCKET", "--stream-socket", "--file FILE", "--max-size", "--keep KEEP",
                "-o {file,stdout,both}", "--hostname", "--notify-fd"):
        assert opt in out


def test_an_inherited_socket_is_served_and_left_in_place(tmp_path):
    """Socket activation: the datagram socket PID 1 passes (LISTEN_FDS, LISTEN_PID ours) is read instead
    of binding --socket, and neither bound again nor removed at the stop."""
    import _socket
    path = str(tmp_path / "log")
    held = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    held.bind(path)
    fd = os.dup(held.fileno())
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())}
    assert syslogd.inherited_dgram(dict(env, LISTEN_PID="1")) is None, "not ours"
    saved = os.dup(3) if _fd_open(3) else None
    os.dup2(fd, 3)
    try:
        got = syslogd.inherited_dgram(env)
        assert got is not None and got.getsockname() == path
        sender = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
        sender.sendto(b"<13>Jan  2 03:04:05 host tag: queued before the daemon", path)
        sender.close()  # it may sit on fd 3, which inherited_dgram closed: gone before 3 is restored
        messages = tmp_path / "messages"
        pid = os.fork()
        if pid == 0:
            os._exit(syslogd.serve(str(tmp_path / "unused"), RotatingFile(str(messages), 1 << 20, 1), "box",
                                   dgram=got))
        try:
            assert wait_until(lambda: messages.exists() and "queued before the daemon" in messages.read_text(), 10)
        finally:
            os.kill(pid, 15)
            os.waitpid(pid, 0)
        assert os.path.exists(path) and not os.path.exists(tmp_path / "unused")
        got.close()
    finally:
        if saved is not None:
            os.dup2(saved, 3)
            os.close(saved)
        else:
            os.close(3)
        os.close(fd)
        held.close()


def _fd_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False

