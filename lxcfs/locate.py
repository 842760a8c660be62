"""Find a container's init when nobody told us its pid: by the identity of its root directory.

`rich run` registers a container's views before `runc run` (it needs no hook), so the registry
entry has no pid yet, only the (st_dev, st_ino) of the rootfs the runtime will pivot into. The
first read of a view file comes from a process inside that container: FUSE tells the server
the reader's pid, and from there the init is a kernel fact, not a guess:

    init_for_reader(reader, root_id)  the init (innermost pid 1) of the reader's pid namespace,
                                      provided its root directory is root_id
    init_by_scan(root_id)             the same without a reader (the re-binding watcher): any
                                      pid-namespace init whose root is root_id

The path of a view file still decides which container it belongs to; the reader only helps
find that container's init, and the root check refuses an init that is not that container's
(a host process, another container, a process that entered the mount namespace alone).
The proc root is a parameter, as everywhere in osbase.procfs.
"""

import os

from osbase import procfs

MAX_HOPS = 64  # parent links followed from a reader up to its namespace's init


def root_id(path):
    """(st_dev, st_ino) of a directory, following symlinks as the runtime will."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _nspid(pid, proc):
    """The pid in each nested pid namespace, outermost first (NSpid of /proc/PID/status), or None."""
    st = procfs.status(pid, proc)
    try:
        return [int(x) for x in (st or {}).get("NSpid", "").split()] or None
    except ValueError:
        return None


def _pidns(pid, proc):
    try:
        return os.readlink("%s/%d/ns/pid" % (proc, pid))
    except OSError:
        return None


def _root_of(pid, proc):
    try:
        st = os.stat("%s/%d/root" % (proc, pid))
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_init_of(pid, depth, ns, proc):
    n = _nspid(pid, proc)
    return bool(n) and len(n) == depth and n[-1] == 1 and _pidns(pid, proc) == ns


def _by_parents(reader, depth, ns, proc):
    """Up the parent links while they stay in the reader's pid namespace; its init ends the walk."""
    pid = reader
    for _ in range(MAX_HOPS):
        f = procfs.ppid_state(pid, proc)
        if f is None or f[0] <= 0 or _pidns(f[0], proc) != ns:
            return None  # left the namespace first: started from outside (runc exec)
        pid = f[0]
        if _is_init_of(pid, depth, ns, proc):
            return pid
    return None


def _by_cgroup(reader, depth, ns, mounts, proc):
    """Among the processes of the reader's own cgroup (runc exec puts them in the container's)."""
    paths = procfs.cgroup_paths(reader, proc)
    for ctrl in ("", "pids", "memory", "cpu", "cpuacct", "freezer", "systemd"):
        if ctrl not in paths or ctrl not in (mounts or {}):
            continue
        text = procfs.read_text(os.path.join(mounts[ctrl], paths[ctrl].lstrip("/"), "cgroup.procs"))
        if text is None:
            continue
        for word in text.split():
            if word.isdigit() and _is_init_of(int(word), depth, ns, proc):
                return int(word)
        # not in this hierarchy's group (a runtime may leave the unified one as it was): the next
    return None


def init_for_reader(reader, want, mounts=None, proc="/proc"):
    """Host pid of the init of `reader`'s pid namespace if that init's root is `want`, else None.

    mounts: {controller: mountpoint} (osbase.cgroup.mounts()), for readers whose parents lead
    out of the container.
    """
    n = _nspid(reader, proc)
    if not n or len(n) < 2:
        return None  # a process of the host's own pid namespace is in no container
    ns = _pidns(reader, proc)
    if ns is None:
        return None
    if n[-1] == 1:
        pid = reader
    else:
        pid = _by_parents(reader, len(n), ns, proc) or _by_cgroup(reader, len(n), ns, mounts, proc)
    if pid is None or _root_of(pid, proc) != tuple(want):
        return None
    # A reader in a pid namespace nested inside the container: its namespace's init is a process of
    # the container, whose own namespace's init (same root, one level out) is the one we want.
    f = procfs.ppid_state(pid, proc)
    parent = f[0] if f else 0
    if len(n) > 2 and parent > 0 and _root_of(parent, proc) == tuple(want):
        outer = _nspid(parent, proc)
        if outer and len(outer) == len(n) - 1:
            return init_for_reader(parent, want, mounts, proc) or pid
    return pid


def init_by_scan(want, proc="/proc"):
    """Host pid of the pid-namespace init whose root directory is `want`, or None (reads every pid).

    The outermost one: a process inside the container may start a nested pid namespace of its own
    under the same root, and that one's init is not the container's."""
    want = tuple(want)
    best = None
    for pid in procfs.pids(proc):
        if _root_of(pid, proc) != want:
            continue
        n = _nspid(pid, proc)
        if n and len(n) > 1 and n[-1] == 1 and (best is None or len(n) < best[0]):
            best = (len(n), pid)
    return best[1] if best else None
