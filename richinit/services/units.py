"""The image's systemd units: found, resolved, enabled and turned into ServiceSpec/SocketSpec/TimerSpec.

Run by the services loader (`richinit.services.load`, `load(..., units=True)`), never by PID 1.
Every path is resolved inside the image's root (`rootfs.Root`); nothing from the image is run.

Finding units (systemd.unit(5))
  `richinit.services.unitdirs` (shared with the in-container systemctl): search path, highest priority
  first: /etc/systemd/system, /run/systemd/system, /lib/systemd/system, /usr/lib/systemd/system (one
  directory when /lib is /usr/lib). The first directory holding a name wins. A name linked to /dev/null
  is masked. A link to another unit file makes an alias (the target's name is the unit; `Alias=` names
  count too for richinit's defaults). `foo@bar.service` without a file of its own is an instance of
  `foo@.service`. Drop-ins: `*.conf` in `NAME.d/` for the unit's name, its aliases, its template
  (`foo@.service.d/`), the dash prefixes of its name (`foo-.service.d/`) and its type (`service.d/`),
  from every search directory; one file name, the highest-priority copy; all applied after the unit
  file in file-name order; a drop-in linked to /dev/null is masked. The same drop-ins apply to the
  units made of SysV scripts.

Enablement
  From default.target (else multi-user.target), through Wants=, Requires=, BindsTo=, Upholds= and the
  `NAME.wants/` and `NAME.requires/` directories of every unit reached (and of its aliases and
  template), transitively. A target that has no file (an image whose packages installed units but not
  systemd) pulls what systemd's own would (graphical -> multi-user -> basic -> sockets, timers, paths,
  sysinit). Targets are followed but never run. Units reached are started at boot (services), bound
  (sockets) or armed (timers); every other service is loaded for `systemctl start` and listed in
  "skipped" with its state. Debian's postgresql-generator is done by hand (generators are never run):
  each /etc/postgresql/VERSION/CLUSTER/postgresql.conf whose start.conf says auto (or is missing) and
  whose /usr/lib/postgresql/VERSION/bin/postgres exists makes postgresql.service want
  postgresql@VERSION-CLUSTER.service.

Ordering
  After=/Before= between services, followed through targets and skipped units. A target is after what
  it pulls in (systemd.target(5)) unless that unit has DefaultDependencies=no or is itself after the
  target. A service with DefaultDependencies=yes (the default; SysV scripts' units too) is after
  sysinit.target and basic.target, so after the early services those are after (the ones that say
  Before=sysinit.target...); a service that is itself before one of those two targets gets no such
  ordering (systemd would have to break the cycle).

Units that make no sense in a container
  are skipped by SKIP (name patterns with `*`, each with its reason, shown in "skipped"). The image can
  add patterns in /etc/richinit/units.skip (lines `PATTERN [reason]`, `#` comments) and take any back
  in /etc/richinit/units.keep (lines `PATTERN`): keep beats both lists. Unit types other than service,
  socket, timer and target are skipped ("not supported in a container").

What each directive becomes: see `richinit.services.unitspec`; every directive that is ignored or
approximated is a warning "FILE:LINE: ..." in the document and in the spec's `warnings`, never a
refused boot. SysV init scripts come in as the units systemd-sysv-generator would make of them
(`richinit.services.sysv`). Time spans follow systemd.time(7); `infinity` (and 0 for
the timeouts) means no limit (0 in the spec).

Templates ("templates": {"foo@": spec}) keep the instance specifiers %i %I %n %N %f %j %J (and %%)
as written; `richinit.services.unitfile.instantiate` fills them in for `foo@x`.
"""

import stat

from richinit.services import model as M
from richinit.services import unitfile as U
from richinit.services.unitdirs import (
    Assign,
    Catalog,
    FileStates,
    Found,
    Unit,
    append_file,
    dropin_paths,
    read_text_unit,
    read_unit,
)

SKIP_FILE = "/etc/richinit/units.skip"
KEEP_FILE = "/etc/richinit/units.keep"
RUN_TYPES = ("service", "socket", "timer")
DEFAULT_TIMEOUT = 90.0

