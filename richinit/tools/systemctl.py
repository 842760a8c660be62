"""systemctl inside a richinit container: systemd's common verbs, exit codes and output, served
by PID 1's control socket (richinit.verbs) and, for unit files, by the container's own files
(richinit.tools.unitfiles).

Exit codes are systemd's (LSB for status): 0 ok/active; 1 failed; 3 inactive (status, is-active);
4 no such unit (status); 5 a job on a unit that is not loaded. Output is close enough for scripts
that grep it: `Active: active (running) since ...`, `Loaded: loaded (PATH; enabled; preset: enabled)`.
"""

import os
import sys
import time

from richinit.tools import client
from richinit.tools import unitfiles as uf

JOB_VERBS = ("start", "stop", "restart", "try-restart", "reload", "reload-or-restart", "try-reload-or-restart",
             "condrestart", "force-reload")
VERBS = JOB_VERBS + ("kill", "status", "is-active", "is-enabled", "is-failed", "enable", "disable", "reenable",
                     "mask", "unmask", "daemon-reload", "daemon-reexec", "list-units", "list-unit-files",
                     "list-timers", "show", "cat", "reset-failed", "is-system-running",
                     "poweroff", "reboot", "halt", "default", "get-default", "preset")
_VALUE_OPTS = {"-p": "property", "--property": "property", "-t": "type", "--type": "type", "--state": "state",
               "-s": "signal", "--signal": "signal", "--kill-whom": "kill_whom", "--kill-who": "kill_whom",
               "-n": "lines", "--lines": "lines", "-o": "output", "--output": "output", "--root": "root",
               "-H": "host", "--host": "host", "-M": "machine", "--machine": "machine",
               "--job-mode": "job_mode", "--what": "what", "--preset-mode": "preset_mode"}
_FLAGS = {"-q": "quiet", "--quiet": "quiet", "--no-pager": None, "--no-legend": "no_legend", "--now": "now",
          "--no-block": "no_block", "--system": None, "-l": None, "--full": None, "-a": "all", "--all": "all",
          "--value": "value", "--plain": "plain", "--no-reload": "no_reload", "-f": "force", "--force": "force",
          "--runtime": "runtime", "--no-ask-password": None, "--failed": "failed", "--user": "user",
          "--global": "user", "-r": None, "--recursive": None, "--show-types": None, "--wait": None,
          "--no-wall": None, "-i": None, "--ignore-inhibitors": None, "--check-inhibitors=no": None,
          "--version": "version"}
TARGETS_ALWAYS_ACTIVE = ("default.target", "multi-user.target", "graphical.target", "basic.target",
                         "sysinit.target", "network.target", "network-online.target", "local-fs.target",
                         "remote-fs.target", "sockets.target", "timers.target", "paths.target")


class Usage(Exception):
    pass


class Options:
    def __init__(self):
        self.property = []
        self.type = []
        self.state = []
        self.signal = "SIGTERM"
        self.kill_whom = "all"
        self.lines = 10
        self.root = "/"
        self.preset_mode = "full"
        for name in set(_FLAGS.values()) - {None}:
            setattr(self, name, False)


def parse(argv):
    """(verb, [args], Options). systemctl accepts options anywhere."""
    o = Options()
    words = []
    it = iter(argv)
    for a in it:
        if a == "--":
            words += list(it)
            break
        key, eq, value = a.partition("=")
        if a.startswith("--") and eq and key in _VALUE_OPTS:
            _set(o, _VALUE_OPTS[key], value)
        elif a in _VALUE_OPTS:
            try:
                _set(o, _VALUE_OPTS[a], next(it))
            except StopIteration:
                raise Usage("option %s needs a value" % a)
        elif a[:2] in ("-p", "-t", "-s", "-n") and len(a) > 2 and not a.startswith("--"):
            _set(o, _VALUE_OPTS[a[:2]], a[2:])
        elif a in _FLAGS:
            if _FLAGS[a]:
                setattr(o, _FLAGS[a], True)
        elif a.startswith("-") and a != "-":
            if all("-" + c in _FLAGS for c in a[1:]):
                for c in a[1:]:
                    if _FLAGS["-" + c]:
                        setattr(o, _FLAGS["-" + c], True)
            else:
                raise Usage("unrecognized option '%s'" % a)
        else:
            words.append(a)
    verb = words[0] if words else ("version" if o.version else "list-units")
    if verb not in VERBS + ("version",):
        raise Usage("Unknown command verb '%s'." % verb)
    return verb, words[1:], o


