"""The control socket richctl talks to: CONTROL_DIR/control.sock, root only.

Requests are one text line: `status` | `start NAME` | `stop NAME` | `restart NAME` |
`logs NAME [follow]` | `reload` | `shutdown` | `poweroff` (the same) | `reboot` (every service
restarts in order; the container stays) | `timers` | `sockets` | `unit VERB ...` (systemctl's
verbs, richinit.verbs) (one per connection). Replies are JSON lines: {"ok": true, ...} or
{"ok": false, "error": "one line"}; `logs NAME follow` then streams {"line": ...} objects.
Text in, JSON out, because PID 1 then needs no JSON parser and only a small encoder (the json
package and socket.py cost PID 1 about 1.4 MB for its whole life). Clients are non-blocking
and served from the main loop, so a slow or silent client can never stall PID 1.
"""

import _socket as socket
import os

from richinit import log
from richinit import svc as S

MAX_REQUEST = 4096      # bytes of one request line
MAX_OUTPUT = 256 * 1024  # bytes of streamed log lines waiting to go out to one follower
MAX_CLIENTS = 16
MAX_FOLLOWERS = 8       # `logs NAME follow` connections
ACCEPT_BATCH = 8        # connections taken per wake-up (fewer than MAX_CLIENTS: none pushed out unread)
COMMANDS = ("status", "start", "stop", "restart", "logs", "reload", "shutdown", "poweroff", "reboot", "timers",
            "sockets", "unit")


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


class Client:
    """One connection: what it sent (up to its request line), what waits to go out to it."""

    __slots__ = ("conn", "inbuf", "outbuf", "served", "follows", "closing", "limit")

    def __init__(self, conn):
        self.conn = conn
        self.inbuf = b""
        self.outbuf = b""
        self.served = False    # its request was handled: what it sends from now on is discarded
        self.follows = False   # `logs NAME follow`: stays until it hangs up
        self.closing = False   # close once outbuf is sent
        self.limit = None      # a follower: dropped when outbuf grows past this


