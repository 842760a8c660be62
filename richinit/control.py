"""The control socket richctl talks to: CONTROL_DIR/control.sock, root only, one JSON line each way.

Requests: {"cmd": "status"} | {"cmd": "start"|"stop"|"restart", "name": N} | {"cmd": "logs",
"name": N, "follow": bool} | {"cmd": "reload"} | {"cmd": "shutdown"}.
Replies: {"ok": true, ...} or {"ok": false, "error": "one line"}. Clients are non-blocking and
served from the main loop, so a slow or silent client can never stall PID 1.
"""

import json
import os
import socket

from richinit import log
from richinit import svc as S

MAX_REQUEST = 64 * 1024


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
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
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
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
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
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError
        except ValueError:
            return self._reply(fd, {"ok": False, "error": "not a JSON object"}, close=True)
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
            entry[0].send(json.dumps(obj).encode() + b"\n")
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
