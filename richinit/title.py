"""Process titles for ps, through setproctitle's C extension alone.

setproctitle's package __init__ imports `logging` (about 1 MB and 9 ms) only to log
that the C module is missing; PID 1 loads the extension module directly instead.
"""

import os
import sys

_impl = None


def _load():
    import importlib.machinery  # not importlib.util: it pulls in contextlib and more
    for base in sys.path:
        d = os.path.join(base or ".", "setproctitle")
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            if n.startswith("_setproctitle") and n.endswith(".so"):
                path = os.path.join(d, n)
                loader = importlib.machinery.ExtensionFileLoader("setproctitle._setproctitle", path)
                mod = loader.create_module(importlib.machinery.ModuleSpec(loader.name, loader, origin=path))
                loader.exec_module(mod)
                return mod
    return None


def set_title(text):
    """Best effort: no setproctitle, no title (ps then shows the interpreter's argv)."""
    global _impl
    try:
        if _impl is None:
            _impl = _load() or False
        if _impl:
            _impl.setproctitle(text)
    except Exception:
        _impl = False
