"""Reading a small file of the container in PID 1 without ever blocking: regular files only.

An image (or a service) can put a FIFO or a device where PID 1 expects a file (/etc/passwd, an
env file, a pid file); a plain open() of a FIFO waits for a writer forever. Opened O_NONBLOCK,
checked to be a regular file, read up to a limit: reads of a regular file never wait for anyone.
"""

import os


def read(path, limit=1024 * 1024):
    """The first `limit` bytes of `path`; OSError if it is missing, unreadable or not a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        if os.fstat(fd).st_mode & 0o170000 != 0o100000:
            raise OSError(22, "not a regular file", path)
        chunks, left = [], limit
        while left > 0:
            data = os.read(fd, min(left, 65536))
            if not data:
                break
            chunks.append(data)
            left -= len(data)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path, limit=1024 * 1024):
    return read(path, limit).decode("utf-8", "replace")
