"""Unit files as systemctl sees them inside the container: where a unit's file is, whether it is
enabled, and enable/disable/mask/unmask, which edit the container's own /etc/systemd/system.

Everything is relative to `root` ("/" inside the container; a fixture tree in unit tests), and
follows systemd's rules:
  - search order: /etc/systemd/system, /run/systemd/system, /lib/systemd/system,
    /usr/lib/systemd/system; a name linked to /dev/null there is masked;
  - enable: per the unit's [Install] section, a symlink /etc/systemd/system/T.wants/NAME for each
    WantedBy=T (T.requires/ for RequiredBy=), /etc/systemd/system/A for each Alias=A, the same for
    each Also= unit; a template's instance (foo@x) links to the template's file (foo@.service);
  - disable: every such symlink in /etc/systemd/system removed, and the Also= units disabled;
  - is-enabled: masked | alias | static (no [Install]) | enabled (linked from /etc) | indirect
    (only Also=, or a template without DefaultInstance) | disabled; a SysV-only script
    (/etc/init.d/NAME) is enabled when an /etc/rcN.d/S??NAME link exists, as update-rc.d makes.
"""

import os

SEARCH = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
ETC = "/etc/systemd/system"
INITD = "/etc/init.d"
RC_DIRS = ("/etc/rcS.d", "/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d", "/etc/rc5.d")
SUFFIXES = (".service", ".socket", ".timer", ".target", ".path", ".mount", ".slice", ".scope", ".device",
            ".swap", ".automount")
ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")
NO_INSTALL = ("The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\n"
              "Alias= settings in the [Install] section, and DefaultInstance= for template\n"
              "units). This means they are not meant to be enabled or disabled using systemctl.\n")


class UnitFileError(Exception):
    """One line systemctl prints after "Failed to ...: "."""


def unit_name(arg):
    """`nginx` -> nginx.service; names with a unit suffix are kept."""
    return arg if arg.endswith(SUFFIXES) else arg + ".service"


def stem(name):
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def template_of(name):
    """foo@x.service -> foo@.service; None for a name that is not an instance."""
    base = stem(name)
    if "@" not in base or base.endswith("@"):
        return None
    return base[:base.index("@") + 1] + name[len(base):]


def _path(root, path):
    return os.path.join(root, path.lstrip("/"))


def _points_to_null(root, path):
    try:
        return os.path.islink(path) and os.readlink(path) in ("/dev/null", _path(root, "/dev/null"))
    except OSError:
        return False


def _resolve(root, inside):
    """`inside` with its symlinks followed as the container sees them (absolute targets stay in the
    root), or None when it leads nowhere."""
    for _ in range(16):
        p = _path(root, inside)
        if not os.path.islink(p):
            return inside if os.path.exists(p) else None
        inside = os.path.normpath(os.path.join(os.path.dirname(inside), os.readlink(p)))
    return None


def locate(name, root="/"):
    """(where the unit's name is, as seen inside: "/lib/systemd/system/x.service", masked) or None.

    An instance falls back to its template's file; a symlinked name is reported where it is
    found (fragment() and alias_of() say where it leads).
    """
    for candidate in (name, template_of(name)):
        if candidate is None:
            continue
        for d in SEARCH:
            inside = os.path.join(d, candidate)
            p = _path(root, inside)
            if os.path.lexists(p):
                if _points_to_null(root, p):
                    return inside, True
                if _resolve(root, inside) is not None:
                    return inside, False
    return None


def fragment(name, root="/"):
    """The unit's real file (a symlinked name followed, inside the root), or None."""
    found = locate(name, root)
    if found is None or found[1]:
        return None
    return _resolve(root, found[0])


def alias_of(name, root="/"):
    """The unit name this name is an alias of (a symlink to another unit file), else None."""
    found = locate(name, root)
    if found is None or found[1]:
        return None
    real = fragment(name, root)
    if real is None or os.path.basename(real) in (name, template_of(name)):
        return None
    return os.path.basename(real)


