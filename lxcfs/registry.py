"""The registry of containers with views: one JSON file per container in a root-owned directory.

Written by the hooks (register/unregister), read by our view server (which container a view
directory belongs to and where its cgroups are) and by the re-binding watcher (which running
containers to re-bind after lxcfs or our server restarts). Nothing is guessed: the hook that
knows the container's id and init pid writes them here.

Entry: {"id", "pid" (host pid of the init, or null until known), "pid_start" (its start time in
ticks, to tell a reused pid), "cgroups" ({controller: path}), "backend" ("builtin" | "lxcfs"),
"source" (the directory whose proc/ and sys/ are bound), "bind_ns" (true: the watcher re-binds
inside the container's mount namespace), "root" ([st_dev, st_ino] of the rootfs: with no pid,
the server and the watcher find the init by it, see lxcfs.locate), "since" (when registered)}.
"""

import os

from osbase import standin

DEFAULT_DIR = "/run/richinit/views.d"
DEFAULT_MOUNT = "/run/richinit/views"        # where our view server mounts (one per host)
DEFAULT_PIDFILE = "/run/richinit/views.pid"
ID_SYNTAX = "[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
_ID_REST = standin.ALNUM | frozenset("_.-")


class BadEntry(ValueError):
    pass


def valid_id(cid):
    """ID_SYNTAX (osbase.standin.name_ok: the hooks import this module, no `re` on their path)."""
    return standin.name_ok(cid, 128, _ID_REST)


def _valid_root(v):
    return v is None or (isinstance(v, list) and len(v) == 2
                         and all(type(x) is int and x >= 0 for x in v))


def validate(entry):
    """A list of problems with an entry (empty when it is usable)."""
    checks = [
        (valid_id(entry.get("id")), "id must match %s" % ID_SYNTAX),
        (entry.get("pid") is None or (isinstance(entry.get("pid"), int) and entry["pid"] > 0),
         "pid must be a positive integer or null"),
        (isinstance(entry.get("cgroups", {}), dict)
         and all(isinstance(k, str) and isinstance(v, str) and v.startswith("/") and ".." not in v.split("/")
                 for k, v in entry.get("cgroups", {}).items()),
         "cgroups must map controller names to absolute paths without '..'"),
        (entry.get("backend", "builtin") in ("builtin", "lxcfs"), "backend must be builtin or lxcfs"),
        (_valid_root(entry.get("root")), "root must be [st_dev, st_ino]"),
    ]
    return [msg for ok, msg in checks if not ok]


def path_of(cid, directory=DEFAULT_DIR):
    if not valid_id(cid):
        raise BadEntry("container id %r: must match %s" % (cid, ID_SYNTAX))
    return os.path.join(directory, cid + ".json")


def write(entry, directory=DEFAULT_DIR):
    problems = validate(entry)
    if problems:
        raise BadEntry("registry entry %r: %s" % (entry.get("id"), "; ".join(problems)))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    final = path_of(entry["id"], directory)
    tmp = final + ".tmp.%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(standin.json_dumps(entry))
    os.replace(tmp, final)  # readers never see half an entry
    return final


def remove(cid, directory=DEFAULT_DIR):
    try:
        os.unlink(path_of(cid, directory))
    except FileNotFoundError:
        pass


def read_one(cid, directory=DEFAULT_DIR):
    try:
        with open(path_of(cid, directory), "rb") as f:
            entry = standin.json_loads(f.read())
    except (FileNotFoundError, ValueError):
        return None
    return entry if isinstance(entry, dict) and not validate(entry) and entry.get("id") == cid else None


def read_all(directory=DEFAULT_DIR):
    """{id: entry} of every valid entry; broken files are skipped (a half-written one cannot exist)."""
    out = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return out
    for name in names:
        if name.endswith(".json"):
            entry = read_one(name[:-5], directory)
            if entry is not None:
                out[entry["id"]] = entry
    return out


def stamp(directory=DEFAULT_DIR):
    """Changes whenever an entry is added, replaced or removed (the directory's mtime)."""
    try:
        return os.stat(directory).st_mtime_ns
    except FileNotFoundError:
        return None
