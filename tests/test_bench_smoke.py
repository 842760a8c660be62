"""Keeps bench.pid1 from rotting: one metric (SIGTERM forwarding) for one init (richinit),
through the real code path -- a real PID namespace, real signals. No timing is asserted."""

import glob
import json
import os
import shutil

import pytest

from bench import pid1

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (unshare --pid, /proc of other processes)"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) not installed"),
    pytest.mark.skipif(not os.access(pid1.RICHINIT, os.X_OK),
                       reason="%s missing: run scripts/setup.sh" % pid1.RICHINIT),
]


def test_term_metric_for_richinit_measures_and_leaves_nothing_behind():
    specs = [s for s in pid1.INITS if s.name == "richinit"]
    _, opt = pid1._options(["--reps-term", "1", "--term-settle", "0.2", "--term-timeout", "10"])
    scratch_before = set(glob.glob("/tmp/bench-pid1.*"))

    res = pid1.run(specs, ["term"], opt)

    [latency] = res.samples["term_ms"]["richinit"]
    [exited] = res.samples["term_exit_ms"]["richinit"]
    [code] = res.samples["term_rc"]["richinit"]
    assert isinstance(latency, float) and latency > 0, res.notes
    assert isinstance(exited, float) and exited >= latency
    assert code == 143  # the child's TERM trap exits 143 and richinit passes it on
    # Everything it started is gone: no child of ours, no scratch directory.
    assert pid1.children(os.getpid()) == []
    assert set(glob.glob("/tmp/bench-pid1.*")) == scratch_before

    # The report renders and the results serialise.
    machine = pid1.describe_machine(specs)
    machine["loadavg_end"] = machine["loadavg_start"]
    config = {"note": "smoke", "reps": "term 1", "idle_secs": 10.0, "command": "test"}
    text = pid1.render_text(res, ["richinit"], machine, config)
    assert "SIGTERM -> child's trap (ms)" in text and "exit code 143 on TERM" in text
    assert "| exit code on TERM | 143 |" in pid1.render_markdown(res, ["richinit"], machine, config)
    json.dumps(res.to_json())


def test_richinit_path_is_computed_from_the_repository():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert pid1.RICHINIT == os.path.join(repo, ".venv", "bin", "richinit")
