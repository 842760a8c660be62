"""PID 1's logger: one line per message on stderr, no logging module (it costs memory).

In PID 1 the lines go through a sinks.Outlet (`use`): a stderr nobody reads never blocks it; lines
beyond its buffer are dropped and counted. Forked children write to fd 2 directly.
"""

import os
import time

ERROR, WARNING, INFO, DEBUG = 0, 1, 2, 3
level = WARNING
_NAMES = ("error", "warning", "info", "debug")
out = None  # the sinks.Outlet PID 1 writes its lines through (None: fd 2 directly)


def use(outlet):
    global out
    out = outlet


def _forked():
    global out
    out = None  # the Outlet's fd is PID 1's: a forked child has closed it or reused the number


os.register_at_fork(after_in_child=_forked)


def _write(text):
    data = text.encode("utf-8", "replace")
    if out is not None:
        out.write("richinit", data)
        return
    try:
        os.write(2, data)
    except OSError:
        pass  # nowhere to log is not a reason to die


def _emit(lvl, msg):
    if lvl > level:
        return
    now = time.time()
    line = "richinit[%s.%03d]: %s: %s\n" % (time.strftime("%H:%M:%S", time.localtime(now)), now % 1 * 1000,
                                            _NAMES[lvl], msg)
    _write(line)


def _log(lvl, msg, args):
    if lvl <= level:  # format only what is shown: debug lines sit on every service state change
        _emit(lvl, msg % args if args else msg)


def error(msg, *args):
    _log(ERROR, msg, args)


def warning(msg, *args):
    _log(WARNING, msg, args)


def info(msg, *args):
    _log(INFO, msg, args)


def debug(msg, *args):
    _log(DEBUG, msg, args)


def exception(msg, *args):
    """Log an error with the current traceback (imported lazily: only on failure)."""
    import traceback
    tb = traceback.format_exc().rstrip().replace("\n", "\n    ")
    _emit(ERROR, (msg % args if args else msg) + "\n    " + tb)


def say(msg):
    """A plain one-line message for the user (always shown): 'richinit: msg'."""
    _write("richinit: %s\n" % msg)
