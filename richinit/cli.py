"""Command line and RICHINIT_* environment for richinit.

Every option has an environment twin (RICHINIT_GRACE for --grace, ...); the
command line wins. Bad input exits 2 with a usage line and one error line, never
a traceback. Parsed by hand rather than with argparse: argparse (with re, gettext)
costs PID 1 about 1 MB of private memory for as long as it lives.
"""

import os
import sys

from richinit import signals as sigs

USAGE = "usage: richinit [OPTIONS] -- CMD [ARGS...]"

HELP = USAGE + """

A PID 1 for containers: runs CMD, reaps every process, forwards signals to CMD,
stops everything within bounded time, and exits with CMD's exit code (128+N when
CMD died of signal N; 127/126 when CMD cannot be found/executed).

Shutdown starts when CMD exits or on SIGTERM, SIGINT, SIGPWR or SIGRTMIN+3:
the stop signal goes to CMD, then after --grace every process left gets
SIGTERM, then after --kill-grace SIGKILL.

Services (sshd, cron, syslog and the image's services.d) run with --services:
init scripts first, then services in dependency order and CMD beside them; CMD
waits only for the services --app-after names (PID 1 binds /dev/log before
anything starts, so nothing logged is lost while syslog starts). Without init
scripts or --app-after, CMD starts before the services are even read. At
shutdown the services stop in reverse order after CMD. --vm keeps the container up after CMD
exits, until a stop signal (CMD is optional then). The image's own init as CMD
(/sbin/init, /bin/init, /lib/systemd/systemd, /usr/lib/systemd/systemd, or a link
to systemd) means VM mode: richinit takes its place and runs the image's units.
richctl talks to the control socket in --control-dir.

options:
  --grace SECONDS         how long CMD has to exit after the stop signal (default 5)
  --kill-grace SECONDS    how long every other process has after SIGTERM before
                          SIGKILL (default 2)
  --rewrite SIG:SIG       rewrite a signal before forwarding it, e.g. TERM:QUIT;
                          SIG:0 drops it (repeatable)
  --forward child|group|session
                          forward signals to CMD (default), its process group, or
                          every process of its session
  --services all|none|NAME,...
                          supervise services from services.d: all of them, or the
                          named ones (default none)
  --app-after NAME,...    start CMD once these services are ready (or failed,
                          or skipped); default: none, CMD starts at once
  --vm                    keep running after CMD exits, until a stop signal
                          (implies --services all and --units yes)
  --units yes|no          also run the image's systemd units and SysV init scripts
                          (default: yes with --vm, else no)
  --control-dir DIR       where control.sock lives (default /run/richinit)
  --no-save-env           do not save the environment for ssh logins and cron jobs
  -v, --verbose           log more (-vv: debug)
  -h, --help              show this help and exit
  --version               show the version and exit

Every option can also be set as an environment variable: RICHINIT_GRACE,
RICHINIT_KILL_GRACE, RICHINIT_REWRITE (comma-separated), RICHINIT_FORWARD,
RICHINIT_VERBOSE (a count), RICHINIT_SERVICES, RICHINIT_APP_AFTER, RICHINIT_VM (1/0),
RICHINIT_UNITS (1/0),
RICHINIT_CONTROL_DIR, RICHINIT_SAVE_ENV (1/0).
"""

FORWARD_MODES = ("child", "group", "session")
_WITH_VALUE = ("--grace", "--kill-grace", "--rewrite", "--forward", "--services", "--control-dir", "--app-after",
               "--units")
INIT_PATHS = ("/sbin/init", "/bin/init", "/usr/sbin/init", "/lib/systemd/systemd", "/usr/lib/systemd/systemd")
_FLAGS = ("--vm", "--no-save-env", "--verbose", "--help", "--version")


class UsageError(Exception):
    pass


class Options:
    # 5 + 2 s, with time left for the services' own stop: inside Docker's 10 s and Kubernetes' 30 s
    # stop timeouts, so the last SIGKILL is richinit's, after the services stopped in order.
    grace = 5.0
    kill_grace = 2.0
    rewrite = {}
    forward = "child"
    verbose = 0
    cmd = ()
    services = None   # None: no services; "all" or a list of names
    app_after = ()    # services the app waits for
    vm = False
    units = False     # ask the loader for the image's systemd units and SysV scripts
    image_init = None  # the image's init given as the command, which richinit replaces
    control_dir = "/run/richinit"
    save_env = True


def _seconds(text, what):
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0 <= v <= 86400 * 365:
        raise UsageError("%s: not a number of seconds: %r" % (what, text))
    return v


def _rewrites(items, what):
    try:
        return dict(sigs.parse_rewrite(r) for r in items if r)
    except ValueError as e:
        raise UsageError("%s: %s" % (what, e)) from None


def _forward(text, what):
    if text not in FORWARD_MODES:
        raise UsageError("%s: must be child, group or session, not %r" % (what, text))
    return text


def _bool(text, what):
    val = text.strip().lower()
    if val not in ("1", "0", "true", "false", "yes", "no", ""):
        raise UsageError("%s: must be yes or no (1 or 0)" % what)
    return val in ("1", "true", "yes")


