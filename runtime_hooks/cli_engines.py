"""The `rich` commands about the host and other engines' containers:

    rich install-launchers [--bin-dir DIR] [--python PY]   the fast -IS launchers (runtime_hooks.launchers)
    rich ctl NAME VERB [ARGS...]                          richctl of any engine's rich container
    rich status NAME [--json]                             = rich ctl NAME status
    rich doctor [--json]                                  what this host can do, and what to fix

cli.py builds these parsers with add_parsers() and hands their commands to dispatch().
"""

import sys

COMMANDS = ("install-launchers", "ctl", "status", "doctor")


def add_parsers(sub, want):
    import argparse
    if want("install-launchers"):
        p = sub.add_parser("install-launchers", help="write the fast -IS launchers of rich, rich-runtime, ...")
        p.add_argument("--bin-dir", help="where (default: this interpreter's scripts directory)")
        p.add_argument("--python", help="the interpreter they run (default: this one)")
    if want("ctl"):
        p = sub.add_parser("ctl", help="richctl in a running rich container of any engine")
        p.add_argument("name", help="a rich run name, a runtime container id (docker, podman, CRI) or a pid")
        p.add_argument("verb", nargs=argparse.REMAINDER, help="status | start NAME | stop NAME | ...")
    if want("status"):
        p = sub.add_parser("status", help="a rich container's services (rich ctl NAME status)")
        p.add_argument("name")
        p.add_argument("--json", action="store_true")
    if want("doctor"):
        p = sub.add_parser("doctor", help="what this host can do for rich containers, and what to fix")
        p.add_argument("--json", action="store_true")


def dispatch(args, fail):
    """Run an args.command of COMMANDS; `fail(msg)` raises the CLI's one-line error."""
    if args.command == "install-launchers":
        from runtime_hooks import launchers
        try:
            for path in launchers.install(args.bin_dir, args.python):
                print("installed %s" % path)
        except (launchers.LauncherError, OSError) as e:
            fail("rich install-launchers: %s" % e)
        return 0
    if args.command in ("ctl", "status"):
        from runtime_hooks import ctl
        verb = args.verb if args.command == "ctl" else ["status"] + (["--json"] if args.json else [])
        try:
            return ctl.run(args.name, verb)
        except ctl.CtlError as e:
            fail("rich %s: %s" % (args.command, e))
    if args.command == "doctor":
        from runtime_hooks import doctor
        return doctor.main(json_out=args.json, out=sys.stdout)
    raise AssertionError(args.command)