class ControlServer:
    """Served from PID 1's loop, never waiting for a client: bounded input and output per connection,
    at most MAX_CLIENTS connections (a new one pushes out the oldest that is not following logs, as
    it does when PID 1 runs out of fds), and an fd held in reserve so that out of fds with no
    connection to close, a waiting one is still taken and told so, rather than leaving the listening
    socket readable (and the loop spinning) forever."""

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
        self.sock.listen(64)
        self.clients = {}  # fd -> Client, oldest first
        self.reserve = self._reserve()
        self.starved = False  # ran out of fds once (said so)
        loop.add_reader(self.sock.fileno(), self._accept)

    @staticmethod
    def _reserve():
        try:
            return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None

    def _accept(self, fd):
        for _ in range(ACCEPT_BATCH):  # then back to the loop: signals and children come first
            try:
                fd, _ = self.sock._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                # Out of fds (EMFILE, ENFILE): the oldest connection makes room for the waiting one;
                # with none to close, the waiting one is told and closed (through the reserve fd).
                if e.errno in (23, 24) and (self._evict() or self._refuse_one()):
                    if not self.starved:  # once: under a flood this would be every connection
                        self.starved = True
                        log.warning("control socket: out of file descriptors with %d connections: the oldest "
                                    "make room for new ones", len(self.clients))
                    continue
                log.warning("control socket: %s", e.strerror or e)
                return
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
            os.set_inheritable(fd, False)
            conn.setblocking(False)
            if len(self.clients) >= MAX_CLIENTS:
                self._evict()
            self.clients[fd] = Client(conn)
            self.loop.add_reader(fd, self._readable)
        if self.reserve is None:
            self.reserve = self._reserve()

    def _evict(self):
        """Close the oldest connection that is not following logs (or, with only those, the oldest)."""
        if not self.clients:
            return False
        self._drop(next((f for f, c in self.clients.items() if not c.follows), next(iter(self.clients))))
        return True

    def _refuse_one(self):
        """Out of fds: give up the reserve to take one waiting connection, tell it, close it."""
        if self.reserve is None:
            return False
        os.close(self.reserve)
        self.reserve = None
        try:
            fd, _ = self.sock._accept()
        except OSError:
            return False
        finally:
            self.reserve = self._reserve()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
        try:
            conn.send(b'{"ok":false,"error":"richinit is out of file descriptors"}\n',
                      socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        except OSError:
            pass
        conn.close()
        return True

    def _readable(self, fd):
        c = self.clients.get(fd)
        if c is None:
            return
        try:
            data = c.conn.recv(MAX_REQUEST + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            return self._drop(fd)
        if c.served:
            return  # one request per connection: the rest is read and dropped
        c.inbuf += data
        if b"\n" not in c.inbuf:
            if len(c.inbuf) > MAX_REQUEST:
                c.served = True
                self._reply(fd, {"ok": False, "error": "request too large"}, close=True)
            return
        line = c.inbuf.split(b"\n", 1)[0]
        c.inbuf = b""
        c.served = True
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
        if req.get("cmd") in ("shutdown", "poweroff"):
            # The answer is out before the stop starts: the client (systemctl poweroff, inside the
            # container) reads it and exits before the stop's SIGTERM to every process reaches it.
            self.init.request_stop()

    def _send(self, fd, obj):
        """Queue one reply line and write what the client takes now. A reply is bounded by what it
        answers (status, the last lines of a log); a follower that lets more than MAX_OUTPUT of
        streamed lines pile up (it does not read) is dropped."""
        c = self.clients.get(fd)
        if c is None:
            return False
        c.outbuf += dumps(obj).encode("utf-8", "surrogateescape") + b"\n"
        if c.limit is not None and len(c.outbuf) > c.limit:
            self._drop(fd)
            return False
        return self._flush(fd)

    def _flush(self, fd):
        c = self.clients.get(fd)
        if c is None:
            return False
        try:
            while c.outbuf:
                n = c.conn.send(c.outbuf, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
                c.outbuf = c.outbuf[n:]
        except (BlockingIOError, InterruptedError):
            self.loop.add_writer(fd, self._flush)
            return True
        except OSError:  # gone
            self._drop(fd)
            return False
        self.loop.remove_writer(fd)
        if c.closing:
            self._drop(fd)
        return True

    def _reply(self, fd, obj, close):
        c = self.clients.get(fd)
        if c is None:
            return
        c.closing = close
        self._send(fd, obj)

    def _drop(self, fd):
        c = self.clients.pop(fd, None)
        if c is None:
            return
        self.loop.remove_reader(fd)
        self.loop.remove_writer(fd)
        if c.follows:
            for sink in self.sup.sinks.values():
                sink.followers = [f for f in sink.followers if getattr(f, "fd", None) != fd]
        c.conn.close()

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
        if cmd == "timers":  # systemctl list-timers
            return {"ok": True, "timers": sup.timers.status() if sup.timers is not None else []}, False
        if cmd == "sockets":  # systemctl list-sockets
            return {"ok": True, "sockets": sup.sockets.status() if sup.sockets is not None else []}, False
        if cmd in ("shutdown", "poweroff"):
            return {"ok": True}, False  # the stop itself follows the reply (_readable)
        if cmd == "reboot":
            result = self.init.reboot()
            return dict(result, ok=result.get("ok", True)), False
        if cmd == "reload":
            result = self.init.reload()
            return dict(result, ok=result.get("ok", True)), False
        if cmd in ("start", "stop", "restart", "logs"):
            s = sup.find(name)  # a service's name, its unit's, or an alias of its unit
            if s is None:
                return {"ok": False, "error": "unknown service: %s" % name}, False
            name = s.name
            if cmd == "logs":
                sink = sup.sinks.get(name)
                lines = list(sink.ring) if sink else []
                if not req.get("follow"):
                    return {"ok": True, "lines": lines}, False
                self._send(fd, {"ok": True, "lines": lines})
                if sink is None:
                    return {"ok": True, "end": True}, False

                if sum(c.follows for c in self.clients.values()) >= MAX_FOLLOWERS:
                    return {"ok": False, "error": "too many followers (%d)" % MAX_FOLLOWERS}, False

                def follower(text, fd=fd):
                    self._send(fd, {"line": text})
                follower.fd = fd
                sink.followers.append(follower)
                c = self.clients[fd]
                c.follows, c.limit = True, len(c.outbuf) + MAX_OUTPUT
                return {"ok": True, "following": True}, True
            if cmd == "stop":
                if not s.pids() and not s.active and s.state not in (S.BACKOFF, S.WAITING):
                    return {"ok": False, "error": "%s is not running (%s)" % (name, s.state)}, False
                return sup.stop_service(s.name), False
            if cmd == "start":
                if s.state == S.SKIPPED and not req.get("force"):
                    return {"ok": False, "error": "%s is skipped: %s" % (name, s.reason)}, False
                if s.pids():
                    return {"ok": False, "error": "%s is already running" % name}, False
                return sup.start_service(s.name), False
            if cmd == "restart":
                return sup.restart_service(s.name), False
        return {"ok": False, "error": "unknown command: %s" % cmd}, False

    def close(self):
        for fd in list(self.clients):
            self._drop(fd)
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        if self.reserve is not None:
            os.close(self.reserve)
            self.reserve = None
        try:
            os.unlink(self.path)
        except OSError:
            pass
