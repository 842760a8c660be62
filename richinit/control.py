"""The control socket richctl talks to: CONTROL_DIR/control.sock, root only.

Requests are one text line: `status` | `start NAME` | `stop NAME` | `restart NAME` |
`logs NAME [follow]` | `reload` | `shutdown` | `unit VERB ...` (systemctl's verbs, richinit.verbs).
Replies are JSON lines: {"ok": true, ...} or {"ok": false, "error": "one line"}; `logs NAME
follow` then streams {"line": ...} objects. Text in, JSON out, because PID 1 then needs no JSON
parser and only a small encoder (the json package and socket.py cost PID 1 about 1.4 MB for its
whole life). Clients are non-blocking and served from the main loop, so a slow or silent client
can never stall PID 1.
"""

import _socket as socket
import os

from richinit import log
from richinit import svc as S

MAX_REQUEST = 4096
COMMANDS = ("status", "start", "stop", "restart", "logs", "reload", "shutdown", "unit")


def dumps(obj):
    """JSON for what PID 1 replies: dicts with str keys, lists, str, int, float, bool, None."""
    if obj is None:
        return "null"
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if isinstance(obj, int):
        return str(obj)
    if isinstance(obj, float):
        return repr(obj) if obj == obj and obj not in (float("inf"), float("-inf")) else "null"
    if isinstance(obj, str):
        out = ['"']
        for ch in obj:
            if ch == '"' or ch == "\\":
                out.append("\\" + ch)
            elif ch < " " or "\u007f" <= ch < "\u00a0" or ch in "\u2028\u2029":
                out.append("\\u%04x" % ord(ch))
            elif ch > "\uffff":
                n = ord(ch) - 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 + (n >> 10), 0xDC00 + (n & 0x3FF)))
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)
    if isinstance(obj, dict):
        return "{" + ",".join("%s:%s" % (dumps(str(k)), dumps(v)) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in obj) + "]"
    return dumps(str(obj))


def parse_request(line):
    """`start sshd` -> {"cmd": "start", "name": "sshd"}; raises ValueError on anything else."""
    words = line.decode("utf-8", "replace").split()
    if not words or words[0] not in COMMANDS:
        raise ValueError("unknown command: %s" % (words[0] if words else ""))
    cmd, args = words[0], words[1:]
    if cmd == "unit":
        return {"cmd": cmd, "words": args or [""]}
    if cmd in ("start", "stop", "restart", "logs"):
        if not args or len(args) > (2 if cmd == "logs" else 1) or (len(args) == 2 and args[1] != "follow"):
            raise ValueError("usage: %s NAME%s" % (cmd, " [follow]" if cmd == "logs" else ""))
        return {"cmd": cmd, "name": args[0], "follow": len(args) == 2}
    if args:
        raise ValueError("usage: %s" % cmd)
    return {"cmd": cmd}


class ControlServer:
    def __init__(self, loop, init, sup, directory):
        self.loop, self.init, self.sup = loop, init, sup
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        self.path = os.path.join(directory, "control.sock")
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK, 0)
        old = os.umask(0o177)
        try:
            self.sock.bind(self.path)
        finally:
            os.umask(old)
        self.sock.listen(16)
        self.clients = {}
        loop.add_reader(self.sock.fileno(), self._accept)

    def _accept(self, fd):
        try:
            fd, _ = self.sock._accept()
        except BlockingIOError:
            return
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
        os.set_inheritable(fd, False)
        conn.setblocking(False)
        self.clients[conn.fileno()] = [conn, b""]
        self.loop.add_reader(conn.fileno(), self._readable)

    def _readable(self, fd):
        entry = self.clients.get(fd)
        if entry is None:
            return
        conn = entry[0]
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            return self._drop(fd)
        entry[1] += data
        if b"\n" not in entry[1]:
            if len(entry[1]) > MAX_REQUEST:
                self._reply(fd, {"ok": False, "error": "request too large"}, close=True)
            return
        line = entry[1].split(b"\n", 1)[0]
        try:
            req = parse_request(line)
        except ValueError as e:
            return self._reply(fd, {"ok": False, "error": str(e)}, close=True)
        try:
            reply, keep = self.handle(fd, req)
        except Exception as e:
            log.exception("control request %r", req)
            reply, keep = {"ok": False, "error": "internal error: %s" % e}, False
        self._reply(fd, reply, close=not keep)

    def _send(self, fd, obj):
        entry = self.clients.get(fd)
        if entry is None:
            return False
        try:
            entry[0].send(dumps(obj).encode("utf-8", "surrogateescape") + b"\n")
            return True
        except OSError:  # full or gone: a follower that does not read is dropped
            self._drop(fd)
            return False

    def _reply(self, fd, obj, close):
        self._send(fd, obj)
        if close:
            self._drop(fd)

    def _drop(self, fd):
        entry = self.clients.pop(fd, None)
        if entry is None:
            return
        self.loop.remove_reader(fd)
        for sink in self.sup.sinks.values():
            sink.followers = [f for f in sink.followers if getattr(f, "fd", None) != fd]
        entry[0].close()

    def handle(self, fd, req):
        cmd = req.get("cmd")
        name = req.get("name")
        sup = self.sup
        if cmd == "unit":
            from richinit import verbs
            return verbs.handle(self, fd, req["words"])
        if cmd == "status":
            return {"ok": True, "phase": self.init.phase, "app": self.init.app_status(),
                    "services": sup.status(), "errors": sup.errors}, False
        if cmd == "shutdown":
            self.init.request_stop()
            return {"ok": True}, False
        if cmd == "reload":
            result = self.init.reload()
            return dict(result, ok=result.get("ok", True)), False
        if cmd in ("start", "stop", "restart", "logs"):
            s = sup.services.get(name)
            if s is None:
                return {"ok": False, "error": "unknown service: %s" % name}, False
            if cmd == "logs":
                sink = sup.sinks.get(name)
                lines = list(sink.ring) if sink else []
                if not req.get("follow"):
                    return {"ok": True, "lines": lines}, False
                self._send(fd, {"ok": True, "lines": lines})
                if sink is None:
                    return {"ok": True, "end": True}, False

                def follower(text, fd=fd):
                    self._send(fd, {"line": text})
                follower.fd = fd
                sink.followers.append(follower)
                return {"ok": True, "following": True}, True
            if cmd == "stop":
                if not s.pids() and s.state not in (S.BACKOFF, S.WAITING):
                    return {"ok": False, "error": "%s is not running (%s)" % (name, s.state)}, False
                s.stop()
                return {"ok": True}, False
            if cmd == "start":
                if s.state == S.SKIPPED and not req.get("force"):
                    return {"ok": False, "error": "%s is skipped: %s" % (name, s.reason)}, False
                if s.pids():
                    return {"ok": False, "error": "%s is already running" % name}, False
                s.start()
                return {"ok": True}, False
            if cmd == "restart":
                s.restart()
                return {"ok": True}, False
        return {"ok": False, "error": "unknown command: %s" % cmd}, False

    def close(self):
        for fd in list(self.clients):
            self._drop(fd)
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
