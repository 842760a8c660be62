"""Resolve paths inside a container root without ever leaving it.

Every host-side access to a path under an image's rootfs goes through here. The
image is hostile: any component may be a symlink pointing at /, at /proc/self/...,
or at ../../.. . We resolve as if the rootfs were "/": openat2(RESOLVE_IN_ROOT)
when the kernel has it (5.6+), otherwise a component-by-component O_PATH|O_NOFOLLOW
walk that interprets symlinks itself and clamps ".." at the root. Callers get file
descriptors, never strings, and mount or read through /proc/self/fd/N so a path
swapped after the check cannot redirect them (CVE-2021-30465, CVE-2024-0132).
"""

import errno
import os
import stat

from osbase import libc

O_PATH = getattr(os, "O_PATH", 0o10000000)
_MAX_SYMLINKS = 40

_openat2_works = None  # tri-state cache: None = not tried yet


class UnsafePath(OSError):
    """A path that cannot be resolved inside the root (too many links, not a dir...)."""


def fd_path(fd):
    """The magic link through which a resolved fd can be mounted or reopened."""
    return "/proc/self/fd/%d" % fd


def open_root(root):
    """O_PATH fd of the root directory itself (a host path the caller trusts)."""
    return os.open(root, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _components(path):
    return [c for c in path.split("/") if c and c != "."]


def _walk(rootfd, path, flags, mode, budget):
    """The portable resolver: returns an fd for `path` interpreted inside rootfd."""
    # Stack of O_PATH fds for the directories we are in; index 0 is the root.
    stack = [os.dup(rootfd)]
    todo = _components(path)
    try:
        while todo:
            name = todo.pop(0)
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            last = not todo
            cur = stack[-1]
            try:
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                if last and flags & os.O_CREAT:
                    fd = os.open(name, (flags | os.O_NOFOLLOW | os.O_CLOEXEC), mode, dir_fd=cur)
                    return fd
                raise
            if stat.S_ISLNK(st.st_mode):
                budget -= 1
                if budget < 0:
                    raise UnsafePath(errno.ELOOP, "too many symlinks resolving %s" % path)
                target = os.readlink(name, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo = _components(target) + todo
                continue
            if last:
                return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=cur)
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafePath(errno.ENOTDIR, "%s: %s is not a directory" % (path, name))
            stack.append(os.open(name, O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=cur))
        # The path named the root itself (or resolved back to it).
        return os.open(".", (flags & ~os.O_CREAT) | os.O_CLOEXEC, dir_fd=stack[-1]) if not flags & O_PATH \
            else os.dup(stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


def open_in_root(rootfd, path, flags=O_PATH, mode=0o644, use_openat2=None):
    """Open `path` as seen from inside the root `rootfd`; returns a new fd.

    `flags` are os.open flags (O_PATH by default); O_CREAT creates only the last
    component. Symlinks are followed as the container would follow them: "/" and
    ".." never leave the root. Magic links (/proc/self/...) are refused.
    """
    global _openat2_works
    if use_openat2 is None:
        use_openat2 = _openat2_works is not False
    if use_openat2:
        try:
            # openat2 refuses a mode without O_CREAT/O_TMPFILE (EINVAL).
            fd = libc.openat2(rootfd, path.lstrip("/") or ".", flags,
                              mode if flags & (os.O_CREAT | os.O_TMPFILE) else 0,
                              libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_MAGICLINKS)
            _openat2_works = True
            return fd
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM) or _openat2_works:
                raise
            _openat2_works = False  # seccomp or an old kernel: use the walk from now on
    return _walk(rootfd, path, flags, mode, _MAX_SYMLINKS)


def _mkdirs(rootfd, path, mode, open_next):
    """mkdir -p under rootfd, one component at a time: open_next(parent_fd, name, path_so_far) opens
    the next directory; a missing one is made relative to the already-open parent, never by string.
    Returns an O_PATH fd of the last directory."""
    fd = os.dup(rootfd)
    done = ""
    try:
        for name in _components(path):
            done += "/" + name
            try:
                nxt = open_next(fd, name, done)
            except FileNotFoundError:
                os.mkdir(name, mode, dir_fd=fd)
                nxt = open_next(fd, name, done)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def makedirs_in_root(rootfd, path, mode=0o755):
    """mkdir -p inside the root (symlinks followed as the container would); an O_PATH fd of the end."""
    return _mkdirs(rootfd, path, mode, lambda fd, name, done: open_in_root(rootfd, done, O_PATH | os.O_DIRECTORY))




def where(fd):
    """The host path an fd really points at (for checks and messages)."""
    return os.readlink(fd_path(fd))




def open_dirs_nofollow(rootfd, path, mode=0o755):
    """O_PATH fd of ROOT/path where every component is a real directory, made (mode) when missing.

    For writing an archive out under a root: a component that is a symlink (say one the archive
    made a moment ago) or not a directory is refused with UnsafePath, never followed; '..' is
    refused too. The fd serves as dir_fd for the *at calls that create the member.
    """
    if ".." in _components(path):
        raise UnsafePath(errno.EINVAL, "%s: '..' is not allowed" % path)

    def open_next(fd, name, _done):
        try:
            return os.open(name, O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                raise UnsafePath(e.errno, "%s: %s is a symlink or not a directory" % (path, name)) from None
            raise
    return _mkdirs(rootfd, path, mode, open_next)


MAX_DEPTH = 512  # directories deeper than this are not removed (each level holds an fd)



def remove_tree(path, dir_fd=None):
    """rm -rf of a directory tree a container may have written into (an overlay upper directory).

    Hostile content is harmless here: nothing is followed (every entry is opened relative to its
    parent's fd, O_NOFOLLOW, and symlinks are unlinked as links) and nothing on another device is
    entered (a mount left inside fails with EBUSY instead of being emptied). shutil.rmtree does
    the same but costs `rich run` ~8 ms to import. Missing path: nothing to do. With dir_fd, path
    is a name in that directory.
    """
    try:
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path, dir_fd=dir_fd)
        return
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    stack = [(os.open(path, flags, dir_fd=dir_fd), None)]  # (fd of a directory being emptied, its name)
    try:
        while stack:
            fd, name = stack[-1]
            sub = None
            with os.scandir(fd) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        sub = entry.name
                        break
                    os.unlink(entry.name, dir_fd=fd)
            if sub is None:  # empty now
                stack.pop()
                os.close(fd)
                if stack:
                    os.rmdir(name, dir_fd=stack[-1][0])
                continue
            if len(stack) >= MAX_DEPTH:
                raise UnsafePath(errno.ELOOP, "%s: deeper than %d directories: not removed" % (path, MAX_DEPTH))
            child = os.open(sub, flags, dir_fd=fd)
            if os.fstat(child).st_dev != st.st_dev:
                os.close(child)
                raise UnsafePath(errno.EBUSY, "%s: %s is another filesystem: not removed" % (path, sub))
            stack.append((child, sub))
    finally:
        for fd, _name in stack:
            os.close(fd)
    os.rmdir(path, dir_fd=dir_fd)
