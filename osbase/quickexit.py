"""Leaving a process without interpreter finalization.

Module teardown and a last garbage collection are most of the time between a short-lived
program's last useful act and its exit (~2 ms here), and PID 1's between its last child's death
and its own. Nothing of ours needs them: buffered stdio is flushed by hand, the kernel closes
the rest.
"""

import os
import sys


def flush_stdio():
    """Write out what sys.stdout and sys.stderr hold (before a fork, or an _exit)."""
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError, AttributeError):
            pass


def exit_now(code):
    """flush_stdio, then _exit(code); a code that is not an int exits 1."""
    flush_stdio()
    os._exit(code & 0xff if isinstance(code, int) else 1)
