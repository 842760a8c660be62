"""The portable richinit runtime: a directory that runs richinit in any image, no Python or libc needed.

    rich runtime build [--output DIR]        (for now: python -m runtime_hooks.portable build ...)

Layout (bind-mounted read-only at /.richinit; every container shares the same files):

    bin/python3              Debian 12's /usr/bin/python3.11 (libpython is linked in statically)
    bin/python3._pth         sys.path, relative to bin/: its presence also means -I and -S
    lib/ld-linux-*.so.*      the dynamic loader, started explicitly (the image may have none)
    lib/lib*.so.*            the ldd closure of the interpreter and every C extension
    lib/python3.11/          the stdlib modules richinit and its services import, as .pyc only
    lib/python3.11/lib-dynload/  their C extensions
    lib/site-packages/       richinit, osbase, yaml (+ _yaml), setproctitle, as .pyc (+ .so); services.d/
                             (with .compiled.marshal: the defaults already parsed)
    tools/                   systemctl, service, journalctl, shutdown, reboot, poweroff, halt, richctl:
                             /bin/sh launchers running richinit.tools on bin/python3 (rich mode binds
                             them over the image's own copies and puts tools/ on PATH)
    runtime.json             manifest: argv prefix, versions, sizes

A container runs it with no shell and no environment of ours (the _pth file fixes sys.path and
turns off PYTHON* variables, so nothing leaks into the app):

    /.richinit/lib/ld-linux-x86-64.so.2 --library-path /.richinit/lib /.richinit/bin/python3 -m richinit ...

Which stdlib modules go in is found by tracing: the target interpreter imports what our
packages import (statically, including imports inside functions), what services need, and
runs richinit once; an audit hook records every module that loaded. Building is atomic:
everything is assembled in a sibling temporary directory, smoke-tested, then renamed.
"""

import ast
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import time

from runtime_hooks.portable_manifest import (  # noqa: F401
    MOUNT,
    TOOLS,
    TOOLS_DIR,
    BuildError,
    load_manifest,
    richinit_argv,
)

DEFAULT_PYTHON = "/usr/bin/python3.11"
# Ours are copied whole (they grow); third-party ones are the runtime dependencies richinit declares.
PACKAGES = ("richinit", "osbase", "yaml", "_yaml", "setproctitle")
# What services and future richinit code will reach for, beyond what richinit imports today.
SERVICE_MODULES = (
    "runpy", "importlib.util", "importlib.machinery", "encodings", "selectors", "signal", "json", "socket",
    "errno", "fcntl", "pwd", "grp", "resource", "termios", "pty", "tty", "shlex", "struct", "time", "datetime",
    "subprocess", "ctypes", "ctypes.util", "argparse", "re", "tempfile", "shutil", "glob", "fnmatch", "string",
    "traceback", "textwrap", "heapq", "bisect", "threading", "queue", "base64", "syslog", "logging",
    "logging.handlers", "stat", "io", "collections", "functools", "itertools", "contextlib", "dataclasses",
    "enum", "types", "weakref", "copy", "pathlib", "hashlib", "uuid", "platform", "locale", "codecs",
)
# Whole stdlib packages: the locale of an image decides which codec is needed.
WHOLE_STDLIB_PACKAGES = ("encodings",)
# Optional C extensions that pull large libraries (OpenSSL...) and have pure fallbacks or no use here.
EXCLUDED = {"_hashlib", "_ssl", "_sqlite3", "readline", "_curses", "_curses_panel", "_tkinter", "_dbm", "_gdbm",
            "_decimal", "_uuid", "_ctypes_test", "_testcapi", "_testinternalcapi", "_testbuffer"}
BUILT_IN = "built-in"


# ---------------------------------------------------------------- inputs

def _package_dir(name):
    import importlib.util
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("package %s: not importable by %s" % (name, sys.executable))
    return os.path.realpath(list(spec.submodule_search_locations)[0])


