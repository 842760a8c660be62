"""Saving and loading the container environment (on a fixture root)."""

import json
import os
import stat
import subprocess
import sys

import pytest

from richinit import environ
from tests.support.containers import REPO

ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "APP_MODE": "production",
    "QUOTED": "it's \"quoted\" $HOME `cmd` \\ back",
    "MULTI": "line1\nline2\n",
    "EMPTY": "",
    "UNICODE": "caf\u00e9 \u2603",
    "dotted.name": "kept in the directory only",
    "HOME": "/root", "PWD": "/", "SHLVL": "1", "TERM": "xterm", "USER": "root", "SHELL": "/bin/sh",
    "LISTEN_FDS": "2", "LISTEN_PID": "1", "NOTIFY_SOCKET": "/run/x", "RICHINIT_VM": "1", "_": "/usr/bin/env",
    "HOSTNAME": "rich",
}
EXPECTED = {k: v for k, v in ENV.items() if k in (
    "PATH", "APP_MODE", "QUOTED", "MULTI", "EMPTY", "UNICODE", "HOSTNAME")}


@pytest.fixture
def root(tmp_path):
    (tmp_path / "etc/profile.d").mkdir(parents=True)
    (tmp_path / "etc/group").write_text("root:x:0:\ndocker_env:x:8377:alice\n")
    return tmp_path


def test_save_and_load_round_trip(root):
    assert environ.save(ENV, str(root)) == []
    path = root / "run/richinit/environment"
    loaded = environ.load(str(path))
    assert loaded == EXPECTED


def test_saved_file_is_what_a_real_shell_sees(root):
    environ.save(ENV, str(root))
    path = root / "run/richinit/environment"
    out = subprocess.run(["sh", "-c", '. "$1" && env -0', "sh", str(path)], env={},
                         capture_output=True, check=True).stdout
    seen = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    for k, v in EXPECTED.items():
        assert seen[k] == v, k
    assert "RICHINIT_VM" not in seen and "LISTEN_FDS" not in seen


def test_modes_and_group(root):
    environ.save(ENV, str(root))
    run_file = os.stat(root / "run/richinit/environment")
    assert stat.S_IMODE(run_file.st_mode) == 0o640
    if os.geteuid() == 0:
        assert (run_file.st_uid, run_file.st_gid) == (0, 8377)  # my_init's docker_env group
    assert stat.S_IMODE(os.stat(root / "etc/container_environment").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "etc/container_environment.sh").st_mode) == 0o640


def test_my_init_layout(root):
    (root / "etc/container_environment").mkdir()
    (root / "etc/container_environment/FROM_IMAGE").write_text("baked in\n")  # `echo v > FILE` in a Dockerfile
    (root / "etc/container_environment/APP_MODE").write_text("overridden")
    (root / "etc/container_environment/HOME").write_text("/nope")
    environ.save(ENV, str(root))
    d = root / "etc/container_environment"
    assert (d / "APP_MODE").read_text() == "production"       # the real environment wins
    assert (d / "FROM_IMAGE").read_text() == "baked in"        # the image's variables are kept
    assert (d / "MULTI").read_text() == "line1\nline2\n"
    assert (d / "dotted.name").read_text() == "kept in the directory only"
    assert not (d / "HOME").exists() and not (d / "LISTEN_FDS").exists()
    data = json.loads((root / "etc/container_environment.json").read_text())
    assert data["FROM_IMAGE"] == "baked in" and data["QUOTED"] == ENV["QUOTED"]
    assert environ.load(str(root / "etc/container_environment.sh"))["FROM_IMAGE"] == "baked in"
    assert environ.load(str(root / "run/richinit/environment"))["FROM_IMAGE"] == "baked in"


def test_read_only_etc_is_a_note_not_a_failure(root):
    if os.geteuid() == 0:
        # root ignores permissions: make /etc/container_environment a file so the mkdir fails instead
        (root / "etc/container_environment").write_text("not a dir")
    else:
        os.chmod(root / "etc", 0o555)
    notes = environ.save(ENV, str(root))
    assert len(notes) == 1 and "/etc/container_environment not written" in notes[0]
    assert environ.load(str(root / "run/richinit/environment")) == EXPECTED


