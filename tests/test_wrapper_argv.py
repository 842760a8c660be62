"""How the wrapper reads a runtime command line: subcommand, bundle, --log (never interpreting the rest)."""

import pytest

from runtime_hooks.wrapper import parse_argv


@pytest.mark.parametrize("args,command,bundle", [
    (["create", "--bundle", "/b", "id"], "create", "/b"),
    (["create", "-b", "/b", "id"], "create", "/b"),
    (["create", "--bundle=/b", "id"], "create", "/b"),
    (["create", "-b=/b", "id"], "create", "/b"),
    (["run", "-bundle", "/b", "id"], "run", "/b"),  # runsc's Go flags
    (["run", "-bundle=/b", "-pid-file", "/p", "id"], "run", "/b"),
    (["create", "-b", "/one", "--bundle", "/two", "id"], "create", "/two"),  # last wins
    (["create", "id"], "create", None),  # the cwd
    (["run", "--detach", "--pid-file", "/p", "--console-socket", "/s", "-b", "/b", "id"], "run", "/b"),
    # containerd's go-runc
    (["--root", "/run/containerd/runc/default", "--log", "/x/log.json", "--log-format", "json",
      "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "id"], "create", "/b"),
    # podman with crun-style flags
    (["--cgroup-manager", "cgroupfs", "--log-level", "debug", "--systemd-cgroup", "create", "-b", "/b", "id"],
     "create", "/b"),
    (["--rootless", "auto", "--debug", "run", "-b", "/b", "id"], "run", "/b"),
    (["--rootless=true", "create", "-b", "/b", "id"], "create", "/b"),
    # runsc: single-dash globals, some with values, some booleans
    (["-root", "/r", "-network=none", "-debug", "run", "-bundle", "/b", "id"], "run", "/b"),
    (["--root", "/r", "-platform", "ptrace", "create", "id"], "create", None),
    # an unknown boolean flag right before the subcommand is not taken for a flag with a value
    (["--some-new-bool", "create", "-b", "/b", "id"], "create", "/b"),
    (["--some-new-flag", "value", "create", "-b", "/b", "id"], "create", "/b"),
])
def test_create_and_run(args, command, bundle):
    call = parse_argv(args)
    assert (call.command, call.bundle) == (command, bundle)
    assert args[call.index] == command


@pytest.mark.parametrize("args,command", [
    (["start", "id"], "start"),
    (["--root", "/r", "state", "id"], "state"),
    (["exec", "--process", "/p.json", "-b", "/b", "id"], "exec"),  # not a rewrite command: bundle ignored
    (["delete", "--force", "id"], "delete"),
    (["kill", "--all", "id", "KILL"], "kill"),
    (["update", "--resources=-", "id"], "update"),
    (["--version"], None),
    (["-v"], None),
    (["--help"], None),
    ([], None),
    (["--"], None),
])
def test_other_commands_need_no_bundle(args, command):
    call = parse_argv(args)
    assert call.command == command
    assert call.bundle is None


def test_bundle_flag_value_is_not_the_command():
    # `create` appears as the *value* of --bundle; the command is still the first non-flag token.
    call = parse_argv(["run", "--bundle", "create", "id"])
    assert (call.command, call.bundle) == ("run", "create")


def test_stops_at_double_dash():
    call = parse_argv(["run", "id", "--", "-b", "/nope"])
    assert call.bundle is None


def test_log_file_and_format_are_noticed():
    call = parse_argv(["--log=/l.json", "--log-format", "json", "create", "id"])
    assert (call.log, call.log_format) == ("/l.json", "json")
    call = parse_argv(["-log", "/l", "run", "id"])
    assert call.log == "/l"
