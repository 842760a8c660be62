"""Fixtures for quota integration tests: a private state dir, loop-mounted xfs/ext4 filesystems."""

import os
import shutil
import subprocess

import pytest

from runtime_hooks.quota import mountinfo


def _need(*tools):
    if os.geteuid() != 0:
        pytest.skip("needs root (mounts, loop devices)")
    for t in tools:
        if shutil.which(t) is None:
            pytest.skip("%s is not installed" % t)
    if not os.path.exists("/dev/loop-control"):
        pytest.skip("no /dev/loop-control")


@pytest.fixture
def state_dir(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    return str(d)


def mounted(path):
    return mountinfo.at(mountinfo.read(), os.path.realpath(path)) is not None


def _loop_fs(tmp_path, name, size, mkfs):
    img, mnt = tmp_path / (name + ".img"), tmp_path / name
    mnt.mkdir()
    with open(img, "wb") as f:
        f.truncate(size)
    subprocess.run(mkfs + [str(img)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True, capture_output=True)
    return str(mnt)


def _umount_all_below(path):
    """Unmount path and anything a failed test left mounted below it (deepest first)."""
    real = os.path.realpath(path)
    for m in sorted(mountinfo.read(), key=lambda m: -len(m.mount_point)):
        if m.mount_point == real or m.mount_point.startswith(real + "/"):
            subprocess.run(["umount", "-l", m.mount_point], capture_output=True)


@pytest.fixture
def xfs_dir(tmp_path):
    """A fresh loop-mounted xfs (mkfs.xfs wants >= 300 MB; the image is sparse)."""
    _need("mkfs.xfs", "mount")
    mnt = _loop_fs(tmp_path, "xfs", 320 << 20, ["mkfs.xfs", "-q"])
    yield mnt
    _umount_all_below(mnt)


@pytest.fixture
def need_loop():
    _need("mkfs.ext4", "runc")


@pytest.fixture
def scratch(tmp_path):
    """A directory whose mounts are all undone after the test, whatever happened."""
    d = tmp_path / "scratch"
    d.mkdir()
    yield d
    _umount_all_below(str(d))