def _set(o, field, value):
    if field == "property":
        o.property += [p for p in value.split(",") if p]
    elif field in ("type", "state"):
        getattr(o, field).extend(v for v in value.split(",") if v)
    elif field == "lines":
        if not value.isdigit():
            raise Usage("Failed to parse lines '%s'" % value)
        o.lines = int(value)
    elif field in ("host", "machine"):
        raise Usage("--%s is not supported inside a richinit container" % field)
    elif field == "root":
        if not value.startswith("/") or not os.path.isdir(value):
            raise Usage("--root=%s: not a directory" % value)
        o.root = value
        o.no_reload = o.no_reload or os.path.realpath(value) != "/"
    elif field == "preset_mode" and value not in ("full", "enable-only", "disable-only"):
        raise Usage("Failed to parse preset mode: %s." % value)
    else:
        setattr(o, field, value)


def err(msg):
    sys.stderr.write(msg + "\n")


# ---------------------------------------------------------------- talking to PID 1

def _units(names=()):
    """{unit name: systemd's properties} from PID 1, for `names` (every service without)."""
    reply = client.request(["unit", "units"] + list(names))
    if not reply.get("ok"):
        raise client.Unreachable(reply.get("error", "no reply"))
    units = reply["units"]
    if names:
        return dict(zip(names, units, strict=False))
    return {u["Id"]: u for u in units}


def _match(name, pattern):
    import fnmatch  # loads re: only for globs and filters
    return fnmatch.fnmatchcase(name, pattern)


def _expand(args, o):
    """Unit names from the arguments: `.service` added; globs matched against the loaded units."""
    out = []
    for a in args:
        if any(c in a for c in "*?["):
            pattern = a if "." in a.rsplit("*", 1)[-1] or a.endswith("*") else uf.unit_name(a)
            out += sorted(n for n in _units() if _match(n, pattern))
        else:
            out.append(uf.unit_name(a))
    return out


def _loaded(u):
    return bool(u) and u.get("LoadState") not in (None, "not-found")


def _real_name(name, u):
    """The unit an alias names, as systemd shows it (`status sshd` shows ssh.service): PID 1's Id
    when it knows the unit, else the unit files' (a link in a unit directory)."""
    if _loaded(u):
        return u.get("Id") or name
    return uf.unit_id(name)


# ---------------------------------------------------------------- verbs

def cmd_job(verb, args, o):
    verb = {"condrestart": "try-restart", "force-reload": "reload-or-restart"}.get(verb, verb)
    names = _expand(args, o)
    if not names:
        raise Usage("Too few arguments.")
    code, ask = 0, []
    for n in names:
        if n.endswith(".target"):
            continue  # targets group units; nothing to run for them here
        if verb != "stop" and uf.state(n) == "masked":
            err("Failed to %s %s: Unit %s is masked." % (verb, n, n))
            code = 1
            continue
        ask.append(n)
    if not ask:
        return code
    reply = None
    for reply in client.replies(["unit", "job", verb] + (["--no-block"] if o.no_block else []) + ask):
        if "results" in reply or not reply.get("ok"):
            break
    if reply is None or not reply.get("ok"):
        err("Failed to %s %s: %s" % (verb, " ".join(ask), (reply or {}).get("error", "no reply")))
        return 1
    for r in reply["results"]:
        unit = r["name"]
        if not r.get("ok", True):
            error = r.get("error") or "failed"
            if verb == "stop" and r.get("code") == 5:
                error = "Unit %s not loaded." % unit
            err("Failed to %s %s: %s" % (verb, unit, error))
            code = max(code, r.get("code") or 1)
        elif verb != "stop" and not o.no_block and r.get("Result") not in (None, "success") \
                and r.get("ActiveState") in ("failed", "inactive"):
            if verb == "reload":
                err("Job for %s failed." % unit)
            else:
                err("Job for %s failed because the control process exited with error code.\n"
                    "See \"systemctl status %s\" and \"journalctl -xeu %s\" for details." % (unit, unit, unit))
            code = max(code, 1)
    return code


