"""osbase.standin against the json package: the same text out, the same values in, the same refusals."""

import json
import random
import subprocess
import sys

import pytest

from osbase import standin

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
        assert standin.json_dumps(v, **kw) == json.dumps(v, **kw)


@pytest.mark.parametrize("seed", range(40))
def test_loads_is_json_loads(seed):
    text = json.dumps(_value(random.Random(seed)))
    for doc in (text, " \n%s\t\r" % text, text.encode()):
        assert repr(standin.json_loads(doc)) == repr(json.loads(doc))


@pytest.mark.parametrize("doc", ["", " ", "{", "}", "[1,]", "[1 2]", '{"a" 1}', '{"a":1,}', "nul", "tru", "01",
                                 "1.", ".5", "+1", "--1", '"\\x"', '"\x01"', '"unterminated', "[1] [2]", "{} x",
                                 b"\xff\xfe", b"\xef\xbb\xbf{}", "\ufeff{}", "NaNa", "[Infinity, -Infinity, NaN]"])
def test_refuses_what_json_refuses(doc):
    try:
        want = repr(json.loads(doc))
    except ValueError:
        with pytest.raises(ValueError):
            standin.json_loads(doc)
    else:
        assert repr(standin.json_loads(doc)) == want


def test_dumps_refuses_what_json_refuses():
    for bad in ({1: object()}, [b"bytes"], {(1, 2): 3}):
        with pytest.raises(TypeError):
            json.dumps(bad)
        with pytest.raises(TypeError):
            standin.json_dumps(bad)


def test_malformed_documents_are_value_errors_without_json_imported():
    """The C scanner reports errors through json.decoder, which a lean process has not imported."""
    code = ("import sys, osbase.standin as j\n"
            "for doc in ('{', '{nope', '[1,]', '\"\\\\x\"', b'{\"a\": tru}'):\n"
            "    try:\n        j.json_loads(doc)\n    except ValueError:\n        print('refused')\n")
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30, cwd="/")
    assert r.returncode == 0 and r.stdout.split() == ["refused"] * 5, r.stdout + r.stderr


def test_importing_it_loads_neither_json_nor_re():
    code = "import sys, osbase.standin as j; j.json_loads(j.json_dumps({'a': [1]})); print(sorted(sys.modules))"
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=30, cwd="/")
    assert r.returncode == 0, r.stderr
    mods = eval(r.stdout)  # noqa: S307 - our own repr()
    assert not {"json", "re", "enum"} & set(mods), mods


# ---- flat_yaml against yaml.safe_load

FLAT_DOCS = [
    "runtime: 'crun' # c\n",
    'runtime: "crun"   # the real one\nrich: all\n',
    "runtime: /usr/bin/crun # c\nhook: '/a b'\n",
    "runtime: crun#x\n",
    "hook: 'it''s'\n",
    "---\n# only comments\nrich: annotation\n...\n",
    "runtime_dir: /opt/richinit/runtime\nhook_timeout: 15\n",
    "runtime:   spaced   \n",
]


@pytest.mark.parametrize("doc", FLAT_DOCS)
def test_flat_yaml_reads_what_yaml_reads(doc):
    yaml = pytest.importorskip("yaml")
    assert standin.flat_yaml(doc) == {k: str(v) for k, v in yaml.safe_load(doc).items()}


@pytest.mark.parametrize("doc", [
    "runtime:\n  path: /x\n", "runtime: [runc]\n", "  runtime: runc\n", "runtime: 'crun' c\n", "runtime: 'crun\n",
    "runtime: a: b\n", "runtime: &a x\n", 'runtime: "a\\tb"\n', "runtime: x\nruntime: y\n", "runtime:x\n",
    "- runc\n", "runtime: |\n  x\n", "runtime: crun\t# a tab\n",
])
def test_flat_yaml_refuses_the_rest_naming_the_line(doc):
    with pytest.raises(standin.FlatYamlError, match=r"^\d+: "):
        standin.flat_yaml(doc)


# ---- name_ok against the regular expression it stands for

@pytest.mark.parametrize("seed", range(3))
def test_name_ok_is_the_pattern(seed):
    import re
    rest = standin.ALNUM | frozenset("_.-")
    pat = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,15}")
    rng = random.Random(seed)
    alphabet = "aZ09_.-@/ \n\x00é"
    for _ in range(3000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 20)))
        assert standin.name_ok(s, 16, rest) == bool(pat.fullmatch(s)), repr(s)
    assert not standin.name_ok(None, 16, rest) and not standin.name_ok(b"a", 16, rest)
