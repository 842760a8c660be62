"""osbase.jsonfast against the json package: the same text out, the same values in, the same refusals."""

import json
import random
import subprocess
import sys

import pytest

from osbase import jsonfast

STRINGS = ["", "plain", "quote\" backslash\\ slash/", "\x00\x01\x1f\x7f", "é ü ß", "\u2028\u2029", "😀 \U0010ffff",
           "\ud800", "tab\tnl\n", "</script>"]


def _value(rng, depth=0):
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randrange(-2 ** 70, 2 ** 70)
    if kind == 2:
        return rng.choice([0.0, -0.0, 1.5, 1e300, -1e-300, 0.1, float("inf"), float("-inf")])
    if kind in (3, 4, 5):
        return rng.choice(STRINGS)
    if kind in (6, 7):
        return {rng.choice(STRINGS) + str(i): _value(rng, depth + 1) for i in range(rng.randrange(4))}
    return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]


@pytest.mark.parametrize("seed", range(40))
def test_dumps_is_json_dumps(seed):
    v = _value(random.Random(seed))
    for kw in ({}, {"sort_keys": True}, {"separators": (",", ":")}, {"ensure_ascii": False}):
        assert jsonfast.dumps(v, **kw) == json.dumps(v, **kw)


@pytest.mark.parametrize("seed", range(40))
def test_loads_is_json_loads(seed):
    text = json.dumps(_value(random.Random(seed)))
    for doc in (text, " \n%s\t\r" % text, text.encode()):
        assert repr(jsonfast.loads(doc)) == repr(json.loads(doc))


@pytest.mark.parametrize("doc", ["", " ", "{", "}", "[1,]", "[1 2]", '{"a" 1}', '{"a":1,}', "nul", "tru", "01",
                                 "1.", ".5", "+1", "--1", '"\\x"', '"\x01"', '"unterminated', "[1] [2]", "{} x",
                                 b"\xff\xfe", b"\xef\xbb\xbf{}", "\ufeff{}", "NaNa", "[Infinity, -Infinity, NaN]"])
def test_refuses_what_json_refuses(doc):
    try:
        want = repr(json.loads(doc))
    except ValueError:
        with pytest.raises(ValueError):
            jsonfast.loads(doc)
    else:
        assert repr(jsonfast.loads(doc)) == want


def test_dumps_refuses_what_json_refuses():
    for bad in ({1: object()}, [b"bytes"], {(1, 2): 3}):
        with pytest.raises(TypeError):
            json.dumps(bad)
        with pytest.raises(TypeError):
            jsonfast.dumps(bad)


def test_malformed_documents_are_value_errors_without_json_imported():
    """The C scanner reports errors through json.decoder, which a lean process has not imported."""
    code = ("import sys, osbase.jsonfast as j\n"
            "for doc in ('{', '{nope', '[1,]', '\"\\\\x\"', b'{\"a\": tru}'):\n"
            "    try:\n        j.loads(doc)\n    except ValueError:\n        print('refused')\n")
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30, cwd="/")
    assert r.returncode == 0 and r.stdout.split() == ["refused"] * 5, r.stdout + r.stderr


def test_importing_it_loads_neither_json_nor_re():
    code = "import sys, osbase.jsonfast as j; j.loads(j.dumps({'a': [1]})); print(sorted(sys.modules))"
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30, cwd="/")
    assert r.returncode == 0, r.stderr
    mods = eval(r.stdout)  # noqa: S307 - our own repr()
    assert not {"json", "re", "enum"} & set(mods), mods
