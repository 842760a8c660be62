"""The import budget of each entry point: the modules it may load beyond what the interpreter
loads for `python -I[S] -c pass`. tests/test_import_budget.py (and its root-only twin under
tests/integration/richcli) run each entry point under `python -X importtime` and fail naming any
module outside its budget, with what it cost.

Why the budgets are what they are (import costs measured here with -X importtime on a quiet
machine, cumulative): yaml 12.0 ms, subprocess 6.9, argparse 5.2, json 4.7, socket 4.2, re 3.8,
signal 2.8 (enum), ctypes 1.2. An interpreter starts in ~6.5 ms.
- PID 1 lives with what it imports for the container's whole life (DEVELOPERS.md): os, select,
  time, _signal, our small modules; ctypes for prctl (subreaper), mount and setns; its log lines go
  through a non-blocking sink (richinit.sinks: _socket for datagrams, _collections' deque for the
  bounded buffer) and an OOM kill is told from the cgroup's count (richinit.oom).
- The services loader is a forked child that exits: PyYAML and re as they are.
- The built-ins run in every container: _signal and _socket, no re/enum/socket.py (their own test
  holds them to it too: tests/test_cron_builtin_lean.py).
- rich-runtime pass-through runs on every call an engine makes (target: <= 10 ms added): os and
  the settings reader only.
- rich-runtime create of a container that is not made rich (a pod's sandbox: every pod has one):
  the pass-through's modules, the opt-in decision and the config it reads (no pipeline).
- rich-runtime create, the hook stages and `rich run` are on a container's start-up path (target
  for `rich run`'s host side: <= 10 ms): the pipeline, osbase.standin (json would be 4.7 ms),
  ctypes for mount; no re, json, argparse, subprocess or signal.
"""

# Everyone: the interpreter's own helpers that `-c pass` does not load but any real program does.
CORE = {"os", "posixpath", "genericpath", "stat", "_stat", "errno", "types", "_collections_abc", "time",
        "encodings.utf_8_sig", "marshal", "zipimport", "_frozen_importlib_external"}
CTYPES = {"ctypes", "_ctypes", "ctypes._endian", "struct", "_struct"}
STANDIN = {"osbase.standin", "_json"}
YAML = {"yaml", "yaml.*", "re", "re.*", "_sre", "enum", "functools", "_functools", "collections", "collections.abc",
        "_collections", "itertools", "keyword", "operator", "_operator", "reprlib", "copyreg", "datetime",
        "_datetime", "math", "base64", "binascii"}
HOST = {"runtime_hooks", "osbase", "osbase.quickexit", "fcntl"}
PIPELINE = HOST | STANDIN | CTYPES | {
    "runtime_hooks.pipeline", "runtime_hooks.ociconfig", "runtime_hooks.hostprep", "runtime_hooks.settings",
    "runtime_hooks.portable_manifest", "runtime_hooks.optin", "runtime_hooks.reach",
    "osbase.procfs", "osbase.safepath", "osbase.libc", "osbase.mountapi",
    "lxcfs", "lxcfs.registry", "lxcfs.detect", "lxcfs.bind", "lxcfs.api", "lxcfs.pidlock", "lxcfs.locate",
    "select"}  # waiting on the view server's readiness pipe
# Quota rules bring the quota package (dataclasses, hashlib, re for regex targets, json records,
# subprocess for mkfs.ext4): loaded only for containers with io.richinit.quota annotations.
QUOTA = {"runtime_hooks.quota", "runtime_hooks.quota.*", "osbase.fsquota", "dataclasses", "inspect", "copy",
         "hashlib", "_hashlib", "_blake2", "json", "json.*", "subprocess", "signal", "threading", "contextlib",
         "selectors", "_posixsubprocess", "warnings", "locale", "_locale", "ast", "_ast", "dis", "opcode",
         "_opcode", "linecache", "tokenize", "token", "importlib", "importlib.*", "_weakrefset", "weakref", "select",
         "org", "org.*", "msvcrt"} | YAML  # (copy and subprocess probe for Jython's and Windows' modules)

BUDGETS = {
    "pid1": CORE | CTYPES | {"osbase", "osbase.libc", "osbase.procfs", "osbase.quickexit", "select", "richinit",
                             "richinit.cli", "richinit.log", "richinit.loop", "richinit.main", "richinit.pid1",
                             "richinit.signals", "richinit.spawn", "richinit.sysops", "richinit.title",
                             "richinit.sinks", "richinit.oom", "_socket", "_collections"},
    "loader": CORE | CTYPES | YAML | {"osbase", "osbase.libc", "osbase.safepath", "richinit", "richinit.signals",
                                      "richinit.services", "richinit.services.*",
                                      # our small modules it shares with PID 1 (forked from it):
                                      # listener addresses, regular-file reads, boot paths, log
                                      "richinit.sockets", "_socket", "richinit.regular", "richinit.bootpaths",
                                      "richinit.log"},
    "syslogd": CORE | {"richinit", "richinit.builtin", "richinit.builtin.syslogd", "_socket", "select"},
    "cron": CORE | {"richinit", "richinit.builtin", "richinit.builtin.cron", "richinit.builtin.cronspec",
                    "richinit.spawn", "richinit.signals", "richinit.envfile", "_socket", "select"},
    "rich-runtime pass-through": CORE | {"runtime_hooks", "runtime_hooks.settings", "runtime_hooks.wrapper",
                                         "osbase", "osbase.quickexit", "osbase.standin", "_json"},
    "rich-runtime create": CORE | PIPELINE | {"runtime_hooks.wrapper"},
    "rich-runtime create, not rich": CORE | {"runtime_hooks", "runtime_hooks.settings", "runtime_hooks.wrapper",
                                             "osbase", "osbase.quickexit", "osbase.standin", "_json",
                                             "runtime_hooks.optin", "runtime_hooks.ociconfig"},
    "rich-hook": CORE | PIPELINE | {"runtime_hooks.hook"},
    "rich run": CORE | PIPELINE | {"runtime_hooks.cli", "runtime_hooks.cli_containers", "runtime_hooks.bundle",
                                   "_signal"},
}
BUDGETS["rich-runtime create, quota"] = BUDGETS["rich-runtime create"] | QUOTA
BUDGETS["rich run, quota"] = BUDGETS["rich run"] | QUOTA
BUDGETS["rich-hook, quota"] = BUDGETS["rich-hook"] | QUOTA
