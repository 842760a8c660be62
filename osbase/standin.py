"""The stand-ins: the few standard-library or PyYAML jobs done by hand, each because the budget of
the programs using it cannot hold the real module (tests/support/import_budget.py). Everything
else uses the standard library and PyYAML as they are.

Measured here with `python -X importtime` on a quiet machine (cumulative, first import), against
an interpreter start of ~6.5 ms and the targets: `rich run`'s host side <= 10 ms in all, the
rich-runtime pass-through (every engine call) <= 10 ms added, PID 1 lean for the container's life.

- JSON (json_loads, json_dumps): `import json` is 4.7 ms (json.decoder and json.scanner compile
  regular expressions: re, enum); the C scanner and encoder underneath, `_json`, cost ~0.2 ms.
  Used by rich-runtime, rich-hook, `rich run`, the view registry and PID 1's environment saver.
  Output is byte for byte json.dumps()'s; what json.loads() refuses is refused (ValueError):
  tests/test_standin.py compares them. json_copy is copy.deepcopy for a JSON value (`import copy`
  is 4.9 ms: weakref, copyreg).
- runtime.yaml (flat_yaml): PyYAML is 12.0 ms (re, enum, datetime, its C loader); the wrapper
  reads runtime.yaml on every call an engine makes, pass-through included. Only a flat mapping of
  plain or quoted scalars is read; anything else is refused naming the line. tests/test_standin.py
  holds it to yaml.safe_load on the subset (comments after quoted scalars included).
- `rich run`'s options (parse_options): argparse is 5.2 ms to import and ~1.5 ms to build the
  parser; read from a table, as argparse would read it (without abbreviations):
  tests/test_cli_run_argv.py holds them together on thousands of command-line shapes.
- Signals (`signal` below): the signal package is 2.8 ms (enum, for its IntEnums); `_signal` is the
  same C module without them. `rich run` forwards TERM/HUP to its runtime through it. (PID 1's side
  has its own note on the same choice: richinit/signals.py.)
- Names and ids (name_ok): `re` is 3.8 ms; the host side checks container ids, names and service
  names with a character-class test instead of [A-Za-z0-9][A-Za-z0-9_.-]{0,N}-style patterns
  (tests/test_standin.py holds it to re.fullmatch on generated strings).
"""

import _signal as signal  # noqa: F401 - the stand-in for `signal`: see above

try:
    import _json
    _scanner_factory = _json.make_scanner
    _encoder_factory = _json.make_encoder
    _escape_ascii = _json.encode_basestring_ascii
    _escape_utf8 = _json.encode_basestring
except (ImportError, AttributeError):  # pragma: no cover - CPython always has it
    _json = None

