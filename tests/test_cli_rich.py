"""`rich` without containers: option parsing, config.json from options, hostile rootfs tarballs."""

import io
import os
import tarfile

import pytest

from runtime_hooks import bundle, cli


def run_cli(argv, capsys):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("text,value", [("256m", 256 << 20), ("1g", 1 << 30), ("1G", 1 << 30), ("512MiB", 512 << 20),
                                        ("1.5g", 3 << 29), ("67108864", 64 << 20)])
def test_sizes(text, value):
    assert bundle.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-1m", "1x", "1k", "m"])
def test_bad_sizes(text):
    with pytest.raises(bundle.BundleError, match="--memory"):
        bundle.parse_size(text)


def test_cpus_become_a_cfs_quota():
    assert bundle.parse_cpus("1.5") == (150000, 100000)
    assert bundle.parse_cpus("0.25") == (25000, 100000)
    for bad in ("0", "-1", "x", "nan", "inf", "5000"):
        with pytest.raises(bundle.BundleError, match="--cpus"):
            bundle.parse_cpus(bad)


def test_volumes(tmp_path):
    m = bundle.parse_volume("%s:/data" % tmp_path)
    assert m == {"destination": "/data", "type": "bind", "source": str(tmp_path), "options": ["rbind", "rprivate"]}
    assert "ro" in bundle.parse_volume("%s:/data:ro" % tmp_path)["options"]
    for bad, why in (("rel:/data", "absolute"), ("%s:data" % tmp_path, "absolute"), ("/nonexistent:/d", "exist"),
                     ("%s:/a/../b" % tmp_path, "'..'"), ("%s:/d:rx" % tmp_path, "ro or rw"), ("/x", "HOST_DIR")):
        with pytest.raises(bundle.BundleError, match=why):
            bundle.parse_volume(bad)


def test_config_from_options(tmp_path):
    vol = bundle.parse_volume("%s:/data" % tmp_path)
    cfg = bundle.make_config("/r", ["app", "-x"], hostname="web", env=["A=1"], memory=256 << 20,
                             cpus=(150000, 100000), volumes=[vol], annotations={"io.richinit.rich": "true"})
    assert cfg["process"]["args"] == ["app", "-x"] and "A=1" in cfg["process"]["env"]
    assert cfg["linux"]["resources"]["memory"] == {"limit": 256 << 20}
    assert cfg["linux"]["resources"]["cpu"] == {"quota": 150000, "period": 100000}
    assert cfg["mounts"][-1] == vol and cfg["root"] == {"path": "/r", "readonly": False}
    assert {"type": "network"} in cfg["linux"]["namespaces"]
    host = bundle.make_config("/r", ["app"], network="host")
    assert {"type": "network"} not in host["linux"]["namespaces"]


@pytest.mark.parametrize("argv,needle", [
    (["run", "--memory", "x", "/", "--", "true"], "--memory"),
    (["run", "--cpus", "abc", "/", "--", "true"], "--cpus"),
    (["run", "--name", "-bad", "/", "--", "true"], "--name"),
    (["run", "--name", "a/b", "/", "--", "true"], "--name"),
    (["run", "/nonexistent-rootfs", "--", "true"], "/nonexistent-rootfs"),
    (["run", "--service", "sshd", "--no-services", "/", "--", "true"], "contradict"),
    (["run", "--quota", "/a=1M,/b=1M", "/", "--", "true"], "one rule per --quota"),
    (["run", "--quota", "/a=1Q", "/", "--", "true"], "bad size"),
    (["run", "--annotation", "io.richinit.vm=perhaps", "/", "--", "true"], "io.richinit.vm"),
    (["run", "--annotation", "novalue", "/", "--", "true"], "KEY=VALUE"),
    (["run", "-e", "=x", "/", "--", "true"], "-e =x"),
    (["run", "-d", "-t", "/", "--", "true"], "-t needs the foreground"),
    (["run", "/", "a", "--", "b"], "not both"),
    (["stop", "--time", "x", "n"], "invalid float"),
    (["nonsense"], "invalid choice"),
    ([], "required"),
])
def test_bad_command_lines_are_one_line(argv, needle, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("RICHINIT_CONTAINERS_DIR", str(tmp_path / "c"))
    rc, out, err = run_cli(argv, capsys)
    assert rc == cli.EXIT_RICH
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "c").exists() or os.listdir(tmp_path / "c") == []


def test_relative_state_dirs_are_refused(capsys, monkeypatch):
    monkeypatch.setenv("RICHINIT_CONTAINERS_DIR", "relative/dir")
    rc, _, err = run_cli(["ps"], capsys)
    assert rc == cli.EXIT_RICH and "RICHINIT_CONTAINERS_DIR" in err


