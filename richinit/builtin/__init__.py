"""Daemons richinit provides when the image lacks its own: a /dev/log syslog and a cron.

Each runs as an ordinary supervised child, never inside PID 1, and uses only the standard
library: in rich mode the interpreter is the portable runtime bound at /.richinit.
Which daemon a container gets (the image's or ours) is decided by the service definitions
(services.d/syslog.yaml, cron.yaml: `@builtin syslogd`, `@builtin cron`); this module only
says how ours are started. PID 1 imports it, so it imports nothing.

The supervisor forks them from PID 1 (richinit.spawn.spawn_call -> main(NAME, ARGS)): the
interpreter is already running, so a built-in is ready in a few milliseconds instead of the
~20 a fresh interpreter needs here. argv() is how to start one on its own.

Both take `--notify-fd N` (s6 readiness: "\\n" on fd N once ready) and stop cleanly on SIGTERM.
"""

MODULES = {"syslogd": "richinit.builtin.syslogd", "cron": "richinit.builtin.cron"}


def main(name, args):
    """Run built-in NAME with ARGS in this process (a child forked from PID 1); its exit status."""
    module = __import__(MODULES[name], fromlist=["main"])
    return module.main(list(args))


def argv(name, python, *args):
    """argv for `@builtin NAME ARGS...` run on its own by `python`.

    `-I` (isolated) keeps the image's PYTHONPATH/PYTHONHOME, meant for the image's own
    Python, from shadowing our stdlib or package; richinit must therefore be importable
    from the interpreter's site-packages (the venv's editable install, the portable runtime).
    """
    # -c, not -m: runpy would load importlib.util, collections, functools... (~0.6 MB each).
    return [python, "-I", "-c", "import sys; from %s import main; sys.exit(main())" % MODULES[name], *args]