# (patterns, reason). A pattern is a unit name with `*` wildcards; without a `.` it matches any type.
SKIP = (
    (("systemd-*", "dbus-org.freedesktop.*", "user@*", "user-runtime-dir@*"),
     "systemd's own machinery; richinit does its job here"),
    (("getty@*", "serial-getty@*", "console-getty", "container-getty@*", "autovt@*", "getty-static",
      "getty.target", "getty-pre.target"), "no terminals to log in on in a container"),
    (("udev", "udev*", "systemd-udev*", "kmod", "kmod-static-nodes", "hwclock", "hwclock.sh", "procps",
      "lvm2*", "mdadm*", "multipathd*", "dm-event*", "blk-availability", "cryptdisks*", "iscsid*",
      "open-iscsi", "smartmontools", "smartd", "lm-sensors", "irqbalance", "thermald", "acpid", "haveged",
      "rng-tools*", "cpufrequtils", "ondemand", "plymouth*", "alsa-*", "bluetooth", "brightness",
      "keyboard-setup", "console-setup", "setvtrgb", "kbd", "x11-common", "modprobe@*", "quotaon",
      "rc-local", "rc.local", "grub-*", "initrd-*", "emergency", "rescue", "debug-shell",
      "mountkernfs.sh", "mountall.sh", "mountnfs.sh", "mountdevsubfs.sh", "checkroot.sh", "checkfs.sh",
      "bootlogd", "bootmisc.sh", "urandom", "hostname.sh", "sendsigs", "umountfs", "umountroot",
      "umountnfs.sh", "halt", "reboot", "single", "killprocs", "rmnologin"),
     "hardware, kernel and boot machinery belong to the host"),
    (("networking", "ifup@*", "ifupdown*", "NetworkManager*", "network-manager", "wpa_supplicant*",
      "dhcpcd*", "isc-dhcp-*", "connman*", "ModemManager", "resolvconf*"),
     "the container's network is set up by its engine"),
    (("cloud-*", "cloud-init*"), "cloud-init configures VMs, not containers"),
    (("apparmor", "auditd", "selinux-*"), "security policy is loaded by the host"),
    (("e2scrub*", "fstrim*"), "file system maintenance belongs to the host"),
    (("ntp", "ntpd", "ntpsec", "chrony", "chronyd", "openntpd", "time-sync.target"),
     "the clock belongs to the host"),
    (("apt-daily*", "apt-daily-upgrade*", "unattended-upgrades", "packagekit*", "man-db*"),
     "package and cache maintenance of a VM; an image is rebuilt instead"),
)

_PULL_KEYS = ("Wants", "Requires", "BindsTo", "Upholds")
EARLY_TARGETS = ("sysinit.target", "basic.target")  # what a service with default dependencies is after
_FALLBACK_TARGETS = {  # what systemd's targets pull when the image has no file for them
    "graphical.target": ("multi-user.target",),
    "multi-user.target": ("basic.target",),
    "basic.target": ("sysinit.target", "sockets.target", "timers.target", "paths.target"),
}


