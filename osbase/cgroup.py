"""Reading cgroup files, v1 and v2. The cgroup mount root is a parameter.

A cgroup vanishes when its container stops; reads then raise FileNotFoundError
(or ENODEV), which callers treat as "fall back to the host value".
"""

import os

from osbase import procfs


def mounts(proc="/proc"):
    """{controller: mountpoint} for v1 hierarchies and {'': mountpoint} for cgroup2."""
    out = {}
    for m in procfs.mountinfo("self", proc):
        if m["fstype"] == "cgroup2":
            out.setdefault("", m["mountpoint"])
        elif m["fstype"] == "cgroup":
            for opt in m["super_options"].split(","):
                if opt not in ("rw", "ro") and not opt.startswith("name=") and "=" not in opt:
                    out.setdefault(opt, m["mountpoint"])
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read().decode()






def ancestors(path):
    """'/a/b/c' -> ['/a/b/c', '/a/b', '/a', '/']: for limits that nest."""
    path = "/" + path.strip("/")
    out = [path]
    while path != "/":
        path = os.path.dirname(path)
        out.append(path)
    return out
