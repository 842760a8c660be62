"""Process titles for ps: our own argv area rewritten through /proc/self/mem.

Under the portable runtime a process is started as `ld-linux... --library-path ... python3 ...`,
and setproctitle can only overwrite the part of the command line the interpreter owns (from
python3 on): ps showed the loader's words before every title. The kernel tells where the whole
argv area is (/proc/self/stat: arg_start, arg_end); writing the title there, NUL-padded to its
end, makes /proc/PID/cmdline exactly the title, and /proc/self/comm gets its first 15 bytes.
It needs no C extension and no ctypes. Where /proc/self/mem cannot be written (a sandbox),
setproctitle's C extension is the fallback, loaded alone: its package __init__ imports
`logging` (about 1 MB and 9 ms) only to log that the C module is missing.
"""

import os
import sys

_impl = None  # None: not tried yet; "mem": /proc/self/mem works; a module: setproctitle's; False: none

# Fields of /proc/self/stat after the ")" that closes comm: the first one is field 3 (state).
_ARG_START, _ARG_END = 48 - 3, 49 - 3


def _mem_title(text):
    """Write text over our argv area; False when the kernel or a sandbox does not let us."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[_ARG_START]), int(fields[_ARG_END])
        if end - start < 2:
            return False
        data = text.encode("utf-8", "replace")[:end - start - 1]
        fd = os.open("/proc/self/mem", os.O_RDWR | os.O_CLOEXEC)
        try:
            if os.pwrite(fd, data + b"\0" * (end - start - len(data)), start) != end - start:
                return False
        finally:
            os.close(fd)
        with open("/proc/self/comm", "wb") as f:
            f.write(text.encode("utf-8", "replace")[:15])
        return True
    except (OSError, ValueError, IndexError):
        return False


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
    """Best effort: with neither way available, no title (ps then shows the command line)."""
    global _impl
    try:
        if _impl is None or _impl == "mem":
            if _mem_title(text):
                _impl = "mem"
                return
            if _impl == "mem":
                return  # it worked before: a passing failure is not a reason to switch
            _impl = _load() or False
        if _impl:
            _impl.setproctitle(text)
    except Exception:
        _impl = False
