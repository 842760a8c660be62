"""Load every service definition of an image, resolve it, and order it.

PID 1 does not import this module (yaml costs ~6 MB): a short-lived child forked from PID 1
runs `write_document` and hands the document back as marshal data on a pipe. The same document,
for people and tests:

    python -m richinit.services.load --json [--root DIR] [--defaults DIR] [--only a,b] [--path PATH] [--units]

prints one JSON document on stdout:

    {"services":       [ServiceSpec.to_dict(), ...]   every definition that parsed, by name,
     "skipped":        {name: reason}                 not started at boot: disabled, masked, condition
                                                      failed, no alternative available, not selected
     "failed":         [name, ...]                    names with an error (they are not started)
     "errors":         [{"service", "file", "line", "message"}, ...]
     "warnings":       [same shape]                   nothing failed, but something looks wrong
     "sockets":        [SocketSpec.to_dict(), ...]    what PID 1 binds before any service starts; a
                                                      services.d `listen:` is a socket named after its
                                                      service, not enabled (it activates nothing); with
                                                      units=True also the image's socket units (those
                                                      not enabled are bound only once started)
     "init_scripts":   [InitScript.to_dict(), ...]    in the order to run them
     "finish_scripts": [InitScript.to_dict(), ...]    s6-overlay's cont-finish.d, for shutdown
     "order":          [[names], [names], ...]        start waves (stop: reversed); runnable services only
     "deps":           {name: [names]},               each runnable service's effective dependencies
     "timers":         [TimerSpec.to_dict(), ...]     its timer units
     "templates":      {"foo@": ServiceSpec.to_dict()}  service templates, for Accept=yes sockets and
                                                      `systemctl start foo@x` (unitfile.instantiate)
     "unit_files":     {"nginx.service": "enabled"|"disabled"|"static"|"masked"|"generated"|"alias"|
                        "indirect"|"bad"}             systemctl list-unit-files' states
     "aliases":        {"sshd.service": "ssh.service"}  names linked to a unit in the unit directories
                                                      (systemctl start sshd acts on ssh.service)}

Units (the image's systemd units and SysV init scripts, `richinit.services.units` and `.sysv`) are read
only when asked: `load(..., units=True)`, `--units`. A unit's service is named after the unit without
its type ("nginx", "postgresql@15-main"); `unit` is the full name. richinit's defaults give way to an
enabled unit running the same daemon (sshd: ssh/sshd; cron: cron/crond/cronie; syslog: rsyslog,
syslog-ng, sysklogd, syslog), and to any unit of their own name; the image's services.d YAML and
s6/runit directories win over a unit of the same name (with a warning).

Exit status 0 whenever the document was produced (errors are data); 2 for a usage error, 1 when the
root cannot be opened. Sources and precedence: see `richinit.services.spec` and `.compat`.

yaml is imported only for a file that has to be parsed: importing PyYAML takes ~15 ms here, more
than the rest of the boot. The defaults shipped in the portable runtime are parsed when it is built
(`compile_defaults`: each file's bytes with the values and line numbers parse_yaml gives for them);
a default whose bytes differ from the compiled ones is parsed again. Most images bring no YAML of
their own, so most boots never load yaml.
"""

import os
import sys

from richinit.services import compat, graph
from richinit.services import spec as S
from richinit.services.rootfs import DEFAULT_PATH, Root

IMAGE_DIR = "/etc/richinit/services.d"
DEFAULTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "services.d")
SUFFIXES = (".yaml", ".yml")
COMPILED = ".compiled.marshal"  # in the defaults directory: {file name: (bytes, value, lines)}
MAX_FILE = 1024 * 1024
MAX_NODES = 20000  # YAML aliases can make a small file huge (billion laughs): cap what we expand


# A default service gives way to an enabled unit answering to one of these names.
DEFAULT_DAEMONS = {"sshd": ("ssh", "sshd"), "cron": ("cron", "crond", "cronie"),
                   "syslog": ("rsyslog", "syslog", "syslog-ng", "sysklogd")}


class _Entry:
    """One service in the making: where it came from, its spec or its problems, why it is skipped.
    `soft_skip`: skipped, yet what requires it still starts (a unit whose condition failed)."""

    def __init__(self, name, origin, file, lines=None):
        self.name, self.origin, self.file = name, origin, file
        self.lines = lines or {}
        self.definition = None
        self.spec = None
        self.problems = []
        self.skip = None
        self.soft_skip = False

    def line(self, path):
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1 if self.lines else None)

    def fail(self, path, message):
        self.problems.append(S.Problem(service=self.name, file=self.file, line=self.line(path), message=message))


