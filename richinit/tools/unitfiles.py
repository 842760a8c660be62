"""Unit files as systemctl sees them inside the container: where a unit's file is, whether it is
enabled, and enable/disable/mask/unmask, which edit the container's own /etc/systemd/system.

Everything is relative to `root` ("/" inside the container; a fixture tree in unit tests). Finding
a unit (search path, masks, aliases, templates, drop-ins) and reading its file are the services
loader's (`richinit.services.unitdirs` over `richinit.services.unitfile`); this module adds systemctl's
rules for the [Install] section:
  - enable: a symlink /etc/systemd/system/T.wants/NAME for each WantedBy=T (T.requires/ for
    RequiredBy=, T.upholds/ for UpheldBy=), /etc/systemd/system/A for each Alias=A, the same for
    each Also= unit; a template's instance (foo@x) links to the template's file (foo@.service);
  - disable: every such symlink in /etc/systemd/system removed, and the Also= units disabled;
  - is-enabled: the loader's `unitdirs.FileStates` (the states PID 1 also knows from the loader);
    a SysV-only script (/etc/init.d/NAME) is enabled when an /etc/rcN.d/S??NAME link exists, as
    update-rc.d makes.
"""

import os
import stat

from richinit.services import rootfs, unitdirs
from richinit.services import unitfile as U

ETC = "/etc/systemd/system"
INITD = "/etc/init.d"
RC_DIRS = ("/etc/rcS.d", "/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d", "/etc/rc5.d")
LINK_DIRS = (".wants", ".requires", ".upholds")
ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")
NO_INSTALL = ("The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\n"
              "Alias= settings in the [Install] section, and DefaultInstance= for template\n"
              "units). This means they are not meant to be enabled or disabled using systemctl.\n")


class UnitFileError(Exception):
    """One line systemctl prints after "Failed to ...: "."""


def unit_name(arg):
    """`nginx` -> nginx.service; names with a unit suffix are kept."""
    return arg if arg.rpartition(".")[2] in U.UNIT_TYPES else arg + ".service"


def stem(name):
    base, dot, utype = name.rpartition(".")
    return base if dot and utype in U.UNIT_TYPES else name


def template_of(name):
    """foo@x.service -> foo@.service; None for a name that is not an instance."""
    try:
        prefix, instance, utype = U.split_name(name)
    except ValueError:
        return None
    return "%s@.%s" % (prefix, utype) if instance else None


class _Tree:
    """One look at the unit directories under `root` (the loader's Catalog); a change to the files
    wants a new one."""

    def __init__(self, root):
        self.base = root
        self.root = rootfs.Root(root)
        self.catalog = unitdirs.Catalog(self.root)
        self.states = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.root.close()

    def path(self, inside):
        """Where a path inside the container is for this process (for the files we write)."""
        return os.path.join(self.base, inside.lstrip("/"))

    def found(self, name):
        """The loader's Found for a name when there is a file or a mask for it, else None."""
        f = self.catalog.find(name)
        return f if f.masked or f.path is not None else None

    def install(self, name):
        try:
            return unitdirs.install_section(self.root, self.catalog.find(name).path)
        except OSError as e:
            raise UnitFileError("%s: %s" % (name, e.strerror or e)) from None

    def etc_links(self):
        """(path inside, link name, target) of every symlink in /etc/systemd/system and its
        .wants/.requires/.upholds directories."""
        out = []
        for entry, _st, link in self.root.scan(ETC) or ():
            if link is not None:
                out.append(("%s/%s" % (ETC, entry), entry, link))
            elif entry.endswith(LINK_DIRS):
                d = "%s/%s" % (ETC, entry)
                out.extend(("%s/%s" % (d, sub), sub, target) for sub, _st, target in self.root.scan(d) or ()
                           if target is not None)
        return out

    def sysv_script(self, name):
        if not name.endswith(".service"):
            return None
        p = "%s/%s" % (INITD, stem(name))
        st = self.root.stat(p)
        return p if st is not None and stat.S_ISREG(st.st_mode) else None

    def sysv_enabled(self, name):
        base = stem(name)
        return any(e.startswith("S") and e[3:] == base for d in RC_DIRS for e in self.root.listdir(d) or ())

    def state(self, name):
        if self.found(name) is None:
            if self.sysv_script(name) is None:
                return "not-found"
            return "enabled" if self.sysv_enabled(name) else "disabled"
        if self.states is None:
            self.states = unitdirs.FileStates(self.root, self.catalog)
        return self.states.state(name)

    def symlink(self, link, target, changes):
        p = self.path(link)
        if os.path.islink(p) and os.readlink(p) == target:
            return
        if os.path.lexists(p):
            if not os.path.islink(p):
                raise UnitFileError("File %s already exists." % link)
            os.unlink(p)
        os.makedirs(os.path.dirname(p), mode=0o755, exist_ok=True)
        os.symlink(target, p)
        changes.append(("symlink", link, target))


def locate(name, root="/"):
    """(where the unit's name is, as seen inside: "/lib/systemd/system/x.service", masked) or None.

    An instance falls back to its template's file; a symlinked name is reported where it is
    found (fragment() says where it leads).
    """
    with _Tree(root) as t:
        f = t.found(name)
        return None if f is None else (f.where, f.masked)


def unit_id(name, root="/"):
    """The unit's own name: the one an alias (a link in a unit directory) leads to, else `name`."""
    with _Tree(root) as t:
        f = t.catalog.find(name)
        return f.id if f.path is not None and f.problem is None else name