def cmd_kill(args, o):
    from richinit import signals
    names = _expand(args, o)
    if not names:
        raise Usage("Too few arguments.")
    num = signals.parse(o.signal)
    if not num:
        raise Usage("Failed to parse signal string %s." % o.signal)
    reply = client.request(["unit", "kill", str(num), o.kill_whom] + names)
    if not reply.get("ok"):
        err("Failed to kill unit: %s" % reply.get("error"))
        return 1
    code = 0
    for r in reply["results"]:
        if not r.get("ok", True):
            err("Failed to kill unit %s: %s" % (r["name"], r.get("error")))
            code = 1
    return code


def _ago(seconds):
    s = int(seconds)
    parts = []
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            n, s = divmod(s, size)
            parts.append("%d %s%s" % (n, unit, "s" if unit == "day" and n > 1 else ""))
    if s or not parts:
        parts.append("%ds" % s if seconds >= 1 else "%dms" % int(seconds * 1000))
    return " ".join(parts[:2]) + " ago"


def _date(usec):
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(usec / 1e6))


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _group_pids(pids):
    """Every process of the services' process groups (richinit starts each in its own group)."""
    groups = set()
    for p in pids:
        try:
            groups.add(os.getpgid(p))
        except OSError:
            pass
    out = []
    for d in os.listdir("/proc") if groups else ():
        if d.isdigit():
            try:
                if os.getpgid(int(d)) in groups:
                    out.append(int(d))
            except OSError:
                pass
    return sorted(out)


def _file_state(unit):
    s = uf.state(unit)
    return s if s != "not-found" else None


NO_PRESET = ("alias", "static", "generated", "transient")  # systemd's show_preset_for_state()


def _loaded_lines(u, unit):
    """systemd's `Loaded:` line and its `Drop-In:` lines (print_status_info in systemctl-show.c):
      Loaded: loaded (PATH; STATE; preset: enabled)   (no preset for alias, static, generated)
      Loaded: masked (Reason: Unit NAME is masked.)
      Loaded: not-found (Reason: Unit NAME not found.)
      Drop-In: DIR
               └─A.conf, B.conf                         (the drop-ins that apply, by directory)
    The preset is Debian's policy: every unit enabled."""
    masked, fpath, fstate, dropins = uf.status_info(unit)
    if masked:
        return ["     Loaded: masked (Reason: Unit %s is masked.)" % unit]
    path = u.get("FragmentPath") or fpath
    if u.get("LoadState") == "not-found" or not (path or _loaded(u) or unit in TARGETS_ALWAYS_ACTIVE):
        return ["     Loaded: not-found (Reason: Unit %s not found.)" % unit]
    state = fstate if fstate != "not-found" else u.get("UnitFileState") or ""
    if path and path.startswith("/etc/init.d/"):
        state = "generated"  # systemd-sysv-generator's unit: SourcePath= is the script
    if not path:
        lines = ["     Loaded: loaded"]
    elif not state:
        lines = ["     Loaded: loaded (%s)" % path]
    else:
        lines = ["     Loaded: loaded (%s; %s%s)" % (path, state, "" if state in NO_PRESET else "; preset: enabled")]
    directory = None
    for p in dropins:
        d, _, base = p.rpartition("/")
        if d != directory:
            lines.append(("    Drop-In: " if directory is None else "             ") + d)
            lines.append("             └─" + base)
            directory = d
        else:
            lines[-1] += ", " + base
    return lines


