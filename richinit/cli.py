"""Command line and RICHINIT_* environment for richinit.

Every option has an environment twin (RICHINIT_GRACE for --grace, ...); the
command line wins. Bad input exits 2 with a usage line and one error line, never
a traceback.
"""

import argparse
import os
import sys

from richinit import signals as sigs

USAGE = "richinit [OPTIONS] -- CMD [ARGS...]"

DESCRIPTION = """\
A PID 1 for containers: runs CMD, reaps every process, forwards signals to CMD,
stops everything within bounded time, and exits with CMD's exit code (128+N when
CMD died of signal N; 127/126 when CMD cannot be found/executed).

Shutdown starts when CMD exits or on SIGTERM, SIGINT, SIGPWR or SIGRTMIN+3:
the stop signal goes to CMD, then after --grace every process left gets
SIGTERM, then after --kill-grace SIGKILL.

Every option can also be set as an environment variable: RICHINIT_GRACE,
RICHINIT_KILL_GRACE, RICHINIT_REWRITE (comma-separated), RICHINIT_FORWARD,
RICHINIT_VERBOSE (a count).
"""


class Options:
    grace = 10.0
    kill_grace = 5.0
    rewrite = {}
    forward = "child"
    verbose = 0
    cmd = ()
    faults = ()


def _seconds(text):
    v = float(text)
    if not 0 <= v <= 86400 * 365:
        raise ValueError
    return v


def _rewrite(text):
    return sigs.parse_rewrite(text)


_seconds.__name__ = "seconds"
_rewrite.__name__ = "SIG:SIG"


def _parser():
    p = argparse.ArgumentParser(prog="richinit", usage=USAGE, description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grace", type=_seconds, metavar="SECONDS",
                   help="how long the main child has to exit after the stop signal (default 10)")
    p.add_argument("--kill-grace", type=_seconds, metavar="SECONDS",
                   help="how long every other process has after SIGTERM before SIGKILL (default 5)")
    p.add_argument("--rewrite", type=_rewrite, action="append", metavar="SIG:SIG",
                   help="rewrite a signal before forwarding it, e.g. TERM:QUIT; SIG:0 drops it (repeatable)")
    p.add_argument("--forward", choices=("child", "group", "session"),
                   help="forward signals to the main child (default), its process group, or its session")
    p.add_argument("-v", "--verbose", action="count", help="log more (repeat for debug)")
    p.add_argument("--version", action="version", version="richinit " + _version())
    p.add_argument("cmd", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def _version():
    from richinit import __version__
    return __version__


def _env_defaults(p, environ):
    """Turn RICHINIT_* variables into option values, with errors naming the variable."""
    d = {}
    try:
        if "RICHINIT_GRACE" in environ:
            d["grace"] = _seconds(environ["RICHINIT_GRACE"])
        if "RICHINIT_KILL_GRACE" in environ:
            d["kill_grace"] = _seconds(environ["RICHINIT_KILL_GRACE"])
    except ValueError:
        p.error("RICHINIT_GRACE/RICHINIT_KILL_GRACE: not a number of seconds")
    if environ.get("RICHINIT_REWRITE"):
        try:
            d["rewrite"] = [sigs.parse_rewrite(r) for r in environ["RICHINIT_REWRITE"].split(",") if r]
        except ValueError as e:
            p.error("RICHINIT_REWRITE: %s" % e)
    if "RICHINIT_FORWARD" in environ:
        if environ["RICHINIT_FORWARD"] not in ("child", "group", "session"):
            p.error("RICHINIT_FORWARD: must be child, group or session")
        d["forward"] = environ["RICHINIT_FORWARD"]
    if environ.get("RICHINIT_VERBOSE"):
        try:
            d["verbose"] = int(environ["RICHINIT_VERBOSE"])
        except ValueError:
            p.error("RICHINIT_VERBOSE: must be a number")
    return d


def parse(argv=None, environ=None):
    environ = os.environ if environ is None else environ
    argv = sys.argv[1:] if argv is None else argv
    p = _parser()
    env = _env_defaults(p, environ)
    a = p.parse_args(argv)
    o = Options()
    o.grace = a.grace if a.grace is not None else env.get("grace", Options.grace)
    o.kill_grace = a.kill_grace if a.kill_grace is not None else env.get("kill_grace", Options.kill_grace)
    o.rewrite = dict(a.rewrite if a.rewrite is not None else env.get("rewrite", []))
    o.forward = a.forward or env.get("forward", Options.forward)
    o.verbose = a.verbose if a.verbose is not None else env.get("verbose", 0)
    cmd = list(a.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        p.error("no command given (richinit [OPTIONS] -- CMD [ARGS...])")
    o.cmd = cmd
    o.faults = tuple(f for f in environ.get("RICHINIT_INJECT_FAULT", "").split(",") if f)
    return o
