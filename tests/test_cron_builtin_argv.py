"""How a built-in is started on its own: `@builtin NAME` -> an isolated `python -I -c` argv (the
supervisor forks them from PID 1 instead: tests/integration/test_services_busybox.py)."""

import os
import subprocess
import sys

import pytest

from richinit import builtin


def test_argv():
    assert builtin.argv("cron", "/py", "--notify-fd", "3") == [
        "/py", "-I", "-c", "import sys; from richinit.builtin.cron import main; sys.exit(main())", "--notify-fd", "3"]
    assert builtin.argv("syslogd", "/py") == [
        "/py", "-I", "-c", "import sys; from richinit.builtin.syslogd import main; sys.exit(main())"]
    with pytest.raises(KeyError):
        builtin.argv("sshd", "/py")


@pytest.mark.parametrize("name,prog", [("cron", "richinit-cron"), ("syslogd", "richinit-syslogd")])
def test_isolated_argv_ignores_the_images_pythonpath(tmp_path, name, prog):
    """An image's PYTHONPATH (meant for its own Python) must not shadow our stdlib or package."""
    # The daemons import only built-in stdlib modules now (test_cron_builtin_lean.py), so the image's
    # copy of our own package is what would shadow them.
    (tmp_path / "richinit").mkdir()
    for shadowed in ("socket.py", "richinit/__init__.py"):
        (tmp_path / shadowed).write_text("raise SystemExit('shadowed by the image')\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": os.environ.get("PATH", "")}
    argv = builtin.argv(name, sys.executable, "--help")
    r = subprocess.run(argv, cwd="/", capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0 and prog in r.stdout, r.stderr
    # The same without -I is broken: the test would notice if the flag went away.
    r = subprocess.run([a for a in argv if a != "-I"], cwd="/", capture_output=True, text=True, timeout=30,
                       env=env)
    assert r.returncode != 0 and "shadowed by the image" in r.stderr
