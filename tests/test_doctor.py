"""rich doctor on this host, with engine configurations staged by `rich install --root`."""

import json
import shutil

import pytest

from runtime_hooks import cli, doctor


def _by_area(root):
    return {c.area: c for c in doctor.checks(str(root))}


@pytest.fixture
def bins(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    for n in ("rich-hook", "rich-runtime"):
        (d / n).write_text("#!/bin/sh\n")
        (d / n).chmod(0o755)
    return str(d)


def test_host_checks_say_what_they_found(tmp_path):
    got = _by_area(tmp_path)
    for area in ("settings", "portable runtime", "cgroups", "loop devices", "quota"):
        assert area in got and got[area].status in (doctor.OK, doctor.WARN, doctor.FAIL), area
        assert got[area].found
        assert got[area].status == doctor.OK or got[area].fix, area


@pytest.mark.skipif(shutil.which("containerd") is None, reason="containerd is not installed")
def test_containerd_config_loads_with_the_handler_and_a_broken_one_fails(tmp_path, bins, capsys):
    assert _by_area(tmp_path)["containerd"].fix == "rich install --containerd"
    assert cli.main(["install", "--containerd", "--docker", "--root", str(tmp_path), "--bin-dir", bins]) == 0
    got = _by_area(tmp_path)
    assert got["containerd"].status == doctor.OK and "with the CRI runtime handler rich" in got["containerd"].found
    assert got["docker"].status == doctor.OK and "rich, rich-all" in got["docker"].found
    (tmp_path / "etc/containerd/config.toml").write_text("version = 2\n[plugins\n")
    c = _by_area(tmp_path)["containerd"]
    assert c.status == doctor.FAIL and "does not load" in c.found
    capsys.readouterr()
    assert cli.main(["doctor", "--json", "--root", str(tmp_path)]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert any(r["area"] == "containerd" and r["status"] == "FAIL" for r in rows)