def install_section(path, root="/"):
    """{"WantedBy": [...], "RequiredBy": [...], "Alias": [...], "Also": [...], "DefaultInstance": [..]}"""
    out = {"WantedBy": [], "RequiredBy": [], "Alias": [], "Also": [], "DefaultInstance": []}
    with open(_path(root, path), encoding="utf-8", errors="replace") as f:
        text = f.read()
    for key, value in _section(text, "Install"):
        if key in out:
            if value == "":
                out[key] = []
            else:
                out[key] += value.split() if key != "DefaultInstance" else [value]
    return out


def description(name, root="/"):
    """The unit file's Description=, or "" (for the units PID 1 knows only by name: sockets, timers)."""
    path = fragment(name, root)
    if path is None:
        return ""
    try:
        with open(_path(root, path), encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return next((v for k, v in _section(text, "Unit") if k == "Description"), "")


def _section(text, wanted):
    """(key, value) of one section of a unit file: comments, continuations, last-wins left to the caller."""
    current, pending = None, ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        if current == wanted and "=" in line:
            key, _, value = line.partition("=")
            yield key.strip(), value.strip()


def _links_in(root, directory):
    """(path inside, link name, target) of every symlink in DIR and its *.wants/*.requires dirs."""
    base = _path(root, directory)
    out = []
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return out
    for e in entries:
        p = os.path.join(base, e)
        if os.path.islink(p):
            out.append((os.path.join(directory, e), e, os.readlink(p)))
        elif e.endswith((".wants", ".requires")) and os.path.isdir(p):
            for sub in sorted(os.listdir(p)):
                q = os.path.join(p, sub)
                if os.path.islink(q):
                    out.append((os.path.join(directory, e, sub), sub, os.readlink(q)))
    return out


def _sysv_script(name, root):
    if not name.endswith(".service"):
        return None
    p = os.path.join(INITD, stem(name))
    return p if os.path.isfile(_path(root, p)) else None


def _sysv_enabled(name, root):
    base = stem(name)
    for d in RC_DIRS:
        try:
            entries = os.listdir(_path(root, d))
        except OSError:
            continue
        if any(e.startswith("S") and e[3:] == base for e in entries):
            return True
    return False


def state(name, root="/"):
    """systemctl is-enabled's answer for one unit name, or "not-found"."""
    found = locate(name, root)
    if found is None:
        script = _sysv_script(name, root)
        if script is None:
            return "not-found"
        return "enabled" if _sysv_enabled(name, root) else "disabled"
    if found[1]:
        return "masked"
    if alias_of(name, root):
        return "alias"
    real = fragment(name, root)
    try:
        inst = install_section(real, root)
    except OSError:
        return "bad"
    linked = False
    for path, link_name, _target in _links_in(root, ETC):
        if os.path.dirname(path) != ETC:
            linked = linked or link_name == name or template_of(link_name) == name
        else:
            linked = linked or (link_name in inst["Alias"] and not _points_to_null(root, _path(root, path)))
    if not (inst["WantedBy"] or inst["RequiredBy"] or inst["Alias"] or inst["Also"]):
        return "static"
    if linked:
        return "enabled"
    if template_of(name) is None and stem(name).endswith("@") and not inst["DefaultInstance"]:
        return "indirect"
    if not (inst["WantedBy"] or inst["RequiredBy"] or inst["Alias"]):
        return "indirect"
    return "disabled"


def list_files(root="/"):
    """[(unit file name, state)] of every unit file in the search path and SysV-only script."""
    seen = {}
    for d in SEARCH:
        try:
            entries = sorted(os.listdir(_path(root, d)))
        except OSError:
            continue
        for e in entries:
            if e.endswith(SUFFIXES) and e not in seen and not os.path.isdir(_path(root, os.path.join(d, e))):
                seen[e] = state(e, root)
    try:
        scripts = sorted(os.listdir(_path(root, INITD)))
    except OSError:
        scripts = []
    for s in scripts:
        name = s + ".service"
        if name not in seen and not s.startswith(".") and s not in ("README", "skeleton", "rc", "rcS"):
            seen[name] = "generated"
    return sorted(seen.items())


def _symlink(root, link, target, changes):
    p = _path(root, link)
    if os.path.islink(p) and os.readlink(p) == target:
        return
    if os.path.lexists(p):
        if not os.path.islink(p):
            raise UnitFileError("File %s already exists." % link)
        os.unlink(p)
    os.makedirs(os.path.dirname(p), mode=0o755, exist_ok=True)
    os.symlink(target, p)
    changes.append(("symlink", link, target))


def enable(names, root="/"):
    """Enable units; returns [("symlink", link, target)]. UnitFileError names what went wrong."""
    changes, done = [], set()
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name in done:
            continue
        done.add(name)
        found = locate(name, root)
        if found is None:
            raise UnitFileError("Unit file %s does not exist." % name)
        if found[1]:
            raise UnitFileError("Unit file %s is masked." % name)
        real = fragment(name, root)
        inst = install_section(real, root)
        link_name = name
        if stem(name).endswith("@"):
            if not inst["DefaultInstance"]:
                continue
            link_name = stem(name) + inst["DefaultInstance"][-1] + name[len(stem(name)):]
        for key, kind in (("WantedBy", ".wants"), ("RequiredBy", ".requires")):
            for target in inst[key]:
                _symlink(root, os.path.join(ETC, target + kind, link_name), real, changes)
        for alias in inst["Alias"]:
            _symlink(root, os.path.join(ETC, alias), real, changes)
        todo += inst["Also"]
    return changes


def disable(names, root="/"):
    """Disable units; returns [("unlink", path)]."""
    changes, done = [], set()
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name in done:
            continue
        done.add(name)
        real = fragment(name, root)
        inst = install_section(real, root) if real else {"Alias": [], "Also": []}
        names_of = {name} | set(inst["Alias"])
        for path, link_name, target in _links_in(root, ETC):
            if _points_to_null(root, _path(root, path)):
                continue
            in_dir = os.path.dirname(path) != ETC
            instance_of = template_of(link_name) == name
            if (in_dir and (link_name in names_of or instance_of)) or \
                    (not in_dir and link_name in inst["Alias"]) or \
                    (in_dir and real and target == real and os.path.basename(real) == name):
                os.unlink(_path(root, path))
                changes.append(("unlink", path))
        todo += inst["Also"]
    return changes


def mask(names, root="/"):
    changes = []
    for name in names:
        _symlink(root, os.path.join(ETC, name), "/dev/null", changes)
    return changes


def unmask(names, root="/"):
    changes = []
    for name in names:
        for d in (ETC, "/run/systemd/system"):
            p = _path(root, os.path.join(d, name))
            if _points_to_null(root, p):
                os.unlink(p)
                changes.append(("unlink", os.path.join(d, name)))
    return changes


def dropins(name, root="/"):
    """Drop-in files that apply to the unit, in the order systemd reads them (by file name)."""
    dirs = [name + ".d"]
    t = template_of(name)
    if t:
        dirs.append(t + ".d")
    suffix = name[len(stem(name)):]
    dirs.append(suffix[1:] + ".d")  # service.d/: every service
    found = {}
    for d in SEARCH:
        for sub in dirs:
            try:
                entries = os.listdir(_path(root, os.path.join(d, sub)))
            except OSError:
                continue
            for e in entries:
                if e.endswith(".conf") and e not in found:
                    found[e] = os.path.join(d, sub, e)
    return [found[k] for k in sorted(found)]


def cat(name, root="/"):
    """systemctl cat: the fragment then its drop-ins, each under a `# PATH` line."""
    found = locate(name, root)
    if found is None:
        script = _sysv_script(name, root)
        if script is None:
            raise UnitFileError("No files found for %s." % name)
        paths = [script]
    elif found[1]:
        raise UnitFileError("Unit %s is masked." % name)
    else:
        paths = [fragment(name, root)] + dropins(name, root)
    out = []
    for p in paths:
        with open(_path(root, p), encoding="utf-8", errors="replace") as f:
            text = f.read()
        out.append("# %s\n%s%s" % (p, text, "" if text.endswith("\n") else "\n"))
    return "\n".join(out)