class Result:
    def __init__(self):
        self.services, self.skipped, self.errors, self.warnings = [], {}, [], []
        self.init_scripts, self.finish_scripts, self.order, self.deps = [], [], [], {}
        self.sockets, self.timers, self.templates, self.unit_files = [], [], {}, {}
        self.aliases = {}

    @property
    def failed(self):
        return sorted({p.service for p in self.errors if p.service})

    def spec(self, name):
        return next((s for s in self.services if s.name == name), None)

    def to_dict(self):
        return {
            "services": [s.to_dict() for s in self.services],
            "skipped": dict(self.skipped),
            "failed": self.failed,
            "errors": [p.to_dict() for p in self.errors],
            "warnings": [p.to_dict() for p in self.warnings],
            "init_scripts": [s.to_dict() for s in self.init_scripts],
            "finish_scripts": [s.to_dict() for s in self.finish_scripts],
            "order": [list(w) for w in self.order],
            "deps": {k: sorted(v) for k, v in self.deps.items()},
            "sockets": [s.to_dict() for s in self.sockets],
            "timers": [t.to_dict() for t in self.timers],
            "templates": {k: v.to_dict() for k, v in self.templates.items()},
            "unit_files": dict(self.unit_files),
            "aliases": dict(self.aliases),
        }


# ---------------------------------------------------------------------------------------------
# YAML -> plain values plus the line of every path
# ---------------------------------------------------------------------------------------------

_Loader = None  # the PyYAML loader class; None: libyaml's when PyYAML was built with it (tests pick one)


class YamlError(Exception):
    def __init__(self, line, message):
        super().__init__(message)
        self.line, self.message = line, message


