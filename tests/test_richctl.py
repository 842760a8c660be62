"""richctl over a real unix socket: one request line out, JSON lines back (the tools' client), and one
clear line when PID 1 cannot be reached."""

import os
import socket
import tempfile
import threading

from richinit import ctl


def test_logs_follow_reads_every_reply_until_the_end(capsys):
    d = tempfile.mkdtemp(prefix="richctl%d-" % os.getpid())
    path = os.path.join(d, "control.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got = []

    def serve():
        c, _ = srv.accept()
        with c:
            got.append(c.recv(100))
            c.sendall(b'{"ok": true, "lines": ["a"], "following": true}\n{"line": "b"}\n'
                      b'{"ok": true, "lines": [], "end": true}\n')

    t = threading.Thread(target=serve)
    t.start()
    try:
        assert ctl.main(["--socket", path, "logs", "web", "-f"]) == 0
    finally:
        t.join()
        srv.close()
        os.unlink(path)
        os.rmdir(d)
    assert got == [b"logs web follow\n"]
    assert capsys.readouterr().out == "a\nb\n"


def test_unreachable_is_one_line_and_exit_1(capsys, tmp_path):
    path = str(tmp_path / "none.sock")
    assert ctl.main(["--socket", path, "status"]) == 1
    assert capsys.readouterr().err == "richctl: cannot reach richinit at %s: No such file or directory\n" % path