def _static_imports(pkg_dir):
    """Top-level names imported anywhere in a package, including inside functions."""
    names = set()
    for dirpath, dirnames, files in os.walk(pkg_dir):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for fn in files:
            if not fn.endswith(".py"):
                continue
            path = os.path.join(dirpath, fn)
            try:
                with open(path, "rb") as f:
                    tree = ast.parse(f.read(), path)
            except (OSError, SyntaxError, ValueError) as e:
                raise BuildError("%s: cannot be compiled: %s" % (path, e))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module)
    return names


def _trace(python, paths, modules, run_argv):
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "portable_trace.py")
    with tempfile.TemporaryDirectory(prefix="richinit-trace-") as cwd:
        r = subprocess.run([python, "-I", "-S", script, json.dumps(paths), json.dumps(sorted(modules)),
                            json.dumps(run_argv)], capture_output=True, text=True, cwd=cwd, timeout=120,
                           stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"})
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError("tracing imports with %s failed: %s" % (python, tail))
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise BuildError("tracing imports with %s: unreadable output" % python)


# ---------------------------------------------------------------- assembly

# Level 2 (as under -OO): no docstrings and no asserts in the code objects. Every richinit process
# in every container keeps its modules' code objects in its own heap, and docstrings are a large
# share of them (measured in bench/bench_wrapper.py: Pss per process). Sourceless .pyc files are
# loaded whatever the interpreter's -O level, so nothing changes on richinit's command line.
OPTIMIZE = 2


def _compile(src, dst, shown):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    # Unchecked-hash pycs: reproducible (no mtimes) and never revalidated against a source.
    try:
        py_compile.compile(src, cfile=dst, dfile=shown, doraise=True, optimize=OPTIMIZE,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError as e:
        raise BuildError("%s: cannot be compiled: %s" % (src, e.msg.strip().splitlines()[-1]))


def _copy(src, dst, mode=0o644):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)
    os.chmod(dst, mode)


def _copy_package(pkg_dir, dest, soabi):
    """.py → .pyc, matching C extensions copied; returns the extension files copied."""
    exts = []
    for dirpath, dirnames, files in os.walk(pkg_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "tests"))
        rel = os.path.relpath(dirpath, pkg_dir)
        for fn in sorted(files):
            src = os.path.join(dirpath, fn)
            out_dir = os.path.normpath(os.path.join(dest, rel))
            if fn.endswith(".py"):
                _compile(src, os.path.join(out_dir, fn[:-3] + ".pyc"),
                         "%s/%s" % (os.path.basename(dest), os.path.normpath(os.path.join(rel, fn))))
            elif fn.endswith(".so") and (("." + soabi + ".") in fn or ".abi3." in fn):
                _copy(src, os.path.join(out_dir, fn), 0o755)
                exts.append(os.path.join(out_dir, fn))
    return exts


