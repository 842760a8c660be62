"""Bad disks for `rich import`: one line naming the disk and the reason, exit 125, no output made,
nothing left mounted or attached, the disk unchanged."""

import hashlib
import os
import select
import shutil
import signal
import struct
import subprocess

import pytest

from .conftest import MIB, leftovers, loop, make_disk, mounted, need_tools, rich_import, run, write_os

PART = (1 * MIB, 62 * MIB)
SIZE = 64 * MIB


def _good_raw(path):
    make_disk(path, SIZE, "dos", [PART + ("83",)])
    with loop(path, *PART) as dev:
        run(["mkfs.ext4", "-q", "-U", "0b6a1d5e-7f1c-4f7e-9d77-1c0ffee00001", dev])
        with mounted(dev, path + ".mnt") as root:
            write_os(root, "UUID=0b6a1d5e-7f1c-4f7e-9d77-1c0ffee00001 / ext4 defaults 0 1\n")
            with open(os.path.join(root, "payload"), "wb") as f:
                f.write(os.urandom(8 * MIB))
    os.rmdir(path + ".mnt")
    return path


def _qcow2(raw, path):
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, path])
    return path


def corrupt_qcow2(d):
    q = _qcow2(_good_raw(os.path.join(d, "g.raw")), os.path.join(d, "corrupt.qcow2"))
    with open(q, "r+b") as f:  # the L1 table's offset now points far past the end of the file
        f.seek(40)
        f.write(struct.pack(">Q", 1 << 50))
    return q, "corrupt qcow2 image|qcow2"


def truncated_qcow2(d):
    q = _qcow2(_good_raw(os.path.join(d, "g.raw")), os.path.join(d, "truncated.qcow2"))
    os.truncate(q, os.path.getsize(q) // 2)
    return q, "corrupt qcow2 image"


def no_linux_root(d):
    path = make_disk(os.path.join(d, "empty.raw"), SIZE, "dos", [PART + ("83",)])
    with loop(path, *PART) as dev:
        run(["mkfs.ext4", "-q", dev])
    return path, "no Linux root filesystem"


def luks_root(d):
    if shutil.which("cryptsetup") is None:
        pytest.skip("cryptsetup is not installed")
    path = make_disk(os.path.join(d, "luks.raw"), SIZE, "dos", [PART + ("83",)])
    with loop(path, *PART) as dev:
        subprocess.run(["cryptsetup", "luksFormat", "--type", "luks2", "--pbkdf", "pbkdf2",
                        "--pbkdf-force-iterations", "1000", "--batch-mode", dev, "-"], input=b"pw", check=True,
                       capture_output=True)
    return path, "LUKS-encrypted"


def past_the_end(d):
    path = _good_raw(os.path.join(d, "pastend.raw"))
    with open(path, "r+b") as f:  # partition 1's sector count now runs 1 GiB past the disk's end
        f.seek(446 + 12)
        f.write(struct.pack("<I", (SIZE + 1024 * MIB) // 512))
    return path, "partition 1 ends at byte \\d+, past the end of the disk"


CASES = [corrupt_qcow2, truncated_qcow2, no_linux_root, luks_root, past_the_end]


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _check_refused(disk, pattern, tmp_path):
    out = str(tmp_path / "out")
    before = _sha(disk)
    r = rich_import(disk, "--output", out)
    assert r.returncode == 125, (r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rich import: %s: " % disk), r.stderr
    import re
    assert re.search(pattern, lines[0]), lines[0]
    assert r.stdout == ""
    assert not os.path.exists(out) and [n for n in os.listdir(tmp_path) if n.startswith("out")] == []
    assert leftovers() == []
    assert _sha(disk) == before


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_disk_is_refused_in_one_line(case, tmp_path):
    need_tools("mkfs.ext4")
    disk, pattern = case(str(tmp_path))
    _check_refused(disk, pattern, tmp_path)


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_disk_held_by_a_running_vm(fmt, tmp_path):
    """A VM (qemu, paused before its first instruction) has the disk open: qemu's lock says so."""
    need_tools("mkfs.ext4", "qemu-system-x86_64")
    q = _good_raw(str(tmp_path / "busy.raw"))
    if fmt == "qcow2":
        q = _qcow2(q, str(tmp_path / "busy.qcow2"))
    pidfile = str(tmp_path / "vm.pid")
    run(["qemu-system-x86_64", "-S", "-display", "none", "-nodefaults", "-accel", "tcg",
         "-drive", "file=%s,format=%s,if=virtio" % (q, fmt), "-daemonize", "-pidfile", pidfile])
    pid = int(open(pidfile).read())
    fd = os.pidfd_open(pid)
    try:
        _check_refused(q, "in use by another process", tmp_path)
    finally:
        os.kill(pid, signal.SIGTERM)
        select.select([fd], [], [], 10)
        os.close(fd)