def parse_yaml(data):
    """Bytes of one YAML document -> (value, {path: line}); YamlError(line, message) when malformed."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise YamlError(data[:e.start].count(b"\n") + 1, "not UTF-8 text")
    import yaml
    # libyaml's parser when PyYAML was built with it (about 10x faster); the constructor is Python's either way.
    loader_class = _Loader or getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        loader = loader_class(text)
    except yaml.YAMLError as e:  # ReaderError: a character YAML does not allow
        raise _reader_error(e, text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            raise YamlError(*_marked(e))
        except yaml.YAMLError as e:
            raise _reader_error(e, text)
        except (RecursionError, ValueError, TypeError) as e:
            # Whatever a strange file does to the parser, it fails that service alone.
            raise YamlError(None, "invalid YAML: %s" % e)
        if node is None:
            return None, {}
        lines = {(): node.start_mark.line + 1}
        budget = [MAX_NODES]
        try:
            return _value(yaml, loader, node, (), lines, budget), lines
        except (yaml.YAMLError, RecursionError, ValueError, TypeError) as e:
            raise YamlError(None, "invalid YAML: %s" % e)
    finally:
        loader.dispose()


def compile_defaults(defaults):
    """marshal bytes of every default file: {name: (bytes, value, lines)} (see COMPILED). Files whose
    values marshal cannot carry (dates...) are left out: they are parsed at boot."""
    import marshal
    out = {}
    for n in sorted(os.listdir(defaults)):
        if os.path.splitext(n)[1] not in SUFFIXES or n.startswith("."):
            continue
        data = _read_host(os.path.join(defaults, n))
        try:
            value, lines = parse_yaml(data)
            marshal.dumps((value, lines))
        except (YamlError, ValueError):
            continue
        out[n] = (data, value, lines)
    return marshal.dumps(out)


_compiled = {}  # defaults directory -> its COMPILED table (read once per process)


def _from_compiled(path, data):
    """(value, lines) of a default file from COMPILED when its bytes are the compiled ones, else None."""
    d, name = os.path.split(path)
    table = _compiled.get(d)
    if table is None:
        import marshal
        try:
            with open(os.path.join(d, COMPILED), "rb") as f:
                table = marshal.loads(f.read())
            if not isinstance(table, dict):
                table = {}
        except (OSError, ValueError, EOFError, TypeError):
            table = {}
        _compiled[d] = table
    hit = table.get(name)
    if isinstance(hit, tuple) and len(hit) == 3 and hit[0] == data and isinstance(hit[2], dict):
        return hit[1], hit[2]
    return None


def _marked(e):
    """(line, message) of a PyYAML error: the problem, with its context and where that started."""
    mark = e.problem_mark or e.context_mark
    what = e.problem or e.context or "malformed"
    if e.problem and e.context:
        if e.context.startswith("while") and e.context_mark is not None:
            what = "%s (%s started at line %d)" % (e.problem, e.context, e.context_mark.line + 1)
        elif not e.context.startswith("while"):
            what = "%s, %s" % (e.context, e.problem)
    return (mark.line + 1 if mark else None), "invalid YAML: %s" % what


def _reader_error(e, text):
    pos = getattr(e, "position", None)
    line = text[:pos].count("\n") + 1 if isinstance(pos, int) else None
    char = getattr(e, "character", None)
    what = "character %s is not allowed" % ("U+%04X" % char if isinstance(char, int) else repr(char))
    return YamlError(line, "invalid YAML: %s" % (what if char is not None else e))


def _value(yaml, loader, node, path, lines, budget):
    budget[0] -= 1
    if budget[0] < 0:
        raise YamlError(node.start_mark.line + 1, "document too large (more than %d values)" % MAX_NODES)
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        try:
            return loader.construct_object(node, deep=True)
        except yaml.YAMLError as e:
            raise YamlError(node.start_mark.line + 1, "invalid value: %s" % (getattr(e, "problem", None) or e))
    if isinstance(node, yaml.SequenceNode):
        return [_value(yaml, loader, item, path + (i,), lines, budget) for i, item in enumerate(node.value)]
    if isinstance(node, yaml.MappingNode):
        try:
            loader.flatten_mapping(node)  # `<<: *anchor` merge keys
        except yaml.YAMLError as e:
            raise YamlError(node.start_mark.line + 1, "invalid YAML: %s" % (getattr(e, "problem", None) or e))
        out = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError(key_node.start_mark.line + 1, "a key must be a plain word, not a list or mapping")
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise YamlError(key_node.start_mark.line + 1, "duplicate key %r" % (key,))
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _value(yaml, loader, value_node, path + (key,), lines, budget)
        return out
    raise YamlError(node.start_mark.line + 1, "unsupported YAML node")


# ---------------------------------------------------------------------------------------------
# Files -> entries
# ---------------------------------------------------------------------------------------------

def _yaml_files(root, defaults, warn):
    """{stem: (origin, shown path, reader)}: the defaults, replaced file by file by the image's."""
    found = {}
    if defaults:
        try:
            names = sorted(os.listdir(defaults))
        except OSError as e:
            warn(defaults, None, "defaults directory unreadable: %s" % (e.strerror or e))
            names = []
        for n in names:
            stem, ext = os.path.splitext(n)
            if ext in SUFFIXES and not n.startswith("."):
                path = os.path.join(defaults, n)
                found[stem] = ("default", path, lambda p=path: _read_host(p))
    image = {}
    for n in root.listdir(IMAGE_DIR) or ():
        stem, ext = os.path.splitext(n)
        if ext not in SUFFIXES or n.startswith("."):
            continue
        path = "%s/%s" % (IMAGE_DIR, n)
        if stem in image:
            warn(path, None, "%s also exists; this file is ignored" % image[stem])
            continue
        image[stem] = path
        found[stem] = ("image", path, lambda p=path: root.read(p))
    return found


def _read_host(path):
    with open(path, "rb") as f:
        data = f.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise OSError("larger than %d bytes" % MAX_FILE)
    return data


def _entry_from_file(stem, origin, path, reader):
    entry = _Entry(stem, origin, path)
    try:
        data = reader()
    except OSError as e:
        entry.lines = {(): 1}
        entry.fail((), "cannot read: %s" % (e.strerror or e))
        return entry
    hit = _from_compiled(path, data) if origin == "default" else None
    try:
        raw, entry.lines = hit if hit is not None else parse_yaml(data)
    except YamlError as e:
        entry.problems.append(S.Problem(service=stem, file=path, line=e.line, message=e.message))
        return entry
    if isinstance(raw, dict) and S.valid_name(raw.get("name")):
        entry.name = raw["name"]
    definition, bad = S.parse_definition(raw, entry.name, origin=origin, source=path)
    if not bad and not S.valid_name(definition.name):
        bad = [S.Bad((), "%r is not a valid service name (letters, digits, _ . @ -): rename the file or set name:"
                     % definition.name)]
    for b in bad:
        entry.fail(b.path, b.message)
    if not bad:
        entry.definition = definition
    return entry


