"""`rich run`'s own option parser against argparse's, on thousands of command-line shapes.

parse_run either gives exactly what argparse gives, or steps aside (None) and argparse decides.
"""

import itertools
import random

import pytest

from runtime_hooks import cli

TOKENS = ["--runtime", "crun", "--memory", "-m", "256m", "--cpus", "1.5", "-v", "/a:/b", "--volume", "-e", "A=1",
          "--env", "--annotation", "k=v", "--quota", "/d=1M", "--service", "sshd", "--no-services", "--vm",
          "--name", "web", "--network", "none", "host", "bad", "--workdir", "-w", "/srv", "-d", "--detach", "-t",
          "--tty", "--keep", "/rootfs", "app", "-x", "--", "-", "--name=web", "--memory=1g", "--vm=1", "--net",
          "-dt", "-m256m", "--help", "-h", "--bogus", "-1", "=x"]


_PARSER = []


def argparse_result(head):
    if not _PARSER:
        _PARSER.append(cli.build_parser("run"))
    try:
        return _PARSER[0].parse_args(["run"] + head)
    except cli.CliError:
        return "error"
    except SystemExit:
        return "exit"


def check(argv):
    head, _cmd = cli._split_cmd(argv)  # as cli.parse does: CMD after `--` never reaches a parser
    fast = cli.parse_run(head)
    if fast is None:
        return False
    assert vars(fast) == vars(argparse_result(head)), head
    return True


def test_every_short_shape():
    taken = 0
    for n in range(3):
        for head in itertools.product(TOKENS, repeat=n):
            taken += check(list(head))
    assert taken > 500  # the fast path does take the common shapes


@pytest.mark.parametrize("seed", range(4))
def test_random_long_shapes(seed):
    rng = random.Random(seed)
    for _ in range(2500):
        check([rng.choice(TOKENS) for _ in range(rng.randrange(3, 12))])


def test_the_usual_command_lines_take_the_fast_path():
    for head in (["/rootfs", "/bin/true"], ["--name", "web", "-v", "/a:/b", "--memory", "256m", "/r", "app", "-x"],
                 ["-d", "--vm", "--service", "sshd", "--network", "host", "/r"], ["--no-services", "/r"]):
        assert check(head), head


def test_what_it_leaves_to_argparse():
    for head in (["--help"], ["-dt", "/r"], ["--mem", "1g", "/r"], ["--name"], ["--network", "bad", "/r"],
                 ["--bogus", "/r"], ["--name", "-x", "/r"], []):
        assert cli.parse_run(head) is None, head


def test_main_uses_it_and_argparse_keeps_the_errors(capsys):
    assert cli.parse(["run", "--name", "w", "/r", "--", "a", "b"]) == cli.Args(
        **dict(cli.RUN_DEFAULTS, command="run", name="w", rootfs="/r", cmd=["a", "b"]))
    assert cli.main(["run", "--network", "bad", "/r"]) == cli.EXIT_RICH
    assert "invalid choice" in capsys.readouterr().err
