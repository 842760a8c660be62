"""Users and groups from the container's own /etc/passwd and /etc/group, without NSS (any libc)."""


def passwd_lookup(user, group):
    """(uid, gid, groups) from the container's /etc/passwd and /etc/group (no NSS: works on any libc)."""
    def table(path):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
        except OSError:
            return []
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
