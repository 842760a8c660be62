"""rich install / rich uninstall: put the hooks/ bundle in place for the engines, and take it away.

    --podman      ROOT/usr/share/containers/oci/hooks.d/richinit-{precreate,createruntime,poststop}.json
    --containerd  ROOT/etc/containerd/config.toml: the runtime handler `rich` (runc.v2, BinaryName =
                  rich-runtime, io.richinit.* annotations passed) merged in, the rest of the file kept
                  (runtime_hooks.engine_config); ROOT/usr/share/richinit/kubernetes/runtimeclass.yaml
    --docker      ROOT/etc/docker/daemon.json: runtimes `rich` (opt-in per container) and `rich-all`
                  (runtimeArgs --richinit-rich=true) merged in, other keys untouched
    --crio        ROOT/etc/crio/crio.conf.d/99-richinit.conf (runtime handler `rich`) and the oci-hooks
                  JSON of --podman (CRI-O reads the same hooks directory)
    always        ROOT/etc/richinit/runtime.yaml when absent (names rich-hook), ROOT/usr/share/richinit/lxc/

No engine flag means all four. --dry-run prints what would change as unified diffs and changes
nothing. What was installed is recorded in ROOT/var/lib/richinit/install.json, so uninstall removes
exactly that: our files, our daemon.json entries and our config.toml handler (and a file only when we
made it). Both are idempotent. @RICH_HOOK@ / @RICH_RUNTIME@ in the templates become the absolute paths
of the installed programs (--bin-dir, default: the directory `rich` runs from): the engines call
rich-runtime itself.
"""

import json
import os
import sys

MANIFEST = "var/lib/richinit/install.json"

PODMAN = [("oci-hooks.d/richinit-%s.json" % s, "usr/share/containers/oci/hooks.d/richinit-%s.json" % s)
          for s in ("precreate", "createruntime", "poststop")]
CONTAINERD = [("kubernetes/runtimeclass.yaml", "usr/share/richinit/kubernetes/runtimeclass.yaml")]
CRIO = [("crio/99-richinit.conf", "etc/crio/crio.conf.d/99-richinit.conf")]
ALWAYS = [("lxc/richinit.conf", "usr/share/richinit/lxc/richinit.conf")]
RUNTIME_YAML = ("richinit/runtime.yaml", "etc/richinit/runtime.yaml")
DAEMON_JSON = ("docker/daemon.json", "etc/docker/daemon.json")
CONTAINERD_TOML = ("containerd/richinit.toml", "etc/containerd/config.toml")
ENGINES = ("podman", "containerd", "docker", "crio")


class InstallError(Exception):
    """One line."""


def _engines(args):
    chosen = [e for e in ENGINES if getattr(args, e, False)]
    return chosen or list(ENGINES)


def _bin_dir(args):
    d = getattr(args, "bin_dir", None) or os.path.dirname(os.path.abspath(sys.argv[0] or "rich"))
    return os.path.abspath(d)


def _programs(args):
    d = _bin_dir(args)
    progs = {"@RICH_HOOK@": os.path.join(d, "rich-hook"), "@RICH_RUNTIME@": os.path.join(d, "rich-runtime")}
    for p in progs.values():
        if not os.access(p, os.X_OK):
            raise InstallError("%s: not found or not executable (install richinit, or give --bin-dir)" % p)
    return progs


def _hooks_src():
    from runtime_hooks import datafiles
    try:
        return datafiles.data_dir("hooks")
    except datafiles.DataError as e:
        raise InstallError(str(e))


def _render(rel, progs):
    path = os.path.join(_hooks_src(), rel)
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise InstallError("%s: cannot read the hook bundle: %s" % (path, e.strerror))
    for k, v in progs.items():
        text = text.replace(k, json.dumps(v)[1:-1] if rel.endswith(".json") else v)
    return text