def _condition_failure(root, cond, search_path):
    """The first test of a condition that fails, as text, or None when all hold."""
    if cond is None:
        return None
    for p in cond.path_exists:
        if not root.exists(p):
            return "path_exists %s" % p
    for p in cond.path_missing:
        if root.exists(p):
            return "path_missing %s" % p
    for c in cond.command_exists:
        if not root.which(c, search_path):
            return "command_exists %s" % c
    for c in cond.command_missing:
        if root.which(c, search_path):
            return "command_missing %s" % c
    for c in cond.busybox_applet:
        found = root.which(c, search_path)
        if not found or not root.is_busybox(found, search_path):
            return "busybox_applet %s" % c
    for c in cond.native_command:
        found = root.which(c, search_path)
        if not found or root.is_busybox(found, search_path):
            return "native_command %s" % c
    return None


def _resolve(root, entry, search_path):
    """Pick the alternative, evaluate conditions: sets entry.spec and entry.skip."""
    d = entry.definition
    chosen, tried = None, []
    for alt in d.alternatives:
        failure = _condition_failure(root, alt.condition, search_path)
        if failure is None and alt.implicit and not root.which(alt.fields["command"][0], search_path):
            failure = "command_exists %s" % alt.fields["command"][0]
        if failure is None:
            # Run what we probed: a bare argv[0] becomes the path found (PATH may differ at exec).
            found = root.which(alt.fields["command"][0], search_path)
            if found and found != alt.fields["command"][0]:
                argv = (found,) + alt.fields["command"][1:]
                alt = alt.replace(fields=dict(alt.fields, command=argv))
            chosen = alt
            break
        tried.append(" ".join(alt.fields["command"][:2]))
    entry.spec = d.resolve(chosen)
    if d.masked:
        entry.skip = "masked (empty definition)"
    elif not entry.spec.enabled:
        entry.skip = "disabled"
    else:
        failure = _condition_failure(root, d.condition, search_path)
        if failure is not None:
            entry.skip = "condition failed: %s" % failure
        elif d.alternatives and chosen is None:
            entry.skip = "no alternative available (tried: %s)" % ", ".join(tried)


# ---------------------------------------------------------------------------------------------
# Dependencies
# ---------------------------------------------------------------------------------------------

def _effective_deps(entry, runnable):
    spec = entry.spec
    # services.d's requires also orders; a unit's Requires= does not (systemd starts both at once
    # unless After= says otherwise, and "B After=A" with "A Requires=B" is no cycle).
    names = list(spec.after) + ([] if spec.unit else list(spec.requires))
    if spec.log.kind == "syslog" and spec.name != "syslog":
        names.append("syslog")
    return {n for n in names if n in runnable}


def _check_requires(entries, by_name, runnable):
    """Fail services whose required ones are unknown, skipped or failed, until nothing changes."""
    changed = True
    while changed:
        changed = False
        for name in sorted(runnable):
            e = by_name[name]
            for i, r in enumerate(e.spec.requires):
                target = by_name.get(r)
                if target is None:
                    why = "requires unknown service %r" % r
                elif target.soft_skip and not target.problems:
                    continue
                elif target.skip and not target.problems:
                    why = "requires %r, which is skipped: %s" % (r, target.skip)
                elif r not in runnable:
                    why = "requires %r, which failed" % r
                else:
                    continue
                e.fail(("requires", i), why)
                runnable.discard(name)
                changed = True
                break


def _plan(entries, by_name, warn):
    runnable = {e.name for e in entries if e.spec is not None and not e.skip and not e.problems}
    for name in sorted(runnable):
        e = by_name[name]
        for i, a in enumerate(e.spec.after):
            if a not in by_name:
                warn(e.file, e.line(("after", i)), "after: unknown service %r (ignored)" % a, service=name)
    _check_requires(entries, by_name, runnable)
    deps = {n: _effective_deps(by_name[n], runnable) for n in runnable}
    for members, path in graph.cycles(deps):
        text = "cycle: " + " -> ".join(path)
        on_path = dict(zip(path, path[1:], strict=False))
        for m in members:
            spec = by_name[m].spec
            nxt = on_path.get(m)
            if nxt in spec.requires:
                where = ("requires", spec.requires.index(nxt))
            elif nxt in spec.after:
                where = ("after", spec.after.index(nxt))
            else:
                where = ("requires",) if spec.requires else ("after",)
            by_name[m].fail(where, text)
            runnable.discard(m)
    _check_requires(entries, by_name, runnable)
    deps = {n: _effective_deps(by_name[n], runnable) for n in runnable}
    return graph.waves(deps), deps


