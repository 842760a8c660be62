"""Built-in cron: which files are read, who owns them, users, job environments (fixture trees)."""

import os

import pytest

from richinit import envfile
from richinit.builtin import cron, cronspec


def write(path, text, mode=0o644):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    return path


@pytest.fixture
def root(tmp_path):
    write(tmp_path / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
          "bob:x:1001:1001::/home/bob:/bin/sh\nbroken line\n")
    write(tmp_path / "etc/group", "root:x:0:\nalice:x:1000:\nbob:x:1001:\nstaff:x:50:alice,bob\nadm:x:4:alice\n")
    return tmp_path


def load(root):
    paths = cron.Paths(str(root))
    users = cron.read_users(paths.passwd, paths.group)
    return cron.load_tables(paths, users)


def test_read_users(root):
    users = cron.read_users(str(root / "etc/passwd"), str(root / "etc/group"))
    assert sorted(users) == ["alice", "bob", "root"]
    a = users["alice"]
    assert (a.uid, a.gid, a.home, a.groups) == (1000, 1000, "/home/alice", [1000, 50, 4])
    assert users["root"].groups == [0]


def test_all_table_locations(root):
    write(root / "etc/crontab", "0 * * * * root echo crontab\n")
    write(root / "etc/cron.d/app", "0 * * * * bob echo cron.d\n")
    write(root / "var/spool/cron/crontabs/alice", "0 * * * * echo debian-spool\n", 0o600)
    write(root / "etc/crontabs/bob", "0 * * * * echo busybox-spool\n", 0o600)
    write(root / "var/spool/cron/alice", "0 * * * * echo cronie-spool\n", 0o600)
    entries, errors = load(root)
    assert errors == []
    assert [(e.user, e.command) for e in entries] == [
        ("root", "echo crontab"), ("bob", "echo cron.d"),
        ("alice", "echo debian-spool"), ("alice", "echo cronie-spool"), ("bob", "echo busybox-spool")]


def test_missing_everything_is_fine(root):
    assert load(root) == ([], [])


