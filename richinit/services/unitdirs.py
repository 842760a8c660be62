"""Finding and reading systemd units in an image (systemd.unit(5)): the search path, masks, aliases,
templates and drop-ins, one unit's file and drop-ins as assignments, and a unit file's [Install].

Shared by the services loader (`richinit.services.units`, which gives the values their meaning) and
the in-container systemctl (`richinit.tools.unitfiles`), which imports it on every call: keep it
small. Every path is resolved inside the image's root (`rootfs.Root`); nothing from the image is run.
Links are followed by hand (at most 32 hops): a loop, a dangling link, or one whose target climbs out
of the root is a problem of that unit, reported with the link's path.
"""

import os
import stat

from richinit.services import unitfile as U

SEARCH_PATH = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
CONFIG_DIRS = ("/etc/systemd/system", "/run/systemd/system")
MAX_HOPS = 32


# ---------------------------------------------------------------------------------------------
# The unit directories
# ---------------------------------------------------------------------------------------------

def _lexical_join(base_dir, target):
    """Absolute path of a link target relative to base_dir, or None when `..` climbs above /."""
    parts = [] if target.startswith("/") else [p for p in base_dir.split("/") if p]
    for p in target.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(p)
    return "/" + "/".join(parts)


class Found:
    """What a unit name resolved to: `path` of the file to read (None if there is none), `id` the
    unit's own name (differs from the name asked when that is an alias), `masked`, `problem`, and
    `where` (the path to name in messages: the link, or the file)."""

    __slots__ = ("name", "id", "path", "masked", "problem", "where", "template")

    def __init__(self, name, id=None, path=None, masked=False, problem=None, where=None, template=None):
        self.name, self.id, self.path, self.masked = name, id or name, path, masked
        self.problem, self.where, self.template = problem, where or path, template


class Catalog:
    """Every unit file, link and `.d`/`.wants`/`.requires` directory of the search path, read once."""

    def __init__(self, root):
        self.root = root
        self.dirs = []
        seen = set()
        for d in SEARCH_PATH:
            st, _err = root.probe(d)
            if st is None or not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            self.dirs.append(d)
        self.names = {}    # unit name -> [(dir, lstat, link text)] in search order
        self.subdirs = {}  # "x.service.d" / "x.target.wants" / "service.d" -> [dir/sub, ...]
        for d in self.dirs:
            for name, st, link in root.scan(d) or ():
                if stat.S_ISDIR(st.st_mode) or (link is not None and name.endswith((".d", ".wants", ".requires"))):
                    if name.endswith((".d", ".wants", ".requires")):
                        self.subdirs.setdefault(name, []).append("%s/%s" % (d, name))
                    continue
                if U.valid_name(name):
                    self.names.setdefault(name, []).append((d, st, link))
        self._found = {}

    def unit_names(self):
        return sorted(self.names, key=os.fsencode)

    def find(self, name):
        """Found for a unit name (cached)."""
        hit = self._found.get(name)
        if hit is None:
            # A placeholder while this name resolves: two aliases naming each other end here.
            self._found[name] = Found(name, problem="alias loop through %s" % name)
            hit = self._found[name] = self._find(name)
        return hit

    def _find(self, name):
        cands = self.names.get(name)
        if not cands:
            try:
                prefix, instance, utype = U.split_name(name)
            except ValueError:
                return Found(name, problem="not a unit name")
            if instance:
                tname = "%s@.%s" % (prefix, utype)
                t = self.find(tname)
                if t.path is None and not t.masked:
                    return Found(name, problem=t.problem or "not found")
                return Found(name, path=t.path, masked=t.masked, problem=t.problem, where=t.where, template=tname)
            return Found(name, problem="not found")
        d, st, link = cands[0]
        where = "%s/%s" % (d, name)
        if link is None:
            if not stat.S_ISREG(st.st_mode):
                return Found(name, problem="not a regular file", where=where)
            return Found(name, path=where)
        path, text, seen = where, link, {where}
        for _ in range(MAX_HOPS):
            if text == "/dev/null":
                return Found(name, masked=True, where=where)
            target = _lexical_join(path.rpartition("/")[0] or "/", text)
            if target is None:
                return Found(name, problem="link %s -> %s points outside the root" % (path, text), where=where)
            if target in seen:
                return Found(name, problem="symlink loop: %s -> %s" % (path, text), where=where)
            seen.add(target)
            st, nxt = self.root.lstat_link(target)
            if st is None:
                _st, err = self.root.probe(target)
                why = os.strerror(err) if err else "not found"
                return Found(name, problem="link %s -> %s: %s" % (path, text, why), where=where)
            if nxt is None:
                if not stat.S_ISREG(st.st_mode):
                    return Found(name, problem="link %s -> %s: not a regular file" % (path, text), where=where)
                return self._alias(name, target, where)
            path, text = target, nxt
        return Found(name, problem="symlink loop (more than %d links) from %s" % (MAX_HOPS, where), where=where)

    def _alias(self, name, target, where):
        base = target.rpartition("/")[2]
        if base == name or not U.valid_name(base) or base.rpartition(".")[2] != name.rpartition(".")[2]:
            return Found(name, path=target, where=where)
        prefix, instance, utype = U.split_name(name)
        bprefix, binstance, _ = U.split_name(base)
        if instance and binstance == "" and bprefix == prefix:  # foo@x.service -> foo@.service
            return Found(name, path=target, where=where, template=base)
        real = self.find(base) if base in self.names else None
        if real is not None and real.path == target:
            return Found(name, id=base, path=target, where=where, template=real.template)
        return Found(name, id=base, path=target, where=where)

    def subdir_entries(self, sub):
        """{entry name: (path, link text)} of every `sub` directory in the search path, the first
        (highest-priority) one of each name winning."""
        out = {}
        for path in self.subdirs.get(sub, ()):
            for name, st, link in self.root.scan(path) or ():
                out.setdefault(name, ("%s/%s" % (path, name), link, st))
        return out

    def aliases(self):
        """{unit id: [alias names]} from the links in the unit directories."""
        out = {}
        for name, cands in self.names.items():
            if cands[0][2] is not None:
                f = self.find(name)
                if f.id != name and f.problem is None and not f.masked:
                    out.setdefault(f.id, []).append(name)
        return out


