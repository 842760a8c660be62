"""Quota rules in PouchContainer's syntax: parse, then validate with a list of checks.

    /=10G           the container's writable layer
    /data=1G        a mount destination (a volume) or a directory of the image
    /a&/b=10G       one limit shared by several directories
    .*=5G           a regex (anything not starting with "/"), matched in full against every
                    bind-mount destination; each match gets its own limit

Sizes are a whole number with an optional K, M, G or T (binary units; a trailing "B" or "iB"
is accepted). Everything here is pure: the text comes from an annotation (hostile) or the
command line, and every problem becomes one line that names the rule and its origin.
"""

import re
from dataclasses import dataclass, field

ANNOTATION = "io.richinit.quota"
BACKEND_ANNOTATION = "io.richinit.quota-backend"
ID_ANNOTATION = "io.richinit.quota-id"

MIN_LIMIT = 1 << 20        # a smaller ext4 image has no room for its own metadata
MAX_LIMIT = 1 << 60
MAX_RULES = 64
MAX_REGEX = 256            # regexes come from an annotation: keep them short
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"([0-9]{1,19})([KMGT]?)(I?B)?", re.IGNORECASE)


class RuleError(ValueError):
    """One line: which rule, from where, what is wrong."""


@dataclass(frozen=True)
class Target:
    text: str                 # as written
    path: str | None = None   # normalised absolute destination ("/" for the writable layer)
    regex: object = None      # compiled pattern when the target is a regex


@dataclass(frozen=True)
class Rule:
    text: str
    origin: str               # "annotation io.richinit.quota" or "--quota"
    targets: tuple = field(default_factory=tuple)
    limit: int = 0

    @property
    def shared(self):
        return len(self.targets) > 1

    def where(self):
        return "quota rule %r (%s)" % (self.text, self.origin)


def parse_size(text):
    """'10G' -> 10737418240; None when the text is not a size."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        return None
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def _normalise(path):
    parts = []
    for c in path.split("/"):
        if c in ("", "."):
            continue
        if c == "..":
            return None  # a destination never needs "..": refuse rather than guess
        parts.append(c)
    return "/" + "/".join(parts)


def _parse_target(text, where):
    text = text.strip()
    if not text:
        raise RuleError("%s: empty directory in the rule" % where)
    if text.startswith("/"):
        path = _normalise(text)
        if path is None:
            raise RuleError("%s: %r contains '..'" % (where, text))
        if "\0" in path:
            raise RuleError("%s: NUL in %r" % (where, text))
        return Target(text, path=path)
    if len(text) > MAX_REGEX:
        raise RuleError("%s: regex longer than %d characters" % (where, MAX_REGEX))
    try:
        return Target(text, regex=re.compile(text))
    except re.error as e:
        raise RuleError("%s: bad regex %r: %s" % (where, text, e))


def parse_rule(text, origin):
    """One rule -> Rule, or RuleError naming it."""
    where = "quota rule %r (%s)" % (text, origin)
    left, eq, size = text.rpartition("=")
    if not eq or not left.strip():
        raise RuleError("%s: expected DIR=SIZE, e.g. /data=1G" % where)
    limit = parse_size(size)
    if limit is None:
        raise RuleError("%s: bad size %r: use a whole number with K, M, G or T" % (where, size.strip()))
    targets = tuple(_parse_target(t, where) for t in left.split("&"))
    return Rule(text.strip(), origin, targets, limit)


def parse_rules(annotation_value=None, cli_rules=()):
    """Rules from the annotation (comma-separated) and from repeated --quota options.

    Raises RuleError for the first rule that does not parse; call validate() on the result.
    """
    rules = []
    if annotation_value:
        for part in annotation_value.split(","):
            if part.strip():
                rules.append(parse_rule(part.strip(), "annotation " + ANNOTATION))
    for part in cli_rules:
        rules.append(parse_rule(part, "--quota"))
    return rules


# ---- validation: each check looks at all rules and returns problem lines ----

def _check_count(rules):
    if len(rules) > MAX_RULES:
        return ["%d quota rules: at most %d are allowed" % (len(rules), MAX_RULES)]
    return []


def _check_limits(rules):
    out = []
    for r in rules:
        if r.limit < MIN_LIMIT:
            out.append("%s: limit %d bytes is below the minimum of 1M" % (r.where(), r.limit))
        elif r.limit > MAX_LIMIT:
            out.append("%s: limit is above 1024P" % r.where())
    return out


def _check_duplicates(rules):
    seen, out = {}, []
    for r in rules:
        for t in r.targets:
            key = t.path if t.path is not None else "regex:" + t.text
            if key in seen and seen[key] is not r:
                out.append("%s: %s already has a limit in %s" % (r.where(), t.text, seen[key].where()))
            elif key in seen:
                out.append("%s: %s is named twice" % (r.where(), t.text))
            seen[key] = r
    return out


def _check_shared_regex(rules):
    # "each matching mount on its own" cannot be combined with a shared limit.
    return ["%s: a regex cannot be part of a shared (&) limit" % r.where()
            for r in rules if r.shared and any(t.regex is not None for t in r.targets)]


def _check_nesting(rules):
    # A limit on /data and another on /data/logs would need nested quotas: refuse.
    out, paths = [], [(t.path, r) for r in rules for t in r.targets if t.path not in (None, "/")]
    for p, r in paths:
        for q, s in paths:
            if p != q and q.startswith(p + "/"):
                out.append("%s: %s is inside %s limited by %s" % (s.where(), q, p, r.where()))
    return out


CHECKS = (_check_count, _check_limits, _check_duplicates, _check_shared_regex, _check_nesting)


def validate(rules):
    """All problems as lines (empty when the rules are fine)."""
    out = []
    for check in CHECKS:
        out.extend(check(rules))
    return out


def parse_backend(value):
    v = (value or "auto").strip()
    if v not in ("auto", "loop", "project"):
        raise RuleError("annotation %s: %r is not one of auto, loop, project" % (BACKEND_ANNOTATION, value))
    return v


def parse_quota_id(value):
    """The explicit project ID (PouchContainer's --quota-id); None or -1 mean allocate one."""
    if value is None or str(value).strip() in ("", "-1"):
        return None
    v = str(value).strip()
    if not v.isdigit() or not (1 <= int(v) < (1 << 32) - 1):
        raise RuleError("annotation %s: %r is not a project ID (1..4294967294)" % (ID_ANNOTATION, value))
    return int(v)