def status_info(name, root="/"):
    """What systemctl status shows of a unit's files, in one look: (masked, the file it reads (a
    SysV-only script's for its generated unit) or None, is-enabled's state or "not-found", the
    drop-ins that apply, in the order they apply)."""
    with _Tree(root) as t:
        f = t.found(name)
        if f is not None and f.masked:
            return True, None, "masked", []
        path = f.path if f is not None else t.sysv_script(name)
        dropins = []
        if path is not None:
            uid = f.id if f is not None else name
            dropins = unitdirs.dropin_paths(t.catalog, uid, t.catalog.aliases().get(uid, []),
                                            f.template if f is not None else None)
        return False, path, t.state(name), dropins


def fragment(name, root="/"):
    """The unit's real file (a symlinked name followed, inside the root), or None."""
    with _Tree(root) as t:
        return t.catalog.find(name).path


def description(name, root="/"):
    """The unit's Description= (file and drop-ins), or "" (for the units PID 1 knows only by name)."""
    with _Tree(root) as t:
        if t.catalog.find(name).path is None:
            return ""
        unit = unitdirs.read_unit(t.root, t.catalog, name)
    return next((a.value for a in reversed(unit.assigns) if a.section == "Unit" and a.key == "Description"), "")


def state(name, root="/"):
    """systemctl is-enabled's answer for one unit name, or "not-found"."""
    with _Tree(root) as t:
        return t.state(name)


def list_files(root="/"):
    """[(unit file name, state)] of every unit file in the search path and SysV-only script."""
    from richinit.services.sysv import NOT_SCRIPTS  # not on is-enabled's path

    with _Tree(root) as t:
        seen = {name: t.state(name) for name in t.catalog.unit_names()}
        for s in t.root.listdir(INITD) or ():
            name = s + ".service"
            if name not in seen and not s.startswith(".") and s not in NOT_SCRIPTS:
                seen[name] = "generated"
    return sorted(seen.items())


def _with_also(names, apply):
    """apply(name) for the names and, transitively, the Also= units of each (once each); apply returns
    the unit's [Install] section."""
    done, todo = set(), list(names)
    while todo:
        name = todo.pop(0)
        if name not in done:
            done.add(name)
            todo += apply(name)["Also"]


def enable(names, root="/"):
    """Enable units; returns [("symlink", link, target)]. UnitFileError names what went wrong."""
    changes = []

    def one(name):
        f = t.found(name)
        if f is None:
            raise UnitFileError("Unit file %s does not exist." % name)
        if f.masked:
            raise UnitFileError("Unit file %s is masked." % name)
        inst = t.install(name)
        link_name = name
        if U.split_name(name)[1] == "":
            if not inst["DefaultInstance"]:
                return inst
            link_name = stem(name) + inst["DefaultInstance"][-1] + name[len(stem(name)):]
        for key, kind in (("WantedBy", ".wants"), ("RequiredBy", ".requires"), ("UpheldBy", ".upholds")):
            for target in inst[key]:
                t.symlink("%s/%s%s/%s" % (ETC, target, kind, link_name), f.path, changes)
        for alias in inst["Alias"]:
            t.symlink("%s/%s" % (ETC, alias), f.path, changes)
        return inst

    with _Tree(root) as t:
        _with_also(names, one)
    return changes


def disable(names, root="/"):
    """Disable units; returns [("unlink", path)]."""
    changes = []

    def one(name):
        real = t.catalog.find(name).path
        inst = t.install(name) if real else {"Alias": [], "Also": []}
        names_of = {name} | set(inst["Alias"])
        for path, link_name, target in t.etc_links():
            if target == "/dev/null":
                continue
            in_dir = path.rpartition("/")[0] != ETC
            if (in_dir and (link_name in names_of or template_of(link_name) == name)) or \
                    (not in_dir and link_name in inst["Alias"]) or \
                    (in_dir and real and target == real and os.path.basename(real) == name):
                os.unlink(t.path(path))
                changes.append(("unlink", path))
        return inst

    with _Tree(root) as t:
        _with_also(names, one)
    return changes


def mask(names, root="/"):
    changes = []
    with _Tree(root) as t:
        for name in names:
            t.symlink("%s/%s" % (ETC, name), "/dev/null", changes)
    return changes


def unmask(names, root="/"):
    changes = []
    for name in names:
        for d in unitdirs.CONFIG_DIRS:
            p = os.path.join(root, d.lstrip("/"), name)
            if os.path.islink(p) and os.readlink(p) == "/dev/null":
                os.unlink(p)
                changes.append(("unlink", "%s/%s" % (d, name)))
    return changes


def cat(name, root="/"):
    """systemctl cat: the fragment then its drop-ins, each under a `# PATH` line."""
    out = []
    with _Tree(root) as t:
        f = t.found(name)
        if f is None:
            script = t.sysv_script(name)
            if script is None:
                raise UnitFileError("No files found for %s." % name)
            paths = [script]
        elif f.masked:
            raise UnitFileError("Unit %s is masked." % name)
        else:
            aliases = t.catalog.aliases().get(f.id, [])
            paths = [f.path] + unitdirs.dropin_paths(t.catalog, f.id, aliases, f.template)
        for p in paths:
            text = t.root.read(p).decode("utf-8", "replace")
            out.append("# %s\n%s%s" % (p, text, "" if text.endswith("\n") else "\n"))
    return "\n".join(out)