# ---------------------------------------------------------------------------------------------
# The whole load
# ---------------------------------------------------------------------------------------------

def load(root="/", defaults=DEFAULTS_DIR, only=None, environ=None, search_path=None, units=False):
    """Load, validate, resolve and order every service of the image at `root`; returns a Result.

    `units`: also read the image's systemd units and SysV init scripts (see above).

    `only`: names to start at boot (plus what they require); every other service is skipped.
    `environ` (default os.environ) is read for S6_BEHAVIOUR_IF_STAGE2_FAILS; `search_path` is the
    PATH used for command tests (default: environ's PATH followed by the standard one). A chosen
    alternative's bare argv[0] is replaced by the path found.
    """
    environ = os.environ if environ is None else environ
    if not search_path:
        # The container's PATH may lack the sbin directories where daemons live: search both.
        dirs = (environ.get("PATH") or "").split(":") + DEFAULT_PATH.split(":")
        search_path = ":".join(dict.fromkeys(d for d in dirs if d.startswith("/")))
    result = Result()

    def warn(file, line, message, service=None):
        result.warnings.append(S.Problem(service=service, file=file, line=line, message=message))

    with Root(root) as r:
        entries = []
        for stem, (origin, path, reader) in sorted(_yaml_files(r, defaults, warn).items()):
            entries.append(_entry_from_file(stem, origin, path, reader))
        # Names are unique: the image's definitions before the defaults, then s6, then runit.
        entries.sort(key=lambda e: (e.origin != "image", e.file))
        by_name = {}
        kept = []
        for e in entries:
            other = by_name.get(e.name)
            if other is None:
                by_name[e.name] = e
                kept.append(e)
            elif e.origin == "default":
                warn(e.file, None, "default service %r replaced by %s" % (e.name, other.file), service=e.name)
            else:
                e.fail(("name",), "service %r is already defined in %s" % (e.name, other.file))
                result.errors.extend(e.problems)
        entries = kept
        for e in entries:
            if e.definition is not None:
                _resolve(r, e, search_path)
        # The image's s6/runit services replace richinit's defaults; its YAML files replace them.
        for name, spec, problems in compat.service_dirs(r, warn):
            file = spec.source if spec else (problems[0].file if problems else name)
            other = by_name.get(name)
            if other is not None and other.origin != "default":
                warn(file, None, "%r is also defined by %s, which wins" % (name, other.file), service=name)
                continue
            if other is not None:
                warn(other.file, None, "default service %r replaced by %s" % (name, file), service=name)
                entries.remove(other)
            e = _Entry(name, spec.origin if spec else "s6-overlay", file)
            e.spec, e.problems = spec, problems
            if spec is not None and not spec.enabled:
                e.skip = "disabled (down file)"
            by_name[name] = e
            entries.append(e)
        if units:
            _add_units(r, entries, by_name, result, warn, environ)
        if only is not None:
            _select(entries, by_name, only, warn)
        result.order, result.deps = _plan(entries, by_name, warn)
        result.init_scripts = compat.init_scripts(r, environ, warn)
        result.finish_scripts = compat.finish_scripts(r, warn)
    for e in sorted(entries, key=lambda e: e.name):
        listen = e.definition.listen if e.definition is not None else ()
        if e.spec is not None and listen and not e.skip and not e.problems:
            result.sockets.append(S.SocketSpec(name=e.name, source=e.file, service=e.name, listen=listen,
                                               enabled=False))
            e.spec = e.spec.replace(sockets=(e.name,))
        if e.spec is not None:
            result.services.append(e.spec)
        if e.skip and not e.problems:
            result.skipped[e.name] = e.skip
        result.errors.extend(e.problems)
    result.errors.sort(key=lambda p: (p.file, p.line or 0))
    return result


