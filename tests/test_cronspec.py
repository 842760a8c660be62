"""Crontab schedule and line parsing (pure functions)."""

import datetime
import time

import pytest

from richinit.builtin import cronspec
from richinit.builtin.cronspec import Schedule, SpecError, parse_crontab, parse_field, split_percent


def tm(y, mo, d, h=0, mi=0):
    return time.localtime(time.mktime((y, mo, d, h, mi, 0, 0, 0, -1)))


def ep(y, mo, d, h=0, mi=0):
    return time.mktime((y, mo, d, h, mi, 0, 0, 0, -1))


def as_dt(epoch):
    return datetime.datetime.fromtimestamp(epoch)


# ---------------------------------------------------------------- fields


@pytest.mark.parametrize("text,index,expected", [
    ("*", 0, set(range(60))),
    ("5", 0, {5}),
    ("1,2,5-7", 1, {1, 2, 5, 6, 7}),
    ("*/15", 0, {0, 15, 30, 45}),
    ("10-30/10", 0, {10, 20, 30}),
    ("1-10/3", 2, {1, 4, 7, 10}),     # steps on a range start at the range's start
    ("5/20", 0, {5, 25, 45}),          # cronie: N/STEP is N-max/STEP
    ("jan,MAR,dec", 3, {1, 3, 12}),
    ("jun-aug", 3, {6, 7, 8}),
    ("*/4", 3, {1, 5, 9}),
    ("7", 4, {0}),                     # 7 is Sunday too
    ("0,7", 4, {0}),
    ("5-7", 4, {5, 6, 0}),
    ("mon-fri", 4, {1, 2, 3, 4, 5}),
    ("sun", 4, {0}),
    ("*", 4, set(range(7))),
    ("*/2", 4, {0, 2, 4, 6}),
    ("*/5", 1, {0, 5, 10, 15, 20}),
])
def test_fields(text, index, expected):
    assert parse_field(text, index) == frozenset(expected)


@pytest.mark.parametrize("text,index,msg", [
    ("60", 0, "out of range"),
    ("24", 1, "out of range"),
    ("0", 2, "out of range"),
    ("13", 3, "out of range"),
    ("8", 4, "out of range"),
    ("*/0", 0, "bad step"),
    ("*/x", 0, "bad step"),
    ("5-1", 0, "backwards"),
    ("mon", 3, "not a number"),   # a weekday name is not a month
    ("jan", 0, "not a number"),   # names only where the field has them
    ("", 0, "empty"),
    ("1,,2", 0, "not a number"),
    ("-5", 0, "not a number"),
])
def test_bad_fields(text, index, msg):
    with pytest.raises(SpecError, match=msg):
        parse_field(text, index)


def test_schedule_needs_five_fields():
    with pytest.raises(SpecError, match="5 fields"):
        Schedule("* * * *")


# ---------------------------------------------------------------- matching


def test_dom_dow_or_rule_when_both_restricted():
    s = Schedule("0 0 13 * fri")
    assert s.matches(tm(2026, 11, 13))      # Friday the 13th
    assert s.matches(tm(2026, 11, 20))      # a Friday, not the 13th: OR
    assert s.matches(tm(2026, 10, 13))      # a Tuesday the 13th: OR
    assert not s.matches(tm(2026, 11, 19))  # neither


def test_and_rule_when_one_day_field_is_star():
    s = Schedule("0 0 13 * *")
    assert s.matches(tm(2026, 10, 13)) and not s.matches(tm(2026, 11, 20))
    s = Schedule("0 0 * * fri")
    assert s.matches(tm(2026, 11, 20)) and not s.matches(tm(2026, 10, 13))


def test_star_with_step_counts_as_star_like_vixie():
    # dom "*/2" starts with '*': AND, so only odd days that are also Mondays.
    s = Schedule("0 0 */2 * mon")
    assert s.matches(tm(2026, 11, 23))       # Monday the 23rd (odd)
    assert not s.matches(tm(2026, 11, 16))   # Monday the 16th (even)
    assert not s.matches(tm(2026, 11, 25))   # Wednesday the 25th


def test_sunday_as_7_and_0():
    for text in ("0 0 * * 7", "0 0 * * 0", "0 0 * * sun"):
        s = Schedule(text)
        assert s.matches(tm(2026, 11, 29)), text    # a Sunday
        assert not s.matches(tm(2026, 11, 30)), text


def test_minute_hour_month():
    s = Schedule("30 4 * jul *")
    assert s.matches(tm(2026, 7, 9, 4, 30))
    assert not s.matches(tm(2026, 7, 9, 4, 31))
    assert not s.matches(tm(2026, 8, 9, 4, 30))


# ---------------------------------------------------------------- next run