def _dropin_dirs(unit_id, aliases, template):
    names = [unit_id] + list(aliases)
    if template:
        names.append(template)
    stem, _, utype = unit_id.rpartition(".")
    pieces = stem.split("-")
    for k in range(len(pieces) - 1, 0, -1):
        names.append("-".join(pieces[:k]) + "-." + utype)
    names.append(utype)
    return [n + ".d" for n in names]


# ---------------------------------------------------------------------------------------------
# Reading one unit: its file and drop-ins as a list of assignments
# ---------------------------------------------------------------------------------------------

class Assign:
    __slots__ = ("section", "key", "value", "file", "line")

    def __init__(self, section, key, value, file, line):
        self.section, self.key, self.value, self.file, self.line = section, key, value, file, line


class Unit:
    """One unit as read: its name and id, what the name resolved to (`found`), its assignments (file
    then drop-ins), errors and warnings; `generated` for a SysV script's."""

    def __init__(self, name, found):
        self.name = name              # as instantiated: "postgresql@15-main.service"
        self.id = found.id if found.id != found.name else name
        self.found = found
        self.assigns = []
        self.errors = []    # (file, line, message): the unit cannot run
        self.warnings = []  # (file, line, message)
        self.aliases = []
        self.generated = False
        _prefix, instance, utype = U.split_name(self.id)
        self.type, self.instance = utype, instance


def read_unit(root, catalog, name, aliases=()):
    """Unit for a name: its file parsed, then its drop-ins. Problems are in the Unit, never raised."""
    found = catalog.find(name)
    unit = Unit(name, found)
    unit.aliases = [a for a in aliases if a != unit.id]
    if found.problem or found.masked or found.path is None:
        return unit
    append_file(root, unit, found.path)
    for path in dropin_paths(catalog, unit.id, unit.aliases + ([name] if name != unit.id else []), found.template):
        append_file(root, unit, path, dropin=True)
    return unit


