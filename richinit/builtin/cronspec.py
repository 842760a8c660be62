"""Crontab text -> schedules and entries; pure functions, no OS access.

Syntax is Vixie cron's (Debian, cronie, busybox agree on it):
- five fields: minute hour day-of-month month day-of-week; each a list of
  `*`, `N`, `N-M`, with an optional `/STEP`; `N/STEP` means N-max/STEP (cronie);
  month and weekday names (jan, mon...) anywhere a number goes; weekday 7 is Sunday;
- the day OR rule: when both day fields are restricted (neither starts with `*`),
  a day matches if EITHER matches; otherwise both must. Like Vixie, a field that
  starts with `*` counts as unrestricted even with a step (`*/2`);
- @reboot @yearly @annually @monthly @weekly @daily @midnight @hourly;
- `NAME=value` lines (value optionally quoted) set the environment of the
  entries that follow them;
- in the command an unescaped `%` ends the command: the rest, with each further
  `%` turned into a newline, is the job's stdin; `\\%` is a literal `%`.
System crontabs (/etc/crontab, /etc/cron.d/*) have a user field after the schedule.

Parsed by hand (no re): the built-in cron runs in every container and stays lean.
"""

import time

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# (name, low, high, names, name offset)
_FIELDS = (
    ("minute", 0, 59, None, 0),
    ("hour", 0, 23, None, 0),
    ("day of month", 1, 31, None, 0),
    ("month", 1, 12, MONTHS, 1),
    ("day of week", 0, 7, DAYS, 0),
)

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_NAME_FIRST = _LETTERS | frozenset("_")
_NAME_REST = _NAME_FIRST | frozenset("0123456789")
_USER_FIRST = _NAME_REST | frozenset(".")
_USER_REST = _USER_FIRST | frozenset("-")
_MAX_YEARS = 10  # Feb 29 recurs within 8 years (2096 -> 2104); nothing valid needs more


class SpecError(ValueError):
    pass


def _assignment(line):
    """`NAME = value` -> (NAME, value), blanks around both stripped; None if the line is not one."""
    name, eq, value = line.partition("=")
    name = name.strip()
    if not eq or not name or name[0] not in _NAME_FIRST or not all(c in _NAME_REST for c in name):
        return None
    return name, value.strip()


def _user_name(text):
    """Letters, digits, `_`, `.`, `-` (not first), and a trailing `$` (Samba machine accounts)."""
    if text.endswith("$"):
        text = text[:-1]
    return bool(text) and text[0] in _USER_FIRST and all(c in _USER_REST for c in text)


def _value(text, low, high, names, offset, what):
    t = text.lower()
    if names and t in names:
        return names.index(t) + offset
    if not t.isdigit():
        raise SpecError("%s: %r is not a number%s" % (what, text, " or name" if names else ""))
    n = int(t)
    if not low <= n <= high:
        raise SpecError("%s: %d out of range %d-%d" % (what, n, low, high))
    return n


def parse_field(text, index):
    """One of the five fields -> frozenset of allowed values (weekday 7 folded to 0)."""
    what, low, high, names, offset = _FIELDS[index]
    values = set()
    if not text:
        raise SpecError("%s: empty" % what)
    for part in text.split(","):
        rng, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise SpecError("%s: bad step in %r" % (what, part))
            step = int(step_text)
        if rng == "*":
            start, end = low, high
            if index == 4:
                end = 6  # `*` is each day once, not Sunday twice
        elif "-" in rng:
            a, _, b = rng.partition("-")
            start = _value(a, low, high, names, offset, what)
            end = _value(b, low, high, names, offset, what)
            if end < start:
                raise SpecError("%s: range %r runs backwards" % (what, rng))
        else:
            start = _value(rng, low, high, names, offset, what)
            end = high if slash else start  # cronie: `5/10` is 5-max/10
            if slash and index == 4:
                end = 6
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


