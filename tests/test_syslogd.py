"""Built-in syslog: message parsing, line format, rotation (no sockets here; see integration/builtins)."""

import os
import time

import pytest

from richinit.builtin import syslogd
from richinit.builtin.syslogd import RotatingFile, format_line, parse, parse_size

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