def _bullet(active):
    return {"active": "●", "failed": "×", "activating": "●", "deactivating": "●", "reloading": "●"}.get(active, "○")


def _status_one(unit, u, o, out):
    active, sub = u.get("ActiveState") or "inactive", u.get("SubState") or "dead"
    desc = u.get("Description") or ""
    if desc in ("", unit):
        desc = uf.description(unit) or desc
    out.append("%s %s%s" % (_bullet(active), unit, " - " + desc if desc else ""))
    out += _loaded_lines(u, unit)
    for w in (u.get("Warnings") or [])[:3]:
        out.append("    Warning: " + w)
    line = "failed (Result: %s)" % u.get("Result") if active == "failed" else "%s (%s)" % (active, sub)
    since = u.get("ActiveEnterTimestamp") if active in ("active", "reloading") else \
        u.get("InactiveEnterTimestamp") if active in ("inactive", "failed") else u.get("InactiveExitTimestamp")
    if since:
        line += " since %s; %s" % (_date(since), _ago(max(0.0, time.time() - since / 1e6)))
    out.append("     Active: " + line)
    if u.get("Triggers"):
        out.append("   Triggers: ● " + u["Triggers"])
    reason = u.get("SubStateReason") or ""
    if reason and active in ("failed", "inactive") and reason not in ("stopped", "reset", "exited with 0"):
        out.append("     Reason: %s" % reason)
    if u.get("StatusText"):
        out.append("     Status: \"%s\"" % u["StatusText"])
    pid = u.get("MainPID") or 0
    if pid:
        out.append("   Main PID: %d (%s)" % (pid, _comm(pid)))
    elif u.get("ExecMainCode"):
        code, killed = u.get("ExecMainStatus") or 0, u.get("ExecMainCode") == 2
        status = "%d/%s" % (code, "SUCCESS" if code == 0 else "FAILURE") if not killed else "%d" % code
        out.append("   Main PID: (code=%s, status=%s)" % ("killed" if killed else "exited", status))
    pids = _group_pids([p for p in (pid, u.get("ControlPID") or 0) if p])
    if pids:
        out.append("      Tasks: %d" % len(pids))
        out.append("     CGroup: /system.slice/%s" % unit)
        for i, p in enumerate(pids):
            out.append("             %s%d %s" % ("└─" if i == len(pids) - 1 else "├─", p, _cmdline(p)))
    if o.lines and unit.endswith(".service"):
        lines = client.request(["logs", uf.stem(unit)]).get("lines") or []
        if lines:
            out.append("")
            host = os.uname().nodename
            out += ["%s %s %s: %s" % (time.strftime("%b %d %H:%M:%S"), host, uf.stem(unit), x)
                    for x in lines[-o.lines:]]


def cmd_status(args, o):
    if not args:
        return cmd_system_status(o)
    names = _expand(args, o)
    loaded = _units(names)
    code, blocks = 0, []
    for unit in names:
        u = loaded.get(unit) or {}
        unit = _real_name(unit, u)
        if not _loaded(u):
            if unit in TARGETS_ALWAYS_ACTIVE:
                u = {"ActiveState": "active", "SubState": "active", "FragmentPath": uf.fragment(unit) or ""}
            elif uf.state(unit) == "not-found" and u.get("ActiveState", "inactive") == "inactive":
                err("Unit %s could not be found." % unit)
                code = max(code, 4)
                continue
        out = []
        _status_one(unit, u, o, out)
        blocks.append(out)
        if u.get("ActiveState") not in ("active", "reloading"):
            code = max(code, 3)
    if blocks:
        print("\n\n".join("\n".join(b) for b in blocks))
    return code


def cmd_system_status(o):
    reply = client.request(["unit", "system"])
    print("● %s" % os.uname().nodename)
    print("    State: %s" % reply.get("state"))
    print("    Units: %d failed" % len(reply.get("failed", [])))
    return 0


