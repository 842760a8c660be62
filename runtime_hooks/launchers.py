"""Fast launchers for richinit's programs: `#!PYTHON -IS` scripts with sys.path spelled out.

pip's console scripts `import re` (and with it enum, collections, functools: ~10 ms) before they
call us, and `site` with a venv's .pth files costs ~3 ms more. rich, rich-runtime and rich-hook are
on every container's start-up path, so they get launchers of their own: `-I -S` (no site, no
PYTHON* variables, no user site) with the directories site would have given them listed in the
file. richinit (PID 1 for its whole life) gets `-I` alone.

rich-runtime is called by the engines for every runtime verb of every container (a pod: create and
start of the pause container, create and start of each app, then kill, delete...), and only a
create or run can need Python. Its launcher is a `#!/bin/sh` script (sh_runtime_launcher) that
hands any call with a `create` or `run` argument (or a --richinit- one) to the wrapper, and execs
the real runtime itself for the others when the wrapper's memo (runtime_hooks.wrapper.remember:
the runtime it resolved last, with runtime.yaml's bytes, RICHINIT_RUNTIME, PATH and the launcher's
path it resolved it from) matches today's inputs byte for byte; otherwise the wrapper decides.
The launcher parses neither runc's argv nor YAML: it looks for two words (any position, so
a container named `run` goes the slow way, never the wrong one) and compares lines.

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
# The sh launcher's memo (written by the wrapper; /run: gone at boot, as the resolution may be).
MEMO = "/run/richinit/rich-runtime.memo"
# What our packages import from outside the standard library (each where it is installed).
DEPENDENCIES = ("yaml", "setproctitle", "mfusepy", "tomlkit", "daemon")


class LauncherError(Exception):
    """One line."""


def render(name, python, paths, env=None, memo=MEMO):
    """The launcher text for program `name`: `python` runs it, `paths` go first on sys.path; env:
    variables set when not set already (tests bake their directories in; engines pass ours on
    to no one). rich-runtime's is the sh launcher, with its memo at `memo`."""
    module, fn, flags = PROGRAMS[name]
    if not python.startswith("/") or any(c in python for c in " \n\t"):
        raise LauncherError("%s: the interpreter must be an absolute path without blanks" % python)
    if name == "rich-runtime":
        return sh_runtime_launcher(python, paths, env, memo)
    lines = ["#!%s %s" % (python, flags)]
    lines += ["import os, sys" if env else "import sys"]
    lines += ["os.environ.setdefault(%r, %r)" % kv for kv in sorted((env or {}).items())]
    if "S" in flags:
        lines += ["sys.path[1:1] = %r" % (list(paths),)]
    lines += ["from %s import %s" % (module, fn), "sys.exit(%s())" % fn, ""]
    return "\n".join(lines)


def _sh_quote(s):
    return "'%s'" % s.replace("'", "'\\''")


SH_RUNTIME = """#!/bin/sh
# rich-runtime (runtime_hooks.launchers): a call with a create or run argument goes to the Python
# wrapper (runtime_hooks.wrapper); any other is exec'd into the real runtime the wrapper resolved
# last, when its memo says that resolution was made from the same runtime.yaml bytes,
# RICHINIT_RUNTIME, PATH and launcher path as this call's; otherwise the wrapper decides.
%(env)spy() { exec %(python)s -IS -c %(code)s "$0" "$@"; }
for a do
    case $a in create|run|--richinit-*) py "$@" ;; esac
done
conf=${RICHINIT_RUNTIME_CONFIG:-%(conf)s}
same() {  # stdin: the memo
    IFS= read -r rt && [ -n "$rt" ] || return 1
    for want in "conf=$conf" "runtime=$RICHINIT_RUNTIME" "path=$PATH" "self=$0"; do
        IFS= read -r got && [ "$got" = "$want" ] || return 1
    done
    IFS= read -r got || return 1
    case $got in
    absent) ! [ -e "$conf" ]; return ;;
    present) [ -f "$conf" ] && [ -r "$conf" ] || return 1 ;;
    *) return 1 ;;
    esac
    while :; do  # the same lines, the last one's newline included
        IFS= read -r a; x=$?
        IFS= read -r b <&3; y=$?
        [ "$x" = "$y" ] && [ "$a" = "$b" ] || return 1
        [ "$x" = 0 ] || return 0
    done 3< "$conf"
}
[ -f %(memo)s ] && [ -r %(memo)s ] && same < %(memo)s && [ -x "$rt" ] && ! [ -d "$rt" ] || py "$@"
exec "$rt" "$@"
"""


def runtime_code(paths, memo=MEMO):
    """The program the sh launcher hands to `python -IS -c`, with the launcher's path and the call's
    arguments after it."""
    return "import sys; sys.argv[0:2] = sys.argv[1:2]; sys.path[1:1] = %r; " \
           "from runtime_hooks.wrapper import entry; sys.exit(entry(memo=%r))" % (list(paths), memo)


def sh_runtime_launcher(python, paths, env=None, memo=MEMO):
    """rich-runtime's launcher (see the module's docstring)."""
    from runtime_hooks import settings
    if not memo.startswith("/") or "\n" in memo:
        raise LauncherError("%s: the memo must be an absolute path on one line" % memo)
    for p in list(paths) + [memo]:
        if any(c in p for c in "'\n\0"):
            raise LauncherError("%r: no quote or newline in the launcher's paths" % p)
    code = runtime_code(paths, memo)
    lines = ""
    for k, v in sorted((env or {}).items()):
        if not k.replace("_", "").isalnum() or k[0].isdigit():
            raise LauncherError("%r: not a variable name" % k)
        lines += "[ -n \"${%s+set}\" ] || { %s=%s; export %s; }\n" % (k, k, _sh_quote(v), k)
    return SH_RUNTIME % {"env": lines, "python": python, "code": _sh_quote(code),
                         "conf": _sh_quote(settings.DEFAULT_PATH), "memo": _sh_quote(memo)}


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