def _glob(pattern, name):
    """`*` wildcards only (fnmatch would import re on the boot path)."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == name
    if not name.startswith(parts[0]) or not name.endswith(parts[-1]) or len(name) < len(parts[0]) + len(parts[-1]):
        return False
    i, end = len(parts[0]), len(name) - len(parts[-1])
    for mid in parts[1:-1]:
        j = name.find(mid, i, end)
        if j < 0:
            return False
        i = j + len(mid)
    return True


def _matches(pattern, unit):
    """A pattern without a type matches the unit's name without its type (and "foo@" templates' too)."""
    if pattern.rpartition(".")[2] in U.UNIT_TYPES:
        return _glob(pattern, unit)
    stem = unit.rpartition(".")[0]
    return _glob(pattern, stem) or (stem.endswith("@") and _glob(pattern, stem[:-1]))


class SkipRules:
    """The built-in SKIP list plus the image's units.skip, minus its units.keep. Answers are
    remembered; a plain name or a `prefix*` pattern is a dictionary or prefix test, not a glob."""

    def __init__(self, root):
        rules = []
        keep = []
        for path, into in ((SKIP_FILE, rules), (KEEP_FILE, keep)):
            for _n, pattern, reason in _pattern_lines(root, path):
                if into is keep:
                    keep.append(pattern)
                else:
                    rules.append((pattern, reason or "listed in %s" % SKIP_FILE))
        rules.extend((p, reason) for patterns, reason in SKIP for p in patterns)  # the image's first
        self.keep = keep
        self.exact, self.prefixes, self.globs = {}, [], []
        for pattern, reason in rules:
            star = pattern.find("*")
            if star < 0:
                self.exact.setdefault(pattern, reason)
            elif star == len(pattern) - 1:
                self.prefixes.append((pattern[:-1], reason))
            else:
                self.globs.append((pattern, reason))
        self._memo = {}

    def reason(self, unit):
        """Why `unit` is skipped, or None."""
        hit = self._memo.get(unit, False)
        if hit is False:
            hit = self._memo[unit] = self._reason(unit)
        return hit

    def _reason(self, unit):
        if any(_matches(p, unit) for p in self.keep):
            return None
        stem, _, utype = unit.rpartition(".")
        names = (unit, stem, stem[:-1]) if stem.endswith("@") else (unit, stem)
        for n in names:
            if n in self.exact:
                return self.exact[n]
        for prefix, reason in self.prefixes:
            if unit.startswith(prefix):
                return reason
        for pattern, reason in self.globs:
            if _matches(pattern, unit):
                return reason
        if utype not in RUN_TYPES and utype != "target":
            return "%s units are not supported in a container" % utype
        return None


def _pattern_lines(root, path):
    try:
        text = root.read(path, 65536).decode("utf-8", "replace")
    except OSError:
        return
    for n, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        pattern, _, reason = line.partition(" ")
        yield n, pattern, reason.strip()


# ---------------------------------------------------------------------------------------------
# The whole image
# ---------------------------------------------------------------------------------------------

class Loaded:
    """What load_units found. services: [(ServiceSpec, [Problem], skip reason or None, {path: line})]."""

    def __init__(self):
        self.services, self.templates, self.sockets, self.timers = [], {}, [], []
        self.unit_files, self.skipped, self.warnings = {}, {}, []
        self.errors = []  # Problems of no service: templates pulled without an instance, broken sockets...
        self.names = {}   # service stem -> every name it answers to (unit names, aliases), for the defaults
        self.aliases = {}  # alias unit name (a link in a unit directory) -> the unit it names


def _stem(unit_name):
    return unit_name.rpartition(".")[0]


class _Loader:
    def __init__(self, root, environ, warn):
        from richinit.services import unitspec
        self.S = unitspec
        self.root, self.warn = root, warn
        self.catalog = Catalog(root)
        self.skip = SkipRules(root)
        self.ctx = unitspec.Context(root, environ)
        self.alias_map = self.catalog.aliases()
        self.units = {}     # name -> Unit
        self.conv = {}      # name -> Converted

    def unit(self, name):
        u = self.units.get(name)
        if u is None:
            found = self.catalog.find(name)
            u = self.units[name] = read_unit(self.root, self.catalog, name, self.alias_map.get(found.id, ()))
        return u

    def converted(self, name, template=False):
        key = (name, template)
        c = self.conv.get(key)
        if c is None:
            c = self.conv[key] = self.S.convert(self.unit(name), self.ctx, template)
        return c

    def canonical(self, name):
        f = self.catalog.find(name)
        if f.id != name and f.template is None:
            return f.id
        return name

    # --- enablement ---------------------------------------------------------------------------

    def wanted_dirs(self, unit):
        """Unit names listed in the .wants/.requires directories of the unit, its aliases, its template."""
        names = [unit.id] + unit.aliases + ([unit.found.template] if unit.found.template else [])
        if unit.name not in names:
            names.append(unit.name)
        out = []
        for n in names:
            for suffix in (".wants", ".requires"):
                for entry in self.catalog.subdir_entries(n + suffix):
                    if U.valid_name(entry):
                        out.append(entry)
        return out

    def pulled(self):
        """{unit id: what pulled it} from the default target, in the order reached."""
        default = self.catalog.find("default.target")
        start = default.id if default.path or default.id != "default.target" else "multi-user.target"
        seen = {start: "default target"}
        queue = [start]
        while queue:
            name = queue.pop(0)
            if self.skip.reason(name):
                continue
            u = self.unit(name)
            if u.found.masked:
                continue
            targets = []
            if u.found.path is None and u.type == "target":
                targets.extend(_FALLBACK_TARGETS.get(name, ()))
            else:
                c = self.converted(name)
                for key in _PULL_KEYS:
                    targets.extend(n for n, _line in c.deps.get(key, ()))
            targets.extend(self.wanted_dirs(u))
            if name == "postgresql.service":
                targets.extend(self.postgresql_clusters())
            for t in targets:
                t = self.canonical(t)
                if t not in seen:
                    seen[t] = name
                    queue.append(t)
        return seen

    def postgresql_clusters(self):
        """Debian's postgresql-generator, by hand: the clusters that start with postgresql.service."""
        out = []
        for version in self.root.listdir("/etc/postgresql") or ():
            for cluster in self.root.listdir("/etc/postgresql/%s" % version) or ():
                d = "/etc/postgresql/%s/%s" % (version, cluster)
                if not self.root.exists(d + "/postgresql.conf"):
                    continue
                try:
                    text = self.root.read(d + "/start.conf", 65536).decode("utf-8", "replace")
                except OSError:
                    text = "auto"
                words = [w.split("#")[0].strip() for w in text.split("\n")]
                start = " ".join(w for w in words if w)
                if start != "auto":
                    continue
                if self.root.is_executable("/usr/lib/postgresql/%s/bin/postgres" % version):
                    out.append("postgresql@%s-%s.service" % (version, cluster))
        return out


