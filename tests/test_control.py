"""The control socket: its wire format (text requests in, JSON lines out: PID 1 has no json package), and
the server over real sockets (partial sends, followers that do not read, the client cap)."""

import json
import os
import select
import socket
import time

import pytest

from richinit import control
from richinit.control import ControlServer, dumps, parse_request


@pytest.mark.parametrize("obj", [
    {"ok": True, "services": [{"name": "sshd", "pid": 7, "uptime": 1.5, "last_exit": None, "ready": False}]},
    "quote \" backslash \\ newline \n tab \t nul \x00 del \x7f ls \u2028 emoji \U0001F600 accents é",
    [], {}, 0, -3, 2.25, False, None,
])
def test_replies_are_json_the_json_module_reads_back(obj):
    assert json.loads(dumps(obj)) == obj


def test_non_finite_floats_become_null():
    assert json.loads(dumps({"x": float("nan"), "y": float("inf")})) == {"x": None, "y": None}


@pytest.mark.parametrize("line,req", [
    (b"status", {"cmd": "status"}),
    (b"start sshd", {"cmd": "start", "name": "sshd", "follow": False}),
    (b"logs cron follow", {"cmd": "logs", "name": "cron", "follow": True}),
    (b"  reload  ", {"cmd": "reload"}),
    (b"reboot", {"cmd": "reboot"}),
    (b"poweroff", {"cmd": "poweroff"}),
])
def test_requests(line, req):
    assert parse_request(line) == req


@pytest.mark.parametrize("line", [b"", b"bogus", b"start", b"stop a b", b"logs a b", b"status now", b"{\"cmd\": 1}"])
def test_bad_requests_are_refused(line):
    with pytest.raises(ValueError):
        parse_request(line)


# --- the server over real sockets: bounded buffers, partial sends, client cap ---------------------------


class Poller:
    """The part of richinit.loop.Loop the server uses, over a real epoll."""

    def __init__(self):
        self.ep = select.epoll()
        self.readers, self.writers, self.masks = {}, {}, {}

    def _watch(self, fd):
        mask = (select.EPOLLIN if fd in self.readers else 0) | (select.EPOLLOUT if fd in self.writers else 0)
        if not mask:
            if self.masks.pop(fd, None) is not None:
                self.ep.unregister(fd)
        elif fd in self.masks:
            self.ep.modify(fd, mask)
            self.masks[fd] = mask
        else:
            self.ep.register(fd, mask)
            self.masks[fd] = mask

    def add_reader(self, fd, cb):
        self.readers[fd] = cb
        self._watch(fd)

    def add_writer(self, fd, cb):
        self.writers[fd] = cb
        self._watch(fd)

    def remove_reader(self, fd):
        self.readers.pop(fd, None)
        self._watch(fd)

    def remove_writer(self, fd):
        self.writers.pop(fd, None)
        self._watch(fd)

    def run(self, timeout=0.05):
        for fd, ev in self.ep.poll(timeout):
            if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) and fd in self.readers:
                self.readers[fd](fd)
            if ev & (select.EPOLLOUT | select.EPOLLERR) and fd in self.writers:
                self.writers[fd](fd)


class Sink:
    def __init__(self, ring):
        self.ring, self.followers = ring, []


class Service:
    state = "up"
    name = "chatty"

    def pids(self):
        return [7]


class Sup:
    def __init__(self, ring):
        self.sinks = {"chatty": Sink(ring)}
        self.services = {"chatty": Service()}
        self.errors = []

    def status(self):
        return []

    def find(self, name):
        return self.services.get(name)


class Init:
    phase = "running"

    def app_status(self):
        return {}


@pytest.fixture
def server(tmp_path):
    loop = Poller()
    srv = ControlServer(loop, Init(), Sup(["x" * 8000] * 200), str(tmp_path))
    yield loop, srv
    srv.close()


def ask(path, line):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(line)
    return s


def read_reply(loop, s):
    s.setblocking(False)
    buf = b""
    deadline = time.monotonic() + 10
    while not buf.endswith(b"\n"):
        assert time.monotonic() < deadline, "no whole reply: %r" % buf[-100:]
        loop.run()
        try:
            data = s.recv(1 << 20)
        except BlockingIOError:
            continue
        assert data, "closed after %r" % buf[-100:]
        buf += data
    return json.loads(buf)


def test_a_reply_larger_than_the_socket_buffer_arrives_whole(server):
    loop, srv = server
    s = ask(srv.path, b"logs chatty\n")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert read_reply(loop, s)["lines"] == ["x" * 8000] * 200  # 1.6 MB
    s.close()


def test_a_follower_that_does_not_read_is_dropped(server):
    loop, srv = server
    s = ask(srv.path, b"logs chatty follow\n")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    for _ in range(20):  # accepted, then its request read
        if srv.sup.sinks["chatty"].followers:
            break
        loop.run()
    [follow] = srv.sup.sinks["chatty"].followers
    for _ in range(2000):
        if not srv.sup.sinks["chatty"].followers:
            break
        follow("y" * 1000)
        loop.run(0)
    assert srv.sup.sinks["chatty"].followers == [] and srv.clients == {}  # dropped, not buffered on
    s.close()


def test_connections_beyond_the_cap_push_out_the_oldest(server):
    loop, srv = server
    idle = [ask(srv.path, b"sta") for _ in range(control.MAX_CLIENTS + 10)]  # half-written requests
    for _ in range(10):
        loop.run(0)
    assert len(srv.clients) <= control.MAX_CLIENTS
    s = ask(srv.path, b"status\n")
    assert read_reply(loop, s)["ok"] is True
    for c in idle + [s]:
        c.close()


def test_an_oversized_request_is_refused(server):
    loop, srv = server
    s = ask(srv.path, b"A" * (control.MAX_REQUEST + 10))
    assert read_reply(loop, s) == {"ok": False, "error": "request too large"}
    s.close()
    assert os.path.exists(srv.path)
