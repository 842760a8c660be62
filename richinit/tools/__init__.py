"""The tools a VM's users and packages call inside the container, talking to richinit (PID 1).

    systemctl  service  journalctl  shutdown  reboot  poweroff  halt  richctl

The portable runtime ships a launcher per name in /.richinit/tools/ (runtime_hooks.portable); in
rich mode they are bound read-only over the image's own copies (/usr/bin/systemctl...) and the
directory is on PATH. Each runs `main(NAME)` on the runtime's own Python.
"""

import sys

PROGRAMS = ("systemctl", "service", "journalctl", "shutdown", "reboot", "poweroff", "halt", "richctl")


def main(prog, argv=None):
    """Run a tool and exit with its status. From a launcher (argv None), sys.argv is
    ["-c", $0, ARGS...]: the name it was called by picks the program when it is one of ours
    (an image's /sbin/reboot linked to the systemctl bound over), else `prog`."""
    if argv is None:
        called = sys.argv[1].rsplit("/", 1)[-1] if len(sys.argv) > 1 else prog
        prog = called if called in PROGRAMS else prog
        argv = sys.argv[2:]
    try:
        if prog == "systemctl":
            from richinit.tools.systemctl import main as run
        elif prog == "service":
            from richinit.tools.service import main as run
        elif prog == "journalctl":
            from richinit.tools.journalctl import main as run
        elif prog == "richctl":
            from richinit.ctl import main as run
        elif prog in ("shutdown", "reboot", "poweroff", "halt"):
            from richinit.tools.power import main

            def run(args):
                return main(prog, args)
        else:
            sys.stderr.write("richinit tools: unknown program %s\n" % prog)
            sys.exit(2)
        code = run(argv)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    sys.stdout.flush()
    sys.exit(code or 0)
