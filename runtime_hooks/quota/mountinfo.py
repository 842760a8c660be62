"""/proc/self/mountinfo, parsed: which mount holds a directory, its options, an overlay's upperdir.

Pure functions over the text, so they are testable on fixture strings; read() takes the proc
root as a parameter.
"""

import os
import re
from dataclasses import dataclass

_ESC = re.compile(r"\\([0-7]{3})")


def _unescape(s):
    return _ESC.sub(lambda m: chr(int(m.group(1), 8)), s)


@dataclass(frozen=True)
class Mount:
    mount_id: int
    dev: tuple            # (major, minor)
    root: str
    mount_point: str
    options: tuple
    fstype: str
    source: str
    super_options: tuple

    def option(self, name):
        """Value of name=value in the super options ('' for a bare flag, None when absent)."""
        for o in self.super_options:
            k, eq, v = o.partition("=")
            if k == name:
                return v if eq else ""
        return None


def parse(text):
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or "-" not in fields:
            continue
        sep = fields.index("-")
        major, minor = fields[2].split(":")
        out.append(Mount(int(fields[0]), (int(major), int(minor)), _unescape(fields[3]), _unescape(fields[4]),
                         tuple(fields[5].split(",")), fields[sep + 1], _unescape(fields[sep + 2]),
                         tuple(_unescape(x) for x in fields[sep + 3].split(","))))
    return out


def read(proc="/proc"):
    with open(os.path.join(proc, "self/mountinfo")) as f:
        return parse(f.read())


def for_dev(mounts, st_dev):
    """Any mount of the filesystem with this st_dev (they share super options)."""
    key = (os.major(st_dev), os.minor(st_dev))
    for m in mounts:
        if m.dev == key:
            return m
    return None


def at(mounts, mount_point):
    """The topmost mount at exactly this mount point, or None."""
    found = None
    for m in mounts:
        if m.mount_point == mount_point:
            found = m
    return found


def has_project_quota(m):
    """xfs shows prjquota/pquota/pqnoenforce; ext4 shows prjquota when mounted with it."""
    return m is not None and any(o in ("prjquota", "pquota", "prjjquota")
                                 for o in m.super_options)
