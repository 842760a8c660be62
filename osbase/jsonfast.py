"""JSON through the C accelerator `_json` alone, for processes on a container's start-up path.

`import json` costs ~6 ms of a short-lived process here (json.decoder and json.scanner compile
regular expressions, which loads `re` and `enum`); the C scanner and encoder json uses underneath
cost ~0.2 ms. rich-runtime, rich-hook and `rich run` each read or write a config.json once per
container, so they use these two functions. Output is byte for byte what json.dumps() gives
with the same arguments (tests/test_jsonfast.py compares them); a document json.loads() refuses
is refused here too, as ValueError. Without `_json` (another interpreter), the json package does
the work.
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


def loads(data):
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


def dumps(obj, sort_keys=False, separators=(", ", ": "), ensure_ascii=True):
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