def test_ps_with_no_containers(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("RICHINIT_CONTAINERS_DIR", str(tmp_path / "none"))
    rc, out, _ = run_cli(["ps"], capsys)
    assert rc == 0 and out.split()[:3] == ["NAME", "STATUS", "PID"]


# ---------------------------------------------------------------- hostile tarballs

def _tar(path, members):
    with tarfile.open(path, "w") as t:
        for name, kind, arg in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(arg)
                t.addfile(info, io.BytesIO(arg))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, arg
                t.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, arg
                t.addfile(info)
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                t.addfile(info)
    return str(path)


def test_unpack_a_plain_rootfs(tmp_path):
    tar = _tar(tmp_path / "ok.tar", [("./bin", "dir", None), ("./bin/sh", "file", b"#!"), ("bin/ash", "sym", "sh"),
                                     ("etc/passwd", "file", b"root"), ("etc/shadow", "hard", "etc/passwd"),
                                     ("dev/null", "chr", None)])
    dest = tmp_path / "rootfs"
    skipped = bundle.unpack(tar, str(dest))
    assert (dest / "bin/sh").read_bytes() == b"#!" and os.readlink(dest / "bin/ash") == "sh"
    assert os.stat(dest / "etc/shadow").st_ino == os.stat(dest / "etc/passwd").st_ino
    assert skipped == 1 and not (dest / "dev/null").exists()


@pytest.mark.parametrize("members,why", [
    ([("../evil", "file", b"x")], "'..'"),
    ([("/etc/evil", "file", b"x")], "absolute"),
    ([("a/../../evil", "file", b"x")], "'..'"),
    # a symlink the archive made, then a file written through it
    ([("lnk", "sym", "OUTSIDE"), ("lnk/evil", "file", b"x")], "symlink"),
    # a hard link to a symlink pointing outside (os.link would follow it)
    ([("s", "sym", "OUTSIDE/secret"), ("h", "hard", "s")], "hard link"),
    ([("h", "hard", "../../etc/passwd")], "hard link"),
])
def test_unpack_refuses_hostile_archives(tmp_path, members, why):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    members = [(n, k, a.replace("OUTSIDE", str(outside)) if isinstance(a, str) else a) for n, k, a in members]
    tar = _tar(tmp_path / "bad.tar", members)
    with pytest.raises(bundle.BundleError, match=why):
        bundle.unpack(tar, str(tmp_path / "rootfs"))
    assert os.listdir(outside) == ["secret"]
    assert not (tmp_path / "evil").exists()


def test_unpack_not_a_tarball(tmp_path):
    p = tmp_path / "x.tar"
    p.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(bundle.BundleError, match="not a readable tar"):
        bundle.unpack(str(p), str(tmp_path / "r"))


def _tar_with(path, build):
    with tarfile.open(path, "w") as t:
        build(t)
    return str(path)


def _info(name, kind=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, mtime=1_000_000_000, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime, info.linkname = kind, mode, uid, gid, mtime, linkname
    return info


def test_unpack_keeps_owners_modes_and_times(tmp_path):
    def build(t):
        t.addfile(_info("bin", tarfile.DIRTYPE, 0o755))
        data = b"#!/bin/sh\n"
        info = _info("bin/su", mode=0o4755, uid=0, gid=0)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
        info = _info("home/app/f", mode=0o600, uid=1000, gid=1001, mtime=1_234_567_890)
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
        t.addfile(_info("home/app", tarfile.DIRTYPE, 0o700, uid=1000, gid=1001))  # after its content
        t.addfile(_info("ro", tarfile.DIRTYPE, 0o555))
        t.addfile(_info("ro/inside", mode=0o444))
        t.addfile(_info("bin/sh", tarfile.SYMTYPE, linkname="busybox", uid=5, gid=6))
    dest = tmp_path / "r"
    bundle.unpack(_tar_with(tmp_path / "a.tar", build), str(dest))
    st = os.stat(dest / "bin/su")
    assert st.st_mode & 0o7777 == 0o4755 and (st.st_uid, st.st_gid) == (0, 0)
    st = os.stat(dest / "home/app/f")
    assert st.st_mode & 0o777 == 0o600 and (st.st_uid, st.st_gid) == (1000, 1001) and st.st_mtime == 1_234_567_890
    st = os.stat(dest / "home/app")
    assert st.st_mode & 0o777 == 0o700 and (st.st_uid, st.st_gid) == (1000, 1001)
    assert os.stat(dest / "ro").st_mode & 0o777 == 0o555 and (dest / "ro/inside").exists()
    assert os.readlink(dest / "bin/sh") == "busybox" and os.lstat(dest / "bin/sh").st_uid == 5


def test_unpack_replaces_without_writing_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("untouched")

    def build(t):
        t.addfile(_info("x", tarfile.SYMTYPE, linkname=str(outside / "victim")))
        info = _info("x")  # a file member over the symlink: the link goes, the victim stays
        info.size = 3
        t.addfile(info, io.BytesIO(b"new"))
        t.addfile(_info("d", tarfile.DIRTYPE))
        t.addfile(_info("d/inner"))
        t.addfile(_info("d"))  # a file over a directory
        t.addfile(_info("h", tarfile.LNKTYPE, linkname="x"))  # a hard link to a regular member is fine
    dest = tmp_path / "r"
    bundle.unpack(_tar_with(tmp_path / "b.tar", build), str(dest))
    assert (outside / "victim").read_text() == "untouched"
    assert (dest / "x").read_bytes() == b"new" and not os.path.islink(dest / "x")
    assert (dest / "d").is_file()
    assert os.stat(dest / "h").st_ino == os.stat(dest / "x").st_ino
