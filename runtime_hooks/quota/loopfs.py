"""The loop backend: a size-limited ext4 image mounted over each quota directory.

Why ioctls and not `mount -o loop`: LOOP_CONFIGURE with LO_FLAGS_AUTOCLEAR ties the loop device to
the mount (unmount frees it, nothing to losetup -d, no leak when we crash between steps), errors
come back as errnos instead of mount(8)'s text, and the target is mounted through
/proc/self/fd/N of a directory we opened and checked — mount(8) would take a path string again.

mkfs.ext4 and resize2fs are the host's own binaries (never anything from the rootfs). The
directory's existing content is copied into the image before the image is mounted over it:
`mkfs.ext4 -d` for a single directory, `cp -a` into one subdirectory per member for a shared
limit (then each subdirectory is bind-mounted over its directory). The image is sparse: it costs
what is written. Growing it (ext4's own metadata takes a share of a small image, or a restarted
container asks for a higher limit) is offline: unmount, truncate, resize2fs, mount again (online
resizing needs CAP_SYS_RESOURCE, which a container host's root does not always have). A shared
limit is staged at IMAGE.stage, a path the record names before anything is made, so release()
clears it after a crash.
"""

import hashlib
import os
import subprocess

from osbase import fsquota, libc, safepath
from runtime_hooks.quota import mountinfo
from runtime_hooks.quota.errors import QuotaError

UMOUNT_NOFOLLOW = 0x8
_MKFS_OPTS = "nodiscard,lazy_itable_init=1,lazy_journal_init=1"


def _mkfs(extra=""):
    return ["mkfs.ext4", "-q", "-F", "-m", "0", "-E", _MKFS_OPTS + extra]
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def image_path(state_dir, container, key):
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(state_dir, "quota", "images", container, name + ".img")


def paths(group, container, state_dir):
    """What apply_group will make, for the record written before it acts: the image and, for a
    shared limit, the staging mount point (release() clears both after a crash)."""
    image = image_path(state_dir, container, group.key)
    out = {"image": image}
    if len(group.dirs) > 1:
        out["stage"] = image[:-len(".img")] + ".stage"
    return out


