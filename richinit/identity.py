"""Users and groups from the container's own /etc/passwd and /etc/group, without NSS (any libc)."""

from richinit import regular


def passwd_lookup(user, group):
    """(uid, gid, groups) from the container's /etc/passwd and /etc/group (no NSS: works on any libc)."""
    def table(path):
        try:
            text = regular.read_text(path)
        except OSError:
            return []
        return [line.split(":") for line in text.split("\n") if line.strip() and not line.startswith("#")]
    users, groups = table("/etc/passwd"), table("/etc/group")
    uid = gid = 0
    name = "root"
    if user is not None:
        row = next((r for r in users if len(r) >= 4 and (r[0] == str(user) or r[2] == str(user))), None)
        if row is None:
            if not str(user).isdigit():
                raise LookupError("unknown user %s" % user)
            uid, gid, name = int(user), int(user), None
        else:
            uid, gid, name = int(row[2]), int(row[3]), row[0]
    if group is not None:
        row = next((r for r in groups if len(r) >= 3 and (r[0] == str(group) or r[2] == str(group))), None)
        if row is None:
            if not str(group).isdigit():
                raise LookupError("unknown group %s" % group)
            gid = int(group)
        else:
            gid = int(row[2])
    extra = sorted({int(r[2]) for r in groups if len(r) >= 4 and name and name in r[3].split(",")} | {gid})
    return uid, gid, extra


def _rows(path):
    try:
        text = regular.read_text(path)  # a FIFO there must not hang PID 1
    except OSError:
        return []
    return [line.split(":") for line in text.split("\n") if line.strip() and not line.startswith("#")]


def account(user):
    """USER, LOGNAME, HOME and SHELL of `user` (name or uid) as systemd sets them for User=; root's
    when user is None; HOME "/" and SHELL /bin/sh when /etc/passwd does not say."""
    key = "root" if user is None else str(user)
    row = next((r for r in _rows("/etc/passwd") if len(r) >= 7 and key in (r[0], r[2])), None)
    if row is None:
        return {"USER": key, "LOGNAME": key, "HOME": "/", "SHELL": "/bin/sh"}
    return {"USER": row[0], "LOGNAME": row[0], "HOME": row[5] or "/", "SHELL": row[6] or "/bin/sh"}


def group_ids(names):
    """SupplementaryGroups= names or numbers -> gids; LookupError naming an unknown one."""
    rows = _rows("/etc/group")
    out = []
    for name in names:
        row = next((r for r in rows if len(r) >= 3 and str(name) in (r[0], r[2])), None)
        if row is not None:
            out.append(int(row[2]))
        elif str(name).isdigit():
            out.append(int(name))
        else:
            raise LookupError("unknown group %s" % name)
    return out
