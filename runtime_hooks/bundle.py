"""Building an OCI bundle for `rich run`: the rootfs (an overlay over a directory, or an unpacked
tarball) and config.json (runc-spec defaults plus what the command line asks for).

parse (sizes, CPUs, volumes, names) → validate (each problem one line naming the option) →
act (mount the overlay / unpack, write config.json). Unpacking is done in Python with every
member checked: no absolute names, no '..', never through a symlink the archive made, no device
nodes — an archive is hostile input.
"""

import os
import stat

from osbase import jsonfast, libc

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CPU_PERIOD = 100000
# Syntax is checked by hand: `rich run` is on a container's start-up path, and `re` costs ~6 ms.
_NAME_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")
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
    """[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"""
    return isinstance(name, str) and 0 < len(name) <= 64 and name[0] in _NAME_FIRST \
        and all(c in _NAME_REST for c in name)


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
        f.write(jsonfast.dumps(cfg))
    os.rename(tmp, path)
    return path


# ---------------------------------------------------------------- rootfs

def overlay_rootfs(lower, container_dir):
    """Mount an overlay of `lower` at CONTAINER/rootfs (writes go to CONTAINER/upper); returns it."""
    for c in ",:\n":
        if c in lower:
            raise BundleError("%s: a rootfs path with %r cannot be an overlay lower directory" % (lower, c))
    merged = os.path.join(container_dir, "rootfs")
    upper, work = os.path.join(container_dir, "upper"), os.path.join(container_dir, "work")
    for d in (merged, upper, work):
        os.makedirs(d, exist_ok=True)
    try:
        libc.mount("overlay", merged, "overlay", 0,
                   "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work))
    except OSError as e:
        raise BundleError("%s: cannot mount an overlay over it: %s" % (lower, e.strerror or e))
    return merged


def unmount_rootfs(container_dir):
    merged = os.path.join(container_dir, "rootfs")
    try:
        libc.umount(merged, libc.MNT_DETACH)
    except OSError:
        pass


def _safe_parent(root, rel):
    """The member's parent directories exist as real directories (never symlinks) under root."""
    cur = root
    for comp in rel.split("/")[:-1]:
        cur = os.path.join(cur, comp)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            os.mkdir(cur, 0o755)
            continue
        if not stat.S_ISDIR(st.st_mode):
            return False
    return True


def _member_name(name):
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or name.startswith("/") or "\0" in name:
        return None
    return "/".join(parts)


def unpack(tarball, dest, progress=None):
    """Unpack a rootfs archive (any compression tarfile reads) into dest, member by member, checked."""
    import tarfile  # only for tarballs: a directory rootfs (the common case) starts faster without it
    say = progress or (lambda n, name: None)
    try:
        tf = tarfile.open(tarball, "r:*")
    except (OSError, tarfile.TarError) as e:
        raise BundleError("%s: not a readable tar archive: %s" % (tarball, e))
    os.makedirs(dest, exist_ok=True)
    root = os.path.realpath(dest)
    skipped = 0
    with tf:
        for n, m in enumerate(tf, 1):
            rel = _member_name(m.name)
            if rel is None:
                if m.name.strip("./"):
                    raise BundleError("%s: member %r: absolute or '..' path refused" % (tarball, m.name))
                continue
            if m.ischr() or m.isblk() or m.isfifo():
                skipped += 1  # the runtime provides /dev
                continue
            if not _safe_parent(root, rel):
                raise BundleError("%s: member %r: goes through a symlink or a file" % (tarball, m.name))
            target = os.path.join(root, rel)
            if m.islnk():
                link = _member_name(m.linkname)
                # os.link follows a symlink source (linkat AT_SYMLINK_FOLLOW): never link through one.
                if link is None or not _safe_parent(root, link) or os.path.islink(os.path.join(root, link)):
                    raise BundleError("%s: member %r: hard link outside the archive" % (tarball, m.name))
            if os.path.lexists(target) and not (m.isdir() and os.path.isdir(target) and not os.path.islink(target)):
                if os.path.isdir(target) and not os.path.islink(target):
                    import shutil
                    shutil.rmtree(target)
                else:
                    os.unlink(target)
            m = m.replace(name=rel, linkname=_member_name(m.linkname) if m.islnk() else m.linkname) \
                if hasattr(m, "replace") else _renamed(m, rel)
            try:
                tf.extract(m, root, set_attrs=True, numeric_owner=True)
            except (OSError, tarfile.TarError) as e:
                raise BundleError("%s: member %r: %s" % (tarball, m.name, e))
            if n % 500 == 0:
                say(n, rel)
    return skipped


def _renamed(m, rel):
    m.name = rel
    if m.islnk():
        m.linkname = _member_name(m.linkname)
    return m
