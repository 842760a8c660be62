"""osbase.procfs on fixture trees (the proc root is a parameter) and on the real /proc."""

import os

from osbase import procfs


def _status(tmp_path, text):
    d = tmp_path / "7"
    d.mkdir()
    (d / "status").write_text(text)
    return str(tmp_path)


def test_has_capability_reads_the_effective_set(tmp_path):
    proc = _status(tmp_path, "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t00000000a80425fb\n")
    assert procfs.has_capability(procfs.CAP_SYS_ADMIN, 7, proc) is False  # runc's default set
    assert procfs.has_capability(0, 7, proc) is True                      # CAP_CHOWN
    assert procfs.has_capability(procfs.CAP_SYS_ADMIN, 8, proc) is None   # no such process
    proc2 = str(tmp_path / "other")
    os.makedirs(proc2 + "/7")
    with open(proc2 + "/7/status", "w") as f:
        f.write("Name:\tx\nCapEff:\t000001ffffffffff\n")
    assert procfs.has_capability(procfs.CAP_SYS_ADMIN, 7, proc2) is True


def test_has_capability_of_this_process():
    assert procfs.has_capability(procfs.CAP_SYS_ADMIN) is (os.geteuid() == 0)  # the suite runs as root
