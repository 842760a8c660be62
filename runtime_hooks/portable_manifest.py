"""What a built portable runtime looks like from outside: its mount point, manifest and argv.

Kept apart from portable.py (the builder) so the wrapper can read a manifest without
importing the build machinery on every `create`.
"""

import os

from osbase import standin

MOUNT = "/.richinit"
MANIFEST = "runtime.json"


class BuildError(Exception):
    """One line saying what could not be built, or why a built runtime is unusable."""


def richinit_argv(mount=MOUNT, loader="ld-linux-x86-64.so.2"):
    """process.args prefix that starts richinit from the runtime mounted at `mount` (no shell).

    `-c` rather than `-m richinit`: -m goes through runpy, which loads importlib.util, collections,
    functools, contextlib and more into PID 1 for its whole life.
    """
    return ["%s/lib/%s" % (mount, loader), "--library-path", mount + "/lib", mount + "/bin/python3",
            "-c", RICHINIT_MAIN]


RICHINIT_MAIN = "from richinit.main import entry; entry()"


def load_manifest(runtime_dir):
    """The manifest of a built runtime; BuildError naming the file and field if it is unusable."""
    path = os.path.join(runtime_dir, MANIFEST)
    try:
        with open(path, "rb") as f:
            m = standin.json_loads(f.read())
    except FileNotFoundError:
        raise BuildError("%s: no portable runtime here (run `rich runtime build`)" % path)
    except (OSError, ValueError) as e:
        raise BuildError("%s: unreadable manifest: %s" % (path, e))
    if not isinstance(m, dict) or not isinstance(m.get("loader"), str) or not m["loader"] \
            or "/" in m["loader"] or m["loader"].startswith("."):
        raise BuildError("%s: loader: missing or not a file name" % path)
    for rel in ("lib/" + m["loader"], "bin/python3", "bin/python3._pth"):
        if not os.path.isfile(os.path.join(runtime_dir, rel)):
            raise BuildError("%s: %s is missing: rebuild the runtime" % (runtime_dir, rel))
    return m