def load_units(root, warn, environ=None):
    """Every unit of the image at `root` (a rootfs.Root) -> Loaded. `warn(file, line, message, service)`
    receives what applies to no single service."""
    ld = _Loader(root, environ, warn)
    out = Loaded()
    if not ld.catalog.dirs:
        return out
    pulled = ld.pulled()
    # Which names to convert: pulled ones, and every unit file of a type we run (for systemctl start).
    todo = dict.fromkeys(n for n in pulled if n.rpartition(".")[2] in RUN_TYPES)
    for name in ld.catalog.unit_names():
        if name.rpartition(".")[2] in RUN_TYPES and ld.canonical(name) == name:
            todo.setdefault(name)
    for name, by in pulled.items():
        reason = ld.skip.reason(name)
        if reason:
            out.skipped[_skip_key(name)] = reason
        elif name.partition("@")[2].startswith(".") and name.rpartition(".")[2] in RUN_TYPES:
            where = ld.units[by].found.path if by in ld.units and ld.units[by].found.path else by
            out.errors.append(M.Problem(
                service=_skip_key(name), file=where, message="%s is a template: enable an instance "
                "(%s) instead; nothing started for it" % (name, name.replace("@.", "@NAME.", 1))))
    specs = {}      # unit name -> (kind, spec-in-making)
    for name in todo:
        if ld.skip.reason(name):
            continue
        u = ld.unit(name)
        if u.found.masked:
            if name in pulled:
                out.skipped[_skip_key(name)] = "masked"
            continue
        if u.found.problem:
            if u.found.problem != "not found":  # Wants= of a unit the image lacks: systemd says nothing
                specs[name] = ("broken", u)
            continue
        if u.type != "service" and u.instance == "":
            continue  # socket and timer templates only run through their instances
        specs[name] = (u.type, u)
    _unit_files(ld, out)
    _sysv(ld, out, specs, pulled)
    _build(ld, out, specs, pulled)
    out.aliases = {a: uid for uid, names in ld.alias_map.items() if uid in specs
                   for a in names if a.rpartition(".")[2] in RUN_TYPES}
    return out


def _sysv(ld, out, specs, pulled):
    """The default runlevel's init scripts that no unit replaces, as generated service units."""
    from richinit.services import sysv

    def has_unit(n):
        f = ld.catalog.find(n)
        return f.masked or f.path is not None

    found, skipped = sysv.scripts(ld.root, ld.ctx.os_release, has_unit, ld.skip.reason, ld.warn)
    out.skipped.update(skipped)
    earlier = []
    for name, path, text, snum in found:
        uname = name + ".service"
        u = Unit(uname, Found(uname, path=path))
        u.generated = True
        read_text_unit(u, path, text)
        if earlier and snum is not None:
            lower = [n for n, s in earlier if s < snum]
            if lower:
                u.assigns.append(Assign("Unit", "After", " ".join(lower), path, None))
        if snum is not None:
            earlier.append((uname, snum))
        for dpath in dropin_paths(ld.catalog, uname):
            append_file(ld.root, u, dpath, dropin=True)
        ld.units[uname] = u
        specs[uname] = ("service", u)
        if snum is not None:
            pulled.setdefault(uname, "runlevel scripts")
        out.unit_files[uname] = "generated"


def _skip_key(name):
    stem, _, utype = name.rpartition(".")
    return stem if utype == "service" else name


def _unit_files(ld, out):
    """systemctl list-unit-files' states, as far as the files tell."""
    states = FileStates(ld.root, ld.catalog)
    for name in ld.catalog.unit_names():
        out.unit_files[name] = states.state(name)


def _log(value, ident, warnings, stream):
    """StandardOutput=/StandardError= value -> Log, or None for "the same as stdout" (stderr inherit)."""
    if value is None:
        value = ("journal" if stream == "stdout" else "inherit", None, None)
    v, file, line = value
    if v in ("journal", "syslog", "kmsg", "journal+console", "syslog+console", "kmsg+console"):
        if v.endswith("+console"):
            warnings.append((file, line, "Standard%s=%s: sent to syslog only" % (stream[3:].title(), v)))
        return M.Log(kind="syslog", identifier=ident)
    if v == "inherit":
        return None if stream == "stderr" else M.Log()
    if v == "tty":
        return M.Log()
    if v == "null":
        return M.Log(kind="none")
    if v == "socket":
        return M.Log(kind="socket")
    for prefix, mode in (("file:", "append"), ("append:", "append"), ("truncate:", "truncate")):
        if v.startswith(prefix) and v[len(prefix):].startswith("/"):
            return M.Log(kind="file", path=v[len(prefix):], mode=mode)
    warnings.append((file, line, "Standard%s=%s: not supported; the console is used"
                     % (stream[3:].title(), v)))
    return M.Log()


def _command(ld, flags, argv, line, file, key, errors, warnings, check=True):
    """A Command with a bare program name resolved as systemd does (its fixed PATH), checked to exist."""
    prog = argv[0]
    if "/" not in prog:
        found = ld.root.which(prog)
        if found is None:
            (warnings if "-" in flags else errors).append(
                (file, line, "%s=: executable %r not found in %s" % (key, prog, "/usr/local/sbin:…:/bin")))
            return None
        argv = [found] + argv[1:]
    elif not prog.startswith("/"):
        errors.append((file, line, "%s=: %r is neither an absolute path nor a program name" % (key, prog)))
        return None
    elif check and "%" not in prog and not ld.root.is_executable(prog):
        target = warnings if ("-" in flags or not key.startswith(("ExecStart", "ExecCondition"))) else errors
        target.append((file, line, "%s=: %s is missing or not executable" % (key, prog)))
        if target is errors:
            return None
    return M.Command(argv=tuple(argv), flags=flags)


