"""The `rich` commands about the host and other engines' containers:

    rich install-launchers [--bin-dir DIR] [--python PY]   the fast -IS launchers (runtime_hooks.launchers)
    rich ctl NAME VERB [ARGS...]                          richctl of any engine's rich container
    rich status NAME [--json]                             = rich ctl NAME status
    rich doctor [--json] [--root DIR]                     what this host can do, and what to fix

cli.py's COMMANDS table adds each parser with add_NAME(sub) and runs NAME(args).
"""

import sys


def _fail(msg):
    from runtime_hooks.cli import CliError
    raise CliError(msg)


def add_install_launchers(sub):
    p = sub.add_parser("install-launchers", help="write the fast -IS launchers of rich, rich-runtime, ...")
    p.add_argument("--bin-dir", help="where (default: beside this rich)")
    p.add_argument("--python", help="the interpreter they run (default: this one)")


def install_launchers(args):
    from runtime_hooks import launchers
    try:
        for path in launchers.install(args.bin_dir, args.python):
            print("installed %s" % path)
    except (launchers.LauncherError, OSError) as e:
        _fail("rich install-launchers: %s" % e)
    return 0


def add_ctl(sub):
    import argparse
    p = sub.add_parser("ctl", help="richctl in a running rich container of any engine")
    p.add_argument("name", help="a rich run name, a runtime container id (docker, podman, CRI) or a pid")
    p.add_argument("verb", nargs=argparse.REMAINDER, help="status | start NAME | stop NAME | ...")


def ctl(args):
    from runtime_hooks import ctl as ctl_mod
    try:
        return ctl_mod.run(args.name, args.verb)
    except ctl_mod.CtlError as e:
        _fail("rich ctl: %s" % e)


def add_status(sub):
    p = sub.add_parser("status", help="a rich container's services (rich ctl NAME status)")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")


def status(args):
    from runtime_hooks import ctl as ctl_mod
    try:
        return ctl_mod.run(args.name, ["status"] + (["--json"] if args.json else []))
    except ctl_mod.CtlError as e:
        _fail("rich status: %s" % e)


def add_doctor(sub):
    p = sub.add_parser("doctor", help="what this host can do for rich containers, and what to fix")
    p.add_argument("--json", action="store_true")
    p.add_argument("--root", default="/", help="read the engines' configuration below this directory")


def doctor(args):
    from runtime_hooks import doctor as doctor_mod
    return doctor_mod.main(json_out=args.json, out=sys.stdout, root=args.root)
