"""systemctl inside a richinit container: systemd's common verbs, exit codes and output, served
by PID 1's control socket (richinit.verbs) and, for unit files, by the container's own files
(richinit.tools.unitfiles).

Exit codes are systemd's (LSB for status): 0 ok/active; 1 failed; 3 inactive (status, is-active);
4 no such unit (status); 5 a job on a unit that is not loaded. Output is close enough for scripts
that grep it: `Active: active (running) since ...`, `Loaded: loaded (PATH; enabled; preset: enabled)`.
"""

import fnmatch
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
               "--job-mode": "job_mode", "--what": "what"}
_FLAGS = {"-q": "quiet", "--quiet": "quiet", "--no-pager": None, "--no-legend": "no_legend", "--now": "now",
          "--no-block": "no_block", "--system": None, "-l": None, "--full": None, "-a": "all", "--all": "all",
          "--value": "value", "--plain": "plain", "--no-reload": "no_reload", "-f": "force", "--force": "force",
          "--runtime": "runtime", "--no-ask-password": None, "--failed": "failed", "--user": "user",
          "--global": "user", "-r": None, "--recursive": None, "--show-types": None, "--wait": None,
          "--no-wall": None, "-i": None, "--ignore-inhibitors": None, "--check-inhibitors=no": None}
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
    verb = words[0] if words else "list-units"
    if verb not in VERBS:
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
    elif field in ("host", "machine", "root"):
        raise Usage("--%s is not supported inside a richinit container" % field)
    else:
        setattr(o, field, value)


def err(msg):
    sys.stderr.write(msg + "\n")


# ---------------------------------------------------------------- talking to PID 1

def _units(names=()):
    reply = client.request(["unit", "units"] + list(names))
    if not reply.get("ok"):
        raise client.Unreachable(reply.get("error", "no reply"))
    return {u["name"]: u for u in reply["units"]}


def _is_service(name):
    return name.endswith(".service")


def _service_stems(names):
    return [uf.stem(n) for n in names if _is_service(n)]


def _expand(args, o, known=None):
    """Unit names from the arguments: `.service` added; globs matched against the loaded units."""
    out = []
    for a in args:
        if any(c in a for c in "*?["):
            known = known if known is not None else _units()
            pattern = uf.unit_name(a) if not a.endswith("*") else a
            out += sorted(u["unit"] for u in known.values() if fnmatch.fnmatchcase(u["unit"], pattern))
        else:
            out.append(uf.unit_name(a))
    return out


# ---------------------------------------------------------------- verbs

def cmd_job(verb, args, o):
    verb = {"condrestart": "try-restart", "force-reload": "reload-or-restart"}.get(verb, verb)
    names = _expand(args, o)
    if not names:
        raise Usage("Too few arguments.")
    code = 0
    services, others = [n for n in names if _is_service(n)], [n for n in names if not _is_service(n)]
    for n in others:
        if n not in TARGETS_ALWAYS_ACTIVE and not n.endswith(".target"):
            err("Failed to %s %s: Unit %s not found." % (verb, n, n))
            code = 5
    masked = [n for n in services if uf.state(n) == "masked"]
    for n in masked:
        if verb in ("start", "restart", "reload-or-restart", "try-restart", "try-reload-or-restart"):
            err("Failed to %s %s: Unit %s is masked." % (verb, n, n))
            code = 1
    stems = [uf.stem(n) for n in services if n not in masked or verb == "stop"]
    if not stems:
        return code
    words = ["unit", "job", verb] + (["--no-block"] if o.no_block else []) + stems
    reply = client.request(words)
    if not reply.get("ok"):
        err("Failed to %s %s: %s" % (verb, " ".join(services), reply.get("error")))
        return 1
    for r in reply["results"]:
        unit = r["name"] + ".service"
        result = r["result"]
        if result == "not-found":
            err("Failed to %s %s: Unit %s not found." % (verb, unit, unit))
            code = max(code, 5)
        elif result == "not-loaded":
            err("Failed to stop %s: Unit %s not loaded." % (unit, unit))
            code = max(code, 5)
        elif result == "not-applicable":
            err("Failed to %s %s: Job type reload is not applicable for unit %s." % (verb, unit, unit))
            code = max(code, 1)
        elif result == "failed" and verb != "stop":
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
    who = "main" if o.kill_whom == "main" else "all"
    reply = client.request(["unit", "kill", str(num), who] + _service_stems(names))
    if not reply.get("ok"):
        err("Failed to kill unit: %s" % reply.get("error"))
        return 1
    for n in reply.get("not_running", []):
        err("Failed to kill unit %s.service: No main process to kill" % n)
    return 1 if reply.get("not_running") else 0


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


