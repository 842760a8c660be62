"""Building an OCI bundle for `rich run`: the rootfs (an overlay over a directory, or an unpacked
tarball) and config.json (runc-spec defaults plus what the command line asks for).

parse (sizes, CPUs, volumes, names) → validate (each problem one line naming the option) →
act (mount the overlay / unpack, write config.json). Unpacking is done in Python with every
member checked: no absolute names, no '..', never through a symlink the archive made, no device
nodes — an archive is hostile input. tarfile parses; the members are written through directory
fds from osbase.safepath (open_dirs_nofollow), never by path strings.
"""

import os
import stat

from osbase import libc, standin

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD = 100000
_NAME_REST = standin.ALNUM | frozenset("_.-")
# What a legacy workload (sshd, cron, su) needs; Docker's default set.
CAPABILITIES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


class BundleError(Exception):
    """One line naming the option or file that is wrong."""


# ---------------------------------------------------------------- parse

def size_bytes(text):
    """'256m', '1g', '512M', '1GiB', '1.5g', '1048576' → bytes (binary units, a float); None if none."""
    t = (text or "").strip().lower()
    if t.endswith("b"):
        t = t[:-1]
    if t.endswith("i"):
        t = t[:-1]
    power = 0
    if t[-1:] in ("k", "m", "g", "t"):
        power = " kmgt".index(t[-1])
        t = t[:-1]
    t = t.rstrip()
    whole, dot, frac = t.partition(".")
    if not whole.isdecimal() or (dot and not frac.isdecimal()):
        return None
    return float(t) * (1 << (10 * power))


def parse_size(text, what="--memory"):
    """size_bytes, at least 4 MiB; BundleError naming the option otherwise."""
    n = size_bytes(text)
    if n is None:
        raise BundleError("%s: bad size %r (use e.g. 256m or 1g)" % (what, text))
    if n < 4 << 20:
        raise BundleError("%s: %r is below 4m" % (what, text))
    return int(n)


def parse_cpus(text):
    """'1.5' → (quota, period) for CFS: 150000 µs per 100000 µs."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        v = None
    if v is None or not 0.01 <= v <= 1024:
        raise BundleError("--cpus: must be a number between 0.01 and 1024, not %r" % (text,))
    return int(round(v * CPU_PERIOD)), CPU_PERIOD


def parse_volume(text):
    """'HOST_DIR:DIR[:ro|rw]' → a bind mount entry; the host side must exist."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise BundleError("-v %s: expected HOST_DIR:DIR[:ro]" % text)
    host, dest = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise BundleError("-v %s: mode must be ro or rw, not %r" % (text, mode))
    if not host.startswith("/") or not dest.startswith("/"):
        raise BundleError("-v %s: both paths must be absolute" % text)
    if ".." in dest.split("/") or "\0" in text:
        raise BundleError("-v %s: the container path must not contain '..'" % text)
    if not os.path.exists(host):
        raise BundleError("-v %s: %s does not exist" % (text, host))
    opts = ["rbind", "rprivate"] + (["ro"] if mode == "ro" else [])
    return {"destination": dest, "type": "bind", "source": os.path.realpath(host), "options": opts}


def parse_annotation(text):
    key, eq, value = text.partition("=")
    if not eq or not key or any(c.isspace() for c in key):
        raise BundleError("--annotation %s: expected KEY=VALUE" % text)
    return key, value


def valid_name(name):
    """[A-Za-z0-9][A-Za-z0-9_.-]{0,63} (osbase.standin.name_ok: no `re` on `rich run`'s path)"""
    return standin.name_ok(name, 64, _NAME_REST)


def check_name(name):
    if not valid_name(name):
        raise BundleError("--name %r: letters, digits, '_', '.', '-' (at most 64, not starting with a symbol)"
                          % (name,))
    return name


# ---------------------------------------------------------------- config.json

def _default_mounts():
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755",
                                                                                "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]


