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
- Names and ids (name_ok): `re` is 3.8 ms; the host side checks container ids, names and service
  names with a character-class test instead of [A-Za-z0-9][A-Za-z0-9_.-]{0,N}-style patterns
  (tests/test_standin.py holds it to re.fullmatch on generated strings).
"""

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