def _run(argv, what, pass_fds=()):
    r = subprocess.run(argv, capture_output=True, text=True, env=_ENV, pass_fds=pass_fds,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        last = (r.stderr.strip() or r.stdout.strip() or "exit %d" % r.returncode).splitlines()[-1]
        raise QuotaError("%s: %s" % (what, last))


def _open_verified(d):
    fd = os.open(d.host, safepath.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (d.dev, d.ino):
        os.close(fd)
        raise QuotaError("%s changed since the quota was planned" % d.host)
    return fd


def _is_empty(fd):
    with os.scandir(safepath.fd_path(fd)) as it:
        return next(it, None) is None


def _mount_image(image, target, flags=0):
    """Attach the image to a loop device and mount it at target (a path or /proc/self/fd/N)."""
    img = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        dev, devfd = fsquota.loop_attach(img, os.fsencode(os.path.basename(image)))
    finally:
        os.close(img)
    try:
        libc.mount(dev, target, "ext4", flags, None)
    except OSError:
        fsquota.loop_detach(devfd)
        raise
    finally:
        os.close(devfd)  # AUTOCLEAR: the mount now holds the device
    return dev


def _match_owner(path, st):
    os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(path, st.st_mode & 0o7777, follow_symlinks=False)


def apply_group(group, container, state_dir, undo):
    """Create, fill and mount the group's image; returns the record kept for release and ls."""
    image = image_path(state_dir, container, group.key)
    if not os.path.isdir(os.path.dirname(image)):
        os.makedirs(os.path.dirname(image), mode=0o700)
        undo.append(lambda: _rmdir_if_empty(os.path.dirname(image)))
    if os.path.exists(image):
        return _reuse(group, image, undo)
    fds = [_open_verified(d) for d in group.dirs]
    try:
        fd = os.open(image, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
        undo.append(lambda: os.unlink(image))
        try:
            os.ftruncate(fd, group.limit)  # sparse
        finally:
            os.close(fd)
        if len(group.dirs) == 1:
            _single(group, image, fds[0], undo)
        else:
            _shared(group, image, fds, state_dir, undo)
    finally:
        for fd in fds:
            os.close(fd)
    return {"image": image}


def _single(group, image, dirfd, undo):
    d = group.dirs[0]
    st = os.fstat(dirfd)
    argv = _mkfs(",root_owner=%d:%d" % (st.st_uid, st.st_gid))
    fds = ()
    if not _is_empty(dirfd):
        argv += ["-d", safepath.fd_path(dirfd)]  # copies the content in, symlinks as symlinks
        fds = (dirfd,)
    try:
        _run(argv + [image], "%s: mkfs.ext4 for %s" % (group.rule, d.host), pass_fds=fds)
    except QuotaError as e:
        if fds and "Could not allocate" in str(e):
            raise QuotaError("%s: the content of %s does not fit in an ext4 image of this size next to ext4's "
                             "own metadata; raise the limit" % (group.rule, d.host))
        raise
    undo.append(lambda: _umount_if_ours(d.host, image))
    _mount_fitted(image, safepath.fd_path(dirfd), d.host, group.limit, group.rule)
    os.chmod(d.host, st.st_mode & 0o7777)


def _shared(group, image, fds, state_dir, undo):
    _run(_mkfs() + [image], "%s: mkfs.ext4" % group.rule)
    staging = image[:-len(".img")] + ".stage"
    _clear_stage(staging)
    os.mkdir(staging, 0o700)
    try:
        _mount_fitted(image, staging, staging, group.limit, group.rule)
        try:
            for i, (d, fd) in enumerate(zip(group.dirs, fds, strict=True)):
                sub = os.path.join(staging, str(i))
                os.mkdir(sub)
                if not _is_empty(fd):
                    _run(["cp", "-a", "--one-file-system", safepath.fd_path(fd) + "/.", sub],
                         "%s: copying %s into the image" % (group.rule, d.host), pass_fds=(fd,))
                _match_owner(sub, os.fstat(fd))
            for i, (d, fd) in enumerate(zip(group.dirs, fds, strict=True)):
                try:
                    libc.mount(os.path.join(staging, str(i)), safepath.fd_path(fd), None, libc.MS_BIND, None)
                except OSError as e:
                    raise QuotaError("%s: binding the image over %s: %s" % (group.rule, d.host, e.strerror))
                undo.append(lambda h=d.host: _umount(h))
        finally:
            libc.umount(staging, libc.MNT_DETACH)  # the binds keep the filesystem (and device) alive
    finally:
        os.rmdir(staging)


def _mounted_image(host):
    """The loop device mounted at host and its backing file, or (None, None)."""
    m = mountinfo.at(mountinfo.read(), host)
    if m is None or not m.source.startswith("/dev/loop"):
        return None, None
    try:
        with open("/sys/block/%s/loop/backing_file" % os.path.basename(m.source)) as f:
            return m.source, f.read().strip()
    except OSError:
        return m.source, None


def _reuse(group, image, undo):
    """Same container again (a restart, a kept volume): remount if needed and grow to the limit."""
    if len(group.dirs) != 1:
        raise QuotaError("%s: reusing a shared loop image is not supported; release the container first"
                         % group.rule)
    d = group.dirs[0]
    _, backing = _mounted_image(d.host)
    if backing == image:
        have = usage(d.host)[0]
        if group.limit + _SLACK < have:
            raise QuotaError("%s: the loop backend cannot shrink %s from %d bytes" % (group.rule, d.host, have))
        if have >= group.limit:
            return {"image": image}
        # Growing needs the image unmounted: online resize (EXT4_IOC_RESIZE_FS) wants
        # CAP_SYS_RESOURCE, which a container host's root does not always have. The plan saw
        # our image's root, so the directory underneath is opened without that check.
        _umount(d.host)
        fd = os.open(d.host, safepath.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    else:
        fd = _open_verified(d)
    try:
        undo.append(lambda: _umount_if_ours(d.host, image))
        _mount_fitted(image, safepath.fd_path(fd), d.host, group.limit, group.rule)
    finally:
        os.close(fd)
    return {"image": image}


_SLACK = 1 << 20  # how far above the limit the usable size may end up (block-group granularity)


def _mount_fitted(image, target, mounted_at, limit, what):
    """Mount the image at target and make df there show at least the limit.

    ext4's journal and inode tables take their share of a small image (a 10M image holds
    8.2M), so the image is grown by what statfs says is missing: unmount, truncate, offline
    resize2fs, mount again (online resizing needs CAP_SYS_RESOURCE)."""
    for attempt in range(4):
        try:
            _mount_image(image, target)
        except OSError as e:
            raise QuotaError("%s: mounting the image over %s: %s" % (what, mounted_at, e.strerror))
        have = usage(mounted_at)[0]
        if have >= limit or attempt == 3:
            return
        _umount(mounted_at)
        size = -(-(os.stat(image).st_size + limit - have) // 65536) * 65536
        with open(image, "r+b") as f:
            os.ftruncate(f.fileno(), size)
        _run(["resize2fs", "-f", image], "%s: resize2fs %s" % (what, image))


def _rmdir_if_empty(path):
    try:
        os.rmdir(path)
    except OSError:
        pass


def _umount_if_ours(host, image):
    if _mounted_image(host)[1] == image:
        _umount(host)


def _umount(host):
    try:
        libc.umount(host, UMOUNT_NOFOLLOW)
    except OSError:
        libc.umount(host, UMOUNT_NOFOLLOW | libc.MNT_DETACH)  # still busy: detach, the device frees later


def _clear_stage(staging):
    """A staging mount point left by a killed apply: detach what is mounted there, remove it."""
    if not os.path.isdir(staging):
        return
    if mountinfo.at(mountinfo.read(), staging) is not None:
        libc.umount(staging, libc.MNT_DETACH)
    os.rmdir(staging)


def release_group(rec, keep):
    """Unmount the image from every directory; remove it unless kept. Returns problems."""
    problems = []
    if rec.get("stage"):
        try:
            _clear_stage(rec["stage"])
        except OSError as e:
            problems.append("staging %s: %s" % (rec["stage"], e.strerror))
    for host in rec["hosts"]:
        dev, backing = _mounted_image(host)
        if dev is None:
            continue
        if backing not in (None, rec["image"]):
            problems.append("%s: mounted image is %s, not ours; left alone" % (host, backing))
            continue
        try:
            _umount(host)
        except OSError as e:
            problems.append("unmounting %s: %s" % (host, e.strerror))
    if not keep and not problems:
        try:
            os.unlink(rec["image"])
            os.rmdir(os.path.dirname(rec["image"]))
        except FileNotFoundError:
            pass
        except OSError:
            pass  # other images of the container remain
    return problems


def usage(host):
    """(size, used) of the mounted filesystem, as df sees it."""
    st = os.statvfs(host)
    return st.f_blocks * st.f_frsize, (st.f_blocks - st.f_bfree) * st.f_frsize
