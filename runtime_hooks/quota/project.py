"""The project-quota backend: tag a directory tree with a project ID, set the block limit.

Tagging walks the tree with file descriptors only (O_NOFOLLOW at every step, never crossing into
another filesystem): the content may come from an image or a container and is hostile. Directories
get the ID and FS_XFLAG_PROJINHERIT (new files inherit it), regular files get the ID; symlinks and
special files are skipped (opening a device or a FIFO from a hostile tree is not something a host
process does). The limit is set with quotactl: Q_XSETQLIM on xfs, Q_SETQUOTA on ext4.
"""

import errno
import os
import stat

from osbase import fsquota
from runtime_hooks.quota.errors import QuotaError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def open_verified(d):
    """Open the planned directory for the ioctls; refuse it if it is not the one planned."""
    fd = os.open(d.host, _DIR)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (d.dev, d.ino):
        os.close(fd)
        raise QuotaError("%s changed since the quota was planned" % d.host)
    return fd


def _set(fd, projid, is_dir):
    have, flags = fsquota.get_project(fd)
    inherit = is_dir and projid != 0
    if have == projid and bool(flags & fsquota.FS_XFLAG_PROJINHERIT) == inherit:
        return
    fsquota.set_project(fd, projid, inherit)


def tag_tree(topfd, projid):
    """Give topfd's tree the project ID (0 clears it); returns the number of inodes visited."""
    dev = os.fstat(topfd).st_dev
    _set(topfd, projid, True)
    count = 1
    stack = [(os.dup(topfd), None)]
    try:
        while stack:
            fd, it = stack[-1]
            if it is None:
                it = iter(os.scandir(fd))
                stack[-1] = (fd, it)
            entry = next(it, None)
            if entry is None:
                os.close(stack.pop()[0])
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if st.st_dev != dev:
                continue  # a mount point: another filesystem, not ours to tag
            if stat.S_ISDIR(st.st_mode):
                child = os.open(entry.name, _DIR, dir_fd=fd)
                _set(child, projid, True)
                count += 1
                stack.append((child, None))
            elif stat.S_ISREG(st.st_mode):
                f = os.open(entry.name, _FILE, dir_fd=fd)
                try:
                    _set(f, projid, False)
                finally:
                    os.close(f)
                count += 1
    finally:
        for fd, _ in stack:
            os.close(fd)
    return count


def set_limit(fd, fs, projid, limit):
    if fs == "xfs":
        fsquota.xfs_set_limit(fd, projid, limit)
    else:
        fsquota.set_limit(fd, projid, limit)


def get_quota(fd, fs, projid):
    """(limit bytes, used bytes)."""
    if fs == "xfs":
        return fsquota.xfs_get_quota(fd, projid)
    return fsquota.get_quota(fd, projid)


def apply_group(group, projid, undo):
    """Tag every directory of the group and set its limit; push undo steps as they succeed.

    Undo steps reopen the directory (checked against the plan) rather than keep an fd: a
    successful apply drops its undo list, and must not leak descriptors doing so.
    """
    fds = []
    try:
        for d in group.dirs:
            fds.append(open_verified(d))
        for d, fd in zip(group.dirs, fds, strict=True):
            undo.append(lambda d=d: _with_dir(d, _untag))
            try:
                tag_tree(fd, projid)
            except OSError as e:
                raise QuotaError("%s: tagging %s with project %d: %s" % (group.rule, d.host, projid, e))
        d0 = group.dirs[0]
        try:
            set_limit(fds[0], d0.fs, projid, group.limit)
        except OSError as e:
            if e.errno == errno.ENOSYS:
                raise QuotaError("%s: this kernel cannot enforce project quotas (quotactl: ENOSYS)" % group.rule)
            raise QuotaError("%s: setting the limit of project %d: %s" % (group.rule, projid, e))
        undo.append(lambda: _with_dir(d0, lambda dfd: set_limit(dfd, d0.fs, projid, 0)))
    finally:
        for fd in fds:
            os.close(fd)


def _untag(fd):
    tag_tree(fd, 0)


def _with_dir(d, fn):
    fd = open_verified(d)
    try:
        fn(fd)
    finally:
        os.close(fd)


def release_group(rec):
    """Clear the limit and the tags (a reused ID must not inherit old files). Returns problems."""
    problems = []
    for i, host in enumerate(rec["hosts"]):
        try:
            fd = os.open(host, _DIR)
        except OSError as e:
            if e.errno != errno.ENOENT:  # the engine removed the upperdir already: nothing to untag
                problems.append("%s: %s" % (host, e.strerror))
            continue
        try:
            if i == 0:
                try:
                    set_limit(fd, rec["fs"], rec["id"], 0)
                except OSError as e:
                    if e.errno != errno.ENOSYS:
                        problems.append("clearing the limit of project %d: %s" % (rec["id"], e))
            tag_tree(fd, 0)
        except OSError as e:
            problems.append("untagging %s: %s" % (host, e))
        finally:
            os.close(fd)
    return problems