def test_symlinked_env_dir_is_refused(root, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    os.symlink(elsewhere, root / "etc/container_environment")
    notes = environ.save(ENV, str(root))
    assert notes and os.listdir(elsewhere) == []


def test_profile_snippet(root):
    assert environ.install_profile_snippet(str(root))
    snippet = root / "etc/profile.d/richinit-env.sh"
    assert stat.S_IMODE(os.stat(snippet).st_mode) == 0o644
    assert "/run/richinit/environment" in snippet.read_text()
    bare = root / "bare"
    bare.mkdir()
    assert not environ.install_profile_snippet(str(bare))


def test_profile_snippet_loads_the_file_in_a_login_shell(root):
    """Run the snippet against the saved file the way /etc/profile would (paths rewritten to the fixture)."""
    environ.save({"APP_MODE": "prod", "QUOTED": "a 'b'"}, str(root))
    environ.install_profile_snippet(str(root))
    text = (root / "etc/profile.d/richinit-env.sh").read_text().replace(
        "/run/richinit/environment", str(root / "run/richinit/environment"))
    out = subprocess.run(["sh", "-c", text + '\nprintf "%s|%s" "$APP_MODE" "$QUOTED"'], env={},
                         capture_output=True, text=True, check=True).stdout
    assert out == "prod|a 'b'"


def test_load_missing_is_empty_and_bad_content_raises(tmp_path):
    assert environ.load(str(tmp_path / "none")) == {}
    bad = tmp_path / "bad"
    bad.write_text("rm -rf /\n")
    with pytest.raises(ValueError):
        environ.load(str(bad))


def test_readable_by(tmp_path):
    p = tmp_path / "f"
    p.write_text("x")
    os.chmod(p, 0o640)
    st = os.stat(p)
    assert environ.readable_by(str(p), 0, [0])
    assert environ.readable_by(str(p), 4242, [st.st_gid])
    assert not environ.readable_by(str(p), 4242, [4243])
    os.chmod(p, 0o644)
    assert environ.readable_by(str(p), 4242, [4243])
    assert not environ.readable_by(str(tmp_path / "missing"), 4242, [4242])


def test_initial_is_the_exec_environment_not_pythons(tmp_path):
    """PEP 538 adds LC_CTYPE to os.environ in a C locale; the saved environment must not get it."""
    code = "import json, os; from richinit import environ; print(json.dumps([environ.initial(), dict(os.environ)]))"
    out = subprocess.run([sys.executable, "-c", code], env={"LC_ALL": "", "LANG": "C", "APP": "x y",
                                                            "PYTHONPATH": REPO},
                         capture_output=True, text=True, check=True).stdout
    initial, pyenv = json.loads(out)
    assert initial == {"LC_ALL": "", "LANG": "C", "APP": "x y", "PYTHONPATH": REPO}
    assert pyenv.get("LC_CTYPE") == "C.UTF-8"  # what os.environ would have leaked


def test_initial_falls_back_without_proc(tmp_path):
    assert environ.initial(str(tmp_path)) == dict(os.environ)


def test_boot_saves_the_exec_environment_and_installs_the_snippet(root):
    proc = root / "fakeproc"
    (proc / "self").mkdir(parents=True)
    (proc / "self/environ").write_bytes(b"APP=1\0HOME=/root\0RICHINIT_X=1\0")
    assert environ.boot(str(root), str(proc)) == []
    assert environ.load(str(root / "run/richinit/environment")) == {"APP": "1"}
    assert (root / "etc/profile.d/richinit-env.sh").exists()


def test_boot_on_a_read_only_root_only_notes(root):
    (root / "run").write_text("not a directory")  # /run/richinit cannot be made
    notes = environ.boot(str(root), "/proc")
    assert len(notes) == 1 and notes[0].startswith("environment not saved for logins and cron")