def dropin_paths(catalog, unit_id, aliases=(), template=None):
    """The drop-ins (`*.conf`) that apply to a unit, in the order systemd applies them (by file name,
    the highest-priority copy of each name); masked ones (linked to /dev/null) left out."""
    dropins = {}
    for sub in _dropin_dirs(unit_id, aliases, template):
        for entry, (path, link, _st) in catalog.subdir_entries(sub).items():
            if entry.endswith(".conf") and entry not in dropins:
                dropins[entry] = (path, link)
    return [dropins[e][0] for e in sorted(dropins, key=os.fsencode) if dropins[e][1] != "/dev/null"]


def append_file(root, unit, path, dropin=False):
    """A file's assignments onto the unit. An unreadable unit file is an error; an unreadable
    drop-in a warning (systemd goes on without it)."""
    try:
        text = root.read(path).decode("utf-8", "replace")
    except OSError as e:
        (unit.warnings if dropin else unit.errors).append(
            (path, None, "cannot read%s: %s" % (" (drop-in ignored)" if dropin else "", e.strerror or e)))
        return
    entries, problems = U.parse(text)
    for line, message in problems:
        unit.errors.append((path, line, "syntax error: %s" % message))
    unit.assigns.extend(Assign(s, k, v, path, n) for s, k, v, n in entries)


def read_text_unit(unit, path, text):
    """Assignments from generated text (a SysV script's unit), named after `path` (no line)."""
    entries, _ = U.parse(text)
    unit.assigns.extend(Assign(s, k, v, path, None) for s, k, v, _n in entries)


INSTALL_KEYS = ("WantedBy", "RequiredBy", "UpheldBy", "Alias", "Also", "DefaultInstance")


def install_section(root, path):
    """{key: [values]} of a unit file's [Install] section (its drop-ins do not count, as for systemctl):
    the names of WantedBy=, RequiredBy=, UpheldBy=, Alias=, Also= (an empty assignment resets the list),
    DefaultInstance= ([] or [the last value]). OSError when the file cannot be read; an assignment
    whose quoting is bad is ignored, as systemd does."""
    out = {k: [] for k in INSTALL_KEYS}
    data = root.read(path)
    if b"[Install]" not in data:
        return out
    entries, _ = U.parse(data.decode("utf-8", "replace"))
    for section, key, value, _n in entries:
        if section != "Install" or key not in out:
            continue
        if key == "DefaultInstance":
            out[key] = [value] if value else []
        elif not value:
            out[key] = []
        else:
            try:
                out[key] += U.split_words(value)
            except ValueError:
                continue
    return out


class FileStates:
    """systemctl is-enabled's answer for a unit file, as far as the files tell (systemd's
    unit_file_lookup_state): masked; bad (a link that leads nowhere); alias (a name linked to another
    unit's file); enabled (named in a .wants/.requires/.upholds directory of /etc/systemd/system or
    /run/systemd/system, or an instance of it is, or a link there leads to it under another name);
    else by its [Install]: disabled (WantedBy=, RequiredBy=, UpheldBy= or Alias=), indirect (only
    Also= or DefaultInstance=), static (none)."""

    def __init__(self, root, catalog):
        self.root, self.catalog = root, catalog
        self.linked = set()
        for sub, dirs in catalog.subdirs.items():
            if not sub.endswith((".wants", ".requires", ".upholds")):
                continue
            for d in dirs:
                if d.startswith(CONFIG_DIRS):
                    for name, _st, _link in root.scan(d) or ():
                        self.linked.add(name)
                        try:
                            prefix, instance, utype = U.split_name(name)
                        except ValueError:
                            continue
                        if instance:
                            self.linked.add("%s@.%s" % (prefix, utype))
        for name, cands in catalog.names.items():
            d, _st, link = cands[0]
            if link is not None and d in CONFIG_DIRS:
                self.linked.add(catalog.find(name).id)

    def state(self, name):
        f = self.catalog.find(name)
        if f.masked:
            return "masked"
        if f.problem:
            return "bad"
        if f.id != name and f.template is None:
            return "alias"
        if name in self.linked:
            return "enabled"
        try:
            inst = install_section(self.root, f.path)
        except OSError:
            return "static"
        if inst["WantedBy"] or inst["RequiredBy"] or inst["UpheldBy"] or inst["Alias"]:
            return "disabled"
        return "indirect" if inst["Also"] or inst["DefaultInstance"] else "static"