def _conditions(conv, errors):
    """Dynamic Condition records, and why a static condition failed (or None)."""
    dynamic, failed = [], None
    triggers = [x for x in conv.conditions if x[0].trigger]
    if triggers:
        if any(ok for _rec, ok, _a in triggers if ok is True):
            pass
        else:
            dyn = [rec for rec, ok, _a in triggers if ok is None]
            if not dyn:
                a = triggers[0][2]
                failed = "no triggering condition holds (%s:%d)" % (a.file, a.line)
            dynamic.extend(dyn)
    for rec, ok, a in conv.conditions:
        if rec.trigger:
            continue
        if ok is None:
            dynamic.append(rec)
        elif ok is False:
            text = "%s=%s%s (%s:%d)" % (a.key, "!" if rec.negate else "", rec.value, a.file, a.line)
            if rec.assert_:
                errors.append((a.file, a.line, "assertion failed: %s=%s%s" % (a.key, "!" if rec.negate else "",
                                                                              rec.value)))
            elif failed is None:
                failed = "condition failed: " + text
    return dynamic, failed


def _path_holds(root, rec):
    """A path Condition record evaluated now, in the root (sockets and timers have no start to wait for)."""
    v, name = rec.value, rec.name
    if name == "PathExists":
        ok = root.exists(v)
    elif name == "PathExistsGlob":
        d, _, base = v.rpartition("/")
        ok = any(_glob(base, n) for n in root.listdir(d or "/") or ())
    elif name == "PathIsDirectory":
        ok = root.is_dir(v)
    elif name == "PathIsSymbolicLink":
        ok = root.lstat_link(v)[1] is not None
    elif name == "DirectoryNotEmpty":
        ok = bool(root.listdir(v))
    elif name == "FileNotEmpty":
        st = root.stat(v)
        ok = st is not None and stat.S_ISREG(st.st_mode) and st.st_size > 0
    elif name == "FileIsExecutable":
        ok = root.is_executable(v)
    else:  # PathIsMountPoint, PathIsReadWrite, PathIsEncrypted: taken as they are on a VM
        ok = name != "PathIsEncrypted"
    return ok != rec.negate


def _conditions_now(root, recs):
    """Why the Condition records fail now, or None (triggering ones: any one suffices)."""
    triggers = [r for r in recs if r.trigger]
    for r in recs:
        if not r.trigger and not _path_holds(root, r):
            return "condition failed: Condition%s=%s%s" % (r.name, "!" if r.negate else "", r.value)
    if triggers and not any(_path_holds(root, r) for r in triggers):
        return "no triggering condition holds"
    return None


