"""Start waves and dependency cycles (pure functions)."""

import pytest

from richinit.services import graph


def test_independent_services_share_the_first_wave():
    assert graph.waves({"a": set(), "b": set(), "c": set()}) == [["a", "b", "c"]]


def test_diamond_gives_three_waves_and_shutdown_reverses_them():
    deps = {"db": set(), "cache": set(), "api": {"db", "cache"}, "web": {"api", "db"}}
    waves = graph.waves(deps)
    assert waves == [["cache", "db"], ["api"], ["web"]]
    assert graph.shutdown_waves(waves) == [["web"], ["api"], ["cache", "db"]]


def test_a_wave_waits_for_the_longest_chain():
    deps = {"a": set(), "b": {"a"}, "c": {"b"}, "d": {"a"}}
    assert graph.waves(deps) == [["a"], ["b", "d"], ["c"]]


def test_dependencies_outside_the_graph_are_ignored():
    assert graph.waves({"a": {"gone"}, "b": {"a"}}) == [["a"], ["b"]]


def test_waves_refuse_a_cycle():
    with pytest.raises(ValueError):
        graph.waves({"a": {"b"}, "b": {"a"}})


def test_two_cycle_is_named_from_its_smallest_member():
    found = graph.cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    assert found == [(["a", "b"], ["a", "b", "a"])]


def test_self_dependency_is_a_cycle():
    assert graph.cycles({"a": {"a"}, "b": set()}) == [(["a"], ["a", "a"])]


def test_three_cycle_and_a_separate_two_cycle():
    deps = {"x": {"y"}, "y": {"z"}, "z": {"x"}, "p": {"q"}, "q": {"p"}, "free": {"x"}}
    found = sorted(graph.cycles(deps))
    assert found == [(["p", "q"], ["p", "q", "p"]), (["x", "y", "z"], ["x", "y", "z", "x"])]


def test_acyclic_graph_has_no_cycles():
    assert graph.cycles({"a": set(), "b": {"a"}, "c": {"a", "b"}}) == []


def test_long_chain_does_not_recurse():
    n = 5000
    deps = {"s%05d" % i: ({"s%05d" % (i - 1)} if i else set()) for i in range(n)}
    waves = graph.waves(deps)
    assert len(waves) == n and waves[-1] == ["s%05d" % (n - 1)]
    assert graph.cycles(deps) == []
    deps["s00000"] = {"s%05d" % (n - 1)}
    (members, path), = graph.cycles(deps)
    assert len(members) == n and path[0] == path[-1] == "s00000" and len(path) == n + 1
