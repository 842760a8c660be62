"""Keeps bench.services from rotting: the restart metric for richinit alone, through the real code path
(a real PID namespace, a private overlay over /etc holding the service definition, a real SIGKILL).
No timing is asserted."""

import json
import os
import shutil

import pytest

from bench import pid1, services

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (unshare --pid, mount, /proc of other processes)"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) not installed"),
    pytest.mark.skipif(not os.access(pid1.RICHINIT, os.X_OK),
                       reason="%s missing: run scripts/setup.sh" % pid1.RICHINIT),
]


def test_restart_metric_for_richinit_measures_and_leaves_nothing_behind():
    specs = [s for s in services.SUPERVISORS if s.name == "richinit"]
    _, opt = services._options(["--reps-restart", "1", "--restart-gap", "0.3", "--restart-timeout", "10"])
    etc_before = sorted(os.listdir("/etc"))
    bench = pid1.Bench()

    res = services.run(specs, ["restart"], opt, bench=bench)
    bench.cleanup()

    assert "richinit" in res.samples.get("restart_ms", {}), res.notes
    [latency] = res.samples["restart_ms"]["richinit"]
    assert isinstance(latency, float) and latency > 0, res.notes
    [detail] = res.extra["restart_ms"]["richinit"]
    assert detail["uptime_s"] >= 0.3
    # Everything it started is gone: no child of ours, no scratch, nothing added to the host's /etc.
    assert pid1.children(os.getpid()) == []
    assert not os.path.exists(bench.root)
    assert sorted(os.listdir("/etc")) == etc_before

    # The report renders (the target row names the restart) and the results serialise.
    machine = services.describe_machine(specs)
    machine["loadavg_end"] = machine["loadavg_start"]
    config = {"note": "smoke", "reps": "restart 1", "command": "test", "commands": {}}
    text = services.render_text(res, ["richinit"], machine, config)
    assert "restart after SIGKILL <= 100 ms" in text
    assert "| restart after SIGKILL -> new child up (ms) |" in services.render_markdown(res, ["richinit"], machine,
                                                                                         config)
    json.dumps(res.to_json())


def test_richinit_definition_goes_to_a_private_overlay_not_the_host(tmp_path):
    argv = services._richinit_services(["/bin/true"], str(tmp_path), "restart")
    written = tmp_path / "upper" / "richinit" / "services.d" / "child.yaml"
    assert '["/bin/true"]' in written.read_text()
    assert argv[:2] == ["/bin/sh", "-c"] and "lowerdir=/etc" in argv[2]
    assert argv[-4:] == ["--no-save-env", "--", "sleep", "1000000"]
    assert "--control-dir" in argv and argv[argv.index("--control-dir") + 1].startswith(str(tmp_path))
