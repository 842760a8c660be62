"""systemd's calendar events (systemd.time(7), "CALENDAR EVENTS"): parse, normalize, next elapse.

    spec = parse("Mon..Fri *-*-* 10:00")     # ValueError on a bad expression
    spec.normalize()                         # 'Mon..Fri *-*-* 10:00:00', as `systemd-analyze calendar`
    spec.next_elapse(time.time())            # epoch seconds of the next match after it, or None

Syntax: `[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]] [ZONE]`. Each date and time field is
`*` or a comma list of `N`, `N..M` and `N/REPEAT` / `N..M/REPEAT`; `~` instead of the last `-` counts
days from the end of the month (`*-02~03`: the third last day of February); seconds may have a
fraction (up to microseconds). Weekdays: `Mon`, `Monday`, lists and `..` ranges (`-` too, as
systemd still accepts). A missing date is `*-*-*`, a missing time 00:00:00, missing seconds :00;
two-digit years are 19xx/20xx. Shorthands: minutely, hourly, daily, weekly, monthly, yearly and
annually, quarterly, semiannually (and systemd's spellings biannually, bi-annually,
semi-annually, anually). `@EPOCH` is one instant. ZONE: `UTC`, the local zone's abbreviation
(standard or daylight time, as tzname(3) gives them), or a name from /usr/share/zoneinfo
(zoneinfo is imported only then).

The search is systemd's: walk year, month, day (and weekday), hour, minute, second upwards in
wall-clock time of the expression's zone and convert; a wall time that does not exist (the hour
skipped when daylight saving time starts) is normalized by the conversion and the walk goes on
from there, so `*-*-* 02:30` does not fire on that day and `*:30` fires at 03:30 instead; a
repeated wall time (when it ends) fires once. Parsing by hand (no re): PID 1 imports this module
only when a timer exists.
"""

import time

MIN_YEAR, MAX_YEAR = 1970, 2199
USEC = 1000000
_WEEKDAYS = (("monday", "mon"), ("tuesday", "tue"), ("wednesday", "wed"), ("thursday", "thu"),
             ("friday", "fri"), ("saturday", "sat"), ("sunday", "sun"))
_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_ALL_DAYS = 0x7f
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MAX_COMPONENTS = 240

# shorthand -> (weekdays, year, month, day, hour, minute, second) with None for "*"
_ZERO = ((0, -1, 0),)
_SHORTHANDS = {
    "minutely": (0, None, None, None, None, None, _ZERO),
    "hourly": (0, None, None, None, None, _ZERO, _ZERO),
    "daily": (0, None, None, None, _ZERO, _ZERO, _ZERO),
    "weekly": (1, None, None, None, _ZERO, _ZERO, _ZERO),
    "monthly": (0, None, None, ((1, -1, 0),), _ZERO, _ZERO, _ZERO),
    "yearly": (0, None, ((1, -1, 0),), ((1, -1, 0),), _ZERO, _ZERO, _ZERO),
    "quarterly": (0, None, ((1, -1, 0), (4, -1, 0), (7, -1, 0), (10, -1, 0)), ((1, -1, 0),),
                  _ZERO, _ZERO, _ZERO),
    "semiannually": (0, None, ((1, -1, 0), (7, -1, 0)), ((1, -1, 0),), _ZERO, _ZERO, _ZERO),
}
for _alias, _name in (("annually", "yearly"), ("anually", "yearly"), ("biannually", "semiannually"),
                      ("bi-annually", "semiannually"), ("semi-annually", "semiannually")):
    _SHORTHANDS[_alias] = _SHORTHANDS[_name]


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def days_in_month(y, m):
    return 29 if m == 2 and _leap(y) else _DAYS_IN_MONTH[m - 1]


def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _civil_from_days(z):
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def weekday(y, m, d):
    """0 = Monday .. 6 = Sunday."""
    return (_days_from_civil(y, m, d) + 3) % 7


