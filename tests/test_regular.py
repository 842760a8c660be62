"""PID 1 reads container files without waiting: a FIFO where a file should be is an error, not a hang."""

import os

import pytest

from richinit import regular
from richinit.services.model import read_env_files


def test_regular_file_up_to_the_limit(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 100000)
    assert regular.read(str(p)) == b"x" * 100000
    assert regular.read(str(p), 10) == b"x" * 10


@pytest.mark.parametrize("make", [os.mkfifo, lambda p: os.mkdir(p)])
def test_a_fifo_or_a_directory_is_refused_at_once(tmp_path, make):
    p = str(tmp_path / "f")
    make(p)
    with pytest.raises(OSError):
        regular.read(p)  # a plain open() of the FIFO would wait for a writer forever


def test_an_env_file_that_is_a_fifo_is_one_error_line(tmp_path):
    fifo = str(tmp_path / "env")
    os.mkfifo(fifo)
    good = tmp_path / "good"
    good.write_text("A=1\n")
    env, errors = read_env_files([fifo, str(good)])
    assert env == {"A": "1"} and errors == ["%s: not a regular file" % fifo]


def test_users_and_groups_from_the_files(tmp_path, monkeypatch):
    from richinit import identity
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n")
    (tmp_path / "group").write_text("root:x:0:\nwww:x:34:\nlog:x:4:www,other\n")
    real = regular.read_text
    monkeypatch.setattr(regular, "read_text", lambda p, limit=1 << 20: real(str(tmp_path / os.path.basename(p))))
    assert identity.passwd_lookup("www", None) == (33, 34, [4, 34])
    assert identity.passwd_lookup(None, "log") == (0, 4, [4])
    assert identity.passwd_lookup("1234", None) == (1234, 1234, [1234])
    with pytest.raises(LookupError):
        identity.passwd_lookup("nobody-here", None)