def service_fields(ld, u, conv, template=False):
    """ServiceSpec keyword arguments of a converted service unit, with (errors, warnings, skip)."""
    f = conv.fields
    errors, warnings = list(u.errors) + list(conv.errors), list(u.warnings) + list(conv.warnings)
    ex = conv.exec
    starts = ex.get("ExecStart", [])
    stype = f.get("type") or ("simple" if starts else "oneshot")
    where = (u.found.path, None)

    def commands(key):
        out = []
        for flags, argv, line, file in ex.get(key, ()):
            c = _command(ld, flags, argv, line, file, key, errors, warnings, check=not template)
            if c is not None:
                out.append(c)
        return out

    start_cmds = commands("ExecStart")
    if not starts and stype != "oneshot":
        errors.append(where + ("no ExecStart= (only Type=oneshot may go without)",))
    if len(starts) > 1 and stype != "oneshot":
        errors.append((starts[1][3], starts[1][2], "more than one ExecStart= command is only for Type=oneshot"))
    restart = f.get("restart", "never")
    if stype == "oneshot" and restart in ("always", "on-success"):
        errors.append(where + ("Restart=%s is not allowed for Type=oneshot" % restart,))
    if stype == "oneshot" and not starts and not f.get("remain_after_exit") and not ex.get("ExecStop"):
        errors.append(where + ("no ExecStart= (a oneshot without one needs RemainAfterExit=yes)",))
    dynamic, skip = _conditions(conv, errors)
    rs = f.get("restart_sec")
    rs = 0.1 if rs is None else rs
    burst, interval = f.get("start_burst", 5), f.get("start_interval", 10.0)
    directories = []
    for kind in M.DIRECTORY_KINDS:
        mode = f.get(kind + "_mode", 0o755)
        directories.extend(M.Directory(kind=kind, path=p, mode=mode) for p in f.get(kind + "_dirs", ()))
    # systemd's default identifier is the process name (sshd for ssh.service).
    ident = f.get("syslog_identifier") or (start_cmds[0].argv[1 if "@" in start_cmds[0].flags else 0]
                                           .rpartition("/")[2] if start_cmds else None)
    stdin_socket = False
    if f.get("stdin") is not None:
        v, file, line = f["stdin"]
        stdin_socket = v == "socket"
        if v not in ("socket", "null", ""):
            warnings.append((file, line, "StandardInput=%s: not supported; /dev/null is used" % v))
    # StandardOutput= defaults to inherit (stdin's) when StandardInput=socket
    log = _log(f.get("stdout") or (("socket", None, None) if stdin_socket else None), ident, warnings, "stdout")
    err = _log(f.get("stderr"), ident, warnings, "stderr")
    user = f.get("user")
    if f.get("dynamic_user") and not user:
        warnings.append((u.found.path, f["dynamic_user"], "DynamicUser=yes runs as the user nobody"))
        user = "nobody"
    pidfile = f.get("pidfile")
    if pidfile and not pidfile.startswith("/"):
        pidfile = "/run/" + pidfile
    fields = {
        "name": _stem(u.name), "origin": "sysv" if u.generated else "systemd", "source": u.found.path or "",
        "unit": u.name,
        "description": f.get("description") or "", "type": stype,
        "command": start_cmds[0].argv if start_cmds else (),
        "command_flags": start_cmds[0].flags if start_cmds else ":",
        "pre": tuple(commands("ExecStartPre")), "exec_condition": tuple(commands("ExecCondition")),
        # More than one ExecStart= (oneshot only): the others run in order after the first, as
        # ExecStartPost= would; for a oneshot that is the same thing.
        "post": tuple(start_cmds[1:] + commands("ExecStartPost")),
        "reload": tuple(commands("ExecReload")), "stop_commands": tuple(commands("ExecStop")),
        "stop_post": tuple(commands("ExecStopPost")),
        "pidfile": pidfile, "remain_after_exit": bool(f.get("remain_after_exit")),
        "user": user, "group": f.get("group"), "supplementary_groups": tuple(f.get("supplementary_groups", ())),
        "environment": dict(f.get("environment", {})), "env_files": tuple(f.get("env_files", ())),
        "pass_env": tuple(f.get("pass_env", ())), "unset_env": tuple(f.get("unset_env", ())),
        "workdir": f.get("workdir"), "workdir_optional": bool(f.get("workdir_optional")),
        "umask": f.get("umask"), "nice": f.get("nice"), "limits": dict(f.get("limits", {})),
        "directories": tuple(directories), "runtime_preserve": f.get("runtime_preserve", "no"),
        "ready": M.Ready(kind="notify") if stype in ("notify", "notify-reload") else M.Ready(),
        "ready_timeout": f.get("ready_timeout", 0.0 if stype == "oneshot" else DEFAULT_TIMEOUT),
        "stop_timeout": f.get("stop_timeout", DEFAULT_TIMEOUT),
        "restart": restart,
        "backoff": M.Backoff(initial=rs, max=rs, factor=1.0, first=rs),
        "crash_loop": M.CrashLoop(starts=burst, within=interval) if burst > 0 and interval and interval > 0 else None,
        "success_status": tuple(f.get("success_status", ())), "restart_prevent": tuple(f.get("restart_prevent", ())),
        "restart_force": tuple(f.get("restart_force", ())),
        "stop_signal": f.get("stop_signal", "SIGTERM"), "reload_signal": f.get("reload_signal", "SIGHUP"),
        "kill_mode": f.get("kill_mode", "control-group"),
        "send_sigkill": f.get("send_sigkill", True), "send_sighup": f.get("send_sighup", False),
        "notify_access": f.get("notify_access"), "watchdog": f.get("watchdog") or 0.0,
        "log": log, "stderr_log": err, "private_tmp": bool(f.get("private_tmp")), "stdin_socket": stdin_socket,
        "conditions": tuple(dynamic),
    }
    return fields, errors, warnings, skip


def _where(file, line):
    return file if line is None else "%s:%d" % (file, line)


def _build(ld, out, specs, pulled):
    """Specs of every service, socket and timer; dependencies translated to service names."""
    services = {}   # unit name -> (fields, errors, warnings, skip, unit, conv)
    for name, (kind, u) in specs.items():
        if kind == "broken":
            if u.type == "service" and u.instance != "":
                services[name] = (None, [(u.found.where or name, None, u.found.problem)], [], None, u, None)
            else:
                out.errors.append(M.Problem(service=_skip_key(name), file=u.found.where or name,
                                            message=u.found.problem))
            continue
        if kind == "service":
            template = u.instance == ""
            conv = ld.converted(name, template)
            fields, errors, warnings, skip = service_fields(ld, u, conv, template)
            if template:
                fields["name"] = _stem(name)
                fields["enabled"] = False
                fields["warnings"] = tuple("%s: %s" % (_where(f, n), m) for f, n, m in warnings)
                if errors:
                    for f, n, m in errors:
                        out.warnings.append(M.Problem(service=fields["name"], file=f, line=n,
                                                      message="template: " + m))
                else:
                    out.templates[fields["name"]] = M.ServiceSpec(**fields)
                continue
            services[name] = (fields, errors, warnings, skip, u, conv)
        elif kind == "socket":
            out.sockets.append(_socket(ld, u, name in pulled, out))
        elif kind == "timer":
            out.timers.append(_timer(ld, u, name in pulled, out))
    _dependencies(ld, out, services, pulled)


