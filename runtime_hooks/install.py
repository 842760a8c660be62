"""rich install / rich uninstall: put the hooks/ bundle in place for the engines, and take it away.

    --podman      ROOT/usr/share/containers/oci/hooks.d/richinit-{precreate,createruntime,poststop}.json
    --containerd  ROOT/etc/containerd/conf.d/richinit.toml (runc.v2, BinaryName = rich-runtime)
                  ROOT/usr/share/richinit/kubernetes/runtimeclass.yaml (RuntimeClass `rich`)
    --docker      ROOT/etc/docker/daemon.json: runtimes.rich merged in (other keys untouched)
    always        ROOT/etc/richinit/runtime.yaml when absent (names rich-hook), ROOT/usr/share/richinit/lxc/,
                  ROOT/usr/lib/richinit/rich-runtime: the front (hooks/bin/rich-runtime, POSIX sh) that the
                  engines' configs name: it execs the real runtime directly for every call but create/run,
                  and the Python wrapper (BIN_DIR/rich-runtime) for those

No engine flag means all three. What was installed is recorded in ROOT/var/lib/richinit/install.json,
so uninstall removes exactly that (and only the daemon.json entry, not the file, unless we made it).
Both are idempotent. @RICH_HOOK@ / @RICH_RUNTIME@ in the templates become the absolute paths of the
installed programs (--bin-dir, default: the directory `rich` runs from); @RICH_RUNTIME@ is the
installed front, whose @RICH_RUNTIME_PY@ becomes the Python wrapper's path.
"""

import json
import os
import shlex

MANIFEST = "var/lib/richinit/install.json"

PODMAN = [("oci-hooks.d/richinit-%s.json" % s, "usr/share/containers/oci/hooks.d/richinit-%s.json" % s)
          for s in ("precreate", "createruntime", "poststop")]
CONTAINERD = [("containerd/richinit.toml", "etc/containerd/conf.d/richinit.toml"),
              ("kubernetes/runtimeclass.yaml", "usr/share/richinit/kubernetes/runtimeclass.yaml")]
ALWAYS = [("lxc/richinit.conf", "usr/share/richinit/lxc/richinit.conf")]
RUNTIME_YAML = ("richinit/runtime.yaml", "etc/richinit/runtime.yaml")
FRONT = ("bin/rich-runtime", "usr/lib/richinit/rich-runtime")
DAEMON_JSON = "etc/docker/daemon.json"
DOCKER_RUNTIME = "rich"


class InstallError(Exception):
    """One line."""


def _engines(args):
    chosen = [e for e in ("podman", "containerd", "docker") if getattr(args, e, False)]
    return chosen or ["podman", "containerd", "docker"]


def _bin_dir(args):
    import sys
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


def render_front(python_wrapper, config="/" + RUNTIME_YAML[1]):
    """The sh front with the Python wrapper's path and the runtime.yaml it reads put in (shell-quoted)."""
    for p in (python_wrapper, config):
        if not p.startswith("/") or "\n" in p:
            raise InstallError("%s: must be an absolute path on one line" % p)
    return _render(FRONT[0], {"@RICH_RUNTIME_PY@": shlex.quote(python_wrapper),
                              "@RICH_RUNTIME_CONFIG@": shlex.quote(config)})


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
    if not m.get("files") and not m.get("docker"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    _write(path, json.dumps(m, indent=1, sort_keys=True) + "\n", 0o600)


def _read_daemon_json(path):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        d = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise InstallError("%s: not JSON (%s): not touching it" % (path, e))
    if not isinstance(d, dict) or not isinstance(d.get("runtimes", {}), dict):
        raise InstallError("%s: runtimes: must be an object: not touching it" % path)
    return d


def install(args):
    root = args.root
    engines = _engines(args)
    progs = _programs(args)
    m = _load_manifest(root)
    files = set(m.get("files", []))
    plan = list(ALWAYS)
    if "podman" in engines:
        plan += PODMAN
    if "containerd" in engines:
        plan += CONTAINERD
    # Render everything first: a missing template fails before anything is written.
    conf_path = _target(root, RUNTIME_YAML[1])
    front = (_target(root, FRONT[1]), render_front(progs["@RICH_RUNTIME@"], conf_path))
    progs = dict(progs, **{"@RICH_RUNTIME@": front[0]})  # the engines call the front
    rendered = [(_target(root, dst), _render(src, progs)) for src, dst in plan]
    daemon = None
    if "docker" in engines:
        dpath = _target(root, DAEMON_JSON)
        current = _read_daemon_json(dpath)
        daemon = (dpath, current)
    conf_text = None if os.path.exists(conf_path) else _render(RUNTIME_YAML[0], progs)
    _write(front[0], front[1], 0o755)
    files.add(front[0])
    for path, text in rendered:
        _write(path, text)
        files.add(path)
    if conf_text is not None:
        _write(conf_path, conf_text)
        files.add(conf_path)
    if daemon:
        dpath, current = daemon
        d = current if current is not None else {}
        d.setdefault("runtimes", {})[DOCKER_RUNTIME] = {"path": progs["@RICH_RUNTIME@"]}
        _write(dpath, json.dumps(d, indent=2) + "\n")
        m["docker"] = {"path": dpath, "created": bool(m.get("docker", {}).get("created")) or current is None}
    m["files"] = sorted(files)
    _save_manifest(root, m)
    for path in sorted(files):
        print("installed %s" % path)
    if daemon:
        print("installed %s: runtimes.%s" % (daemon[0], DOCKER_RUNTIME))
    return 0


def uninstall(args):
    root = args.root
    m = _load_manifest(root)
    removed = []
    for path in m.get("files", []):
        path = _target(root, os.path.relpath(path, os.path.abspath(root)))
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
    dk = m.get("docker")
    if dk:
        dpath = _target(root, os.path.relpath(dk["path"], os.path.abspath(root)))
        d = _read_daemon_json(dpath)
        if d is not None:
            d.get("runtimes", {}).pop(DOCKER_RUNTIME, None)
            if not d.get("runtimes"):
                d.pop("runtimes", None)
            if not d and dk.get("created"):
                os.unlink(dpath)
            else:
                _write(dpath, json.dumps(d, indent=2) + "\n")
            removed.append("%s: runtimes.%s" % (dpath, DOCKER_RUNTIME))
    _save_manifest(root, {})
    for r in removed:
        print("removed %s" % r)
    return 0