_WS = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _Context:
    """The attributes the C scanner reads from a json.JSONDecoder, with its defaults."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo = None


_scan = _scanner_factory(_Context()) if _json else None


def json_loads(data):
    """json.loads for str or UTF-8 bytes; ValueError for anything json.loads refuses."""
    if _scan is None or not isinstance(data, (str, bytes, bytearray)):  # pragma: no cover
        import json
        return json.loads(data)
    if not isinstance(data, str):
        data = bytes(data)
        if b"\x00" in data[:4]:  # UTF-16 or UTF-32: json knows the rules
            import json
            return json.loads(data)
        # As json.loads does for bytes: one UTF-8 BOM skipped, surrogates passed through.
        data = data.decode("utf-8-sig", "surrogatepass")
    elif data.startswith("\ufeff"):
        raise ValueError("Unexpected UTF-8 BOM (decode using utf-8-sig): line 1 column 1 (char 0)")
    start = len(data) - len(data.lstrip(_WS))
    try:
        obj, end = _scan(data, start)
    except StopIteration as e:
        raise ValueError("Expecting value: char %d" % e.value) from None
    except SystemError:
        # The C scanner raises its errors through json.decoder, and only when something imported
        # it: a malformed document is rare, so json itself reads it again and says what is wrong.
        import json
        return json.loads(data)
    end += len(data) - end - len(data[end:].lstrip(_WS))
    if end != len(data):
        raise ValueError("Extra data: char %d" % end)
    return obj


def _refuse(obj):
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def json_dumps(obj, sort_keys=False, separators=(", ", ": "), ensure_ascii=True):
    """json.dumps(obj, sort_keys=..., separators=..., ensure_ascii=...) without indent."""
    if _json is None:  # pragma: no cover
        import json
        return json.dumps(obj, sort_keys=sort_keys, separators=separators, ensure_ascii=ensure_ascii)
    if isinstance(obj, str):  # the encoder takes containers; a bare string is its escape
        return (_escape_ascii if ensure_ascii else _escape_utf8)(obj)
    item_sep, key_sep = separators
    enc = _encoder_factory({}, _refuse, _escape_ascii if ensure_ascii else _escape_utf8, None, key_sep, item_sep,
                           sort_keys, False, True)
    return "".join(enc(obj, 0))


def json_copy(v):
    """A deep copy of a JSON value (dicts, lists and immutable scalars): what copy.deepcopy gives."""
    if isinstance(v, dict):
        return {k: json_copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_copy(x) for x in v]
    return v


# ---------------------------------------------------------------- runtime.yaml

class FlatYamlError(ValueError):
    """'LINE: reason' (the caller names the file)."""


def _quoted(text, n):
    """A quoted scalar at the start of text and what follows it: (value, rest)."""
    q = text[0]
    if q == "'":
        out, i = [], 1
        while True:
            j = text.find("'", i)
            if j < 0:
                raise FlatYamlError("%d: unterminated quoted value" % n)
            out.append(text[i:j])
            if text[j + 1:j + 2] == "'":  # '' is a quote inside single quotes
                out.append("'")
                i = j + 2
                continue
            return "".join(out), text[j + 1:]
    j = text.find('"', 1)
    if j < 0:
        raise FlatYamlError("%d: unterminated quoted value" % n)
    if "\\" in text[1:j]:
        raise FlatYamlError("%d: escapes in double-quoted values are not supported" % n)
    return text[1:j], text[j + 1:]


def _scalar(text, n):
    text = text.strip()
    if text[:1] in ("'", '"'):
        value, rest = _quoted(text, n)
        rest = rest.strip()
        if rest and not rest.startswith("#"):
            raise FlatYamlError("%d: unexpected text after the quoted value" % n)
        return value
    for i, c in enumerate(text):
        if c == "#" and i and text[i - 1] == " ":  # a comment: '#' after a space
            text = text[:i].rstrip()
            break
    if not text or text[0] in "[{&*|>!%@`#,?:-\"'" or ": " in text or text.endswith(":"):
        raise FlatYamlError("%d: expected 'key: value' (a flat mapping of scalars)" % n)
    return text


def flat_yaml(text):
    """A YAML document that is a flat mapping of scalars, as {key: str}; FlatYamlError otherwise."""
    values = {}
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or line[:1].isspace() or not key or not value.strip() or value[:1] != " " or "\t" in line \
                or not name_ok(key, 64, _KEY_REST):
            raise FlatYamlError("%d: expected 'key: value' (a flat mapping of scalars)" % n)
        if key in values:
            raise FlatYamlError("%d: %s given twice" % (n, key))
        values[key] = _scalar(value, n)
    return values


# ---------------------------------------------------------------- names

ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_KEY_REST = ALNUM | frozenset("_")


def name_ok(s, maxlen, rest):
    """re.fullmatch("[A-Za-z0-9][REST]{0,maxlen-1}", s) for a str s, rest a frozenset of characters."""
    return isinstance(s, str) and 0 < len(s) <= maxlen and s[0] in ALNUM and all(c in rest for c in s)


# ---------------------------------------------------------------- command-line options

class OptionError(ValueError):
    """One line naming the option (argparse's wording)."""


def _negative_number(tok):
    try:
        float(tok)
    except ValueError:
        return False
    return tok.startswith("-")


def parse_options(table, args, choices=None):
    """Options up to the first positional argument, as argparse reads them (allow_abbrev=False).

    table: {option string: (attribute, kind)}, kind "flag" | "value" | "append". Returns
    (values {attribute: value or [values]}, the positionals and everything after the first one),
    or (None, None) for -h/--help. Long options take `--name value` or `--name=value`; short ones
    `-x value`, `-xvalue` and bundles (`-dt`, `-dm256m`); a value may not look like an option
    (a negative number may); choices: {attribute: allowed values}. OptionError for anything else.
    """
    choices = choices or {}
    values, unknown = {}, []
    i = 0
    while i < len(args):
        tok = args[i]
        if tok in ("-h", "--help"):
            return None, None
        if not tok.startswith("-") or tok == "-" or _negative_number(tok):
            break
        if tok.startswith("--"):
            name, eq, value = tok.partition("=")
            spec = table.get(name)
            if spec is None:
                unknown.append(tok)  # as argparse: reported at the end (a later --help still wins)
                i += 1
                continue
            attr, kind = spec
            if kind == "flag":
                if eq:
                    raise OptionError("argument %s: ignored explicit argument %r" % (name, value))
                values[attr] = True
            else:
                if not eq:
                    i, value = _value_after(args, i, name)
                _store(values, attr, kind, value, name, choices)
            i += 1
            continue
        j = 1  # a short option, or a bundle of them
        while j < len(tok):
            name = "-" + tok[j]
            spec = table.get(name)
            if spec is None:
                if j > 1:
                    raise OptionError("argument -%s: ignored explicit argument %r" % (tok[j - 1], tok[j:]))
                unknown.append(tok)
                break
            attr, kind = spec
            if kind == "flag":
                values[attr] = True
                j += 1
                continue
            value = tok[j + 1:]
            if value.startswith("="):
                value = value[1:]
            if not value:
                i, value = _value_after(args, i, name)
            _store(values, attr, kind, value, name, choices)
            break
        i += 1
    if unknown:
        raise OptionError("unrecognized arguments: %s" % " ".join(unknown))
    return values, list(args[i:])


def _value_after(args, i, name):
    if i + 1 >= len(args) or (args[i + 1].startswith("-") and args[i + 1] != "-"
                              and not _negative_number(args[i + 1])):
        raise OptionError("argument %s: expected one argument" % name)
    return i + 1, args[i + 1]


def _store(values, attr, kind, value, name, choices):
    allowed = choices.get(attr)
    if allowed is not None and value not in allowed:
        raise OptionError("argument %s: invalid choice: %r (choose from %s)"
                          % (name, value, ", ".join(repr(c) for c in allowed)))
    if kind == "append":
        values.setdefault(attr, []).append(value)
    else:
        values[attr] = value