# ---------------------------------------------------------------------------------------------
# Zones: wall time (y, m, d, H, M, S) <-> epoch seconds
# ---------------------------------------------------------------------------------------------

class _Utc:
    name = "UTC"

    def to_epoch(self, w):
        y, m, d, hh, mm, ss = w
        return _days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss

    def occurrences(self, w):
        return [self.to_epoch(w)]

    def wall(self, t):
        days, rest = divmod(t, 86400)
        y, m, d = _civil_from_days(days)
        return (y, m, d, rest // 3600, rest // 60 % 60, rest % 60)


class _Local:
    """The process's own zone, through mktime(3)/localtime(3) as systemd does (dst: -1 guess, 0, 1)."""

    def __init__(self, dst=-1):
        self.dst = dst

    def to_epoch(self, w, dst=None):
        y, m, d, hh, mm, ss = w
        try:
            return int(time.mktime((y, m, d, hh, mm, ss, 0, 0, self.dst if dst is None else dst)))
        except (OverflowError, ValueError):
            return None

    def occurrences(self, w):
        """The instants whose wall time is w: none in a gap, two when the clock goes back."""
        if self.dst != -1:
            return [e for e in (self.to_epoch(w),) if e is not None and self.wall(e) == w]
        out = set()
        for dst in (0, 1):
            e = self.to_epoch(w, dst)
            if e is not None and time.localtime(e)[:6] == w and time.localtime(e).tm_isdst == dst:
                out.add(e)
        return sorted(out)

    def wall(self, t):
        return tuple(time.localtime(t)[:6])


class _Named:
    """A zone from the tz database, through zoneinfo (fold 0: a gap's wall time is read with the
    offset before it, as mktime does; a repeated one is its first occurrence)."""

    def __init__(self, name):
        from datetime import datetime, timezone
        from zoneinfo import ZoneInfo
        self.name, self.zone = name, ZoneInfo(name)
        self._datetime, self._utc = datetime, timezone.utc

    def to_epoch(self, w):
        return int(self._datetime(*w, tzinfo=self.zone).timestamp())

    def occurrences(self, w):
        out = {int(self._datetime(*w, tzinfo=self.zone, fold=f).timestamp()) for f in (0, 1)}
        return sorted(e for e in out if self.wall(e) == w)

    def wall(self, t):
        dt = self._datetime.fromtimestamp(t, self.zone)
        return (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)


def _zone_name_valid(name):
    """systemd's timezone_is_valid: a tz database file name that exists and starts with TZif."""
    if not name or name[0] in "/." or ".." in name or not name.isascii() \
            or not all(c.isalnum() or c in "/-_+" for c in name):
        return False
    try:
        with open("/usr/share/zoneinfo/" + name, "rb") as f:
            return f.read(4) == b"TZif"
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

class _Text:
    """A cursor over the expression."""

    def __init__(self, s):
        self.s, self.i = s, 0

    def peek(self, k=0):
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def done(self):
        return self.i >= len(self.s)

    def skip_spaces(self):
        while self.peek() == " ":
            self.i += 1


def _bad(text, why):
    raise ValueError("invalid calendar expression %r: %s" % (text, why))


def _number(t, usec):
    """A decimal at the cursor (with a fraction when usec) -> int (microseconds when usec)."""
    j = t.i
    while t.peek().isdigit() and t.peek().isascii():
        t.i += 1
    if t.i == j:
        _bad(t.s, "a number expected at %r" % t.s[j:])
    value = int(t.s[j:t.i])
    if usec:
        value *= USEC
        if t.peek() == "." and t.peek(1) != ".":  # one "." is a decimal point, ".." a range
            t.i += 1
            k = t.i
            while t.peek().isdigit() and t.peek().isascii():
                t.i += 1
            if t.i == k:
                _bad(t.s, "a fraction expected")
            digits = t.s[k:t.i]
            value += int(digits[:6].ljust(6, "0")) + (len(digits) > 6 and digits[6] >= "5")
    if value > 0x7fffffff:
        _bad(t.s, "number out of range")
    return value


def _chain(t, usec):
    """`*` or a comma list of N[..M][/R] -> tuple of (start, stop or -1, repeat) or None for `*`."""
    if t.peek() == "*":
        t.i += 1
        return ((0, -1, USEC),) if usec else None
    out = []
    while True:
        if len(out) > _MAX_COMPONENTS:
            _bad(t.s, "too many values")
        start, stop, repeat = _number(t, usec), -1, 0
        if t.peek() == "." and t.peek(1) == ".":
            t.i += 2
            stop = _number(t, usec)
            repeat = USEC if usec else 1
        if t.peek() == "/":
            t.i += 1
            repeat = _number(t, usec)
            if repeat == 0:
                _bad(t.s, "a repetition of 0")
        elif usec and stop >= 0 and start + repeat > stop:
            _bad(t.s, "a range of seconds shorter than a second")
        if t.peek() not in ("", " ", ",", "-", "~", ":"):
            _bad(t.s, "unexpected %r" % t.peek())
        out.append((start, stop, repeat))
        if t.peek() != ",":
            return tuple(out)
        t.i += 1


def _weekdays(t):
    """Weekday names, lists and ranges at the cursor -> bit mask (bit 0 Monday), 0 if none."""
    bits, first, range_from = 0, True, -1
    while True:
        rest = t.s[t.i:].lower()
        for nr, names in enumerate(_WEEKDAYS):  # noqa: B007 (nr is used after the loop)
            name = next((n for n in names if rest.startswith(n)), None)
            if name is not None:
                break
        else:
            if first:
                return 0
            _bad(t.s, "a weekday expected at %r" % t.s[t.i:])
        if t.peek(len(name)) not in ("", "-", ".", ",", " "):
            _bad(t.s, "bad weekday at %r" % t.s[t.i:])
        bits |= 1 << nr
        if range_from >= 0:
            if range_from > nr:
                _bad(t.s, "weekday range goes backwards")
            for j in range(range_from + 1, nr):
                bits |= 1 << j
        t.i += len(name)
        if t.done():
            return bits
        c = t.peek()
        if c == " ":
            t.skip_spaces()
            return bits
        if c == ".":
            if range_from >= 0 or t.peek(1) != ".":
                _bad(t.s, "bad weekday range")
            range_from = nr
            t.i += 2
        elif c == "-":
            if range_from >= 0:
                _bad(t.s, "bad weekday range")
            range_from = nr
            t.i += 1
        elif c == ",":
            range_from = -1
            t.i += 1
        if t.peek() in ("", " "):  # a trailing comma is fine, an open range is not
            t.skip_spaces()
            if range_from >= 0:
                _bad(t.s, "open weekday range")
            return bits
        first = False


def _date(t, spec):
    """[[YEAR-]MONTH-DAY] (or @EPOCH); True when the expression is complete (no time may follow)."""
    if t.done():
        return False
    if t.peek() == "@":
        t.i += 1
        when = _number(t, False)
        y, m, d, hh, mm, ss = _Utc().wall(when)
        spec.utc = True
        spec.year, spec.month, spec.day = ((y, -1, 0),), ((m, -1, 0),), ((d, -1, 0),)
        spec.hour, spec.minute, spec.second = ((hh, -1, 0),), ((mm, -1, 0),), ((ss * USEC, -1, 0),)
        return True
    mark = t.i
    first = _chain(t, False)
    if t.peek() in ("", ":"):  # a time, not a date
        t.i = mark
        return False
    if t.peek() == "~":
        spec.end_of_month = True
    elif t.peek() != "-":
        _bad(t.s, "bad date")
    t.i += 1
    second = _chain(t, False)
    if t.peek() in ("", " "):
        t.skip_spaces()
        spec.month, spec.day = first, second
        return False
    if spec.end_of_month:
        _bad(t.s, "'~' must separate the month from the day")
    if t.peek() == "~":
        spec.end_of_month = True
    elif t.peek() != "-":
        _bad(t.s, "bad date")
    t.i += 1
    third = _chain(t, False)
    if t.peek() not in ("", " "):
        _bad(t.s, "bad date")
    t.skip_spaces()
    spec.year, spec.month, spec.day = first, second, third
    return False


def _time_of_day(t, spec):
    if t.done():
        spec.hour, spec.minute, spec.second = _ZERO, _ZERO, _ZERO
        return
    spec.hour = _chain(t, False)
    if t.peek() != ":":
        _bad(t.s, "bad time")
    t.i += 1
    spec.minute = _chain(t, False)
    if t.done():
        spec.second = _ZERO
        return
    if t.peek() != ":":
        _bad(t.s, "bad time")
    t.i += 1
    spec.second = _chain(t, True)
    if not t.done():
        _bad(t.s, "trailing %r" % t.s[t.i:])


def _normalize_chain(chain):
    if chain is None:
        return None
    out = set()
    for start, stop, repeat in chain:
        if stop > start and repeat > 0:
            stop -= (stop - start) % repeat
        if (stop > start and repeat > 0 and start + repeat > stop) or start == stop:
            stop, repeat = -1, 0  # a repetition that cannot happen, or a range of one value
        out.add((start, stop, repeat))
    return tuple(sorted(out))


def _fix_year(chain):
    def fix(v):
        return v + 2000 if 0 <= v < 70 else v + 1900 if 70 <= v < 100 else v
    return None if chain is None else tuple((fix(a), fix(b) if b >= 0 else b, r) for a, b, r in chain)


def _chain_valid(chain, lo, hi, end_of_month=False):
    if chain is None:
        return True
    for start, stop, repeat in chain:
        if end_of_month:
            hi -= 3  # systemd takes 3 more off for each value of the list; the peer defines the syntax
        if not lo <= start <= hi or repeat > hi - lo:
            return False
        if stop >= 0:
            if not lo <= stop <= hi or start + repeat > stop:
                return False
        elif (start - repeat < lo) if end_of_month else (start + repeat > hi):
            return False
    return True


def parse(text):
    """An OnCalendar= expression -> CalendarSpec; ValueError naming the problem."""
    spec = CalendarSpec()
    s = text.strip()
    low = s.lower()
    if low.endswith(" utc"):
        spec.utc, s = True, s[:-4]
    else:
        head, sep, last = s.rpartition(" ")
        names = [n for n in time.tzname if n]
        if sep and head and last.lower() in [n.lower() for n in names] and last.upper() != "UTC":
            spec.dst = [n.lower() for n in time.tzname].index(last.lower())
            s = head
        elif sep and head and _zone_name_valid(last):
            spec.timezone, s = last, head
    s = s.strip()
    if not s:
        _bad(text, "empty")
    short = _SHORTHANDS.get(s.lower())
    if short is not None:
        (spec.weekdays, spec.year, spec.month, spec.day, spec.hour, spec.minute, spec.second) = short
    else:
        t = _Text(s)
        spec.weekdays = _weekdays(t)
        if not _date(t, spec):
            _time_of_day(t, spec)
        if not t.done():
            _bad(text, "trailing %r" % t.s[t.i:])
    if spec.timezone == "UTC":
        spec.utc, spec.timezone = True, None
    if spec.weekdays <= 0 or spec.weekdays >= _ALL_DAYS:
        spec.weekdays = 0
    if spec.end_of_month and spec.day is None:
        spec.end_of_month = False
    spec.year = _normalize_chain(_fix_year(spec.year))
    spec.month, spec.day = _normalize_chain(spec.month), _normalize_chain(spec.day)
    spec.hour, spec.minute = _normalize_chain(spec.hour), _normalize_chain(spec.minute)
    spec.second = _normalize_chain(spec.second)
    if not (_chain_valid(spec.year, MIN_YEAR, MAX_YEAR) and _chain_valid(spec.month, 1, 12)
            and _chain_valid(spec.day, 1, 31, spec.end_of_month) and _chain_valid(spec.hour, 0, 23)
            and _chain_valid(spec.minute, 0, 59) and _chain_valid(spec.second, 0, 60 * USEC - 1)):
        _bad(text, "a value out of range")
    return spec


# ---------------------------------------------------------------------------------------------
# The parsed expression
# ---------------------------------------------------------------------------------------------

def _format_chain(chain, width, usec=False):
    if chain is None:
        return "*"
    d = USEC if usec else 1
    if usec and chain == ((0, -1, USEC),):
        return "*"
    parts = []
    for start, stop, repeat in chain:
        p = "%0*d" % (width, start // d)
        if start % d:
            p += ".%06d" % (start % d)
        if stop > 0:
            p += "..%0*d" % (width, stop // d)
            if stop % d:
                p += ".%06d" % (stop % d)
        if repeat > 0 and not (stop > 0 and repeat == d):
            p += "/%d" % (repeat // d)
        if repeat % d > 0:
            p += ".%06d" % (repeat % d)
        parts.append(p)
    return ",".join(parts)


def _next_match(chain, value):
    """The smallest value >= `value` the chain allows (None: no limit, `value` itself); None if none."""
    if chain is None:
        return value
    best = None
    for start, stop, repeat in chain:
        if start >= value:
            k = start
        elif repeat > 0:
            k = start + repeat * -(-(value - start) // repeat)
            if stop >= 0 and k > stop:
                continue
        else:
            continue
        if best is None or k < best:
            best = k
    return best


class CalendarSpec:
    """A parsed expression. Chains are tuples of (start, stop or -1, repeat) or None for `*`;
    seconds are in microseconds; weekdays a bit mask (bit 0 Monday; 0: any day)."""

    def __init__(self):
        self.weekdays = 0
        self.year = self.month = self.day = self.hour = self.minute = self.second = None
        self.end_of_month = False
        self.utc = False
        self.dst = -1
        self.timezone = None
        self._zone = None

    def normalize(self):
        """systemd's normalized form, what `systemd-analyze calendar` prints."""
        out = []
        if self.weekdays:
            out.append(self._format_weekdays() + " ")
        out.append("%s-%s%s%s %s:%s:%s" % (
            _format_chain(self.year, 4), _format_chain(self.month, 2), "~" if self.end_of_month else "-",
            _format_chain(self.day, 2), _format_chain(self.hour, 2), _format_chain(self.minute, 2),
            _format_chain(self.second, 2, usec=True)))
        if self.utc:
            out.append(" UTC")
        elif self.timezone:
            out.append(" " + self.timezone)
        elif self.dst in (0, 1) and time.tzname[self.dst]:
            out.append(" " + time.tzname[self.dst])
        return "".join(out)

    __str__ = normalize

    def _format_weekdays(self):
        out, run = [], -1
        for x in range(8):
            on = x < 7 and self.weekdays & (1 << x)
            if on and run < 0:
                out.append(("," if out else "") + _DAY_NAMES[x])
                run = x
            elif not on and run >= 0:
                if x > run + 1:
                    out.append((".." if x > run + 2 else ",") + _DAY_NAMES[x - 1])
                run = -1
        return "".join(out)

    @property
    def zone(self):
        if self._zone is None:
            self._zone = _Utc() if self.utc else _Named(self.timezone) if self.timezone else _Local(self.dst)
        return self._zone

    def next_elapse(self, after):
        """Epoch seconds (float) of the first match strictly after `after` (epoch seconds); None if
        the expression never elapses again."""
        usec = self.next_usec(int(after * USEC) if not isinstance(after, int) else after * USEC)
        return None if usec is None else usec / USEC

    def next_usec(self, after_usec):
        """As next_elapse, in integer microseconds."""
        zone = self.zone
        after_usec += 1
        t, frac = divmod(after_usec, USEC)
        w = list(zone.wall(t))
        for _ in range(100000):  # each round moves forward; bounded against a zone database gone wrong
            found = self._search(w, frac)
            if found is None:
                return None
            cand, frac = found
            times = [e * USEC + frac for e in zone.occurrences(cand)]
            later = [t for t in times if t >= after_usec]
            if later:  # the clock going back repeats a wall time: the first occurrence still to come
                return later[0]
            if times:
                t, frac = divmod(times[-1] + 1, USEC)
                w = list(zone.wall(t))
                continue
            epoch = zone.to_epoch(cand)  # a wall time that does not exist: go on from where it lands
            if epoch is None:
                return None
            w, frac = list(zone.wall(epoch)), 0
            if tuple(w) <= cand:
                return None
        return None

    def _day_values(self, y, m):
        """The day chain of month (y, m), resolved from the end of the month when `~` was used."""
        if not self.end_of_month or self.day is None:
            return self.day
        dim = days_in_month(y, m)
        out = []
        for start, stop, repeat in self.day:
            a = dim + 1 - start
            b = dim + 1 - stop if stop >= 0 else -1
            if stop >= 0:
                a, b = b, a
            out.append((a, b, repeat))
        return tuple(out)

    def _search(self, w, frac):
        """The first wall time >= (w, frac) matching every field -> (wall tuple, usec) or None."""
        y, m, d, hh, mm, ss = w
        us = ss * USEC + frac
        while True:
            ny = _next_match(self.year, y)
            if ny is None or ny > MAX_YEAR:
                return None
            if ny != y:
                y, m, d, hh, mm, us = ny, 1, 1, 0, 0, 0
            nm = _next_match(self.month, m)
            if nm is None or nm > 12:
                y, m, d, hh, mm, us = y + 1, 1, 1, 0, 0, 0
                continue
            if nm != m:
                m, d, hh, mm, us = nm, 1, 0, 0, 0
            nd = _next_match(self._day_values(y, m), d)
            if nd is None or nd > days_in_month(y, m):
                y, m, d, hh, mm, us = (y, m + 1, 1, 0, 0, 0) if m < 12 else (y + 1, 1, 1, 0, 0, 0)
                continue
            if nd != d:
                d, hh, mm, us = nd, 0, 0, 0
            if self.weekdays and not self.weekdays & (1 << weekday(y, m, d)):
                d, hh, mm, us = d + 1, 0, 0, 0
                if d > days_in_month(y, m):
                    y, m, d = (y, m + 1, 1) if m < 12 else (y + 1, 1, 1)
                continue
            nh = _next_match(self.hour, hh)
            if nh is None or nh > 23:
                d, hh, mm, us = d + 1, 0, 0, 0
                if d > days_in_month(y, m):
                    y, m, d = (y, m + 1, 1) if m < 12 else (y + 1, 1, 1)
                continue
            if nh != hh:
                hh, mm, us = nh, 0, 0
            nmin = _next_match(self.minute, mm)
            if nmin is None or nmin > 59:
                hh, mm, us = hh + 1, 0, 0
                if hh > 23:
                    d, hh = d + 1, 0
                    if d > days_in_month(y, m):
                        y, m, d = (y, m + 1, 1) if m < 12 else (y + 1, 1, 1)
                continue
            if nmin != mm:
                mm, us = nmin, 0
            nus = _next_match(self.second, us)
            if nus is None or nus >= 60 * USEC:
                mm, us = mm + 1, 0
                if mm > 59:
                    hh, mm = hh + 1, 0
                    if hh > 23:
                        d, hh = d + 1, 0
                        if d > days_in_month(y, m):
                            y, m, d = (y, m + 1, 1) if m < 12 else (y + 1, 1, 1)
                continue
            return (y, m, d, hh, mm, nus // USEC), nus % USEC


def normalize(text):
    """The normalized form of an expression (ValueError when it is not one)."""
    return parse(text).normalize()


def next_elapse(text, after):
    """Epoch seconds of the next match of expression `text` strictly after `after`, or None."""
    return parse(text).next_elapse(after)
