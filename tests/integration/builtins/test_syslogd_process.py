"""The real built-in syslogd process on a temp socket, fed by util-linux `logger`."""

import os
import re
import select
import signal
import socket
import subprocess
import sys

import pytest

from tests.support.containers import REPO, have

pytestmark = pytest.mark.skipif(not have("logger"), reason="util-linux logger not installed")


class Daemon:
    def __init__(self, tmp_path, *args):
        self.sock = str(tmp_path / "log")
        self.stream = str(tmp_path / "logs")
        self.file = tmp_path / "messages"
        r, w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "richinit.builtin.syslogd", "--socket", self.sock, "--stream-socket", self.stream,
             "--file", str(self.file), "--hostname", "box", "--notify-fd", str(w), *args],
            cwd=REPO, pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(w)
        try:
            ready, _, _ = select.select([r], [], [], 10)
            assert ready and os.read(r, 1) == b"\n", "no readiness notification"
        finally:
            os.close(r)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out.decode(), err.decode()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    def lines(self):
        return self.file.read_text().splitlines()


@pytest.fixture
def daemon(tmp_path):
    made = []

    def start(*args):
        d = Daemon(tmp_path, *args)
        made.append(d)
        return d
    yield start
    for d in made:
        d.kill()


def logger(sock, *args):
    subprocess.run(["logger", "-u", sock, *args], check=True, timeout=10)


def test_logger_formats_land_in_the_file(daemon):
    d = daemon()
    logger(d.sock, "-t", "plain", "hello 3164 local")
    logger(d.sock, "--rfc3164", "-t", "withhost", "--id=4242", "hello 3164 host")
    logger(d.sock, "--rfc5424", "-t", "five", "--id=77", "-p", "local3.err", "hello 5424")
    logger(d.sock, "--rfc5424", "-t", "sd", "--sd-id", "zoo@123", "--sd-param", 'tiger="hungry"', "with sd")
    logger(d.stream, "-T", "-t", "streamed", "over a stream socket")
    logger(d.stream, "-T", "--rfc5424", "-t", "streamed5", "stream 5424")
    code, out, err = d.stop()
    assert code == 0, err
    lines = d.lines()
    host = socket.gethostname().split(".")[0]
    assert any(line.endswith(" box plain: hello 3164 local") for line in lines), lines
    assert any(line.endswith(" %s withhost[4242]: hello 3164 host" % host) for line in lines), lines
    assert any(line.endswith(" %s five[77]: hello 5424" % host) for line in lines), lines
    assert any(line.endswith(' sd: [zoo@123 tiger="hungry"] with sd') for line in lines), lines
    assert any(line.endswith(" streamed: over a stream socket") for line in lines), lines
    assert any(line.endswith(" streamed5: stream 5424") for line in lines), lines
    assert len(lines) == 6


def test_garbage_does_not_kill_it(daemon):
    d = daemon()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for junk in (b"", b"\xff\xfe\x00", b"<13>1 bad", b"<999>", b"<13>" + b"x" * 60000):
        s.sendto(junk, d.sock)
    s.close()
    logger(d.sock, "-t", "after", "still alive")
    code, _, err = d.stop()
    assert code == 0, err
    lines = d.lines()
    assert lines[-1].endswith("after: still alive") and len(lines) == 6


def test_sigterm_drains_what_is_queued(daemon):
    """Messages the kernel accepted before the stop are written, even if the daemon never saw them yet."""
    d = daemon()
    d.proc.send_signal(signal.SIGSTOP)  # a busy daemon: the queue fills while it does not read
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.setblocking(False)
        sent = 0
        while sent < 1000:
            try:
                s.sendto(b"<14>queued: message %04d" % sent, d.sock)
            except BlockingIOError:
                break  # the socket's queue is full (net.unix.max_dgram_qlen)
            sent += 1
        s.close()
        assert sent >= 5
        d.proc.send_signal(signal.SIGTERM)
    finally:
        d.proc.send_signal(signal.SIGCONT)
    code, _, err = d.stop()
    assert code == 0, err
    got = [line.split()[-1] for line in d.lines()]
    assert got == ["%04d" % i for i in range(sent)]
    assert not os.path.exists(d.sock)  # and it cleaned up its socket


