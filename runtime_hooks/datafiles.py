"""Where the data richinit ships lives: the default services.d, the hooks/ bundle and the demo app.

The same code runs from a source checkout (the directories beside the packages), from a wheel
(pip puts its data files under sys.prefix/share/richinit) and from the Debian package
(/usr/share/richinit). Each directory is recognised by a file it must hold, so an unrelated
directory of the same name is never taken for ours.
"""

import os
import sys

SHARE = "share/richinit"
# name -> a file the directory must hold
MARKERS = {"services.d": "sshd.yaml", "hooks": "oci-hooks.d/richinit-precreate.json", "demo": "legacy-app.sh"}


class DataError(Exception):
    """One line: which data directory is missing and where it was looked for."""


def candidates(name, prefix=None):
    """The places `name` is looked for, in order."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # pip puts data files under the prefix whose lib/pythonX.Y/site-packages holds the packages
    # (a venv, ~/.local, /usr/local); under -S, sys.prefix is not the venv's.
    prefixes = [os.path.dirname(os.path.dirname(os.path.dirname(here))), sys.prefix if prefix is None else prefix]
    out = [os.path.join(here, name)]
    for p in prefixes + ["/usr/local", "/usr"]:
        c = os.path.join(p, SHARE, name)
        if c not in out:
            out.append(c)
    return out


def data_dir(name, prefix=None):
    """The first candidate directory holding MARKERS[name]; DataError when there is none."""
    cands = candidates(name, prefix)
    for c in cands:
        if os.path.isfile(os.path.join(c, MARKERS[name])):
            return c
    raise DataError("%s: not found in %s (a broken installation of richinit?)" % (name, ", ".join(cands)))