def make_config(rootfs, args, *, hostname="rich", env=(), cwd="/", memory=None, cpus=None, volumes=(),
                annotations=None, terminal=False, network="none"):
    """A runc-spec-like config.json dict. network: 'none' (a fresh namespace with lo) or 'host'."""
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if network != "host":
        namespaces.append({"type": "network"})
    caps = list(CAPABILITIES)
    resources = {"devices": [{"allow": False, "access": "rwm"}]}
    if memory:
        resources["memory"] = {"limit": int(memory)}
    if cpus:
        resources["cpu"] = {"quota": int(cpus[0]), "period": int(cpus[1])}
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": bool(terminal), "user": {"uid": 0, "gid": 0}, "args": list(args),
            "env": [DEFAULT_PATH, "HOME=/root"] + (["TERM=xterm"] if terminal else []) + list(env),
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": False,
        },
        "root": {"path": rootfs, "readonly": False},
        "hostname": hostname,
        "mounts": _default_mounts() + list(volumes),
        "annotations": dict(annotations or {}),
        "linux": {
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def write_config(bundle, cfg):
    path = os.path.join(bundle, "config.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(standin.json_dumps(cfg))
    os.rename(tmp, path)
    return path


# ---------------------------------------------------------------- rootfs

def overlay_rootfs(lower, container_dir, volatile=False):
    """Mount an overlay of `lower` at CONTAINER/rootfs (writes go to CONTAINER/upper); returns it.

    volatile: the upper layer is thrown away with the container (a foreground `rich run`), so
    overlayfs may skip syncing it; its unmount then takes ~0.1 ms instead of 1-9 ms here."""
    for c in ",:\n":
        if c in lower:
            raise BundleError("%s: a rootfs path with %r cannot be an overlay lower directory" % (lower, c))
    merged = os.path.join(container_dir, "rootfs")
    upper, work = os.path.join(container_dir, "upper"), os.path.join(container_dir, "work")
    for d in (merged, upper, work):
        os.makedirs(d, exist_ok=True)
    try:
        libc.mount("overlay", merged, "overlay", 0, "lowerdir=%s,upperdir=%s,workdir=%s%s"
                   % (lower, upper, work, ",volatile" if volatile else ""))
    except OSError as e:
        raise BundleError("%s: cannot mount an overlay over it: %s" % (lower, e.strerror or e))
    return merged


def unmount_rootfs(container_dir):
    merged = os.path.join(container_dir, "rootfs")
    try:
        libc.umount(merged, libc.MNT_DETACH)
    except OSError:
        pass


def _member_name(name):
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or name.startswith("/") or "\0" in name:
        return None
    return "/".join(parts)


def unpack(tarball, dest, progress=None):
    """Unpack a rootfs archive (any compression tarfile reads) into dest, member by member, checked.

    tarfile only parses; every member is written by us through file descriptors: its parent is
    opened component by component with O_NOFOLLOW under dest (osbase.safepath.open_dirs_nofollow),
    so a symlink the archive made earlier is never followed, and the member is created relative to
    that fd (O_EXCL|O_NOFOLLOW, symlinkat, linkat without following). Owners are the archive's
    numbers, modes keep set-id bits (chmod after chown), directories get their attributes last.
    Device nodes and FIFOs are skipped (the runtime provides /dev); returns how many.
    """
    import tarfile  # only for tarballs: a directory rootfs (the common case) starts faster without it

    from osbase import safepath
    say = progress or (lambda n, name: None)
    try:
        tf = tarfile.open(tarball, "r:*")
    except (OSError, tarfile.TarError) as e:
        raise BundleError("%s: not a readable tar archive: %s" % (tarball, e))
    os.makedirs(dest, exist_ok=True)
    rootfd = safepath.open_root(dest)
    skipped, dirs = 0, []
    try:
        with tf:
            for n, m in enumerate(tf, 1):
                rel = _member_name(m.name)
                if rel is None:
                    if m.name.strip("./"):
                        raise BundleError("%s: member %r: absolute or '..' path refused" % (tarball, m.name))
                    continue
                if m.ischr() or m.isblk() or m.isfifo():
                    skipped += 1
                    continue
                try:
                    _write_member(tf, m, rootfd, rel, tarball)
                except safepath.UnsafePath:
                    raise BundleError("%s: member %r: goes through a symlink or a file" % (tarball, m.name))
                except (OSError, tarfile.TarError) as e:
                    raise BundleError("%s: member %r: %s" % (tarball, m.name, getattr(e, "strerror", None) or e))
                if m.isdir():
                    dirs.append((rel, m))
                if n % 500 == 0:
                    say(n, rel)
        for rel, m in reversed(dirs):  # deepest first: setting a parent's mtime must come after its content
            _dir_attrs(rootfd, rel, m)
    finally:
        os.close(rootfd)
    return skipped


_NOFOLLOW_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


def _write_member(tf, m, rootfd, rel, tarball):
    from osbase import safepath
    parent, _, base = rel.rpartition("/")
    pfd = safepath.open_dirs_nofollow(rootfd, parent)
    try:
        _clear(pfd, base, keep_dir=m.isdir())
        if m.isdir():
            try:
                os.mkdir(base, 0o700, dir_fd=pfd)
            except FileExistsError:
                pass  # a directory already (an earlier member): its attributes come at the end
        elif m.issym():
            os.symlink(m.linkname, base, dir_fd=pfd)
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            os.utime(base, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
        elif m.islnk():
            _hard_link(m, rootfd, pfd, base, tarball)
        elif m.isreg():
            src = tf.extractfile(m)
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW_FLAGS, 0o600, dir_fd=pfd)
            try:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                os.fchown(fd, m.uid, m.gid)
                os.fchmod(fd, m.mode & 0o7777)  # after chown, which clears set-id bits
                os.utime(fd, (m.mtime, m.mtime))
            finally:
                os.close(fd)
        # other member types (sparse handled as regular by tarfile, contiguous...) are not in rootfs archives
    finally:
        os.close(pfd)


def _clear(pfd, base, keep_dir):
    """What stands at base goes, unless it is a directory and the member is one too."""
    from osbase import safepath
    try:
        st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not keep_dir:
            safepath.remove_tree(base, dir_fd=pfd)
    else:
        os.unlink(base, dir_fd=pfd)


def _hard_link(m, rootfd, pfd, base, tarball):
    from osbase import safepath
    target = _member_name(m.linkname)
    if target is None:
        raise BundleError("%s: member %r: hard link outside the archive" % (tarball, m.name))
    tparent, _, tbase = target.rpartition("/")
    try:
        tfd = safepath.open_dirs_nofollow(rootfd, tparent)
    except safepath.UnsafePath:
        raise BundleError("%s: member %r: hard link outside the archive" % (tarball, m.name))
    try:
        try:
            st = os.stat(tbase, dir_fd=tfd, follow_symlinks=False)
        except FileNotFoundError:
            raise BundleError("%s: member %r: hard link to a missing %r" % (tarball, m.name, m.linkname))
        if stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode):
            # linking a symlink would only copy the link, but an archive that asks for it is up to something
            raise BundleError("%s: member %r: hard link outside the archive" % (tarball, m.name))
        os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
    finally:
        os.close(tfd)


def _dir_attrs(rootfd, rel, m):
    """Owner, mode and mtime of a directory member, once everything under it is written."""
    from osbase import safepath
    parent, _, base = rel.rpartition("/")
    try:
        pfd = safepath.open_dirs_nofollow(rootfd, parent)
    except OSError:
        return  # replaced by a later member
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW_FLAGS, dir_fd=pfd)
    except OSError:
        return
    finally:
        os.close(pfd)
    try:
        os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode & 0o7777)
        os.utime(fd, (m.mtime, m.mtime))
    finally:
        os.close(fd)
