"""safepath.remove_tree: rm -rf of what a container wrote, without following or crossing anything."""

import os
import subprocess

import pytest

from osbase import safepath


def _outside(tmp_path):
    out = tmp_path / "outside"
    (out / "sub").mkdir(parents=True)
    (out / "keep").write_text("k")
    (out / "sub" / "keep2").write_text("k")
    return out


def test_removes_everything_and_follows_no_link(tmp_path):
    out = _outside(tmp_path)
    t = tmp_path / "upper"
    (t / "a" / "b" / "c").mkdir(parents=True)
    (t / "a" / "f").write_text("x")
    os.symlink(out, t / "a" / "dirlink")
    os.symlink(out / "keep", t / "a" / "b" / "filelink")
    os.symlink("../../../outside", t / "a" / "b" / "c" / "rel")
    os.mkfifo(t / "fifo")
    safepath.remove_tree(str(t))
    assert not t.exists()
    assert sorted(os.listdir(out)) == ["keep", "sub"] and os.listdir(out / "sub") == ["keep2"]


def test_a_missing_path_or_a_file(tmp_path):
    safepath.remove_tree(str(tmp_path / "nothing"))
    (tmp_path / "f").write_text("x")
    safepath.remove_tree(str(tmp_path / "f"))
    assert not (tmp_path / "f").exists()


def test_a_depth_bomb_is_refused_not_followed(tmp_path, monkeypatch):
    monkeypatch.setattr(safepath, "MAX_DEPTH", 8)
    t = tmp_path / "deep"
    d = t
    for _ in range(12):
        d = d / "d"
    d.mkdir(parents=True)
    with pytest.raises(safepath.UnsafePath, match="deeper"):
        safepath.remove_tree(str(t))
    assert t.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_another_filesystem_inside_is_not_emptied(tmp_path):
    t = tmp_path / "upper"
    m = t / "mnt"
    m.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(m)], check=True)
    try:
        (m / "data").write_text("precious")
        with pytest.raises(safepath.UnsafePath, match="another filesystem"):
            safepath.remove_tree(str(t))
        assert (m / "data").read_text() == "precious"
    finally:
        subprocess.run(["umount", str(m)], check=True)
    safepath.remove_tree(str(t))
    assert not t.exists()
