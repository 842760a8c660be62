"""richinit.sinks on real pipes, sockets, devices and files: PID 1 never waits for a sink."""

import os
import select
import signal
import socket

import pytest

from richinit import sinks
from richinit.sinks import DROPPED, FileLog, Outlet, Syslog
from tests.support.wait import wait_until


class Poller:
    """The part of richinit.loop.Loop an Outlet uses, over a real epoll."""

    def __init__(self):
        self.ep = select.epoll()
        self.callbacks = {}

    def add_writer(self, fd, cb):
        self.ep.register(fd, select.EPOLLOUT)
        self.callbacks[fd] = cb

    def remove_writer(self, fd):
        self.ep.unregister(fd)
        del self.callbacks[fd]

    def run_once(self, timeout=0.5):
        for fd, _ in self.ep.poll(timeout):
            if fd in self.callbacks:
                self.callbacks[fd](fd)


def drain(fd):
    os.set_blocking(fd, False)
    out = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return out
        if not data:
            return out
        out += data


def flood(out, name, total, line=b"x" * 99 + b"\n"):
    batch = line * 100
    for _ in range(total // len(batch)):
        out.write(name, batch)
    return total // len(batch) * len(batch)


def test_an_unread_pipe_never_blocks_and_drops_the_oldest_then_says_so():
    r, w = os.pipe()
    loop = Poller()
    out = Outlet(w, loop, limit=64 * 1024)
    assert out.how == "reopened" and os.get_blocking(w)  # the app's fd keeps its flags
    sent = flood(out, "chatty", 4 * 1024 * 1024)  # would block at 64 KiB if written to w
    assert out.size <= 64 * 1024 and out.waiting
    lost = out.dropped["chatty"]
    assert lost > 3 * 1024 * 1024
    got = b""
    while out.chunks or out.dropped:
        got += drain(r)
        loop.run_once()
    got += drain(r)
    note = (DROPPED % (lost, "chatty")).encode()
    assert got.count(b"[richinit]") == 1 and note in got
    assert len(got) - len(note) + lost == sent
    assert not out.waiting and not out.dropped
    out.write("chatty", b"later\n")
    assert drain(r) == b"later\n"
    out.close()
    os.close(r)
    os.close(w)


def test_a_pipe_without_reader_is_closed_and_raises_no_signal():
    r, w = os.pipe()
    out = Outlet(w, Poller())
    os.close(r)
    got = []
    old = signal.signal(signal.SIGPIPE, lambda *a: got.append(a))
    try:
        out.write("svc", b"line\n")
        assert out.how == "closed" and out.fd is None
        out.write("svc", b"more\n")  # nothing, quietly
        assert got == [] and signal.SIGPIPE not in signal.sigpending()
        late = Outlet(w)  # made when nobody reads any more
        late.write("svc", b"line\n")
        assert late.how == "closed" and got == []
    finally:
        signal.signal(signal.SIGPIPE, old)
        os.close(w)


def test_a_socket_is_sent_without_waiting_and_keeps_its_flags():
    a, b = socket.socketpair()
    out = Outlet(a.fileno(), Poller(), limit=32 * 1024)
    assert out.how == "socket"
    flood(out, "svc", 2 * 1024 * 1024)
    assert a.getblocking() and out.dropped["svc"] > 1024 * 1024
    out.close()
    a.close()
    b.close()


def test_a_full_device_drops_and_counts():
    fd = os.open("/dev/full", os.O_WRONLY)
    out = Outlet(fd)
    assert out.how == "direct"
    out.write("svc", b"a" * 1000)
    out.write("svc", b"b" * 500)
    assert out.dropped == {"svc": 1500} and not out.chunks
    out.close()
    os.close(fd)


def test_a_pipe_that_cannot_be_reopened_goes_through_a_pump():
    r, w = os.pipe()
    out = Outlet(w, Poller(), reopen=False)
    try:
        assert out.how == "pump" and out.pump
        out.write("svc", b"through the pump\n")
        assert wait_until(lambda: os.read(r, 100)) == b"through the pump\n"
    finally:
        out.close()  # EOF on the pump's input: it exits
        assert os.waitpid(out.pump, 0)[1] == 0
        os.close(r)
        os.close(w)


def test_log_file_on_a_full_disk_drops_then_notes_what_was_lost(tmp_path):
    class Spec:
        path, max_size, keep = "/dev/full", None, None
    f = FileLog("svc", Spec)
    f.write(b"one\n")
    f.write(b"two\n")
    assert f.dropped == 8
    f.path = str(tmp_path / "svc.log")  # the disk takes data again
    f.write(b"three\n")
    assert open(f.path, "rb").read() == (DROPPED % (8, "svc")).encode() + b"three\n"
    assert f.dropped == 0


def test_log_file_rotation(tmp_path):
    class Spec:
        path, max_size, keep = str(tmp_path / "svc.log"), 10, 2
    f = FileLog("svc", Spec)
    for word in (b"aaaaaa\n", b"bbbbbb\n", b"cccccc\n", b"dddddd\n"):
        f.write(word)
    assert open(Spec.path, "rb").read() == b"dddddd\n"
    assert open(Spec.path + ".1", "rb").read() == b"cccccc\n"
    assert open(Spec.path + ".2", "rb").read() == b"bbbbbb\n"


def test_syslog_never_waits_for_a_full_queue_and_falls_back_without_syslogd(tmp_path):
    path = str(tmp_path / "log")
    fell_back = []
    s = Syslog("svc", fell_back.extend)
    s.PATH = path
    s.write([b"no syslogd yet"])
    assert fell_back == [b"no syslogd yet"]
    d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    d.bind(path)
    for _ in range(2000):
        s.write([b"x" * 200])
        if s.dropped:
            break
    assert s.dropped  # the queue filled: dropped, not waited for
    d.setblocking(False)
    while True:
        try:
            d.recv(4096)
        except BlockingIOError:
            break
    lost = s.dropped
    s.write([b"after"])
    assert d.recv(4096) == b"<28>svc: " + (DROPPED % (lost, "svc")).encode().rstrip()
    assert d.recv(4096) == b"<30>svc: after"
    s.close()
    d.close()


@pytest.fixture(autouse=True)
def _no_shared_outlets():
    yield
    sinks._outlets.clear()
