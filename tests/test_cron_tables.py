"""Built-in cron: which files are read, who owns them, users, job environments (fixture trees)."""

import os

import pytest

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
