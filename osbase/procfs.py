"""Reading /proc. The proc root is a parameter so callers can test on fixture trees.

Functions return None (or an empty result) for a process that vanished between
listing and reading: processes come and go, and that is not an error.
"""

import os


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None


def pids(proc="/proc"):
    """All numeric entries of the proc root."""
    return [int(n) for n in os.listdir(proc) if n.isdigit()]


def stat_fields(pid, proc="/proc"):
    """/proc/PID/stat split after the comm field: returns (comm, [state, ppid, pgrp, session, ...])."""
    text = read_text("%s/%d/stat" % (proc, pid))
    if not text:
        return None
    lpar, rpar = text.find("("), text.rfind(")")
    return text[lpar + 1:rpar], text[rpar + 2:].split()


def ppid_state(pid, proc="/proc"):
    """(ppid, state letter, pgrp, session) or None."""
    f = stat_fields(pid, proc)
    if f is None:
        return None
    rest = f[1]
    return int(rest[1]), rest[0], int(rest[2]), int(rest[3])


def status(pid, proc="/proc"):
    """/proc/PID/status as a dict of strings."""
    text = read_text("%s/%s/status" % (proc, pid))
    if text is None:
        return None
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


CAP_SYS_ADMIN = 21


def has_capability(cap, pid="self", proc="/proc"):
    """Whether the process has capability number `cap` in its effective set (CapEff of its status);
    None when that cannot be read."""
    st = status(pid, proc)
    try:
        return bool(int(st["CapEff"], 16) >> cap & 1)
    except (TypeError, KeyError, ValueError):
        return None


def children(pid, proc="/proc"):
    """Direct children from /proc/PID/task/*/children (CONFIG_PROC_CHILDREN); None if unsupported."""
    out = []
    try:
        tids = os.listdir("%s/%d/task" % (proc, pid))
    except (FileNotFoundError, ProcessLookupError):
        return []
    for tid in tids:
        text = read_text("%s/%d/task/%s/children" % (proc, pid, tid))
        if text is None:
            if not os.path.exists("%s/%d/task/%s" % (proc, pid, tid)):
                continue
            return None
        out.extend(int(c) for c in text.split())
    return out


def descendants(root_pid, proc="/proc"):
    """Every live pid whose ppid chain reaches root_pid (root excluded).

    Walks the children files (cost: the size of the tree) and falls back to
    scanning every pid of the proc root when the kernel lacks them.
    """
    found, todo = [], [root_pid]
    while todo:
        kids = children(todo.pop(), proc)
        if kids is None:
            return _descendants_by_scan(root_pid, proc)
        found.extend(kids)
        todo.extend(kids)
    return found


def _descendants_by_scan(root_pid, proc):
    parent = {}
    for pid in pids(proc):
        f = ppid_state(pid, proc)
        if f:
            parent[pid] = f[0]
    out = []
    for pid in parent:
        p, hops = parent.get(pid), 0
        while p and p != root_pid and hops < 4096:
            p, hops = parent.get(p), hops + 1
        if p == root_pid:
            out.append(pid)
    return out


def session_members(sid, proc="/proc"):
    """Pids whose session id is sid."""
    out = []
    for pid in pids(proc):
        f = ppid_state(pid, proc)
        if f and f[3] == sid:
            out.append(pid)
    return out


def cgroup_paths(pid, proc="/proc"):
    """{controller: path} from /proc/PID/cgroup; the v2 entry is keyed ''."""
    text = read_text("%s/%s/cgroup" % (proc, pid))
    out = {}
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for ctrl in parts[1].split(","):
            out[ctrl] = parts[2]
    return out


def mountinfo(pid="self", proc="/proc"):
    """Parsed /proc/PID/mountinfo: list of dicts (mount_id, parent, root, mountpoint, fstype, source, options)."""
    text = read_text("%s/%s/mountinfo" % (proc, pid)) or ""
    out = []
    for line in text.splitlines():
        pre, _, post = line.partition(" - ")
        a, b = pre.split(), post.split()
        if len(a) < 6 or len(b) < 2:
            continue
        out.append({
            "mount_id": int(a[0]), "parent": int(a[1]), "dev": a[2],
            "root": _unescape(a[3]), "mountpoint": _unescape(a[4]), "mount_options": a[5],
            "fstype": b[0], "source": _unescape(b[1]), "super_options": b[2] if len(b) > 2 else "",
        })
    return out


def _unescape(s):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) + 0 and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)
