"""SysV init scripts as systemd-sysv-generator makes units of them (never run here: only read).

Every /etc/init.d script becomes a service (for `service NAME start`); the ones started at boot are
those linked from the default runlevel's
/etc/rcN.d/S* (/etc/rc.d/rcN.d on RHEL-likes): the runlevel is /etc/inittab's initdefault, else 2
on Debian-likes (/etc/debian_version, or debian in os-release's ID/ID_LIKE) and 3 elsewhere. A
script is left to its unit when a unit of that name exists (a masked one included), and skipped
by the same rules as units (`richinit.services.units.SkipRules`).

Each becomes the unit the generator would write, then the drop-ins of NAME.service apply:
  ExecStart=/etc/init.d/NAME start, ExecStop=/etc/init.d/NAME stop, ExecReload=... reload when the
  script mentions reload; RemainAfterExit=yes, KillMode=process, TimeoutSec=5min, SuccessExitStatus=5 6;
  with a pid file (`# pidfile: PATH` header, or a `PIDFILE=/abs/path` line) Type=forking and
  PIDFile=, so the daemon is followed through it; without one Type=oneshot: the service is active
  once `start` returned 0 and stays so until `stop` (what the generator's forking-without-pid does);
  LSB headers: Required-Start/Should-Start give After= ($syslog -> syslog.service, $network ->
  network.target, $remote_fs, $local_fs, $time, $named, $portmap -> their targets; other names ->
  NAME.service), X-Start-Before gives Before=; then the S numbers: a script starts after every
  script of the runlevel with a lower one (as rc does; insserv numbers them by those headers anyway).
"""

from richinit.services import unitfile as U

INIT_D = "/etc/init.d"
FACILITIES = {"$syslog": "syslog.service", "$network": "network.target", "$remote_fs": "remote-fs.target",
              "$local_fs": "local-fs.target", "$time": "time-sync.target", "$named": "nss-lookup.target",
              "$portmap": "rpcbind.target"}
HEAD = 16384


def runlevel(root, os_release):
    try:
        text = root.read("/etc/inittab", 65536).decode("utf-8", "replace")
    except OSError:
        text = ""
    for line in text.split("\n"):
        parts = line.strip().split(":")
        if len(parts) >= 3 and parts[2] == "initdefault" and parts[1].isdigit():
            return parts[1]
    ids = (os_release.get("ID", "") + " " + os_release.get("ID_LIKE", "")).split()
    if root.exists("/etc/debian_version") or "debian" in ids or "ubuntu" in ids:
        return "2"
    return "3"


def rc_dir(root, level):
    for d in ("/etc/rc%s.d" % level, "/etc/rc.d/rc%s.d" % level):
        if root.is_dir(d):
            return d
    return None


def lsb_header(text):
    """{key: value} of the LSB block, plus "pidfile" from a chkconfig header or a PIDFILE= line."""
    out, inside = {}, False
    for line in text.split("\n"):
        s = line.strip()
        if s == "### BEGIN INIT INFO":
            inside = True
            continue
        if s == "### END INIT INFO":
            inside = False
            continue
        if inside and s.startswith("#"):
            key, colon, value = s[1:].partition(":")
            if colon:
                out[key.strip().lower()] = value.strip()
        elif s.startswith("# pidfile:"):
            out.setdefault("pidfile", s[10:].strip())
        elif s.startswith("PIDFILE=") and "pidfile" not in out:
            value = s[8:].strip().strip("'\"")
            if value.startswith("/") and "$" not in value and " " not in value:
                out["pidfile"] = value
    return out


def unit_text(name, path, header, reload):
    """The [Unit]/[Service] text systemd-sysv-generator would write for the script."""
    after, before = [], []
    for key in ("required-start", "should-start"):
        for w in header.get(key, "").split():
            dep = FACILITIES.get(w) or (None if w.startswith("$") or w == name else w + ".service")
            if dep and U.valid_name(dep):
                after.append(dep)
    for w in header.get("x-start-before", "").split():
        if not w.startswith("$") and U.valid_name(w + ".service"):
            before.append(w + ".service")
    pidfile = header.get("pidfile")
    lines = ["[Unit]", "SourcePath=%s" % path,
             "Description=LSB: %s" % (header.get("short-description") or name)]
    if after:
        lines.append("After=%s" % " ".join(after))
    if before:
        lines.append("Before=%s" % " ".join(before))
    lines += ["[Service]", "Type=%s" % ("forking" if pidfile else "oneshot"), "Restart=no", "TimeoutSec=5min",
              "KillMode=process", "RemainAfterExit=yes", "SuccessExitStatus=5 6",
              "ExecStart=%s start" % path, "ExecStop=%s stop" % path]
    if pidfile:
        lines.append("PIDFile=%s" % pidfile)
    if reload:
        lines.append("ExecReload=%s reload" % path)
    return "\n".join(lines) + "\n"


NOT_SCRIPTS = frozenset({"README", "skeleton", "functions", "rc", "rcS", "rc.local", "halt", "reboot", "killall"})


def scripts(root, os_release, has_unit, skip_reason, warn):
    """([(name, path, unit text, S number or None)], {name: skip reason}): every
    /etc/init.d script no unit replaces (so `service NAME start` works), in S order; the S number is
    None for the ones the default runlevel does not start."""
    level = runlevel(root, os_release)
    d = rc_dir(root, level)
    started = {}
    for entry, _st, link in (root.scan(d) or ()) if d else ():
        if entry.startswith("S") and len(entry) > 3 and entry[1:3].isdigit():
            name = (link.rpartition("/")[2] if link else "") or entry[3:]
            started.setdefault(name, (int(entry[1:3]), "%s/%s" % (d, entry)))
    out, skipped = [], {}
    for name, _st, _link in root.scan(INIT_D) or ():
        if name.startswith(".") or name in NOT_SCRIPTS or name.endswith("~") or ".dpkg-" in name:
            continue
        path = "%s/%s" % (INIT_D, name)
        snum, where = started.get(name, (None, None))
        if not U.valid_name(name + ".service") or has_unit(name + ".service"):
            continue
        reason = skip_reason(name + ".service")
        if reason:
            if snum is not None:
                skipped[name] = reason
            continue
        if not root.is_executable(path):
            if snum is not None:
                warn(where, None, "%s is not executable; skipped" % path)
            continue
        try:
            text = root.read(path).decode("utf-8", "replace")
        except OSError as e:
            warn(path, None, "cannot read: %s" % (e.strerror or e))
            continue
        header = lsb_header(text[:HEAD])
        out.append((name, path, unit_text(name, path, header, "reload" in text), snum))
    for name, (_snum, where) in sorted(started.items()):
        if not root.exists("%s/%s" % (INIT_D, name)) and not has_unit(name + ".service"):
            warn(where, None, "%s/%s does not exist; skipped" % (INIT_D, name))
    out.sort(key=lambda x: (x[3] is None, x[3] or 0, x[0]))
    return out, skipped