def cmd_is_active(args, o, failed=False):
    names = _expand(args, o)
    if not names:
        raise Usage("Too few arguments.")
    loaded = _units(names)
    hits = 0
    for unit in names:
        u = loaded.get(unit) or {}
        active = "active" if unit in TARGETS_ALWAYS_ACTIVE else u.get("ActiveState") or "inactive"
        if not o.quiet:
            print(active)
        hits += active == ("failed" if failed else "active")
    if failed:
        return 0 if hits else 1
    return 0 if hits == len(names) else 3


def cmd_is_enabled(args, o):
    names = _expand(args, o)
    if not names:
        raise Usage("Too few arguments.")
    code = 1
    for unit in names:
        st = uf.state(unit, o.root)
        if st == "not-found":
            err("Failed to get unit file state for %s: No such file or directory" % unit)
            continue
        if not o.quiet:
            print(st)
        if st in uf.ENABLED_STATES:
            code = 0  # at least one enabled
    return code


def _report(changes, o):
    if o.quiet:
        return
    for c in changes:
        if c[0] == "symlink":
            err("Created symlink %s → %s." % (c[1], c[2]))
        else:
            err("Removed \"%s\"." % c[1])


def _sysv_sync(names, action, o):
    """SysV-only scripts: update-rc.d, as systemd-sysv-install does on Debian."""
    if os.path.realpath(o.root) != "/":
        return
    for unit in names:
        if uf.locate(unit) is None and os.path.isfile("/etc/init.d/" + uf.stem(unit)):
            if not o.quiet:
                err("Synchronizing state of %s with SysV service script with /lib/systemd/systemd-sysv-install."
                    % unit)
                err("Executing: /lib/systemd/systemd-sysv-install %s %s" % (action, uf.stem(unit)))
            for path in ("/usr/sbin/update-rc.d", "/sbin/update-rc.d"):
                if os.access(path, os.X_OK):
                    import subprocess
                    if action == "enable":
                        subprocess.run([path, uf.stem(unit), "defaults"], stdout=subprocess.DEVNULL)
                    subprocess.run([path, uf.stem(unit), action], stdout=subprocess.DEVNULL)
                    break


def cmd_unit_files(verb, args, o):
    """enable, disable, reenable, preset (Debian's preset policy: enable), mask, unmask; then a
    daemon-reload (not offline: with --root, or with PID 1 out of reach the files are what counts)."""
    names = _expand(args, o)
    if not names:
        raise Usage("Too few arguments.")
    if o.runtime:
        raise Usage("--runtime is not supported inside a richinit container")
    root = o.root
    try:
        if verb in ("enable", "reenable") or (verb == "preset" and o.preset_mode != "disable-only"):
            if verb == "reenable":
                _report(uf.disable(names, root), o)
            units = [n for n in names if uf.locate(n, root) is not None]
            _sysv_sync([n for n in names if n not in units], "enable", o)
            changes = uf.enable(units, root)
            if verb != "preset" and units and not changes and all(uf.state(n, root) == "static" for n in units):
                err(uf.NO_INSTALL)
            _report(changes, o)
        elif verb == "disable":
            units = [n for n in names if uf.locate(n, root) is not None]
            _sysv_sync([n for n in names if n not in units], "disable", o)
            _report(uf.disable(units, root), o)
        elif verb == "mask":
            _report(uf.mask(names, root), o)
        elif verb == "unmask":
            _report(uf.unmask(names, root), o)
    except uf.UnitFileError as e:
        err("Failed to %s unit: %s" % (verb, e))
        return 1
    except OSError as e:
        err("Failed to %s unit: %s" % (verb, e.strerror or e))
        return 1
    code = 0
    if not o.no_reload:
        try:
            code = cmd_daemon_reload(o)
        except client.Unreachable:
            pass  # offline (an image being built, a chroot): the files are what counts, as in systemd
    if o.now and verb in ("enable", "reenable"):
        code = cmd_job("start", names, o) or code
    elif o.now and verb in ("disable", "mask"):
        code = cmd_job("stop", names, o) or code
    return code