def _timestamp(since):
    t = time.time() - since
    return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(t))


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
    for d in os.listdir("/proc"):
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


def _loaded_line(u, unit):
    found = uf.locate(unit)
    fstate = _file_state(unit)
    if found and found[1]:
        return "masked (Reason: Unit %s is masked.)" % unit
    path = u.get("source") or (uf.fragment(unit) if found else None) or "/etc/init.d/" + uf.stem(unit)
    if u.get("origin") == "sysv" or (not found and fstate):
        return "loaded (%s; generated)" % path
    preset = "enabled" if fstate in ("enabled", "disabled") else None
    return "loaded (%s; %s%s)" % (path, fstate or "static", "; preset: %s" % preset if preset else "")


def _bullet(active):
    return {"active": "●", "failed": "×", "activating": "●", "deactivating": "●"}.get(active, "○")


def _status_one(unit, u, o, out):
    active, sub = u.get("active") or "inactive", u.get("sub") or "dead"
    desc = u.get("description") or ""
    out.append("%s %s%s" % (_bullet(active), unit, " - " + desc if desc else ""))
    out.append("     Loaded: " + _loaded_line(u, unit))
    if u.get("warnings"):
        for w in u["warnings"][:3]:
            out.append("    Warning: " + w)
    line = "%s (%s)" % (active, sub) if active != "failed" else "failed (Result: %s)" % u.get("result")
    if u.get("since") is not None:
        line += " since %s; %s" % (_timestamp(u["since"]), _ago(u["since"]))
    out.append("     Active: " + line)
    if u.get("state") == "skipped" and u.get("reason"):
        out.append("  Condition: start condition failed: %s" % u["reason"])
    elif u.get("reason") and active in ("failed", "inactive") and u.get("reason") not in ("stopped", "reset"):
        out.append("     Reason: %s" % u["reason"])
    if u.get("pid"):
        out.append("   Main PID: %d (%s)" % (u["pid"], _comm(u["pid"])))
    elif u.get("last_exit") is not None and active in ("failed", "inactive", "active"):
        code = u["last_exit"]
        status = "%d/%s" % (code, "SUCCESS" if code == 0 else "FAILURE") if code < 128 else \
            "%d/signal" % (code - 128)
        out.append("   Main PID: (code=%s, status=%s)" % ("exited" if code < 128 else "killed", status))
    pids = _group_pids(u.get("pids") or [])
    if pids:
        out.append("      Tasks: %d" % len(pids))
        out.append("     CGroup: /system.slice/%s" % unit)
        for i, p in enumerate(pids):
            out.append("             %s%d %s" % ("└─" if i == len(pids) - 1 else "├─", p, _cmdline(p)))
    if o.lines:
        try:
            logs = client.request(["logs", uf.stem(unit)])
        except client.Unreachable:
            logs = {}
        lines = logs.get("lines") or []
        if lines:
            out.append("")
            out += ["%s %s: %s" % (time.strftime("%b %d %H:%M:%S"), uf.stem(unit), x) for x in lines[-o.lines:]]