def _add_units(root, entries, by_name, result, warn, environ):
    """The units' services join the entries; the defaults they replace leave."""
    from richinit.services import units as U
    loaded = U.load_units(root, warn, environ)
    result.sockets.extend(loaded.sockets)
    result.timers = loaded.timers
    result.templates, result.unit_files = loaded.templates, loaded.unit_files
    result.aliases = loaded.aliases
    result.warnings.extend(loaded.warnings)
    result.errors.extend(loaded.errors)
    result.skipped.update(loaded.skipped)
    for spec, problems, skip, lines, stem, unit in loaded.services:
        other = by_name.get(stem)
        file = spec.source if spec is not None else (problems[0].file if problems else unit)
        if other is not None and other.origin != "default":
            warn(file, None, "unit %s is also defined by %s, which wins" % (unit, other.file), service=stem)
            continue
        if other is not None:
            warn(other.file, None, "default service %r replaced by unit %s" % (stem, unit), service=stem)
            entries.remove(other)
        e = _Entry(stem, spec.origin if spec is not None else "systemd", file, lines)
        e.spec, e.problems, e.skip = spec, list(problems), skip
        e.soft_skip = bool(skip) and skip.startswith("condition failed")
        by_name[stem] = e
        entries.append(e)
    for default, daemons in DEFAULT_DAEMONS.items():
        e = by_name.get(default)
        if e is None or e.origin != "default":
            continue
        for stem, names in sorted(loaded.names.items()):
            unit = by_name.get(stem)
            if unit is not None and unit.spec is not None and unit.spec.enabled and not unit.skip \
                    and names & set(daemons):
                warn(e.file, None, "default service %r replaced by unit %s" % (default, unit.spec.unit),
                     service=default)
                entries.remove(e)
                del by_name[default]
                break


def _select(entries, by_name, only, warn):
    """Skip every service not named in `only`, except what the named ones require (transitively)."""
    wanted = [n for n in only if n]
    for n in wanted:
        if n not in by_name:
            warn("--only", None, "unknown service %r" % n)
    keep, todo = set(), [n for n in wanted if n in by_name]
    while todo:
        n = todo.pop()
        if n in keep:
            continue
        keep.add(n)
        spec = by_name[n].spec
        if spec is not None:
            todo.extend(r for r in spec.requires if r in by_name)
    for e in entries:
        if e.name not in keep and not e.skip:
            e.skip = "not selected (only: %s)" % ",".join(wanted)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def _human(result):
    out = []
    for i, wave in enumerate(result.order, 1):
        out.append("wave %d: %s" % (i, " ".join(wave)))
    for name, why in sorted(result.skipped.items()):
        out.append("skipped %s: %s" % (name, why))
    for s in result.init_scripts:
        out.append("init %s%s" % (s.path, " (optional)" if s.optional else ""))
    for p in result.errors:
        out.append("error: %s" % p)
    for p in result.warnings:
        out.append("warning: %s" % p)
    return "\n".join(out) + "\n"


def write_document(fd, root="/", only=None, units=False):
    """What PID 1's loader child runs (richinit.spawn.spawn_call): the document as marshal bytes on
    `fd`, the image's units read when `units`. Returns the exit status: 0 once written, 1 when the
    root cannot be read."""
    import marshal
    try:
        result = load(root, only=only, units=units)
    except OSError as e:
        os.write(2, ("richinit: services: cannot read root %s: %s\n" % (root, e.strerror or e)).encode())
        return 1
    data = memoryview(marshal.dumps(result.to_dict()))
    while data:
        data = data[os.write(fd, data):]
    return 0


def main(argv=None):
    import argparse
    import json
    ap = argparse.ArgumentParser(prog="python -m richinit.services.load",
                                 description="Load richinit service definitions and print them.")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--root", default="/", help="the image's root directory (default /)")
    ap.add_argument("--defaults", default=DEFAULTS_DIR, help="richinit's default services.d ('' for none)")
    ap.add_argument("--only", default=None, help="comma-separated services to start (io.richinit.services)")
    ap.add_argument("--path", default=None, help="PATH for command tests (default: $PATH)")
    ap.add_argument("--units", action="store_true", help="also read the image's systemd units and SysV scripts")
    ap.add_argument("--compile", metavar="DIR", help="write DIR/%s (the defaults, parsed) and exit" % COMPILED)
    args = ap.parse_args(argv)
    if args.compile:
        try:
            data = compile_defaults(args.compile)
            tmp = os.path.join(args.compile, COMPILED + ".tmp")
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, os.path.join(args.compile, COMPILED))
        except OSError as e:
            sys.stderr.write("%s: %s: %s\n" % (ap.prog, args.compile, e.strerror or e))
            return 1
        return 0
    only = None if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    try:
        result = load(args.root, args.defaults or None, only=only, search_path=args.path, units=args.units)
    except OSError as e:
        sys.stderr.write("%s: cannot read root %s: %s\n" % (ap.prog, args.root, e.strerror or e))
        return 1
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(_human(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
