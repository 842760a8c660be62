"""PID 1 waits for the services loader child only so long: a loader that hangs is killed."""

import time

from richinit import supervisor
from richinit.supervisor import Supervisor
from richinit.sysops import SysOps


def _hang(*args):  # the loader function's arguments (fd, root, only[, units])
    time.sleep(60)


def test_a_hanging_loader_is_killed_and_the_load_fails(monkeypatch, capfd):
    monkeypatch.setattr(supervisor, "LOAD_TIMEOUT", 0.3)
    monkeypatch.setattr(supervisor, "_load_document", _hang)
    t0 = time.monotonic()
    assert Supervisor(None, SysOps(False)).load() is None
    assert time.monotonic() - t0 < 10
    assert "the services loader did not finish within 0.3s: killed" in capfd.readouterr().err