def _stdlib_files(origins, stdlib, dynload):
    """(python sources, extension files) under the stdlib the trace found, minus EXCLUDED."""
    sources, exts = set(), set()
    for name, origin in origins.items():
        if name == "__main__" or not origin or origin in (BUILT_IN, "frozen"):
            continue
        if name.rpartition(".")[2] in EXCLUDED:
            continue
        origin = os.path.realpath(origin)
        if origin.startswith(dynload + "/"):
            exts.add(origin)
        elif origin.startswith(stdlib + "/") and origin.endswith(".py"):
            sources.add(origin)
    for pkg in WHOLE_STDLIB_PACKAGES:
        for dirpath, dirnames, files in os.walk(os.path.join(stdlib, pkg)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            sources.update(os.path.join(dirpath, f) for f in files if f.endswith(".py"))
    return sorted(sources), sorted(exts)


def _tree_size(root):
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for fn in files:
            total += os.lstat(os.path.join(dirpath, fn)).st_size
    return total


def write_tools(out, loader, mount=MOUNT):
    """tools/NAME for each of richinit.tools' programs: a /bin/sh launcher (a shebang line passes
    one argument at most, and the interpreter needs the loader and its library path). The program
    is chosen by the name it was called by ($0), so an image's link to systemctl (Debian's
    /sbin/shutdown, /sbin/reboot...) runs the right one once systemctl is bound over."""
    tools = os.path.join(out, TOOLS_DIR)
    os.makedirs(tools, exist_ok=True)
    for name in TOOLS:
        with open(os.path.join(tools, name), "w") as f:
            f.write("#!/bin/sh\nexec %s/lib/%s --library-path %s/lib %s/bin/python3 -c "
                    "'from richinit.tools import main; main(\"%s\")' \"$0\" \"$@\"\n"
                    % (mount, loader, mount, mount, name))
        os.chmod(os.path.join(tools, name), 0o755)


def _smoke_test(out, loader, pyver):
    """Run the assembled interpreter with an empty environment: imports work, sys.path stays inside."""
    code = ("import sys, json, socket, selectors, yaml, setproctitle, ctypes, richinit.main, richinit.cli;"
            "print(json.dumps(sys.path))")
    r = subprocess.run([os.path.join(out, "lib", loader), "--library-path", os.path.join(out, "lib"),
                        os.path.join(out, "bin", "python3"), "-c", code], capture_output=True, text=True,
                       env={}, cwd="/", timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise BuildError("the built runtime does not start: %s" % tail)
    for p in json.loads(r.stdout):
        if not os.path.realpath(p).startswith(os.path.realpath(out) + "/"):
            raise BuildError("the built runtime looks outside itself: sys.path has %s" % p)


def assemble(out, python=DEFAULT_PYTHON, progress=None):
    """Build the runtime into the (new, empty) directory `out`; returns the manifest dict."""
    say = progress or (lambda msg: None)
    from runtime_hooks import portable_elf as elf

    t0 = time.monotonic()
    if not os.access(python, os.X_OK):
        raise BuildError("%s: interpreter not found (Debian 12's python3.11 is expected)" % python)
    python = os.path.realpath(python)
    pkg_dirs = {name: _package_dir(name) for name in PACKAGES}
    search = sorted({os.path.dirname(d) for d in pkg_dirs.values()})

    say("tracing imports")
    wanted = set(SERVICE_MODULES)
    for name in ("richinit", "osbase"):
        wanted |= _static_imports(pkg_dirs[name])
    wanted |= set(PACKAGES)
    trace = _trace(python, search, wanted, ["--grace", "1", "--", "/bin/true"])
    pyver = "%d.%d" % tuple(trace["version"])
    if tuple(trace["version"]) != sys.version_info[:2]:
        raise BuildError("%s is Python %s but the builder runs %d.%d: .pyc files would not match"
                         % (python, pyver, *sys.version_info[:2]))
    stdlib = os.path.realpath(trace["stdlib"])
    dynload = os.path.join(stdlib, "lib-dynload")
    soabi = trace["soabi"]
    libdir = os.path.join(out, "lib")
    pylib = os.path.join(libdir, "python" + pyver)
    site = os.path.join(libdir, "site-packages")

    say("compiling the stdlib")
    sources, std_exts = _stdlib_files(trace["modules"], stdlib, dynload)
    for src in sources:
        rel = os.path.relpath(src, stdlib)
        _compile(src, os.path.join(pylib, rel[:-3] + ".pyc"), rel)
    exts = []
    for src in std_exts:
        dst = os.path.join(pylib, "lib-dynload", os.path.basename(src))
        _copy(src, dst, 0o755)
        exts.append(dst)

    say("copying richinit, osbase, yaml, setproctitle")
    for name, d in pkg_dirs.items():
        exts += _copy_package(d, os.path.join(site, name), soabi)
    # The default service definitions (runtime_hooks.datafiles: the checkout's, the wheel's or the
    # .deb's), where richinit.services.load looks for them: beside the richinit package.
    from runtime_hooks import datafiles
    try:
        defaults = datafiles.data_dir("services.d")
    except datafiles.DataError as e:
        raise BuildError(str(e))
    for fname in sorted(os.listdir(defaults)):
        if fname.endswith((".yaml", ".yml")):
            _copy(os.path.join(defaults, fname), os.path.join(site, "services.d", fname), 0o644)
    # ... parsed now, so a boot needs no yaml for them (richinit.services.load.COMPILED). By the
    # loader itself, in a process of its own: the host side does not import the PID 1 side.
    r = subprocess.run([sys.executable, "-I", "-m", "richinit.services.load", "--compile",
                        os.path.join(site, "services.d")], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"})
    if r.returncode != 0:
        raise BuildError("compiling the default services failed: %s"
                         % (r.stderr.strip().splitlines() or ["no output"])[-1])

    say("copying the interpreter and its libraries")
    interp = elf.interpreter(python)
    if not interp:
        raise BuildError("%s: no program interpreter (statically linked?)" % python)
    loader = os.path.basename(interp)
    _copy(python, os.path.join(out, "bin", "python3"), 0o755)
    with open(os.path.join(out, "bin", "python3._pth"), "w") as f:
        f.write("../lib/python%s\n../lib/python%s/lib-dynload\n../lib/site-packages\n" % (pyver, pyver))
    libs = elf.library_closure([python] + exts)
    for soname, path in sorted(libs.items()):
        if "/" in soname:
            continue  # an absolute DT_NEEDED: the loader itself
        _copy(os.path.realpath(path), os.path.join(libdir, soname), 0o755)
    _copy(os.path.realpath(interp), os.path.join(libdir, loader), 0o755)

    write_tools(out, loader)
    # richctl also as /.richinit/bin/richctl (`docker exec C /.richinit/bin/richctl status`;
    # runtime_hooks.reach binds it onto the image's PATH): the tools' launcher, by a link.
    os.symlink("../%s/richctl" % TOOLS_DIR, os.path.join(out, "bin", "richctl"))

    say("checking that it starts")
    _smoke_test(out, loader, pyver)
    manifest = {
        "format": 1,
        "python": pyver,
        "source_interpreter": python,
        "loader": loader,
        "argv": richinit_argv(MOUNT, loader),
        "libraries": sorted(libs),
        "stdlib_modules": len(sources),
        "extensions": sorted(os.path.relpath(e, out) for e in exts),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest["size"] = _tree_size(out)
    with open(os.path.join(out, "runtime.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    for dirpath, dirnames, _files in os.walk(out):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    os.chmod(out, 0o755)
    say("built in %.1f s, %.1f MB" % (time.monotonic() - t0, manifest["size"] / 1e6))
    return manifest


def build(output_dir, python=DEFAULT_PYTHON, progress=None):
    """Assemble the runtime next to `output_dir`, then atomically put it in place; returns the manifest.

    An existing runtime is renamed away and removed only after the new one is in place, so a
    failed build leaves the old one untouched.
    """
    output_dir = os.path.abspath(output_dir)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".%s.new-" % os.path.basename(output_dir), dir=parent)
    try:
        manifest = assemble(tmp, python, progress)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.lexists(output_dir):
        old = tempfile.mkdtemp(prefix=".%s.old-" % os.path.basename(output_dir), dir=parent)
        os.rename(output_dir, os.path.join(old, "runtime"))
    os.rename(tmp, output_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return manifest


def main(argv=None):
    import argparse

    from runtime_hooks import settings
    p = argparse.ArgumentParser(prog="rich runtime", description="Build the portable richinit runtime.")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="assemble the runtime directory")
    b.add_argument("--output", default=settings.DEFAULT_RUNTIME_DIR, help="where (default %(default)s)")
    b.add_argument("--python", default=DEFAULT_PYTHON, help="interpreter to package (default %(default)s)")
    a = p.parse_args(argv)
    tty = sys.stderr.isatty()
    progress = (lambda m: sys.stderr.write("rich runtime: %s\n" % m)) if tty else None
    try:
        m = build(a.output, a.python, progress)
    except BuildError as e:
        sys.stderr.write("rich runtime: %s\n" % e)
        return 1
    print("%s: %.1f MB, python %s, loader %s" % (a.output, m["size"] / 1e6, m["python"], m["loader"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
