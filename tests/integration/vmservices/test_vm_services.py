"""Issue 10's "Must show": a Debian 12 VM image's own units, SysV script, timer and sockets under
richinit (`rich run --vm IMAGE -- /sbin/init`, and rich-runtime with io.richinit.vm=true, real runc),
each expectation checked against real systemd under podman --systemd=always in the same module.

Parametrized engine x expectation (expectations.py is the table): a failure names both, so what
richinit lacks is visible one expectation at a time. The last test of each engine stops the
container: services stop in reverse dependency order, a stop outlasting TimeoutStopSec is cut
short, and the exit code is the container's.
"""

import pytest

from tests.integration.vmservices.expectations import EXPECTATIONS


@pytest.mark.parametrize("exp", EXPECTATIONS, ids=[e.id for e in EXPECTATIONS])
def test_expectation(box, exp):
    if exp.only is not None and exp.only != box.kind:
        pytest.skip("%s: only under %s" % (exp.id, exp.only))
    assert box.alive(), "%s: the container is gone: %s" % (box.engine, box.output())
    exp.check(box)


def test_stop_in_reverse_dependency_order_within_timeouts(box):
    assert box.alive()
    code = box.stop()
    log = box.shared_file("stop.log").split()
    assert code == 0, "%s exit code %s: %s" % (box.engine, code, box.output())
    assert "late" in log and "early" in log and log.index("late") < log.index("early"), log
    assert "slow-stopping" in log and "slow-finished" not in log, "TimeoutStopSec=2 cuts the 30 s ExecStop"
