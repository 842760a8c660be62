"""Run by the *target* interpreter during `rich runtime build`: which modules does richinit import?

Usage: python3.11 -I -S portable_trace.py PATHS_JSON MODULES_JSON RUN_ARGV_JSON

PATHS_JSON    directories put in front of sys.path (where richinit, osbase, yaml... live)
MODULES_JSON  module names to import (our packages' static imports + what services need)
RUN_ARGV_JSON richinit arguments for one real run (exercises start-up and shutdown paths)

An audit hook records every import attempted; afterwards each module that loaded is
reported with the file it came from. Output: one JSON object on stdout,
{"modules": {name: origin-or-null}, "version": [major, minor], "soabi": ...}.
This file imports nothing of ours: it runs in a bare interpreter with -I -S.
"""

import json
import sys

_seen = []


def _audit(event, args):
    if event == "import":
        _seen.append(args[0])


def main(argv):
    paths, modules, run_argv = (json.loads(a) for a in argv[1:4])
    _seen.extend(sys.modules)  # what the interpreter loaded before us (encodings, io, ...)
    _seen.extend(modules)  # importlib.import_module does not raise the audit event itself
    sys.path[:0] = paths
    sys.addaudithook(_audit)
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # optional modules (platform-specific) may be missing: the builder decides
            pass
    out = sys.stdout
    code = None
    if run_argv:
        from richinit import main as rmain
        try:
            code = rmain.main(run_argv)
        except SystemExit as e:
            code = e.code
    origins = {}
    _seen.extend(sys.modules)
    for name in dict.fromkeys(_seen):
        mod = sys.modules.get(name)
        if mod is None:
            try:
                mod = importlib.import_module(name)  # dropped after use (argparse): reload to locate it
            except Exception:
                continue
        spec = getattr(mod, "__spec__", None)
        origin = getattr(spec, "origin", None) if spec else None
        if origin in ("built-in", "frozen"):
            # Frozen modules still need their file when the binary runs without its stdlib dir.
            filename = getattr(getattr(spec, "loader_state", None), "filename", None)
            origin = filename or None
        origins[name] = origin
    import sysconfig
    json.dump({"modules": origins, "version": list(sys.version_info[:2]), "run_exit": code,
               "soabi": sysconfig.get_config_var("SOABI"), "stdlib": sysconfig.get_paths()["stdlib"]}, out)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
