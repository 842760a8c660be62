"""richctl on the image's PATH: a read-only bind of the portable runtime's bin/richctl.

The runtime's own copy is always at /.richinit/bin/richctl. Where the image has a directory of its
PATH (process.env, or the usual one) and no richctl of its own there, rich mode also binds it as
DIR/richctl, so `docker exec C richctl status` works. The rootfs is only looked at, through
osbase.safepath (resolved inside it, symlinks as the container would see them).
"""

import os
import stat

from osbase import safepath

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAME = "richctl"


def _path_of(cfg):
    proc = cfg.get("process") or {}
    for e in proc.get("env") or ():
        if isinstance(e, str) and e.startswith("PATH="):
            return e[5:]
    return DEFAULT_PATH


def _stat(rootfd, path):
    """os.stat_result of `path` inside the root, or None when it is not there."""
    try:
        fd = safepath.open_in_root(rootfd, path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def richctl_mount(cfg, rootfs, runtime_dir):
    """The bind mount placing richctl on the image's PATH, or None (no such directory, or the image
    has its own richctl, or the config mounts something there already)."""
    if not os.path.isfile(os.path.join(runtime_dir, "bin", NAME)):
        return None
    dests = {m.get("destination", "").rstrip("/") for m in cfg.get("mounts") or () if isinstance(m, dict)}
    try:
        rootfd = safepath.open_root(rootfs)
    except OSError:
        return None
    try:
        for d in _path_of(cfg).split(":"):
            if not d.startswith("/") or "/." in d:
                continue
            target = d.rstrip("/") + "/" + NAME
            st = _stat(rootfd, d)
            if target in dests or st is None or not stat.S_ISDIR(st.st_mode):
                continue
            st = _stat(rootfd, target)
            if st is not None and not (stat.S_ISREG(st.st_mode) and st.st_size == 0):
                return None  # the image's own richctl comes first on its PATH
            # (an empty file is the mount point the runtime made last time: a restarted container)
            return {"destination": target, "type": "bind", "source": os.path.join(runtime_dir, "bin", NAME),
                    "options": ["bind", "ro", "nosuid", "nodev", "rprivate"]}
    finally:
        os.close(rootfd)
    return None


def add_richctl(cfg, bundle, runtime_dir):
    """Append richctl_mount to the (rich, ours to change) config; returns cfg. Without a bundle
    (podman's precreate) root.path must be absolute to be looked at."""
    root = cfg.get("root", {}).get("path", "rootfs")
    if bundle is None and not root.startswith("/"):
        return cfg
    m = richctl_mount(cfg, os.path.join(bundle or "/", root), os.path.realpath(runtime_dir))
    if m:
        cfg["mounts"].append(m)
    return cfg