def _target(root, rel):
    root = os.path.abspath(root)
    path = os.path.normpath(os.path.join(root, rel))
    if not (path == root or path.startswith(root.rstrip("/") + "/")):
        raise InstallError("%s: outside %s" % (rel, root))
    return path


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".rich-tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def _load_manifest(root):
    try:
        with open(_target(root, MANIFEST)) as f:
            m = json.load(f)
        return m if isinstance(m, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise InstallError("%s: unreadable: %s" % (_target(root, MANIFEST), e))


def _save_manifest(root, m):
    path = _target(root, MANIFEST)
    if not m.get("files") and not m.get("docker") and not m.get("containerd"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    _write(path, json.dumps(m, indent=1, sort_keys=True) + "\n", 0o600)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise InstallError("%s: cannot read: %s" % (path, e.strerror))


def _daemon_json(text, path):
    try:
        d = json.loads(text) if text and text.strip() else {}
    except ValueError as e:
        raise InstallError("%s: not JSON (%s): not touching it" % (path, e))
    if not isinstance(d, dict):
        raise InstallError("%s: must be a JSON object: not touching it" % path)
    return d


class Change:
    """One file to write (text) or remove (text None); before: its current text (None: absent)."""

    def __init__(self, path, before, text, mode=0o644):
        self.path, self.before, self.text, self.mode = path, before, text, mode

    def diff(self):
        import difflib
        a = (self.before or "").splitlines(True)
        b = (self.text or "").splitlines(True)
        return "".join(difflib.unified_diff(a, b, self.path if self.before is not None else "/dev/null",
                                            self.path if self.text is not None else "/dev/null"))

    def apply(self):
        if self.text is None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        elif self.text != self.before or not os.path.exists(self.path):
            _write(self.path, self.text, self.mode)


def _show(changes):
    for c in changes:
        d = c.diff()
        if d:
            sys.stdout.write(d if d.endswith("\n") else d + "\n")


def plan_install(args):
    """(changes, the new manifest): everything rendered and merged, nothing written."""
    from runtime_hooks import engine_config as ec
    root = args.root
    engines = _engines(args)
    progs = _programs(args)
    m = _load_manifest(root)
    files = set(m.get("files", []))
    plan = list(ALWAYS)
    if "podman" in engines or "crio" in engines:
        plan += PODMAN
    if "containerd" in engines:
        plan += CONTAINERD
    if "crio" in engines:
        plan += CRIO
    conf_path = _target(root, RUNTIME_YAML[1])
    changes = []
    for src, dst in plan:
        path = _target(root, dst)
        changes.append(Change(path, _read(path), _render(src, progs)))
    if not os.path.exists(conf_path):
        changes.append(Change(conf_path, None, _render(RUNTIME_YAML[0], progs)))
    files.update(c.path for c in changes)
    try:
        if "docker" in engines:
            dpath = _target(root, DAEMON_JSON[1])
            before = _read(dpath)
            ours = json.loads(_render(DAEMON_JSON[0], progs))["runtimes"]
            new = ec.docker_merge(_daemon_json(before, dpath), ours, dpath)
            changes.append(Change(dpath, before, json.dumps(new, indent=2) + "\n"))
            old = m.get("docker", {})
            m["docker"] = {"path": dpath, "runtimes": sorted(ours),
                           "created": bool(old.get("created")) or before is None}
        if "containerd" in engines:
            cpath = _target(root, CONTAINERD_TOML[1])
            before = _read(cpath)
            table = ec.handler_table(_render(CONTAINERD_TOML[0], {}), progs["@RICH_RUNTIME@"])
            text, created = ec.containerd_merge(before or "", table, cpath)
            changes.append(Change(cpath, before, text))
            old = m.get("containerd", {})
            m["containerd"] = {"path": cpath, "created": bool(old.get("created")) or before is None,
                               "tables": old.get("tables", []) + created}
    except ec.EngineConfigError as e:
        raise InstallError(str(e))
    m["files"] = sorted(files)
    return changes, m


def install(args):
    changes, m = plan_install(args)
    if getattr(args, "dry_run", False):
        _show(changes)
        return 0
    for c in changes:
        c.apply()
    _save_manifest(args.root, m)
    for path in m["files"]:
        print("installed %s" % path)
    if "docker" in m:
        print("installed %s: runtimes.%s" % (m["docker"]["path"], ", runtimes.".join(m["docker"]["runtimes"])))
    if "containerd" in m:
        print("installed %s: the CRI runtime handler rich" % m["containerd"]["path"])
    return 0


def plan_uninstall(args):
    from runtime_hooks import engine_config as ec
    root = args.root
    m = _load_manifest(root)
    changes, said = [], []
    for path in m.get("files", []):
        path = _target(root, os.path.relpath(path, os.path.abspath(root)))
        before = _read(path)
        if before is not None:
            changes.append(Change(path, before, None))
            said.append(path)
    dk = m.get("docker")
    if dk:
        dpath = _target(root, os.path.relpath(dk["path"], os.path.abspath(root)))
        before = _read(dpath)
        if before is not None:
            d = ec.docker_unmerge(_daemon_json(before, dpath), dk.get("runtimes", ["rich"]))
            gone = not d and dk.get("created")
            changes.append(Change(dpath, before, None if gone else json.dumps(d, indent=2) + "\n"))
            said.append("%s: runtimes.%s" % (dpath, ", runtimes.".join(dk.get("runtimes", ["rich"]))))
    cd = m.get("containerd")
    if cd:
        cpath = _target(root, os.path.relpath(cd["path"], os.path.abspath(root)))
        before = _read(cpath)
        if before is not None:
            try:
                text = ec.containerd_unmerge(before, cd.get("tables", []), cpath)
            except ec.EngineConfigError as e:
                raise InstallError(str(e))
            gone = cd.get("created") and text.strip() in ("", "version = 2")
            changes.append(Change(cpath, before, None if gone else text))
            said.append("%s: the CRI runtime handler rich" % cpath)
    return changes, said


def uninstall(args):
    changes, said = plan_uninstall(args)
    if getattr(args, "dry_run", False):
        _show(changes)
        return 0
    for c in changes:
        c.apply()
    _save_manifest(args.root, {})
    for r in said:
        print("removed %s" % r)
    return 0