def test_rotation_under_load(daemon):
    d = daemon("--max-size", "2K", "--keep", "2")
    sent = []
    for p in range(3):  # one logger after the other: the order in the files is the order sent
        lines = ["line %d-%03d padding padding padding" % (p, i) for i in range(40)]
        r = subprocess.run(["logger", "-u", d.sock, "-t", "rot%d" % p], input="\n".join(lines) + "\n",
                           text=True, timeout=30)
        assert r.returncode == 0
        sent += [line.split()[1] for line in lines]
    code, _, err = d.stop()
    assert code == 0, err
    files = sorted(n for n in os.listdir(d.file.parent) if n.startswith("messages"))
    assert files == ["messages", "messages.1", "messages.2"]
    for n in files:
        assert os.path.getsize(d.file.parent / n) <= 2048
    # What is kept is exactly the newest part of what was sent, in order, across the files.
    kept = []
    for n in ("messages.2", "messages.1", "messages"):
        kept += [line.split()[-4] for line in (d.file.parent / n).read_text().splitlines()]
    assert 60 < len(kept) < len(sent)
    assert kept == sent[-len(kept):]


def test_sighup_reopens_the_file(daemon):
    d = daemon()
    logger(d.sock, "-t", "t", "before")
    os.rename(d.file, str(d.file) + ".old")  # what logrotate does
    d.proc.send_signal(signal.SIGHUP)
    # Until the HUP is handled, lines may still go to the old file; poll the new one.
    for _ in range(100):
        logger(d.sock, "-t", "t", "after")
        if d.file.exists():
            break
    logger(d.sock, "-t", "t", "after")  # sent once the new file exists: the one before may have raced it
    code, _, err = d.stop()
    assert code == 0, err
    assert "after" in d.file.read_text() and "before" in (d.file.parent / "messages.old").read_text()


def test_refuses_to_replace_a_non_socket(tmp_path):
    victim = tmp_path / "log"
    victim.write_text("precious")
    r = subprocess.run([sys.executable, "-m", "richinit.builtin.syslogd", "--socket", str(victim), "--file",
                        str(tmp_path / "m")], cwd=REPO, capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "exists and is not a socket" in r.stderr and "Traceback" not in r.stderr
    assert victim.read_text() == "precious"


def test_stdout_mode(tmp_path, daemon):
    d = daemon("-o", "stdout")
    logger(d.sock, "-t", "t", "to stdout")
    code, out, err = d.stop()
    assert code == 0, err
    assert out.endswith(" box t: to stdout\n") and not d.file.exists()


def test_unwritable_log_file_falls_back_to_stdout(tmp_path):
    (tmp_path / "notadir").write_text("")
    sock = str(tmp_path / "log")
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-m", "richinit.builtin.syslogd", "--socket", sock, "--file",
                          str(tmp_path / "notadir/messages"), "--notify-fd", str(w)],
                         cwd=REPO, pass_fds=(w,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(w)
    try:
        assert select.select([r], [], [], 10)[0] and os.read(r, 1) == b"\n"
        logger(sock, "-t", "t", "still logged")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
    finally:
        os.close(r)
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0
    assert "notadir/messages: " in err and "; writing to stdout instead" in err
    assert out.endswith(" t: still logged\n")


def test_many_stream_clients_all_heard(daemon):
    """More clients than it serves at once: the rest wait in the backlog and are heard later."""
    d = daemon()
    clients = []
    for i in range(80):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(d.stream)
        c.sendall(b"<14>many: client %02d\n" % i)
        clients.append(c)
    for c in clients:
        c.close()
    logger(d.sock, "-t", "t", "datagrams still flow")
    code, _, err = d.stop()
    assert code == 0, err
    text = d.file.read_text()
    assert sorted(re.findall(r"many: client (\d\d)", text)) == ["%02d" % i for i in range(80)]
    assert "datagrams still flow" in text