def _enabled_now(ld, u, conv, enabled, out):
    """Whether a socket or timer the default target pulls is enabled once its Conditions are
    checked against the image now (the one that fails is its skip reason)."""
    dynamic, skip = _conditions(conv, [])
    skip = skip or _conditions_now(ld.root, dynamic)
    if skip and enabled:
        out.skipped[u.name] = skip
        return False
    return enabled


def _add_warnings(out, stem, warnings):
    out.warnings.extend(M.Problem(service=stem, file=f, line=n, message=m) for f, n, m in warnings)


def _socket(ld, u, enabled, out):
    conv = ld.converted(u.name)
    f = conv.fields
    warnings = list(u.errors) + list(conv.warnings) + list(conv.errors)
    stem = _stem(u.name)
    accept = bool(f.get("accept"))
    service = stem + "@" if accept and not f.get("service") else \
        _stem(ld.canonical(f.get("service") or stem + ".service"))
    listen = conv.listen
    if u.name == "syslog.socket":
        # journald forwards to /run/systemd/journal/syslog; without journald, the syslog daemon it
        # activates (rsyslog) is what /dev/log must reach.
        listen = [M.Listen(kind=x.kind, address="/dev/log") if x.address == "/run/systemd/journal/syslog" else x
                  for x in listen]
        line = next((a.line for a in u.assigns if a.value == "/run/systemd/journal/syslog"), None)
        warnings.append((u.found.path, line, "ListenDatagram=/run/systemd/journal/syslog bound as /dev/log "
                         "(no journald in the container)"))
    enabled = _enabled_now(ld, u, conv, enabled, out)
    if not listen:
        warnings.append((u.found.path, None, "no Listen*= richinit can bind; not enabled"))
        enabled = False
    _add_warnings(out, stem, warnings)
    return M.SocketSpec(name=stem, unit=u.name, source=u.found.path or "", service=service,
                        listen=tuple(listen), accept=accept, mode=f.get("mode", 0o666), user=f.get("user"),
                        group=f.get("group"), fd_name=f.get("fd_name"), backlog=f.get("backlog") or 4096,
                        enabled=enabled, max_connections=f.get("max_connections") or 64,
                        remove_on_stop=bool(f.get("remove_on_stop")),
                        warnings=tuple("%s: %s" % (_where(a, b), c) for a, b, c in warnings))


def _timer(ld, u, enabled, out):
    conv = ld.converted(u.name)
    f = conv.fields
    warnings = list(u.errors) + list(conv.warnings) + list(conv.errors)
    stem = _stem(u.name)
    service = _stem(ld.canonical(f.get("service") or stem + ".service"))
    enabled = _enabled_now(ld, u, conv, enabled, out)
    _add_warnings(out, stem, warnings)
    return M.TimerSpec(name=stem, unit=u.name, source=u.found.path or "", service=service,
                       calendar=tuple(conv.calendar), on_boot=f.get("on_boot"), on_startup=f.get("on_startup"),
                       on_active=f.get("on_active"), on_unit_active=f.get("on_unit_active"),
                       on_unit_inactive=f.get("on_unit_inactive"), persistent=bool(f.get("persistent")),
                       randomized_delay=f.get("randomized_delay") or 0.0,
                       accuracy=60.0 if f.get("accuracy") is None else f["accuracy"], enabled=enabled,
                       warnings=tuple("%s: %s" % (_where(a, b), c) for a, b, c in warnings))


