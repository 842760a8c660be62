"""The engines' own configuration files, changed in place and changed back: pure text -> text.

containerd: the runtime handler table of hooks/containerd/richinit.toml is merged into config.toml
with tomlkit, which keeps every comment, order and formatting of the file; what was added (the
handler and any table that had to be created for it) is recorded, and unmerge takes exactly that out,
so install + uninstall gives the file back byte for byte. The CRI plugin's section depends on the
config version: 1 `plugins.cri`, 2 `plugins."io.containerd.grpc.v1.cri"` (containerd 1.x), 3
`plugins."io.containerd.cri.v1.runtime"` (containerd 2.x).

Docker: daemon.json's `runtimes` gets `rich` (opt-in per container) and `rich-all` (every container
run with it is rich: its runtimeArgs say so); other keys are untouched.
"""

import json

HANDLER = "rich"
CRI_TABLES = {1: ("plugins", "cri", "containerd", "runtimes"),
              2: ("plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"),
              3: ("plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes")}


class EngineConfigError(Exception):
    """One line naming the file and what is wrong with it."""


def _toml():
    try:
        import tomlkit
    except ImportError:
        raise EngineConfigError("tomlkit is not installed (python3-tomlkit, or pip install tomlkit)")
    return tomlkit


def _parse(text, path):
    tomlkit = _toml()
    try:
        return tomlkit.parse(text)
    except Exception as e:  # noqa: BLE001 - tomlkit's parse errors share no useful base class
        raise EngineConfigError("%s: not TOML (%s): not touching it" % (path, e))


def _version(doc, path):
    v = doc.get("version", 1)
    if v not in CRI_TABLES:
        raise EngineConfigError("%s: version: %r is not a containerd config version we know (1, 2, 3)" % (path, v))
    return v


def handler_table(template_text, binary):
    """The handler's table from the hooks/ template, with BinaryName = `binary` (a fresh table: the
    template's own layout is not carried into the user's file)."""
    doc = _parse(template_text.replace("@RICH_RUNTIME@", binary), "hooks/containerd/richinit.toml")
    t = _fresh(doc["runtime"].unwrap())
    t.add(_toml().nl())  # a blank line before whatever table follows
    return t


def _fresh(values):
    tomlkit = _toml()
    t = tomlkit.table()
    for k, v in values.items():
        t.add(k, _fresh(v) if isinstance(v, dict) else v)
    return t


def containerd_merge(text, table, path="config.toml"):
    """(new text, the tables created on the way as lists of keys). EngineConfigError if a `rich`
    handler that is not ours is there already. An empty file becomes a version 2 config."""
    tomlkit = _toml()
    doc = _parse(text if text.strip() else "version = 2\n", path)
    keys = CRI_TABLES[_version(doc, path)]
    created = []
    node = doc
    for i, k in enumerate(keys):
        if k not in node:
            node[k] = tomlkit.table(is_super_table=True)
            created.append(list(keys[:i + 1]))
        node = node[k]
        if not isinstance(node, dict):
            raise EngineConfigError("%s: %s: not a table" % (path, ".".join(keys[:i + 1])))
    if HANDLER in node:
        if node[HANDLER].unwrap() == table.unwrap():
            return text, []  # installed already
        raise EngineConfigError("%s: %s.%s: a runtime handler of that name is there already: not touching it"
                                % (path, ".".join(keys), HANDLER))
    node[HANDLER] = table
    out = tomlkit.dumps(doc)
    return (out if out.endswith("\n") else out + "\n"), created


def containerd_unmerge(text, created, path="config.toml"):
    """The text without our handler and without the tables recorded as created (if left empty)."""
    tomlkit = _toml()
    doc = _parse(text, path)
    keys = CRI_TABLES[_version(doc, path)]
    node = doc
    for k in keys:
        node = node.get(k) if isinstance(node, dict) else None
        if node is None:
            return text
    if HANDLER not in node:
        return text
    del node[HANDLER]
    for chain in sorted(created, key=len, reverse=True):
        parent = doc
        for k in chain[:-1]:
            parent = parent.get(k) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(parent.get(chain[-1]), dict) and not parent[chain[-1]]:
            del parent[chain[-1]]
    return tomlkit.dumps(doc)


def docker_merge(d, runtimes, path="daemon.json"):
    """daemon.json (a dict, not modified) with `runtimes` added; EngineConfigError if a runtime of
    the same name that is not ours is there."""
    if not isinstance(d, dict) or not isinstance(d.get("runtimes", {}), dict):
        raise EngineConfigError("%s: runtimes: must be an object: not touching it" % path)
    new = json.loads(json.dumps(d))
    have = new.setdefault("runtimes", {})
    for name, entry in runtimes.items():
        if name in have and have[name] != entry:
            raise EngineConfigError("%s: runtimes.%s: there already, and not ours: not touching it" % (path, name))
        have[name] = entry
    return new


def docker_unmerge(d, names):
    new = json.loads(json.dumps(d))
    rt = new.get("runtimes")
    if isinstance(rt, dict):
        for n in names:
            rt.pop(n, None)
        if not rt:
            new.pop("runtimes")
    return new