def cmd_status(args, o):
    if not args:
        return cmd_system_status(o)
    names = _expand(args, o)
    loaded = _units(_service_stems(names))
    code, blocks = 0, []
    for unit in names:
        if not _is_service(unit):
            if unit in TARGETS_ALWAYS_ACTIVE or uf.locate(unit):
                blocks.append(["● %s" % unit, "     Loaded: loaded (%s)" % (uf.fragment(unit) or unit),
                               "     Active: active"])
                continue
            err("Unit %s could not be found." % unit)
            code = max(code, 4)
            continue
        u = loaded.get(uf.stem(unit)) or {}
        if u.get("active") is None:
            st = uf.state(unit)
            if st == "not-found":
                err("Unit %s could not be found." % unit)
                code = max(code, 4)
                continue
            u = {"active": "inactive", "sub": "dead"}
        out = []
        _status_one(unit, u, o, out)
        blocks.append(out)
        if u["active"] != "active":
            code = max(code, 3)
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
    loaded = _units(_service_stems(names))
    code = 0 if failed is False else 1
    ok_any = False
    for unit in names:
        if _is_service(unit):
            active = (loaded.get(uf.stem(unit)) or {}).get("active") or "inactive"
        else:
            active = "active" if unit in TARGETS_ALWAYS_ACTIVE or uf.locate(unit) else "inactive"
        if not o.quiet:
            print(active)
        hit = active == ("failed" if failed else "active")
        ok_any = ok_any or hit
        if not failed and not hit:
            code = 3
    if failed:
        return 0 if ok_any else 1
    return code


def cmd_is_enabled(args, o):
    names = _expand(args, o)
    if not names:
        raise Usage("Too few arguments.")
    code = 1
    for unit in names:
        st = uf.state(unit)
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
    names = _expand(args, o)
    if not names:
        raise Usage("Too few arguments.")
    if o.runtime:
        raise Usage("--runtime is not supported inside a richinit container")
    try:
        if verb in ("enable", "reenable", "preset"):
            if verb == "reenable":
                _report(uf.disable(names), o)
            units = [n for n in names if uf.locate(n) is not None]
            _sysv_sync([n for n in names if n not in units], "enable", o)
            changes = uf.enable(units)
            if units and not changes and all(uf.state(n) == "static" for n in units):
                err(uf.NO_INSTALL)
            _report(changes, o)
        elif verb == "disable":
            units = [n for n in names if uf.locate(n) is not None]
            _sysv_sync([n for n in names if n not in units], "disable", o)
            _report(uf.disable(units), o)
        elif verb == "mask":
            _report(uf.mask(names), o)
        elif verb == "unmask":
            _report(uf.unmask(names), o)
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
    start = 1 if o.no_legend else 0
    for r in rows[start:]:
        print(("  " if not o.plain else "") + " ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False))
              .rstrip() + " " + r[-1])


def cmd_list_units(args, o):
    loaded = _units()
    rows = [("UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION")]
    failed_only = o.failed or "failed" in o.state
    for u in sorted(loaded.values(), key=lambda u: u["unit"]):
        if o.type and "service" not in o.type:
            continue
        if args and not any(fnmatch.fnmatchcase(u["unit"], uf.unit_name(a) if "." not in a else a)
                            for a in args):
            continue
        if failed_only and u["active"] != "failed":
            continue
        if o.state and not failed_only and u["active"] not in o.state and u["sub"] not in o.state:
            continue
        if not o.all and not o.state and not args and u["active"] == "inactive":
            continue
        rows.append((u["unit"], "loaded", u["active"], u["sub"], u.get("description") or ""))
    _table(rows, o)
    if not o.no_legend:
        print("\n%d loaded units listed." % (len(rows) - 1))
    return 0


def cmd_list_unit_files(args, o):
    rows = [("UNIT FILE", "STATE", "PRESET")]
    for name, st in uf.list_files():
        if args and not any(fnmatch.fnmatchcase(name, a) for a in args):
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


def cmd_list_timers(args, o):
    rows = [("NEXT", "LEFT", "LAST", "PASSED", "UNIT", "ACTIVATES")]
    reply = client.request(["unit", "units"])
    timers = reply.get("timers") or []
    for t in timers:
        rows.append((t.get("next") or "n/a", t.get("left") or "n/a", t.get("last") or "n/a",
                     t.get("passed") or "n/a", t["unit"], t.get("service", "") + ".service"))
    if len(rows) == 1:
        for name, st in uf.list_files():
            if name.endswith(".timer") and st in uf.ENABLED_STATES:
                rows.append(("n/a", "n/a", "n/a", "n/a", name, uf.stem(name) + ".service"))
    _table(rows, o)
    if not o.no_legend:
        print("\n%d timers listed." % (len(rows) - 1))
    return 0


