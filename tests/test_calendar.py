"""richinit.calendar against `systemd-analyze calendar` (the peer defines the syntax), and by hand."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from richinit import calendar as C

VALID = [
    "Sat,Thu,Mon..Wed,Sat..Sun", "Mon,Sun 12-*-* 2,1:23", "Wed *-1", "Wed..Wednesday", "Wed, 17:48",
    "Wed..Sat,Tue 12-10-15 1:2:3", "*-*-7 0:0:0", "10-15", "monday *-12-* 17:00",
    "Mon,Fri *-*-3,1,2 *:30:45", "12,14,13,12:20,10,30", "12..14:10,20,30", "mon,fri *-1/2-1,3 *:30:45",
    "03-05 08:05:40", "08:05:40", "05:40", "Sat,Sun 12-05 08:05:40", "Sat,Sun 08:05:40",
    "2003-03-05 05:40", "05:40:23.4200004/3.1700005", "2003-02..04-05", "2003-03-05 05:40 UTC",
    "hourly", "daily", "daily UTC", "monthly", "weekly", "yearly", "annually", "quarterly",
    "semiannually", "minutely", "*:2/3", "*:0/15", "*-*-01/5 04:00", "*-02~03", "*-05~07/2", "*-*~1",
    "*-*-* *:*:*", "*:*:0/10.5", "2024-02-29 12:00", "*-02-29", "*-*-* 00:00:00.25",
    "@1234567890", "Mon..Fri *-*-* 10:00", "Sat,Sun 2024-*-1..7/2 4:5:6.5 Europe/Berlin",
    "*-*-* 02:30 Europe/Berlin", "*-*-* 02:30", "*-*-* *:30", "*-10-* 02:00..03:00/15 Europe/Berlin",
    "daily Asia/Kolkata", "Mon 08:00 America/New_York", "1..5:00", "Mon,", "Mon-Wed 9:00",
    "2023..2030/3,2026/2-*-21..21 13..21/5:00", "*-*~10..16,20", "*-*~10..16,17", "*-9..12~1",
]
INVALID = ["Fri..Mon", "Mon-", "foo", "*-*-* 1:2:3:4", "2200-01-01", "1969-01-01", "*-13-01", "0",
           "*-*-* 24:00", "*-*~10..16,27", "*-*-* *:*:45..45", "*:0/0", "*-02-30 1:2:3 Nowhere/City", "",
           "2023 *-*-21", "*-05~1..7 Mon"]

# (zone for TZ, base epoch): ordinary days, and both daylight saving time changes of Europe/Berlin
# (2024-03-31, 2024-10-27) and America/New_York (2024-03-10, 2024-11-03), before and inside them.
BASES = [("UTC", 1700000000), ("Europe/Berlin", 1711843200), ("Europe/Berlin", 1711846801),
         ("Europe/Berlin", 1729987200), ("Europe/Berlin", 1729990700), ("Europe/Berlin", 1729991000),
         ("America/New_York", 1730527200), ("America/New_York", 1730533000), ("America/New_York", 1710050000)]


@pytest.fixture
def local_zone():
    """Set the process's zone for richinit's local-time expressions; restored after."""
    old = os.environ.get("TZ")

    def set_zone(name):
        os.environ["TZ"] = name
        time.tzset()
    yield set_zone
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def _analyze(exprs, base, zone, iterations=5):
    """[(normalized, [UTC times 'YYYY-MM-DD HH:MM:SS'])] from one systemd-analyze run, or None if it failed."""
    env = dict(os.environ, TZ=zone, LC_ALL="C")
    r = subprocess.run(["systemd-analyze", "calendar", "--iterations=%d" % iterations, "--base-time=@%d" % base,
                        *exprs], capture_output=True, text=True, env=env)
    if r.returncode:
        return None
    out = []
    for line in r.stdout.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "Normalized form":  # "Original form" comes before it only when they differ
            out.append([value, []])
        elif key == "Next elapse" or key.startswith("Iter."):
            if value != "never":
                out[-1][1].append(value)
        elif key == "(in UTC)":
            out[-1][1][-1] = value
    # "Thu 2026-12-03 10:00:00 UTC" -> the date and time (systemd prints whole seconds)
    return [(norm, [t.split(" ", 1)[1][:19] for t in times]) for norm, times in out]


def _mine(expr, base, iterations=5):
    spec = C.parse(expr)
    times, t = [], base * C.USEC
    for _ in range(iterations):
        t = spec.next_usec(t)
        if t is None:
            break
        times.append(time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t // C.USEC)))
    return spec.normalize(), times


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed here (it defines the syntax)")


@needs_analyze
@pytest.mark.parametrize("zone,base", BASES)
def test_same_as_systemd_analyze(zone, base, local_zone):
    theirs = _analyze(VALID, base, zone)
    assert theirs is not None and len(theirs) == len(VALID)
    local_zone(zone)
    for expr, (norm, times) in zip(VALID, theirs, strict=True):
        assert _mine(expr, base) == (norm, times), expr


@needs_analyze
@pytest.mark.parametrize("expr", INVALID)
def test_refused_as_systemd_analyze_refuses(expr):
    assert _analyze([expr], 1700000000, "UTC") is None
    with pytest.raises(ValueError):
        C.parse(expr)


def _utc(y, m, d, hh=0, mm=0, ss=0):
    return C._Utc().to_epoch((y, m, d, hh, mm, ss))


@pytest.mark.parametrize("expr,after,expected", [
    # Spring forward in Berlin (02:00 CET -> 03:00 CEST on 2024-03-31): 02:30 does not exist that day.
    ("*-*-* 02:30 Europe/Berlin", _utc(2024, 3, 30, 12), [_utc(2024, 3, 31, 0, 30) + 86400]),
    ("*-*-* *:30 Europe/Berlin", _utc(2024, 3, 31, 0, 45), [_utc(2024, 3, 31, 1, 30)]),  # 03:30 CEST
    # Fall back (03:00 CEST -> 02:00 CET on 2024-10-27): from before, the first 02:30; from inside the
    # second 02:xx hour, the second one; never twice in a row from the first.
    ("*-*-* 02:30 Europe/Berlin", _utc(2024, 10, 26, 12), [_utc(2024, 10, 27, 0, 30)]),
    ("*-*-* 02:30 Europe/Berlin", _utc(2024, 10, 27, 1, 5), [_utc(2024, 10, 27, 1, 30)]),
    ("*-*-* 02:30 Europe/Berlin", _utc(2024, 10, 27, 0, 30), [_utc(2024, 10, 28, 1, 30)]),
    ("*-*~1 23:59:59.5 UTC", _utc(2024, 2, 1), [_utc(2024, 2, 29, 23, 59, 59) + 0.5]),  # leap year
    ("Fri *-*-13 UTC", _utc(2024, 1, 1), [_utc(2024, 9, 13)]),
    ("2024-01-01 UTC", _utc(2024, 1, 1), [None]),
])
def test_by_hand(expr, after, expected):
    assert [C.next_elapse(expr, after)] == expected


def test_local_time_dst(local_zone):
    local_zone("America/New_York")  # 2024-11-03 02:00 EDT -> 01:00 EST: 01:30 happens twice
    spec = C.parse("*-*-* 01:30")
    first = spec.next_elapse(_utc(2024, 11, 2, 12))
    assert first == _utc(2024, 11, 3, 5, 30)                   # 01:30 EDT
    assert spec.next_elapse(first) == _utc(2024, 11, 4, 6, 30)  # not 01:30 EST an hour later


def test_lean_import():
    """PID 1 imports calendar only with a timer; even then no re, and zoneinfo only for a named zone."""
    code = ("import sys; from richinit import calendar as C; C.parse('Mon *-*-* 10:00').next_elapse(0); "
            "print(sorted(m for m in ('re', 'zoneinfo', 'datetime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]"
