"""systemd unit files, the syntax: systemd.syntax(7) lines, quoting, specifiers, time spans, unit names.

Pure functions over text (no file access, no `re`): `richinit.services.unitdirs` reads the files,
`richinit.services.units` gives the values their meaning.

* `parse(text)` -> [(section, key, value, line)] and [(line, message)]: `[Section]` headers, `Key=Value`
  assignments (white space around both stripped), `#` and `;` comment lines, a backslash at the end of
  a line continuing it on the next (joined with a space; comment lines inside a continuation are
  skipped, as systemd does). A line outside any section or without `=` is a problem, not the end.
* `split_words(text)`: systemd's extract_first_word with EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE: words
  split on white space, '…' and "…" quote (anywhere inside a word), C escapes (\\n \\t \\xNN \\NNN
  \\uXXXX …) outside and inside quotes.
* `exec_lines(text)`: ExecXxx= values: [(flags, argv)], commands separated by a lone `;` word (`\\;`
  is a literal `;` argument), the `-@:+!` prefixes of the first word split off.
* `timespan(text)`: systemd.time(7) spans ("1min 30s", "2h", "500ms", "5") in seconds; None for infinity.
* `expand(text, table)`: %-specifiers from a {letter: value} table; unknown ones raise ValueError.
"""

WHITESPACE = " \t\n\r"
UNIT_TYPES = ("service", "socket", "timer", "target", "path", "mount", "automount", "swap", "slice",
              "scope", "device")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:-_.\\@")
_HEX = "0123456789abcdefABCDEF"


def parse(text):
    """Unit file text -> ([(section, key, value, line)], [(line, message)])."""
    out, problems = [], []
    section = None
    lines = text.split("\n")
    i, n = 0, len(lines)
    while i < n:
        start = i + 1
        line = lines[i].strip()
        i += 1
        if not line or line[0] in "#;":
            continue
        while line.endswith("\\") and i < n:  # continuation: the backslash becomes a space
            nxt = lines[i].strip()
            i += 1
            if nxt[:1] in ("#", ";"):
                continue
            line = line[:-1] + " " + nxt
        if line.endswith("\\"):
            line = line[:-1].rstrip()
        if line[0] == "[":
            if not line.endswith("]") or len(line) < 3:
                problems.append((start, "invalid section header %r" % line[:80]))
                section = ""  # the assignments that follow are ignored, not put under the last section
                continue
            section = line[1:-1]
            continue
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq or not key:
            problems.append((start, "missing '=': %r" % line[:80]))
            continue
        if section is None:
            problems.append((start, "assignment outside of any section: %r" % line[:80]))
            continue
        if section == "":
            continue
        out.append((section, key, value.strip(), start))
    return out, problems


def _cescape(text, i):
    """The C escape starting after the backslash at text[i-1]: (characters, next index); ValueError."""
    c = text[i]
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
              '"': '"', "'": "'", "s": " ", " ": " "}
    if c in simple:
        return simple[c], i + 1
    if c == "x":
        digits = text[i + 1:i + 3]
        if len(digits) == 2 and all(h in _HEX for h in digits):
            return chr(int(digits, 16)), i + 3
    if c in "uU":
        width = 4 if c == "u" else 8
        digits = text[i + 1:i + 1 + width]
        if len(digits) == width and all(h in _HEX for h in digits):
            return chr(int(digits, 16)), i + 1 + width
    if c in "01234567":
        digits = text[i:i + 3]
        if len(digits) == 3 and all(d in "01234567" for d in digits):
            return chr(int(digits, 8)), i + 3
    raise ValueError("invalid escape \\%s" % c)


def next_word(text, i=0, unescape=True):
    """(word, next index) of the word starting at or after text[i], or (None, len) at the end.
    ValueError on unbalanced quotes or a bad escape."""
    n = len(text)
    while i < n and text[i] in WHITESPACE:
        i += 1
    if i >= n:
        return None, n
    out, quote = [], None
    while i < n:
        c = text[i]
        if quote is None and c in WHITESPACE:
            break
        if c == "\\":
            if i + 1 >= n:
                raise ValueError("trailing backslash")
            if unescape:
                s, i = _cescape(text, i + 1)
                out.append(s)
            else:
                out.append(text[i + 1])
                i += 2
            continue
        if quote is not None:
            if c == quote:
                quote = None
            else:
                out.append(c)
        elif c in "'\"":
            quote = c
        else:
            out.append(c)
        i += 1
    if quote is not None:
        raise ValueError("unbalanced quoting")
    return "".join(out), i


