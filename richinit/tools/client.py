"""The control socket seen from a tool: one request line out, JSON lines back.

Kept cheap to import (the C socket module, osbase.standin): dpkg -i runs systemctl several times,
each a fresh interpreter."""

import _socket
import os
import sys

from osbase import standin  # not json: its import (re, enum) costs each call ~6 ms


class Unreachable(Exception):
    """PID 1's control socket cannot be reached: not richinit, or not root."""


def socket_path():
    return os.path.join(os.environ.get("RICHINIT_CONTROL_DIR", "/run/richinit"), "control.sock")


def replies(words, path=None):
    """Send `words` as one request; yield each reply object as it arrives."""
    path = path or socket_path()
    if any(not w or any(c.isspace() for c in w) for w in words):
        raise ValueError("bad word in request: %r" % (words,))
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise Unreachable("%s: %s" % (path, e.strerror or e))
    try:
        s.sendall(" ".join(words).encode() + b"\n")
        buf = b""
        while True:
            data = s.recv(65536)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield standin.json_loads(line)
    finally:
        s.close()


def request(words, path=None):
    """The last reply of a request (the one that ends it); {"ok": False, ...} on errors."""
    last = {"ok": False, "error": "no reply"}
    for reply in replies(words, path):
        last = reply
    return last


def fail_unreachable(prog, e):
    sys.stderr.write("%s: cannot reach richinit (PID 1) at %s\n" % (prog, e))
    return 1