@pytest.mark.parametrize("spec,after,expected", [
    ("* * * * *", (2026, 11, 27, 23, 59), (2026, 11, 28, 0, 0)),
    ("0 0 1 * *", (2026, 12, 15, 12, 0), (2027, 1, 1, 0, 0)),        # across the year
    ("0 0 31 * *", (2026, 4, 1, 0, 0), (2026, 5, 31, 0, 0)),          # April has no 31st
    ("0 12 29 2 *", (2026, 3, 1, 0, 0), (2028, 2, 29, 12, 0)),        # next leap day
    ("0 0 29 2 *", (2096, 3, 1, 0, 0), (2104, 2, 29, 0, 0)),          # 2100 is not a leap year
    ("*/15 * * * *", (2026, 1, 31, 23, 50), (2026, 2, 1, 0, 0)),       # across the month
    ("0 9 * * mon-fri", (2026, 11, 27, 9, 0), (2026, 11, 30, 9, 0)),  # Fri 09:00 -> Mon
    ("0 0 13 * 5", (2026, 11, 13, 0, 0), (2026, 11, 20, 0, 0)),       # OR rule: the next Friday
    ("5 4 * * 7", (2026, 12, 31, 23, 0), (2027, 1, 3, 4, 5)),         # Sunday as 7, new year
    ("0 0 1 1 *", (2026, 1, 1, 0, 0), (2027, 1, 1, 0, 0)),            # strictly after
])
def test_next_after(spec, after, expected):
    assert as_dt(Schedule(spec).next_after(ep(*after))) == datetime.datetime(*expected)


def test_next_after_never():
    assert Schedule("0 0 30 2 *").next_after(ep(2026, 1, 1)) is None
    assert Schedule("0 0 31 apr,jun,sep,nov *").next_after(ep(2026, 1, 1)) is None


def test_next_after_agrees_with_matches():
    # Walk minute by minute for three days and compare against next_after's answer.
    s = Schedule("*/7 1-3,22 */3 * mon,sat")
    t = ep(2026, 2, 26, 21, 0)
    want = s.next_after(t)
    m = t + 60
    while not s.matches(time.localtime(m)):
        m += 60
    assert m == want


# ---------------------------------------------------------------- lines and files


def test_percent_rule():
    assert split_percent("echo hi") == ("echo hi", None)
    assert split_percent("date +\\%s") == ("date +%s", None)
    assert split_percent("mail -s x root%a%b") == ("mail -s x root", "a\nb\n")
    assert split_percent("cat%") == ("cat", "\n")


def test_system_crontab_with_env_and_nicknames():
    text = """# comment
SHELL=/bin/bash
PATH = /usr/bin:/bin
MAILTO=""
FOO='quoted value'
17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly
@reboot   alice  echo booted
@daily root  echo daily
BAR=late
@HOURLY root echo hourly
"""
    entries, errors = parse_crontab(text, "/etc/crontab")
    assert errors == []
    assert [(e.user, e.command, e.line) for e in entries] == [
        ("root", "cd / && run-parts --report /etc/cron.hourly", 6),
        ("alice", "echo booted", 7),
        ("root", "echo daily", 8),
        ("root", "echo hourly", 10),
    ]
    first, reboot, daily, hourly = entries
    assert first.env == {"SHELL": "/bin/bash", "PATH": "/usr/bin:/bin", "MAILTO": "", "FOO": "quoted value"}
    assert "BAR" not in daily.env and hourly.env["BAR"] == "late"
    assert reboot.reboot and reboot.schedule is None
    assert daily.schedule.matches(tm(2026, 5, 5, 0, 0)) and not daily.schedule.matches(tm(2026, 5, 5, 1, 0))
    assert hourly.schedule.minutes == {0} and hourly.schedule.hours == set(range(24))


@pytest.mark.parametrize("nick,spec", sorted(cronspec.NICKNAMES.items()))
def test_nicknames(nick, spec):
    (e,), errors = parse_crontab("%s root true\n" % nick, "f")
    ref = Schedule(spec)
    assert not errors
    assert (e.schedule.minutes, e.schedule.hours, e.schedule.doms, e.schedule.months, e.schedule.dows) == \
        (ref.minutes, ref.hours, ref.doms, ref.months, ref.dows)


def test_user_crontab_has_no_user_field():
    entries, errors = parse_crontab("*/5 * * * * echo $HOME\n@reboot touch /tmp/x\n", "/var/spool/cron/crontabs/bob",
                                    user="bob")
    assert errors == []
    assert [(e.user, e.command) for e in entries] == [("bob", "echo $HOME"), ("bob", "touch /tmp/x")]


def test_bad_lines_are_reported_with_file_and_line_and_the_rest_kept():
    text = """* * * * * root echo ok
this is not cron
61 * * * * root echo bad-minute
* * * * *
@sometimes root echo x
* * * * * bad/user echo x
0 0 * * * root echo ok2
"""
    entries, errors = parse_crontab(text, "/etc/cron.d/app")
    assert [e.command for e in entries] == ["echo ok", "echo ok2"]
    assert [e.split(":")[1] for e in errors] == ["2", "3", "4", "5", "6"]
    assert errors[0].startswith("/etc/cron.d/app:2: ")
    assert "out of range" in errors[1]
    assert "missing user or command" in errors[2]
    assert "unknown '@sometimes'" in errors[3]
    assert "bad user name" in errors[4]


def test_garbage_never_raises():
    text = "\x00\x01 * * \n@\n=\n*\n* * * * * \n\t\n@reboot\n" + "9" * 5000 + "\n"
    entries, errors = parse_crontab(text, "f")
    assert entries == [] and len(errors) >= 4