def split_words(text, unescape=True):
    """All words of text (see next_word)."""
    words, i = [], 0
    while True:
        w, i = next_word(text, i, unescape)
        if w is None:
            return words
        words.append(w)


EXEC_PREFIXES = "-@:+!"


def exec_lines(text):
    """An ExecXxx= value -> [(flags, [argv...])]; ValueError naming what is wrong.

    flags are the prefix characters of the first word as written, in canonical order ("-", "@", ":",
    then "+", "!" or "!!"); with "@" the command is argv[0] and argv[1] the name it is given.
    """
    out, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in WHITESPACE:
            i += 1
        if i >= n:
            break
        first, i = next_word(text, i)
        j, seen = 0, []
        while j < len(first) and first[j] in EXEC_PREFIXES:
            c = first[j]
            if c == "!" and seen.count("!") == 1 and seen[-1] == "!":
                seen.append(c)
            elif c in seen or (c in "+!" and any(x in "+!" for x in seen)):
                break
            else:
                seen.append(c)
            j += 1
        path = first[j:]
        if not path:
            raise ValueError("empty executable path in %r" % text[:80])
        argv = [path]
        semicolon = False
        while True:
            while i < n and text[i] in WHITESPACE:
                i += 1
            if i >= n:
                break
            if text[i] == ";" and (i + 1 >= n or text[i + 1] in WHITESPACE):
                i += 1
                semicolon = True
                break
            if text.startswith("\\;", i) and (i + 2 >= n or text[i + 2] in WHITESPACE):
                argv.append(";")
                i += 2
                continue
            w, i = next_word(text, i)
            if w is None:
                break
            argv.append(w)
        if "@" in seen and len(argv) < 2:
            raise ValueError("'@' prefix without the argv[0] word in %r" % text[:80])
        order = "-@:"
        flags = "".join(c for c in order if c in seen) + "".join(c for c in seen if c in "+!")
        out.append((flags, argv))
        if not semicolon:
            break
    return out


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------

_TIME_UNITS = {
    "usec": 1e-6, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6,
    "msec": 1e-3, "ms": 1e-3,
    "seconds": 1.0, "second": 1.0, "sec": 1.0, "s": 1.0,
    "minutes": 60.0, "minute": 60.0, "min": 60.0, "m": 60.0,
    "hours": 3600.0, "hour": 3600.0, "hr": 3600.0, "h": 3600.0,
    "days": 86400.0, "day": 86400.0, "d": 86400.0,
    "weeks": 604800.0, "week": 604800.0, "w": 604800.0,
    "months": 2629800.0, "month": 2629800.0, "M": 2629800.0,
    "years": 31557600.0, "year": 31557600.0, "y": 31557600.0,
}


def timespan(text, default_unit=1.0):
    """systemd.time(7) span -> seconds (float), None for "infinity"; ValueError when malformed.
    A number without a unit is in `default_unit` seconds (seconds for most settings)."""
    s = text.strip()
    if s == "infinity":
        return None
    if not s:
        raise ValueError("empty time span")
    total, i, n, parts = 0.0, 0, len(s), 0
    while i < n:
        while i < n and s[i] in WHITESPACE:
            i += 1
        if i >= n:
            break
        j = i
        while j < n and (s[j].isdigit() or s[j] == "."):
            j += 1
        if j == i or s[i:j].count(".") > 1 or s[i:j] == ".":
            raise ValueError("invalid time span %r" % text)
        number = float(s[i:j])
        while j < n and s[j] in WHITESPACE:
            j += 1
        k = j
        while k < n and not s[k].isdigit() and s[k] not in WHITESPACE and s[k] != ".":
            k += 1
        unit = s[j:k]
        if unit:
            if unit not in _TIME_UNITS:
                raise ValueError("unknown time unit %r in %r" % (unit, text))
            total += number * _TIME_UNITS[unit]
        elif k < n or parts:
            raise ValueError("a number without a unit inside %r" % text)
        else:
            total += number * default_unit
        parts += 1
        i = k
    return total


def boolean(text):
    v = text.strip().lower()
    if v in ("1", "yes", "y", "true", "t", "on"):
        return True
    if v in ("0", "no", "n", "false", "f", "off"):
        return False
    raise ValueError("expected a boolean, got %r" % text)


_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}