def _dependencies(ld, out, services, pulled):
    """after/requires/... as service names (ordering followed through targets and skipped units)."""
    runnable = {n for n, v in services.items() if v[0] is not None}
    after = {}   # unit name -> {unit name: line}

    def edge(a, b, line):
        after.setdefault(ld.canonical(a), {}).setdefault(ld.canonical(b), line)

    def target_edge(target, dep):
        """systemd.target(5): a target is ordered after the units it pulls in, unless one has
        DefaultDependencies=no or is ordered after the target itself (as every service with default
        dependencies is after sysinit.target and basic.target: no loop)."""
        d = ld.units.get(ld.canonical(dep))
        if d is not None and not _default_dependencies(d):
            return
        if target in EARLY_TARGETS and dep.rpartition(".")[2] == "service":
            return
        edge(target, dep, None)

    for name, conv in list(ld.conv.items()):
        uname, template = name
        if template:
            continue
        for dep, line in conv.deps.get("After", ()):
            edge(uname, dep, line)
        for dep, _line in conv.deps.get("Before", ()):
            edge(dep, uname, None)
        u = ld.units[uname]
        if u.type == "target" and _default_dependencies(u):
            for key in ("Wants", "Requires", "BindsTo"):
                for dep, _line in conv.deps.get(key, ()):
                    target_edge(uname, dep)
            for dep in ld.wanted_dirs(u):
                target_edge(uname, dep)

    for name in pulled:  # a target without a file: ordered as systemd's own would be
        u = ld.units.get(name)
        if u is not None and u.type == "target" and u.found.path is None and not u.found.masked:
            for dep in _FALLBACK_TARGETS.get(name, ()):
                edge(name, dep, None)
            for dep in ld.wanted_dirs(u):
                target_edge(name, dep)

    # DefaultDependencies=yes (systemd.service(5)): a service is ordered after sysinit.target and
    # basic.target, so after what those are ordered after -- unless it is itself one of those (a
    # service ordered before sysinit.target or basic.target): systemd would have to break that cycle.
    early, stack = set(), [t for t in EARLY_TARGETS if t in after]
    while stack:
        n = stack.pop()
        if n not in early:
            early.add(n)
            stack.extend(after.get(n, ()))
    for name, v in services.items():
        if name not in early and _default_dependencies(v[4]):
            for t in EARLY_TARGETS:
                edge(name, t, None)

    def reach(name):
        found, stack, seen = {}, [(n, line) for n, line in after.get(name, {}).items()], {name}
        while stack:
            n, line = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in runnable:
                found.setdefault(n, line)
                continue
            stack.extend((m, line) for m in after.get(n, {}))
        return found

    stems = {n: _stem(n) for n in services}
    for name, (fields, errors, warnings, skip, u, conv) in services.items():
        stem = _stem(name)
        problems = [M.Problem(service=stem, file=f, line=n, message=m) for f, n, m in errors]
        if fields is None:
            out.services.append((None, problems, None, {}, stem, name))
            continue
        lines = {(): None}
        order = reach(name)
        fields["after"] = tuple(sorted(stems[n] for n in order))
        for i, a in enumerate(fields["after"]):
            n = next(k for k in order if stems[k] == a)
            lines[("after", i)] = order[n]
        socket_deps = []
        for key, field in (("Requires", "requires"), ("Wants", "wants"), ("BindsTo", "binds_to"),
                           ("PartOf", "part_of"), ("Requisite", "requisite"), ("Conflicts", "conflicts"),
                           ("OnFailure", "on_failure")):
            names = []
            for dep, line in conv.deps.get(key, ()):
                dep = ld.canonical(dep)
                utype = dep.rpartition(".")[2]
                if utype == "socket" and key in ("Requires", "Wants", "BindsTo") and not ld.skip.reason(dep) \
                        and _stem(dep) not in socket_deps:
                    socket_deps.append(_stem(dep))  # started with it (systemctl start), as systemd pulls it
                if utype != "service":
                    reason = ld.skip.reason(dep)
                    if reason and key in ("Requires", "BindsTo", "Requisite") and utype not in ("target", "socket"):
                        warnings.append((u.found.path, line, "%s=%s: a skipped unit (%s); dependency dropped"
                                         % (key, dep, reason)))
                    continue
                reason = ld.skip.reason(dep)
                if reason:
                    if key in ("Requires", "BindsTo", "Requisite"):
                        warnings.append((u.found.path, line, "%s=%s: a skipped unit (%s); dependency dropped"
                                         % (key, dep, reason)))
                    continue
                if dep not in services and key not in ("Requires", "BindsTo", "Requisite"):
                    continue
                if _stem(dep) not in names:
                    lines[(field, len(names))] = line
                    names.append(_stem(dep))
            fields[field] = tuple(names)
        fields["sockets"] = tuple(s.name for s in out.sockets if s.service == stem)
        fields["socket_deps"] = tuple(socket_deps)
        enabled = name in pulled
        fields["enabled"] = enabled
        fields["warnings"] = tuple("%s: %s" % (_where(f, n), m) for f, n, m in warnings)
        _add_warnings(out, stem, warnings)
        spec = M.ServiceSpec(**fields)
        if skip is None and not enabled:
            skip = _not_enabled_reason(out, name, stem)
        out.services.append((spec, problems, skip, lines, stem, name))
        out.names[stem] = {stem} | {_stem(a) for a in u.aliases} | {
            _stem(a.value) for a in u.assigns if a.section == "Install" and a.key == "Alias" and a.value}


def _default_dependencies(u):
    """The unit's DefaultDependencies= (yes unless set otherwise; the last assignment wins)."""
    value = "yes"
    for a in u.assigns:
        if a.section == "Unit" and a.key == "DefaultDependencies" and a.value:
            value = a.value
    try:
        return U.boolean(value)
    except ValueError:
        return True


def _not_enabled_reason(out, name, stem):
    for s in out.sockets:
        if s.enabled and s.service == stem:
            return "activated by %s" % s.unit
    for t in out.timers:
        if t.enabled and t.service == stem:
            return "started by %s" % t.unit
    return "not enabled (%s)" % out.unit_files.get(name, "instance")
