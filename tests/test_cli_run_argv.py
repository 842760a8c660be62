"""`rich run`'s one parser (cli.parse_run over osbase.standin.parse_options) against argparse built
from the same table (cli.RUN_OPTIONS), on thousands of command-line shapes: the same Args, or both
refuse (argparse without abbreviations: `rich run` does not take them)."""

import argparse
import itertools
import random

import pytest

from runtime_hooks import cli

TOKENS = ["--runtime", "crun", "--memory", "-m", "256m", "--cpus", "1.5", "-v", "/a:/b", "--volume", "-e", "A=1",
          "--env", "--annotation", "k=v", "--quota", "/d=1M", "--service", "sshd", "--no-services", "--vm",
          "--name", "web", "--network", "none", "host", "bad", "--workdir", "-w", "/srv", "-d", "--detach", "-t",
          "--tty", "--keep", "/rootfs", "app", "-x", "-", "--name=web", "--memory=1g", "--vm=1", "--net",
          "-dt", "-m256m", "-dm", "-m=1g", "-dw/srv", "--help", "-h", "--bogus", "-1", "=x", "-td"]


class Refused(Exception):
    pass


def reference():
    """argparse from cli.RUN_OPTIONS: what the table means."""
    class P(argparse.ArgumentParser):
        def error(self, message):
            raise Refused(message)
    p = P(prog="rich run", allow_abbrev=False)
    for names, attr, kind, _metavar, _help in cli.RUN_OPTIONS:
        if kind == "flag":
            p.add_argument(*names, dest=attr, action="store_true")
        elif kind == "append":
            p.add_argument(*names, dest=attr, action="append", default=[])
        elif attr == "network":
            p.add_argument(*names, dest=attr, choices=cli.NETWORKS, default="none")
        else:
            p.add_argument(*names, dest=attr, default=cli.RUN_DEFAULTS[attr])
    p.add_argument("rootfs")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    return p


_REF = []


def argparse_result(head):
    if not _REF:
        _REF.append(reference())
    try:
        return dict(vars(_REF[0].parse_args(head)), command="run")
    except Refused:
        return "refused"
    except SystemExit:
        return "help"


def ours(head, capsys=None):
    try:
        return vars(cli.parse_run(head))
    except cli.CliError as e:
        assert str(e).startswith("rich run: ") and "\n" not in str(e)
        return "refused"
    except cli.Exit:
        return "help"


def check(head, capsys):
    assert ours(head) == argparse_result(head), head
    if capsys:
        capsys.readouterr()  # help texts


def test_every_short_shape(capsys):
    for n in range(3):
        for head in itertools.product(TOKENS, repeat=n):
            check(list(head), None)
    capsys.readouterr()


@pytest.mark.parametrize("seed", range(4))
def test_random_long_shapes(seed, capsys):
    rng = random.Random(seed)
    for _ in range(2500):
        check([rng.choice(TOKENS) for _ in range(rng.randrange(3, 12))], None)
    capsys.readouterr()


def test_main_uses_it_with_one_line_errors_and_help(capsys):
    assert cli.parse(["run", "--name", "w", "/r", "--", "a", "b"]) == cli.Args(
        **dict(cli.RUN_DEFAULTS, command="run", name="w", rootfs="/r", cmd=["a", "b"]))
    assert cli.main(["run", "--network", "bad", "/r"]) == cli.EXIT_RICH
    err = capsys.readouterr().err
    assert "invalid choice" in err and err.count("\n") == 1
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(cli.RUN_USAGE) and all(names[0] in out for names, *_ in cli.RUN_OPTIONS)