def size(text):
    """Bytes with an optional 1024-based suffix (K M G T P E, optional trailing B); ValueError."""
    s = text.strip()
    if s.endswith("B") and len(s) > 1 and s[-2] in _SIZE_UNITS:
        s = s[:-1]
    mult = 1
    if s and s[-1] in _SIZE_UNITS:
        mult, s = _SIZE_UNITS[s[-1]], s[:-1]
    try:
        value = float(s) if "." in s else int(s)
    except ValueError:
        raise ValueError("invalid size %r" % text) from None
    if value < 0:
        raise ValueError("negative size %r" % text)
    return int(value * mult)


# ---------------------------------------------------------------------------------------------
# Unit names and specifiers
# ---------------------------------------------------------------------------------------------

_split_cache = {}


def split_name(name):
    """"foo@bar.service" -> ("foo", "bar", "service"); "foo@.service" -> ("foo", "", "service");
    "foo.service" -> ("foo", None, "service"). ValueError when it is not a unit name."""
    hit = _split_cache.get(name)
    if hit is None:
        hit = _split_cache[name] = _split_name(name)
    return hit


def _split_name(name):
    stem, dot, utype = name.rpartition(".")
    if not dot or not stem or utype not in UNIT_TYPES or len(name) > 255:
        raise ValueError("not a unit name: %r" % name)
    if not _NAME_CHARS.issuperset(stem):
        raise ValueError("invalid characters in unit name %r" % name)
    prefix, at, instance = stem.partition("@")
    if not prefix:
        raise ValueError("not a unit name: %r" % name)
    if at:
        if "@" in instance:
            raise ValueError("more than one '@' in unit name %r" % name)
        return prefix, instance, utype
    return prefix, None, utype


def valid_name(name):
    try:
        split_name(name)
    except ValueError:
        return False
    return True


def unescape_name(text):
    """systemd-escape --unescape: "-" is "/", "\\xNN" a byte."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == "-":
            out.append("/")
        elif c == "\\" and text.startswith("x", i + 1) and len(text[i + 2:i + 4]) == 2 \
                and all(h in _HEX for h in text[i + 2:i + 4]):
            out.append(chr(int(text[i + 2:i + 4], 16)))
            i += 4
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def unescape_path(text):
    """%I-style unescape plus the leading "/" of a path (%f)."""
    p = unescape_name(text)
    return p if p.startswith("/") else "/" + p


def name_specifiers(name):
    """The specifiers a unit name fixes: %n %N %p %P %i %I %j %J %f."""
    prefix, instance, utype = split_name(name)
    stem = name[:-len(utype) - 1]
    j = prefix.rsplit("-", 1)[-1] if "-" in prefix else prefix
    inst = instance or ""
    return {"n": name, "N": stem, "p": prefix, "P": unescape_name(prefix), "i": inst, "I": unescape_name(inst),
            "j": j, "J": unescape_name(j), "f": unescape_path(inst if instance else prefix)}


INSTANCE_SPECIFIERS = "iInNfjJ"  # what a template's text keeps until it is instantiated (plus %%)


def expand(text, table, keep=""):
    """Replace %X from table; letters in `keep` (and %% when keep is set) are left as written.
    ValueError for an unknown specifier or a lone % at the end."""
    if "%" not in text:
        return text
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        if i + 1 >= n:
            raise ValueError("lone '%%' at the end of %r" % text[:80])
        x = text[i + 1]
        if x == "%":
            out.append("%%" if keep else "%")
        elif x in keep:
            out.append("%" + x)
        elif x in table:
            out.append(table[x])
        else:
            raise ValueError("unknown specifier %%%s in %r" % (x, text[:80]))
        i += 2
    return "".join(out)


def instantiate(template, instance):
    """A service template's dict (the loader document's "templates") made into instance `instance`:
    every string's %i %I %n %N %f %j %J and %% filled in, name and unit set. ValueError when the
    instance name is not valid."""
    prefix = template["name"].rstrip("@")
    unit = "%s@%s.service" % (prefix, instance)
    split_name(unit)
    table = name_specifiers(unit)

    def fill(v):
        if isinstance(v, str):
            return expand(v, table)
        if isinstance(v, list):
            return [fill(x) for x in v]
        if isinstance(v, tuple):
            return tuple(fill(x) for x in v)
        if isinstance(v, dict):
            return {k: fill(x) for k, x in v.items()}
        return v
    out = fill({k: v for k, v in template.items() if k not in ("name", "unit")})
    out["name"], out["unit"] = unit[:-len(".service")], unit
    return out