def cmd_daemon_reload(o):
    reply = client.request(["reload"])
    if not reply.get("ok"):
        err("Failed to reload daemon: %s" % reply.get("error"))
        return 1
    return 0


def _table(rows, o):
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lead = "" if o.plain else "  "
    for r in rows[1 if o.no_legend else 0:]:
        print((lead + " ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + " " + r[-1]).rstrip())


def cmd_list_units(args, o):
    loaded = _units()
    rows = [("UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION")]
    failed_only = o.failed or "failed" in o.state
    for unit, u in sorted(loaded.items()):
        active, sub = u.get("ActiveState") or "inactive", u.get("SubState") or "dead"
        if o.type and unit.rsplit(".", 1)[-1] not in o.type:
            continue
        if args and not any(_match(unit, a if "." in a else uf.unit_name(a)) for a in args):
            continue
        if failed_only and active != "failed":
            continue
        if o.state and not failed_only and active not in o.state and sub not in o.state:
            continue
        if not o.all and not o.state and not args and active == "inactive":
            continue
        desc = u.get("Description") or ""
        if desc in ("", unit) and not unit.endswith(".service"):
            desc = uf.description(unit) or desc
        rows.append((unit, "loaded", active, sub, desc))
    _table(rows, o)
    if not o.no_legend:
        print("\n%d loaded units listed." % (len(rows) - 1))
    return 0


def cmd_list_unit_files(args, o):
    rows = [("UNIT FILE", "STATE", "PRESET")]
    for name, st in uf.list_files(o.root):
        if args and not any(_match(name, a) for a in args):
            continue
        if o.type and name.rsplit(".", 1)[-1] not in o.type:
            continue
        if o.state and st not in o.state:
            continue
        rows.append((name, st, "enabled" if st in ("enabled", "disabled") else "-"))
    _table(rows, o)
    if not o.no_legend:
        print("\n%d unit files listed." % (len(rows) - 1))
    return 0


def _when(epoch):
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(epoch)) if epoch else "-"


def _span(seconds, suffix):
    return "-" if seconds is None else _ago(seconds).replace(" ago", suffix)


def cmd_list_timers(args, o):
    rows = [("NEXT", "LEFT", "LAST", "PASSED", "UNIT", "ACTIVATES")]
    for t in client.request(["timers"]).get("timers") or []:
        if args and not any(_match(t["unit"], a) for a in args):
            continue
        if not o.all and t.get("next") is None:
            continue
        rows.append((_when(t.get("next")), _span(t.get("left"), " left"), _when(t.get("last")),
                     _span(t.get("passed"), " ago"), t["unit"], t.get("activates") or ""))
    _table(rows, o)
    if not o.no_legend:
        print("\n%d timers listed." % (len(rows) - 1))
    return 0


def _properties(unit, u):
    props = {k: v for k, v in u.items() if not isinstance(v, (list, dict))}
    props.setdefault("Id", unit)
    found = uf.locate(unit)
    if found and found[1]:
        props["LoadState"] = "masked"
    elif not _loaded(u):
        props.update(LoadState="loaded" if found else "not-found", ActiveState="inactive", SubState="dead")
    fstate = _file_state(unit)
    if fstate:
        props["UnitFileState"] = fstate
        props["UnitFilePreset"] = "enabled" if fstate in ("enabled", "disabled") else ""
    if not props.get("FragmentPath") and found and not found[1]:
        props["FragmentPath"] = uf.fragment(unit) or ""
    props["CanStart"] = props["CanStop"] = "yes" if props["LoadState"] == "loaded" else "no"
    for key, value in list(props.items()):
        if key.endswith("Timestamp"):
            props[key] = _date(value) if value else ""
        elif value is None:
            props[key] = ""
        elif value is True or value is False:
            props[key] = "yes" if value else "no"
    return props


def cmd_show(args, o):
    if not args:
        reply = client.request(["unit", "system"])
        props = {"SystemState": reply.get("state", ""), "NFailedUnits": str(len(reply.get("failed", []))),
                 "Version": "richinit", "Virtualization": "container"}
        _print_props(props, o)
        return 0
    names = _expand(args, o)
    loaded = _units(names)
    for i, unit in enumerate(names):
        if i:
            print()
        u = loaded.get(unit) or {}
        _print_props(_properties(_real_name(unit, u), u), o)
    return 0


def _print_props(props, o):
    for k in o.property or list(props):
        value = props.get(k, "")
        if o.property or o.all or value != "":
            print(value if o.value else "%s=%s" % (k, value))


def cmd_cat(args, o):
    code = 0
    texts = []
    for unit in _expand(args, o):
        try:
            texts.append(uf.cat(unit, o.root))
        except uf.UnitFileError as e:
            err(str(e))
            code = 1
        except OSError as e:
            err("%s: %s" % (unit, e.strerror))
            code = 1
    print("\n".join(texts), end="")
    return code


def cmd_reset_failed(args, o):
    reply = client.request(["unit", "reset-failed"] + _expand(args, o))
    return 0 if reply.get("ok") else 1


def cmd_is_system_running(o):
    reply = client.request(["unit", "system"])
    state = reply.get("state", "offline")
    if not o.quiet:
        print(state)
    return 0 if state == "running" else 1


OFFLINE_VERBS = ("enable", "disable", "reenable", "mask", "unmask", "preset", "is-enabled", "list-unit-files",
                 "cat", "version")


def run(verb, args, o):
    if o.user:
        err("Failed to connect to bus: No medium found")
        return 1
    if verb == "version":
        print("systemd 252 (richinit)")  # scripts compare the number: the systemctl of Debian 12 it stands in for
        print("richinit's systemctl, talking to richinit (PID 1)")
        return 0
    if os.path.realpath(o.root) != "/" and verb not in OFFLINE_VERBS:
        raise Usage("--root is only for unit file operations (enable, disable, is-enabled...)")
    if verb in JOB_VERBS:
        return cmd_job(verb, args, o)
    if verb == "kill":
        return cmd_kill(args, o)
    if verb == "status":
        return cmd_status(args, o)
    if verb == "is-active":
        return cmd_is_active(args, o)
    if verb == "is-failed":
        return cmd_is_active(args, o, failed=True)
    if verb == "is-enabled":
        return cmd_is_enabled(args, o)
    if verb in ("enable", "disable", "reenable", "mask", "unmask", "preset"):
        return cmd_unit_files(verb, args, o)
    if verb in ("daemon-reload", "daemon-reexec"):
        return cmd_daemon_reload(o)
    if verb == "list-units":
        return cmd_list_units(args, o)
    if verb == "list-unit-files":
        return cmd_list_unit_files(args, o)
    if verb == "list-timers":
        return cmd_list_timers(args, o)
    if verb == "show":
        return cmd_show(args, o)
    if verb == "cat":
        return cmd_cat(args, o)
    if verb == "reset-failed":
        return cmd_reset_failed(args, o)
    if verb == "is-system-running":
        return cmd_is_system_running(o)
    if verb == "get-default":
        print("multi-user.target")
        return 0
    if verb == "default":
        return 0
    from richinit.tools import power
    return power.main("halt" if verb == "halt" else verb, [])


def main(argv):
    try:
        verb, args, o = parse(argv)
    except Usage as e:
        err(str(e))
        return 1
    if os.environ.get("SYSTEMD_OFFLINE") == "1" and verb in OFFLINE_VERBS:
        o.no_reload = True
    try:
        return run(verb, args, o)
    except Usage as e:
        err(str(e))
        return 1
    except client.Unreachable as e:
        err("System has not been booted with richinit as init system (PID 1). Can't operate.")
        err("Failed to connect to bus: %s" % e)
        return 1