def _properties(unit, u):
    fstate = _file_state(unit)
    found = uf.locate(unit)
    load = "masked" if found and found[1] else ("loaded" if u.get("active") is not None or found else "not-found")
    pid = u.get("pid") or 0
    props = {
        "Id": unit, "Names": unit, "Description": u.get("description") or "",
        "LoadState": load, "ActiveState": u.get("active") or "inactive", "SubState": u.get("sub") or "dead",
        "UnitFileState": fstate or "", "UnitFilePreset": "enabled" if fstate in ("enabled", "disabled") else "",
        "FragmentPath": u.get("source") or (uf.fragment(unit) or "" if found else ""),
        "MainPID": str(pid), "ExecMainPID": str(pid),
        "ExecMainStatus": str(u.get("last_exit") if u.get("last_exit") is not None else 0),
        "NRestarts": str(u.get("restarts") or 0), "Result": u.get("result") or "success",
        "Type": u.get("type") or "simple", "Restart": {"never": "no"}.get(u.get("restart"), u.get("restart") or "no"),
        "RemainAfterExit": "yes" if u.get("remain_after_exit") else "no",
        "After": " ".join(x + ".service" for x in u.get("after", [])),
        "Requires": " ".join(x + ".service" for x in u.get("requires", [])),
        "Wants": " ".join(x + ".service" for x in u.get("wants", [])),
        "CanStart": "yes" if load == "loaded" else "no", "CanStop": "yes" if load == "loaded" else "no",
        "CanReload": "yes" if u.get("reloadable") else "no",
    }
    if u.get("since") is not None and props["ActiveState"] == "active":
        props["ActiveEnterTimestamp"] = _timestamp(u["since"])
    return props


def cmd_show(args, o):
    if not args:
        reply = client.request(["unit", "system"])
        props = {"SystemState": reply.get("state", ""), "NFailedUnits": str(len(reply.get("failed", []))),
                 "Version": "richinit", "Virtualization": "container"}
        _print_props(props, o)
        return 0
    names = _expand(args, o)
    loaded = _units(_service_stems(names))
    blocks = []
    for unit in names:
        u = loaded.get(uf.stem(unit)) or {} if _is_service(unit) else \
            {"active": "active" if unit in TARGETS_ALWAYS_ACTIVE else None}
        blocks.append(_properties(unit, u))
    for i, props in enumerate(blocks):
        if i:
            print()
        _print_props(props, o)
    return 0


def _print_props(props, o):
    keys = o.property or list(props)
    for k in keys:
        if k not in props and o.property:
            props[k] = ""
        if k in props and (o.property or o.all or props[k] != ""):
            print(props[k] if o.value else "%s=%s" % (k, props[k]))


def cmd_cat(args, o):
    code = 0
    texts = []
    for unit in _expand(args, o):
        try:
            texts.append(uf.cat(unit))
        except uf.UnitFileError as e:
            err(str(e))
            code = 1
        except OSError as e:
            err("%s: %s" % (unit, e.strerror))
            code = 1
    print("\n".join(texts), end="")
    return code


def cmd_reset_failed(args, o):
    reply = client.request(["unit", "reset-failed"] + _service_stems(_expand(args, o)))
    return 0 if reply.get("ok") else 1


def cmd_is_system_running(o):
    reply = client.request(["unit", "system"])
    state = reply.get("state", "offline")
    if not o.quiet:
        print(state)
    return 0 if state == "running" else 1


def run(verb, args, o):
    if o.user:
        err("Failed to connect to bus: No medium found")
        return 1
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
    return power.main(verb, [])


def main(argv):
    try:
        verb, args, o = parse(argv)
    except Usage as e:
        err(str(e))
        return 1
    if os.environ.get("SYSTEMD_OFFLINE") == "1" and verb in ("enable", "disable", "mask", "unmask", "preset",
                                                              "is-enabled", "list-unit-files", "cat"):
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