def test_ignored_cron_d_names(root):
    for name in ("ok", "job.cron", ".hidden", "app~", "app.dpkg-old", "app.dpkg-dist", "app.rpmsave", "x.swp",
                 "x.ucf-old"):
        write(root / "etc/cron.d" / name, "0 * * * * root echo %s\n" % name)
    (root / "etc/cron.d/subdir").mkdir()
    entries, errors = load(root)
    assert sorted(e.command for e in entries) == ["echo job.cron", "echo ok"]
    assert len(errors) == 1 and "subdir: not a regular file" in errors[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown fixture files")
def test_unsafe_files_are_skipped_with_a_reason(root):
    write(root / "etc/cron.d/groupw", "* * * * * root echo groupw\n", 0o664)
    write(root / "etc/cron.d/worldw", "* * * * * root echo worldw\n", 0o646)
    p = write(root / "etc/cron.d/notroot", "* * * * * root echo notroot\n")
    os.chown(p, 1000, 1000)
    p = write(root / "var/spool/cron/crontabs/alice", "* * * * * echo own\n", 0o600)
    os.chown(p, 1000, 1000)                         # the user's own table: fine
    p = write(root / "var/spool/cron/crontabs/bob", "* * * * * echo planted-by-alice\n", 0o600)
    os.chown(p, 1000, 1000)                         # alice's file in bob's name: refused
    write(root / "var/spool/cron/crontabs/mallory", "* * * * * echo who\n", 0o600)
    os.symlink("/etc/shadow-does-not-exist", root / "etc/cron.d/dangling")
    entries, errors = load(root)
    assert [e.command for e in entries] == ["echo own"]
    joined = "\n".join(errors)
    assert "etc/cron.d/groupw: writable by group or others (mode 0664)" in joined
    assert "etc/cron.d/worldw: writable by group or others (mode 0646)" in joined
    assert "etc/cron.d/notroot: owned by uid 1000" in joined
    assert "crontabs/bob: owned by uid 1000" in joined
    assert "crontabs/mallory: no user 'mallory'" in joined
    assert "etc/cron.d/dangling: cannot open" in joined


def test_unknown_user_in_system_table(root):
    write(root / "etc/crontab", "* * * * * nobody-here echo x\n* * * * * root echo y\n")
    entries, errors = load(root)
    assert [e.command for e in entries] == ["echo y"]
    assert errors == ["%s:1: no user 'nobody-here' in %s: skipped" % (root / "etc/crontab", root / "etc/passwd")]


def test_signature_changes_on_edit_add_remove(root):
    paths = cron.Paths(str(root))
    p = write(root / "etc/cron.d/a", "* * * * * root true\n")
    s1 = cron.signature(paths)
    assert cron.signature(paths) == s1
    os.utime(p, ns=(1, 1))
    s2 = cron.signature(paths)
    assert s2 != s1
    write(root / "var/spool/cron/crontabs/alice", "* * * * * true\n", 0o600)
    s3 = cron.signature(paths)
    assert s3 != s2
    os.unlink(p)
    assert cron.signature(paths) != s3


def test_job_environment_precedence():
    (entry,), _ = cronspec.parse_crontab(
        "HOME=/elsewhere\nLOGNAME=evil\nMAILTO=x@y\nCUSTOM=1\nPATH=/opt/bin\n* * * * * true\n", "f", user="alice")
    user = cron.User("alice", 1000, 1000, "/home/alice", [1000])
    saved = {"PATH": "/usr/local/bin:/bin", "DB_URL": "postgres://", "CUSTOM": "0"}
    env = cron.job_environment(entry, user, saved, True)
    assert env == {"PATH": "/opt/bin", "DB_URL": "postgres://", "CUSTOM": "1", "HOME": "/elsewhere",
                   "LOGNAME": "alice", "USER": "alice", "SHELL": "/bin/sh"}
    (plain,), _ = cronspec.parse_crontab("* * * * * true\n", "f", user="alice")
    env = cron.job_environment(plain, user, saved, True)
    assert env["PATH"] == "/usr/local/bin:/bin" and env["HOME"] == "/home/alice"
    env = cron.job_environment(plain, user, saved, False)  # not allowed to read the saved file
    assert env == {"PATH": "/usr/bin:/bin", "HOME": "/home/alice", "LOGNAME": "alice", "USER": "alice",
                   "SHELL": "/bin/sh"}


def test_due_runs_each_entry_once_over_missed_minutes(root):
    write(root / "etc/crontab", "* * * * * root every\n30 10 * * * root half-past\n0 11 * * * root eleven\n")
    paths = cron.Paths(str(root))
    c = cron.Cron(paths, cron.Logger(str(root / "no-syslog")))
    c.reload()
    import time
    base = time.mktime((2026, 11, 27, 10, 28, 0, 0, 0, -1))
    minutes = [base + 60 * i for i in range(5)]  # 10:28 .. 10:32
    assert [e.command for e in c.due(minutes)] == ["every", "half-past"]


def test_boot_identity_and_reboot_marker(root, tmp_path):
    proc = tmp_path / "proc"
    (proc / "sys/kernel/random").mkdir(parents=True)
    (proc / "1").mkdir()
    (proc / "sys/kernel/random/boot_id").write_text("abc-123\n")
    stat_line = "1 (my init) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 %d 1000 100\n"
    (proc / "1/stat").write_text(stat_line % 4242)
    assert cron.boot_identity(str(proc)) == "abc-123 4242"
    assert cron.boot_identity(str(tmp_path / "none")) == "? ?"

    write(root / "etc/crontab", "@reboot root echo booted\n")
    started = []
    c = cron.Cron(cron.Paths(str(root)), cron.Logger(str(root / "no-syslog")))
    c.reload()
    c.start = started.append  # pure logic here: which entries would start
    cron.run_reboot_jobs(c, str(proc))
    cron.run_reboot_jobs(c, str(proc))            # cron restarted in the same boot: nothing
    assert [e.command for e in started] == ["echo booted"]
    (proc / "1/stat").write_text(stat_line % 9999)  # the container restarted: PID 1 is new
    cron.run_reboot_jobs(c, str(proc))
    assert len(started) == 2


# ---------------------------------------------------------------- the saved environment, read without shlex


ODD_ENVIRONMENTS = [
    {}, {"A": ""}, {"A": "plain", "B": "with space", "C": "it's", "D": 'say "hi"', "E": "a\\b"},
    {"MULTI": "line one\nline two\n", "HASH": "#not a comment", "DOLLAR": "$HOME `x` $(y)", "EQ": "a=b=c"},
    {"UNI": "h\u00e9llo \u2603", "TAB": "a\tb", "BAD_BYTES": "\udcff\udcfe"},
]
ODD_TEXTS = [
    "", "# only a comment\n", "export A=1 B=2\n", "A=1#comment\nB=2", "export A='x'\"y\"z\\ w\n", 'A="a\\"b\\\\c\\d"\n',
    "A='unterminated\n", 'A="unterminated\n', "A=trailing\\", 'A="x\\', "export\n", "A\n", "1A=x\n", "A-B=x\n",
    "A=\\\nB=2\n", "'A'=x\n", "A='x'#c\n", "  \t export   A=1  \r\n", "A==\n", "=x\n", "A='a\rb'\n",
]


def _shlex_load(path):
    """The reference reader: shlex, as the shell-quoting writer (environ.to_shell) assumes."""
    from richinit import environ
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return environ.parse_shell(f.read())


def _both(tmp_path, text):
    p = tmp_path / "environment"
    p.write_text(text, errors="surrogateescape")
    got = []
    for load in (_shlex_load, envfile.load):
        try:
            got.append(("ok", load(str(p))))
        except ValueError as e:
            got.append(("error", str(e)))
    return got


@pytest.mark.parametrize("env", ODD_ENVIRONMENTS)
def test_saved_environment_reads_back_as_environ_wrote_it(tmp_path, env):
    from richinit import environ
    ours, theirs = _both(tmp_path, environ.to_shell(env))
    assert ours == theirs == ("ok", env)


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_saved_environment_parser_agrees_with_environ_on_odd_text(tmp_path, text):
    theirs, ours = _both(tmp_path, text)
    assert ours == theirs


def test_saved_environment_missing_is_empty(tmp_path):
    assert envfile.load(str(tmp_path / "none")) == {}


def test_readable_by_follows_the_mode_bits(tmp_path):
    p = tmp_path / "f"
    p.write_text("")
    os.chown(p, 4242, 4343)  # owner 4242, group 4343 (needs root, as the suite runs)
    expect = {  # mode -> (the owner, a group member, anyone else) may read
        0o600: (True, False, False), 0o640: (True, True, False), 0o644: (True, True, True),
        0o604: (True, False, True), 0o060: (False, True, False), 0o000: (False, False, False)}
    for mode, (owner, group, other) in expect.items():
        os.chmod(p, mode)
        assert envfile.readable_by(str(p), 0, [0])  # root reads everything
        assert envfile.readable_by(str(p), 4242, [4242]) == owner
        assert envfile.readable_by(str(p), 5000, [4343]) == group
        assert envfile.readable_by(str(p), 5000, [5000]) == other
    assert envfile.readable_by(str(tmp_path / "none"), 4242, []) is False


# ---------------------------------------------------------------- options and test clocks, without argparse


@pytest.mark.parametrize("text", ["2026-11-27 10:05", "2026-1-5 1:5", "2024-02-29 23:59", "2026-11-27  10:05"])
def test_parse_minute_as_strptime(text):
    import time
    assert cron._parse_minute(text) == time.mktime(time.strptime(text, "%Y-%m-%d %H:%M"))


@pytest.mark.parametrize("text", ["tomorrow", "", "2026-11-27", "2026-11-27 10", "2026-13-01 10:00", "2026-02-29 10:00",
                                  "2026-11-27 24:00", "2026-11-27 10:60", "26-11-27 10:00", "2026-11-27T10:00",
                                  "2026-11-27 10:05:00", "2026-011-27 10:05", " 2026-11-27 10:05", "2026-11-27 10:05 "])
def test_parse_minute_refuses_what_strptime_refuses(text):
    import time
    with pytest.raises(ValueError):
        time.strptime(text, "%Y-%m-%d %H:%M")
    with pytest.raises(ValueError, match="is not 'YYYY-mm-dd HH:MM'"):
        cron._parse_minute(text)


def test_options():
    a = cron.parse_args(["--root", "/r", "--syslog=/s", "--stop-timeout", "2.5", "--notify-fd", "3",
                         "--clock-start", "2026-11-27 10:00", "--minute-seconds", "-1"])
    assert (a.root, a.syslog, a.stop_timeout, a.notify_fd, a.clock_start, a.minute_seconds) == (
        "/r", "/s", "2.5", "3", "2026-11-27 10:00", "-1")
    assert cron.parse_args(["--root", "/r", "-h"]) is None and cron.parse_args(["--help"]) is None
    d = cron.parse_args([])
    assert (d.root, d.syslog, d.env_file, d.stop_timeout, d.once_at, d.minute_seconds) == (
        "/", None, None, "5.0", None, "60.0")


@pytest.mark.parametrize("argv,message", [
    (["--bogus"], "unrecognized arguments: --bogus"), (["stray"], "unrecognized arguments: stray"),
    (["--root"], "argument --root: expected one argument"), (["--root", "--syslog", "x"], "expected one argument"),
    (["--stop-timeout", "soon"], "argument --stop-timeout: invalid float value: 'soon'"),
    (["--notify-fd", "x"], "argument --notify-fd: invalid int value: 'x'"),
    (["--minute-seconds", "0"], "--minute-seconds must be > 0"), (["--__class__", "x"], "unrecognized arguments"),
])
def test_bad_options_exit_2_with_usage_and_one_line(capsys, argv, message):
    assert cron.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: richinit-cron ") and err.count("richinit-cron: error:") == 1
    assert message in err.splitlines()[-1] and "Traceback" not in err


def test_help(capsys):
    assert cron.main(["--help"]) == 0
    out, _ = capsys.readouterr()
    for opt in ("--root ROOT", "--syslog SYSLOG", "--env-file", "--stop-timeout", "--notify-fd", "--once-at",
                "--clock-start", "--minute-seconds"):
        assert opt in out
