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

Services (sshd, cron, syslog and the image's services.d) run with --services:
init scripts first, then services in dependency order, then CMD; at shutdown the
services stop in reverse order after CMD. --vm keeps the container up after CMD
exits, until a stop signal (CMD is optional then). richctl talks to the control
socket in --control-dir.

Every option can also be set as an environment variable: RICHINIT_GRACE,
RICHINIT_KILL_GRACE, RICHINIT_REWRITE (comma-separated), RICHINIT_FORWARD,
RICHINIT_VERBOSE (a count), RICHINIT_SERVICES, RICHINIT_VM (1/0),
RICHINIT_CONTROL_DIR, RICHINIT_SAVE_ENV (1/0).
"""


class Options:
    grace = 10.0
    kill_grace = 5.0
    rewrite = {}
    forward = "child"
    verbose = 0
    cmd = ()
    faults = ()
    services = None   # None: no services; "all" or a list of names
    vm = False
    control_dir = "/run/richinit"
    save_env = True


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
    p.add_argument("--services", metavar="all|none|NAME,...",
                   help="supervise services from services.d: all of them, or the named ones (default none)")
    p.add_argument("--vm", action="store_true", default=None,
                   help="keep running after CMD exits, until a stop signal (implies --services all)")
    p.add_argument("--control-dir", metavar="DIR", help="where control.sock lives (default /run/richinit)")
    p.add_argument("--no-save-env", dest="save_env", action="store_false", default=None,
                   help="do not save the environment for ssh logins and cron jobs")
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
    for key, var in (("vm", "RICHINIT_VM"), ("save_env", "RICHINIT_SAVE_ENV")):
        if var in environ:
            val = environ[var].strip().lower()
            if val not in ("1", "0", "true", "false", "yes", "no", ""):
                p.error("%s: must be 1 or 0" % var)
            d[key] = val in ("1", "true", "yes")
    for key, var in (("services", "RICHINIT_SERVICES"), ("control_dir", "RICHINIT_CONTROL_DIR")):
        if environ.get(var):
            d[key] = environ[var]
    return d


def _services(text):
    """'all' -> 'all'; 'none' or '' -> None; 'a,b' -> ['a', 'b']."""
    text = (text or "").strip()
    if text in ("", "none"):
        return None
    if text == "all":
        return "all"
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names or None


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
    o.vm = a.vm if a.vm is not None else env.get("vm", False)
    o.services = _services(a.services if a.services is not None else env.get("services"))
    if o.vm and o.services is None and a.services is None and "services" not in env:
        o.services = "all"
    o.control_dir = a.control_dir or env.get("control_dir", Options.control_dir)
    o.save_env = a.save_env if a.save_env is not None else env.get("save_env", True)
    cmd = list(a.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd and not o.vm:
        p.error("no command given (richinit [OPTIONS] -- CMD [ARGS...])")
    o.cmd = cmd
    o.faults = tuple(f for f in environ.get("RICHINIT_INJECT_FAULT", "").split(",") if f)
    return o
