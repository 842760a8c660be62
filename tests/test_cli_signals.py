import signal
import subprocess
import sys

import pytest

from richinit import cli
from richinit import signals as sigs


@pytest.mark.parametrize("text,num", [("TERM", 15), ("SIGTERM", 15), ("15", 15), ("usr1", 10),
                                      ("RTMIN+3", signal.SIGRTMIN + 3), ("SIGRTMAX", signal.SIGRTMAX), ("0", 0)])
def test_parse_signal(text, num):
    assert sigs.parse(text) == num


@pytest.mark.parametrize("text", ["NOPE", "99", "RTMIN+99", ""])
def test_parse_signal_rejects(text):
    with pytest.raises(ValueError):
        sigs.parse(text)


def test_forwardable_set():
    fw = [s for s in range(1, 32) if sigs.forwardable(s)]
    assert signal.SIGTERM not in fw and signal.SIGINT not in fw and signal.SIGCHLD not in fw
    assert signal.SIGKILL not in fw and signal.SIGSEGV not in fw
    for s in (signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE, signal.SIGALRM,
              signal.SIGCONT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGURG, signal.SIGXCPU,
              signal.SIGXFSZ, signal.SIGVTALRM, signal.SIGPROF, signal.SIGWINCH, signal.SIGIO):
        assert s in fw


def test_options_and_environment():
    o = cli.parse(["--grace", "3", "--rewrite", "TERM:QUIT", "--", "sleep", "1"],
                  {"RICHINIT_KILL_GRACE": "2", "RICHINIT_GRACE": "9", "RICHINIT_FORWARD": "group"})
    assert o.grace == 3 and o.kill_grace == 2 and o.forward == "group"
    assert o.rewrite == {15: 3} and o.cmd == ["sleep", "1"]
    o = cli.parse(["true"], {"RICHINIT_REWRITE": "USR1:0,HUP:USR2"})
    assert o.rewrite == {10: 0, 1: 12} and o.cmd == ["true"]


def run_cli(args, env=None):
    return subprocess.run([sys.executable, "-m", "richinit", *args], capture_output=True, text=True,
                          env=env, timeout=30)


@pytest.mark.parametrize("args,env", [
    (["--bogus", "--", "true"], None),
    (["--grace", "soon", "--", "true"], None),
    (["--rewrite", "TERM", "--", "true"], None),
    ([], None),
    (["--", "true"], {"RICHINIT_GRACE": "x", "PATH": "/usr/bin:/bin"}),
])
def test_bad_input_exits_2_with_usage_and_no_traceback(args, env):
    r = run_cli(args, env)
    assert r.returncode == 2
    assert "usage: richinit" in r.stderr
    assert "Traceback" not in r.stderr


def test_help_mentions_every_option():
    r = run_cli(["--help"])
    assert r.returncode == 0
    for opt in ("--grace", "--kill-grace", "--rewrite", "--forward", "RICHINIT_GRACE"):
        assert opt in r.stdout


@pytest.mark.parametrize("argv,env,units,vm,services", [
    (["--", "sleep", "1"], {}, False, False, None),
    (["--vm"], {}, True, True, "all"),
    (["--vm", "--units", "no"], {}, False, True, "all"),
    (["--units", "yes", "--", "app"], {}, True, False, "all"),
    (["--", "app"], {"RICHINIT_UNITS": "1"}, True, False, "all"),
    (["--units=no", "--", "app"], {"RICHINIT_UNITS": "1"}, False, False, None),
])
def test_units_option(argv, env, units, vm, services):
    o = cli.parse(argv, env)
    assert (o.units, o.vm, o.services) == (units, vm, services)


@pytest.mark.parametrize("init", ["/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd", "/bin/init"])
def test_the_images_init_as_the_command_is_vm_mode(init):
    o = cli.parse(["--", init, "--log-level=info"], {})
    assert o.vm and o.units and o.services == "all" and o.cmd == [] and o.image_init == init


def test_a_link_to_systemd_is_the_images_init_too(tmp_path):
    (tmp_path / "lib/systemd").mkdir(parents=True)
    (tmp_path / "lib/systemd/systemd").write_text("")
    (tmp_path / "init").symlink_to(tmp_path / "lib/systemd/systemd")
    assert cli.is_image_init(str(tmp_path / "init"))
    assert not cli.is_image_init("/bin/sh") and not cli.is_image_init("init")
    o = cli.parse(["--", str(tmp_path / "init")], {})
    assert o.vm and o.cmd == []


def test_bad_units_value_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse(["--units", "maybe", "--", "x"], {})
    assert e.value.code == 2 and "--units: must be yes or no" in capsys.readouterr().err
