"""Read-only access to the image's files for the loader, resolved inside a root directory.

In the container the root is "/" and plain paths are the truth (no ctypes imported: the loader runs
at every boot and reload). Tests and tools pass a rootfs directory, and symlinks in it (absolute ones
like /usr/sbin/crond -> /bin/busybox included) must resolve inside it, never on the host: then
everything goes through osbase.safepath. OSError stays inside: callers get None / False.
"""

import errno
import os
import stat

O_PATH = getattr(os, "O_PATH", 0o10000000)
MAX_FILE = 1024 * 1024  # a service file or script header larger than this is refused
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class TooLarge(OSError):
    pass


class Root:
    def __init__(self, root="/"):
        self.root = root
        self.direct = os.path.realpath(root) == "/"
        self._busybox = False  # not looked up yet
        if self.direct:
            self._safepath = None
            self.fd = os.open("/", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            from osbase import safepath
            self._safepath = safepath
            self.fd = safepath.open_root(root)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _open(self, path, flags=O_PATH):
        if self.direct:
            return os.open(path, flags | os.O_CLOEXEC)
        # mode=0: openat2 refuses a non-zero mode without O_CREAT (EINVAL), and we never create.
        return self._safepath.open_in_root(self.fd, path, flags, mode=0)

    def stat(self, path):
        """stat of path (symlinks followed inside the root), or None."""
        try:
            fd = self._open(path)
        except OSError:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def probe(self, path):
        """(stat, None) of path with symlinks followed inside the root, or (None, errno)."""
        try:
            fd = self._open(path)
        except OSError as e:
            return None, e.errno
        try:
            return os.fstat(fd), None
        finally:
            os.close(fd)

    def scan(self, path):
        """[(name, lstat, link text or None)] of a directory's entries in byte order, or None if it is
        not a directory. Entries that vanish or cannot be read are left out."""
        try:
            dfd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            out = []
            for name in sorted(os.listdir(dfd), key=os.fsencode):
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    link = os.readlink(name, dir_fd=dfd) if stat.S_ISLNK(st.st_mode) else None
                except OSError:
                    continue
                out.append((name, st, link))
            return out
        except OSError:
            return None
        finally:
            os.close(dfd)

    def lstat_link(self, path):
        """(lstat, link text or None) of path's last component (its directory resolved in the root),
        or (None, None)."""
        d, _, base = path.rstrip("/").rpartition("/")
        try:
            dfd = self._open(d or "/", O_PATH | os.O_DIRECTORY)
        except OSError:
            return None, None
        try:
            st = os.stat(base, dir_fd=dfd, follow_symlinks=False)
            return st, (os.readlink(base, dir_fd=dfd) if stat.S_ISLNK(st.st_mode) else None)
        except OSError:
            return None, None
        finally:
            os.close(dfd)

    def exists(self, path):
        return self.stat(path) is not None

    def is_dir(self, path):
        st = self.stat(path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def is_executable(self, path):
        st = self.stat(path)
        return st is not None and stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)

    def read(self, path, limit=MAX_FILE):
        """Bytes of a regular file (no FIFO or device: opened non-blocking, checked by fstat)."""
        fd = self._open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            if st.st_size > limit:
                raise TooLarge(errno.EFBIG, "larger than %d bytes" % limit)
            chunks, total = [], 0
            while True:
                b = os.read(fd, 65536)
                if not b:
                    break
                total += len(b)
                if total > limit:
                    raise TooLarge(errno.EFBIG, "larger than %d bytes" % limit)
                chunks.append(b)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def head(self, path, n=256):
        """The first n bytes of a regular file, or b'' when it cannot be read."""
        try:
            fd = self._open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            return b""
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return b""
            return os.read(fd, n)
        except OSError:
            return b""
        finally:
            os.close(fd)

    def listdir(self, path):
        """Sorted entry names of a directory (C-locale byte order), or None if it is not one."""
        try:
            fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return None
        try:
            return sorted(os.listdir(fd), key=os.fsencode)
        except OSError:
            return None
        finally:
            os.close(fd)

    def which(self, name, search_path=DEFAULT_PATH):
        """Path (inside the root) of an executable command, or None."""
        if "/" in name:
            return name if name.startswith("/") and self.is_executable(name) else None
        for d in (search_path or DEFAULT_PATH).split(":"):
            if d.startswith("/"):
                candidate = d.rstrip("/") + "/" + name
                if self.is_executable(candidate):
                    return candidate
        return None

    def is_busybox(self, path, search_path=DEFAULT_PATH):
        """Whether path resolves to busybox: a link to a file named busybox, or busybox's own inode."""
        try:
            fd = self._open(path)
        except OSError:
            return False
        try:
            if os.path.basename(os.readlink("/proc/self/fd/%d" % fd)) == "busybox":
                return True
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if self._busybox is False:
            bb = self.which("busybox", search_path) or ("/bin/busybox" if self.is_executable("/bin/busybox") else None)
            self._busybox = self.stat(bb) if bb else None
        bb = self._busybox
        return bb is not None and (bb.st_dev, bb.st_ino) == (st.st_dev, st.st_ino)
