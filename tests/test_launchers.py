"""runtime_hooks.launchers: the -IS launchers of the wheel and the .deb run the entry points."""

import os
import subprocess
import sys

import pytest

from runtime_hooks import launchers


def test_rendered_launchers_run_with_the_paths_spelled_out(tmp_path):
    written = launchers.install(str(tmp_path), sys.executable, launchers.package_paths())
    assert sorted(os.path.basename(p) for p in written) == sorted(launchers.PROGRAMS)
    head = (tmp_path / "rich").read_text().splitlines()
    assert head[0] == "#!%s -IS" % sys.executable and head[2].startswith("sys.path[1:1] = [")
    assert (tmp_path / "richinit").read_text().splitlines()[0] == "#!%s -I" % sys.executable
    r = subprocess.run([str(tmp_path / "rich"), "--help"], capture_output=True, text=True, env={}, cwd="/",
                       timeout=60)
    assert r.returncode == 0 and "install-launchers" in r.stdout, r.stderr
    r = subprocess.run([str(tmp_path / "rich-hook")], capture_output=True, text=True, env={}, cwd="/", timeout=60)
    assert r.returncode == 2 and "usage: rich-hook" in r.stderr


def test_bad_interpreter_and_default_directory():
    with pytest.raises(launchers.LauncherError):
        launchers.render("rich", "python3", [])
    with pytest.raises(launchers.LauncherError):
        launchers.render("rich", "/opt/my python/bin/python3", [])
    assert launchers.default_bin_dir("/opt/v/bin/rich") == "/opt/v/bin"
    with pytest.raises(launchers.LauncherError, match="--bin-dir"):
        launchers.default_bin_dir("/x/cli.py")
