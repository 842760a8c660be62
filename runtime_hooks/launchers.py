"""Fast launchers for richinit's programs: `#!PYTHON -IS` scripts with sys.path spelled out.

pip's console scripts `import re` (and with it enum, collections, functools: ~10 ms) before they
call us, and `site` with a venv's .pth files costs ~3 ms more. rich, rich-runtime and rich-hook are
on every container's start-up path, so they get launchers of their own: `-I -S` (no site, no
PYTHON* variables, no user site) with the directories site would have given them listed in the
file. richinit (PID 1 for its whole life) gets `-I` alone.

    rich install-launchers [--bin-dir DIR] [--python PY]   (a pip install: beside the running `rich`)

scripts/build-deb.py renders the same launchers for the Debian package (/usr/bin/python3,
/usr/lib/python3/dist-packages).
"""

import os
import sys

# name -> (module, function, interpreter flags)
PROGRAMS = {
    "rich": ("runtime_hooks.cli", "entry", "-IS"),
    "rich-runtime": ("runtime_hooks.wrapper", "entry", "-IS"),
    "rich-hook": ("runtime_hooks.hook", "entry", "-IS"),
    "richctl": ("richinit.ctl", "entry", "-IS"),
    "richinit": ("richinit.main", "entry", "-I"),
}
# What our packages import from outside the standard library (each where it is installed).
DEPENDENCIES = ("yaml", "setproctitle", "mfusepy", "tomlkit", "daemon")


class LauncherError(Exception):
    """One line."""


def render(name, python, paths):
    """The launcher text for program `name`: `python` runs it, `paths` go first on sys.path."""
    module, fn, flags = PROGRAMS[name]
    if not python.startswith("/") or any(c in python for c in " \n\t"):
        raise LauncherError("%s: the interpreter must be an absolute path without blanks" % python)
    lines = ["#!%s %s" % (python, flags)]
    if "S" in flags:
        lines += ["import sys", "sys.path[1:1] = %r" % (list(paths),)]
    else:
        lines += ["import sys"]
    lines += ["from %s import %s" % (module, fn), "sys.exit(%s())" % fn, ""]
    return "\n".join(lines)


def package_paths():
    """Where this interpreter finds our packages and their dependencies, in that order."""
    import importlib.util
    out = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    for dep in DEPENDENCIES:
        spec = importlib.util.find_spec(dep)
        if spec is None or not spec.origin:
            continue
        origin = spec.origin
        d = os.path.dirname(origin)
        if spec.submodule_search_locations:  # a package: its parent
            d = os.path.dirname(d)
        if d not in out:
            out.append(d)
    return out


def default_bin_dir(argv0):
    """Beside the running `rich` (under -S, sysconfig would name the base interpreter's, not the venv's)."""
    if os.path.basename(argv0 or "") != "rich":
        raise LauncherError("give --bin-dir (where rich, rich-runtime and rich-hook are to go)")
    return os.path.dirname(os.path.abspath(argv0))


def install(bin_dir, python=None, paths=None, names=tuple(PROGRAMS)):
    """Write the launchers into bin_dir (default: beside the running `rich`), atomically each;
    returns their paths."""
    python = python or sys.executable
    paths = package_paths() if paths is None else paths
    bin_dir = bin_dir or default_bin_dir(sys.argv[0])
    written = []
    os.makedirs(bin_dir, exist_ok=True)
    for name in names:
        dst = os.path.join(bin_dir, name)
        tmp = dst + ".rich-tmp"
        with open(tmp, "w") as f:
            f.write(render(name, python, paths))
        os.chmod(tmp, 0o755)
        os.rename(tmp, dst)
        written.append(dst)
    return written
