"""richinit.sockets: binding real sockets, the hand-over, and activation as a state machine
(a fake loop and fake services; the integration test runs it under the real PID 1)."""

import _socket
import os
import socket
import stat

import pytest

from richinit import sockets as K
from richinit.services.model import Listen, SocketSpec


def free_port():
    """A TCP port nobody listens on right now (systemd's syntax has no port 0)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "127.0.0.1:%d" % port


@pytest.mark.parametrize("address,family,addr", [
    ("8080", _socket.AF_INET6, ("::", 8080)),
    ("127.0.0.1:53", _socket.AF_INET, ("127.0.0.1", 53)),
    ("[::1]:8080", _socket.AF_INET6, ("::1", 8080)),
    ("/run/x.sock", _socket.AF_UNIX, "/run/x.sock"),
    ("@abstract", _socket.AF_UNIX, "\0abstract"),
])
def test_parse_address(address, family, addr):
    assert K.parse_address(address) == (family, addr)


@pytest.mark.parametrize("address", ["0", "65536", "host:80", "[::1]80", "1.2.3:80", "@", "", "x"])
def test_parse_address_refuses(address):
    with pytest.raises(ValueError):
        K.parse_address(address)


def test_bind_kinds_modes_and_a_stale_socket(tmp_path):
    path = str(tmp_path / "s.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(path)
    stale.close()  # a socket file nobody serves: replaced
    d = K.bind(Listen(kind="dgram", address=path), SocketSpec(mode=0o600))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and d.type == _socket.SOCK_DGRAM
    st = K.bind(Listen(kind="stream", address=free_port()), SocketSpec(backlog=5))
    c = socket.create_connection(st.getsockname(), timeout=5)  # listening already
    c.close()
    ab = K.bind(Listen(kind="seqpacket", address="@richinit-test-%d" % os.getpid()), SocketSpec())
    udp = K.bind(Listen(kind="dgram", address=free_port()), SocketSpec())
    assert udp.type == _socket.SOCK_DGRAM and udp.family == _socket.AF_INET
    udp.close()
    owned = str(tmp_path / "owned.sock")
    K.bind(Listen(kind="stream", address=owned), SocketSpec(user="nobody", group="nogroup")).close()
    assert (os.stat(owned).st_uid, os.stat(owned).st_gid) == (65534, 65534)  # SocketUser=/SocketGroup=
    fifo = K.bind(Listen(kind="fifo", address=str(tmp_path / "f")), SocketSpec(mode=0o620))
    assert stat.S_ISFIFO(os.stat(tmp_path / "f").st_mode) and isinstance(fifo, int)
    for s in (d, st, ab):
        assert not os.get_inheritable(s.fileno()) and not s.getblocking()
        s.close()
    os.close(fifo)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="not a socket"):
        K.bind(Listen(kind="stream", address=str(tmp_path / "file")), SocketSpec())


def test_dev_log_is_left_alone_when_someone_serves_it(tmp_path):
    path = str(tmp_path / "log")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    live.bind(path)
    try:
        assert K.bind_dev_log(path) == {}
    finally:
        live.close()
    got = K.bind_dev_log(path)  # stale now: ours
    assert list(got) == [("dgram", path)]
    K.release(got)
    assert not os.path.exists(path)


class FakeLoop:
    def __init__(self):
        self.readers = {}

    def add_reader(self, fd, cb):
        self.readers[fd] = cb

    def remove_reader(self, fd):
        self.readers.pop(fd, None)


class FakeService:
    def __init__(self, name):
        self.name, self.starts = name, 0

    def start(self):
        self.starts += 1


class Host:
    def __init__(self, *names):
        self.loop = FakeLoop()
        self.services = {n: FakeService(n) for n in names}
        self.instances = []

    def start_instance(self, template, name):
        self.instances.append((template, name))
        return True


def test_accept_no_starts_the_service_once_and_watches_again_when_it_is_down(tmp_path):
    host = Host("echo")
    socks = K.Sockets(host)
    spec = SocketSpec(name="echo", unit="echo.socket", service="echo",
                      listen=(Listen(kind="dgram", address=str(tmp_path / "a")),
                              Listen(kind="stream", address=free_port())))
    socks.apply([spec])
    fds = [fd for fd, _ in socks.units["echo"].fds]
    assert sorted(host.loop.readers) == sorted(fds)
    host.loop.readers[fds[0]](fds[0])        # a datagram arrived
    assert host.services["echo"].starts == 1 and host.loop.readers == {}
    socks.service_changed(host.services["echo"], down=False)
    assert host.loop.readers == {}
    socks.service_changed(host.services["echo"], down=True)
    assert sorted(host.loop.readers) == sorted(fds)
    svc = host.services["echo"]
    svc.state = "failed"                        # the queued traffic must not restart it for ever
    socks.service_changed(svc, down=True)
    assert sorted(host.loop.readers) == sorted(fds), "watched already: left so"
    host.loop.readers[fds[0]](fds[0])
    assert svc.starts == 2 and host.loop.readers == {}
    socks.service_changed(svc, down=True)
    assert host.loop.readers == {} and socks.status()[0]["state"] == "failed"
    svc.state = "up"
    socks.service_changed(svc, down=False)      # started by hand: watched again once down
    svc.state = "down"
    socks.service_changed(svc, down=True)
    assert sorted(host.loop.readers) == sorted(fds)
    assert socks.handover("echo") == [(fds[0], "echo.socket"), (fds[1], "echo.socket")]


def test_handover_order_names_and_disabled_sockets(tmp_path):
    host = Host("syslog", "web")
    socks = K.Sockets(host)
    devlog = K.bind_dev_log(str(tmp_path / "log"))
    left = socks.apply([SocketSpec(name="syslog", service="syslog", enabled=False,
                                   listen=(Listen(kind="dgram", address=str(tmp_path / "log")),)),
                        SocketSpec(name="web-admin", service="web", fd_name="admin",
                                   listen=(Listen(kind="stream", address=str(tmp_path / "adm")),)),
                        SocketSpec(name="web", service="web", listen=(Listen(kind="stream", address=free_port()),))],
                       devlog)
    assert left == {}, "the early /dev/log was taken over, not bound twice"
    assert socks.units["syslog"].fds[0][0] == next(iter(devlog.values())).fileno()
    assert socks.units["syslog"].fds[0][0] not in host.loop.readers, "not enabled: not watched"
    assert [n for _, n in socks.handover("syslog", ("syslog",))] == ["syslog"]
    assert [n for _, n in socks.handover("web", ("web",))] == ["web", "admin"], "declared first, then the others"


def test_accept_yes_instances_up_to_max_connections():
    host = Host()
    socks = K.Sockets(host)
    socks.apply([SocketSpec(name="conn", service="conn@", accept=True, max_connections=2,
                            listen=(Listen(kind="stream", address=free_port()),))])
    unit = socks.units["conn"]
    fd = unit.fds[0][0]
    port = unit.objects[fd].getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    for _ in range(3):
        host.loop.readers[fd](fd)
    assert host.instances == [("conn@", "conn@0"), ("conn@", "conn@1")]
    assert unit.refused == 1 and clients[2].recv(1) == b"", "the third was closed at once"
    assert socks.handover("conn@0") == [(socks.conn_fds["conn@0"], "connection")]
    assert socks.env_for("conn@0")["REMOTE_ADDR"] == "127.0.0.1"
    socks.launched("conn@0")  # PID 1's copy goes once the instance has it
    assert "conn@0" not in socks.conn_fds
    socks.service_changed(FakeService("conn@0"), down=True)
    assert unit.instances == {"conn@1"}
    for c in clients:
        c.close()


def test_a_failed_service_releases_its_hand_over_socket(tmp_path):
    host = Host("syslog")
    socks = K.Sockets(host)
    path = str(tmp_path / "log")
    socks.apply([SocketSpec(name="syslog", service="syslog", enabled=False,
                            listen=(Listen(kind="dgram", address=path),))])
    svc = host.services["syslog"]
    svc.state = "backoff"
    socks.service_changed(svc, down=False)
    assert os.path.exists(path), "kept while it restarts"
    svc.state = "failed"
    socks.service_changed(svc, down=True)
    assert "syslog" not in socks.units and not os.path.exists(path)
    w = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with pytest.raises(OSError):  # a writer gets an error instead of blocking on a full queue
        w.sendto(b"x", path)
    w.close()


def test_a_reload_keeps_unchanged_sockets_and_closes_gone_ones(tmp_path):
    host = Host("a", "b")
    socks = K.Sockets(host)
    a = SocketSpec(name="a", service="a", listen=(Listen(kind="dgram", address=str(tmp_path / "a")),))
    b = SocketSpec(name="b", service="b", listen=(Listen(kind="dgram", address=str(tmp_path / "b")),))
    socks.apply([a, b])
    fd_a = socks.units["a"].fds[0][0]
    socks.apply([a])
    assert socks.units["a"].fds[0][0] == fd_a and "b" not in socks.units and not (tmp_path / "b").exists()


def test_a_socket_unit_not_enabled_is_inactive_until_started_and_stop_closes_it(tmp_path):
    host = Host("web", "other")
    host.services["web"].pids = lambda: []
    socks = K.Sockets(host)
    path = str(tmp_path / "web.sock")
    spec = SocketSpec(name="web", unit="web.socket", service="web", enabled=False,
                      listen=(Listen(kind="stream", address=path),))
    socks.apply([spec])
    assert socks.state("web") == ("inactive", "dead") and socks.state("nope") is None
    assert not os.path.exists(path) and socks.handover("web") == [], "not enabled: not bound (systemd)"
    assert socks.start("web") is None
    assert socks.state("web") == ("active", "listening") and len(host.loop.readers) == 1
    socks.stop("web")
    assert socks.state("web") == ("inactive", "dead") and socks.handover("web") == [] and host.loop.readers == {}
    assert os.path.exists(path), "RemoveOnStop=no: the file stays"
    c = socket.socket(socket.AF_UNIX)
    with pytest.raises(OSError):
        c.connect(path)
    socks.service_changed(host.services["web"], down=True)
    assert host.loop.readers == {}, "a stopped socket is not watched when its service goes down"
    assert socks.start("web") is None
    assert socks.state("web") == ("active", "listening") and len(host.loop.readers) == 1
    c.connect(path)
    fd = socks.units["web"].fds[0][0]
    host.loop.readers[fd](fd)
    assert host.services["web"].starts == 1, "started by systemctl: traffic activates it, enabled or not"
    c.close()
    socks.apply([spec])
    assert socks.state("web") == ("active", "running"), "a daemon-reload keeps it started"
    socks.stop("web")
    socks.apply([spec])
    assert socks.state("web") == ("inactive", "dead"), "a daemon-reload keeps it stopped"


def test_remove_on_stop_removes_socket_files_and_fifos_at_stop_reload_and_shutdown(tmp_path):
    host = Host("rm", "keep", "listen")
    socks = K.Sockets(host)

    def unit(name, remove, *kinds):
        return SocketSpec(name=name, unit=name + ".socket", service=name, remove_on_stop=remove,
                          listen=tuple(Listen(kind=k, address=str(tmp_path / (name + "." + k))) for k in kinds))
    rm, keep = unit("rm", True, "stream", "fifo"), unit("keep", False, "stream", "fifo")
    listen = SocketSpec(name="listen", service="listen", listen=(Listen(kind="dgram", address=str(tmp_path / "l")),))
    socks.apply([rm, keep, listen])
    files = {p.name for p in tmp_path.iterdir()}
    assert files == {"rm.stream", "rm.fifo", "keep.stream", "keep.fifo", "l"}
    socks.stop("rm")
    socks.stop("keep")
    assert {p.name for p in tmp_path.iterdir()} == files - {"rm.stream", "rm.fifo"}
    assert socks.start("rm") is None and socks.start("keep") is None, "a stale socket file is replaced"
    assert {p.name for p in tmp_path.iterdir()} == files
    socks.apply([keep, listen])  # daemon-reload: rm.socket is gone
    assert {p.name for p in tmp_path.iterdir()} == files - {"rm.stream", "rm.fifo"}
    socks.apply([rm, keep, listen])
    socks.stop_all()  # the container stops
    assert {p.name for p in tmp_path.iterdir()} == files - {"rm.stream", "rm.fifo"}
    assert socks.state("keep") == socks.state("rm") == ("inactive", "dead")
    assert socks.state("listen") == ("active", "listening"), "a services.d listen: is no unit"


def test_start_binds_again_what_failed_to_bind(tmp_path):
    host = Host("web")
    socks = K.Sockets(host)
    blocker = tmp_path / "taken"
    blocker.write_text("a regular file, not a socket")
    spec = SocketSpec(name="web", unit="web.socket", service="web",
                      listen=(Listen(kind="dgram", address=str(tmp_path / "ok")), Listen(kind="stream",
                                                                                       address=str(blocker))))
    socks.apply([spec])
    assert socks.state("web") == ("failed", "failed") and len(socks.units["web"].fds) == 1
    assert "exists and is not a socket" in socks.start("web")
    blocker.unlink()
    assert socks.start("web") is None and socks.state("web") == ("active", "listening")
    assert [listen.address for _, listen in socks.units["web"].fds] == [str(tmp_path / "ok"), str(blocker)]