def _services(text):
    """'all' -> 'all'; 'none' or '' -> None; 'a,b' -> ['a', 'b']."""
    text = (text or "").strip()
    if text in ("", "none"):
        return None
    if text == "all":
        return "all"
    return [n.strip() for n in text.split(",") if n.strip()] or None


def is_image_init(path):
    """Is `path` the image's init (systemd or /sbin/init), directly or through a link?"""
    if path in INIT_PATHS:
        return True
    if not path.startswith("/"):
        return False
    real = os.path.realpath(path)
    return real in INIT_PATHS or os.path.basename(real) == "systemd"


def _split(argv):
    """argv -> ({option: [values]}, flags counter, cmd). Stops at `--` or the first non-option."""
    values, flags, i = {}, {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return values, flags, argv[i + 1:]
        if not arg.startswith("-") or arg == "-":
            return values, flags, argv[i:]
        name, eq, val = arg.partition("=")
        if name in _WITH_VALUE:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError("%s needs a value" % name)
                val = argv[i]
            values.setdefault(name, []).append(val)
        elif name in _FLAGS and not eq:
            flags[name] = flags.get(name, 0) + 1
        elif name == "-h":
            flags["--help"] = 1
        elif len(arg) > 1 and arg[1] != "-" and set(arg[1:]) == {"v"}:
            flags["--verbose"] = flags.get("--verbose", 0) + len(arg) - 1
        else:
            raise UsageError("unrecognized option: %s" % arg)
        i += 1
    return values, flags, []


def _from_env(environ):
    """Option values from RICHINIT_* variables, with errors naming the variable."""
    d = {}
    if "RICHINIT_GRACE" in environ:
        d["grace"] = _seconds(environ["RICHINIT_GRACE"], "RICHINIT_GRACE")
    if "RICHINIT_KILL_GRACE" in environ:
        d["kill_grace"] = _seconds(environ["RICHINIT_KILL_GRACE"], "RICHINIT_KILL_GRACE")
    if environ.get("RICHINIT_REWRITE"):
        d["rewrite"] = _rewrites(environ["RICHINIT_REWRITE"].split(","), "RICHINIT_REWRITE")
    if "RICHINIT_FORWARD" in environ:
        d["forward"] = _forward(environ["RICHINIT_FORWARD"], "RICHINIT_FORWARD")
    if environ.get("RICHINIT_VERBOSE"):
        try:
            d["verbose"] = int(environ["RICHINIT_VERBOSE"])
        except ValueError:
            raise UsageError("RICHINIT_VERBOSE: must be a number") from None
    for key, var in (("vm", "RICHINIT_VM"), ("save_env", "RICHINIT_SAVE_ENV"), ("units", "RICHINIT_UNITS")):
        if var in environ:
            d[key] = _bool(environ[var], var)
    for key, var in (("services", "RICHINIT_SERVICES"), ("control_dir", "RICHINIT_CONTROL_DIR"),
                     ("app_after", "RICHINIT_APP_AFTER")):
        if environ.get(var):
            d[key] = environ[var]
    return d


def _build(argv, environ):
    values, flags, cmd = _split(argv)
    if flags.get("--help"):
        sys.stdout.write(HELP)
        sys.exit(0)
    if flags.get("--version"):
        from richinit import __version__
        sys.stdout.write("richinit %s\n" % __version__)
        sys.exit(0)
    env = _from_env(environ)
    last = lambda name: values[name][-1] if name in values else None  # noqa: E731
    o = Options()
    o.grace = _seconds(last("--grace"), "--grace") if "--grace" in values else env.get("grace", Options.grace)
    o.kill_grace = _seconds(last("--kill-grace"), "--kill-grace") if "--kill-grace" in values \
        else env.get("kill_grace", Options.kill_grace)
    o.rewrite = _rewrites(values["--rewrite"], "--rewrite") if "--rewrite" in values else env.get("rewrite", {})
    o.forward = _forward(last("--forward"), "--forward") if "--forward" in values \
        else env.get("forward", Options.forward)
    o.verbose = flags.get("--verbose", env.get("verbose", 0))
    o.vm = bool(flags.get("--vm")) or env.get("vm", False)
    if cmd and is_image_init(cmd[0]):
        o.vm, o.image_init, cmd = True, cmd[0], []
    if "--services" in values:
        o.services = _services(last("--services"))
    elif "services" in env:
        o.services = _services(env["services"])
    elif o.vm:
        o.services = "all"
    if "--units" in values:
        o.units = _bool(last("--units"), "--units")
    else:
        o.units = env.get("units", o.vm)
    if o.units and o.services is None:
        o.services = "all"  # units are services: they need the supervisor
    o.control_dir = last("--control-dir") or env.get("control_dir", Options.control_dir)
    after = last("--app-after") if "--app-after" in values else env.get("app_after", "")
    o.app_after = tuple(n.strip() for n in after.split(",") if n.strip())
    o.save_env = False if flags.get("--no-save-env") else env.get("save_env", True)
    if not cmd and not o.vm:
        raise UsageError("no command given")
    o.cmd = list(cmd)
    return o


def parse(argv=None, environ=None):
    """Options from argv and the environment; on bad input: usage + one line on stderr, exit 2."""
    environ = os.environ if environ is None else environ
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _build(list(argv), environ)
    except UsageError as e:
        sys.stderr.write("%s\nrichinit: error: %s\n" % (USAGE, e))
        sys.exit(2)
