"""Quota rules: parsing and validation (pure)."""

import pytest

from runtime_hooks.quota import rules
from runtime_hooks.quota.rules import RuleError, parse_rule, parse_rules, parse_size, validate

A = "annotation io.richinit.quota"


@pytest.mark.parametrize("text,size", [("10G", 10 << 30), ("1m", 1 << 20), ("512K", 512 << 10), ("2T", 2 << 40),
                                       ("4096", 4096), ("10GB", 10 << 30), ("3MiB", 3 << 20), (" 7M ", 7 << 20)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "1.5G", "-1G", "10X", "10 G", "1e9", "0x10M", "1" * 20])
def test_bad_sizes(text):
    assert parse_size(text) is None


def test_pouch_syntax():
    rs = parse_rules("/=10G, /data=1G,/a&/b=10G,.*=5G", ["/logs/=2M"])
    assert [r.limit for r in rs] == [10 << 30, 1 << 30, 10 << 30, 5 << 30, 2 << 20]
    assert rs[0].targets[0].path == "/"
    assert rs[1].targets[0].path == "/data"
    assert [t.path for t in rs[2].targets] == ["/a", "/b"] and rs[2].shared
    assert rs[3].targets[0].regex.fullmatch("/anything")
    assert rs[4].targets[0].path == "/logs" and rs[4].origin == "--quota"
    assert validate(rs) == []


@pytest.mark.parametrize("text,fragment", [
    ("/data", "expected DIR=SIZE"),
    ("=10G", "expected DIR=SIZE"),
    ("/data=ten", "bad size 'ten'"),
    ("/data=1.5G", "bad size"),
    ("/a&&/b=1G", "empty directory"),
    ("/a/../etc=1G", "contains '..'"),
    ("[=1G", "bad regex"),
    ("x" * 300 + "=1G", "regex longer than"),
])
def test_parse_errors_name_the_rule(text, fragment):
    with pytest.raises(RuleError) as ei:
        parse_rule(text, A)
    msg = str(ei.value)
    assert "\n" not in msg
    assert fragment in msg
    assert ("quota rule %r (%s)" % (text, A)) in msg


@pytest.mark.parametrize("value,fragment", [
    ("/data=512K", "below the minimum of 1M"),
    ("/data=99999999T", "above 1024P"),
    ("/data=1G,/data/=2G", "already has a limit"),
    ("/a&/a=1G", "named twice"),
    ("/a&.*=1G", "regex cannot be part of a shared"),
    ("/data=1G,/data/logs=10M", "is inside /data"),
])
def test_validation_errors(value, fragment):
    problems = validate(parse_rules(value))
    assert problems, value
    assert any(fragment in p for p in problems), problems
    assert all("\n" not in p and "quota rule" in p for p in problems)


def test_too_many_rules():
    value = ",".join("/d%d=1G" % i for i in range(rules.MAX_RULES + 1))
    assert any("at most" in p for p in validate(parse_rules(value)))


def test_backend_and_id_annotations():
    assert rules.parse_backend(None) == "auto"
    assert rules.parse_backend("loop") == "loop"
    with pytest.raises(RuleError, match="io.richinit.quota-backend"):
        rules.parse_backend("zfs")
    assert rules.parse_quota_id(None) is None and rules.parse_quota_id("-1") is None
    assert rules.parse_quota_id("16777300") == 16777300
    for bad in ("0", "abc", "4294967295", "-5"):
        with pytest.raises(RuleError, match="io.richinit.quota-id"):
            rules.parse_quota_id(bad)