class Schedule:
    """Five parsed fields; `matches(struct_time)` and `next_after(epoch)`."""

    __slots__ = ("minutes", "hours", "doms", "months", "dows", "dom_star", "dow_star", "text")

    def __init__(self, text):
        fields = text.split()
        if len(fields) != 5:
            raise SpecError("schedule needs 5 fields, got %d: %r" % (len(fields), text))
        self.text = text
        self.minutes, self.hours, self.doms, self.months, self.dows = (
            parse_field(f, i) for i, f in enumerate(fields))
        self.dom_star = fields[2].startswith("*")
        self.dow_star = fields[4].startswith("*")

    def day_matches(self, mday, wday):
        """wday: 0=Sunday (cron's convention, not struct_time's 0=Monday)."""
        dom_ok = mday in self.doms
        dow_ok = wday in self.dows
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def matches(self, tm):
        """tm: a time.struct_time in local time."""
        return (tm.tm_min in self.minutes and tm.tm_hour in self.hours and tm.tm_mon in self.months
                and self.day_matches(tm.tm_mday, (tm.tm_wday + 1) % 7))

    def next_after(self, epoch):
        """The first local minute strictly after `epoch` that matches, as an epoch; None if never."""
        import datetime

        t = datetime.datetime.fromtimestamp(epoch).replace(second=0, microsecond=0)
        t += datetime.timedelta(minutes=1)
        limit = t.year + _MAX_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + datetime.timedelta(days=32)).replace(day=1)
                continue
            if not self.day_matches(t.day, (t.weekday() + 1) % 7):
                t = t.replace(hour=0, minute=0) + datetime.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + datetime.timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += datetime.timedelta(minutes=1)
                continue
            return time.mktime(t.timetuple())
        return None


class Entry:
    """One job line: schedule (None for @reboot), user, command, stdin, environment, origin."""

    __slots__ = ("schedule", "reboot", "user", "command", "stdin", "env", "file", "line")

    def __init__(self, schedule, reboot, user, command, stdin, env, file, line):
        self.schedule, self.reboot, self.user = schedule, reboot, user
        self.command, self.stdin, self.env = command, stdin, env
        self.file, self.line = file, line

    def where(self):
        return "%s:%d" % (self.file, self.line)

    def __repr__(self):
        return "Entry(%s %s %r)" % (self.where(), self.user, self.command)


def split_percent(text):
    """Command text -> (command, stdin or None) by crontab(5)'s `%` rule."""
    out, parts, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] == "%":
            out.append("%")
            i += 2
            continue
        if c == "%":
            parts.append("".join(out))
            out = []
        else:
            out.append(c)
        i += 1
    parts.append("".join(out))
    if len(parts) == 1:
        return parts[0], None
    return parts[0], "\n".join(parts[1:]) + "\n"


def _env_value(raw):
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def parse_crontab(text, file, user=None):
    """Crontab text -> (entries, errors). user=None: system crontab, lines carry a user field.

    errors: ["FILE:LINE: message", ...]; a bad line never stops the others.
    """
    entries, errors, env = [], [], {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line[0] not in "@*0123456789":
                assignment = _assignment(line)
                if assignment is None:
                    raise SpecError("neither a job nor NAME=value: %r" % _short(line))
                env = dict(env)  # entries keep the environment as it was when they were read
                env[assignment[0]] = _env_value(assignment[1])
                continue
            entries.append(_parse_job(line, file, lineno, user, env))
        except SpecError as e:
            errors.append("%s:%d: %s" % (file, lineno, e))
    return entries, errors


def _parse_job(line, file, lineno, user, env):
    nfields = 1 if line.startswith("@") else 5
    if user is None:
        nfields += 1
    parts = line.split(None, nfields)
    if len(parts) <= nfields:
        raise SpecError("missing %s: %r" % ("user or command" if user is None else "command", _short(line)))
    sched_text = " ".join(parts[:5] if nfields >= 5 else parts[:1])
    job_user = parts[nfields - 1] if user is None else user
    if user is None and not _user_name(job_user):
        raise SpecError("bad user name %r" % job_user)
    schedule, reboot = None, False
    if line.startswith("@"):
        nick = parts[0].lower()
        if nick == "@reboot":
            reboot = True
        elif nick in NICKNAMES:
            schedule = Schedule(NICKNAMES[nick])
        else:
            raise SpecError("unknown %r" % parts[0])
    else:
        schedule = Schedule(sched_text)
    command, stdin = split_percent(parts[nfields])
    if not command.strip():
        raise SpecError("empty command")
    return Entry(schedule, reboot, job_user, command, stdin, env, file, lineno)


def _short(text, n=60):
    return text if len(text) <= n else text[:n] + "..."
