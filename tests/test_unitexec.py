"""richinit.unitexec: systemd's command-line expansion (held against systemd's own test vector),
the unit environment, Condition*/Assert* checks, directories, and the child's set-up."""

import os

import pytest

from richinit.services.model import Condition, Directory, ServiceSpec
from richinit.unitexec import check_conditions, child_setup, expand, make_directories, unit_env

# systemd's test-env-util.c, test_replace_env_argv: the lines and what replace_env_argv makes of them
# (the ${VAR:-...} forms are systemd's "extended" syntax, not enabled on command lines).
SYSTEMD_ENV = {"FOO": "BAR BAR", "BAR": "waldo"}
SYSTEMD_LINES = ["FOO$FOO", "FOO$FOOFOO", "FOO${FOO}$FOO", "FOO${FOO}", "${FOO}", "$FOO", "$FOO$FOO",
                 "${FOO}${BAR}", "${FOO", "FOO$$${FOO}", "$$FOO${FOO}", "${FOO:-${BAR}}", "${QUUX:-${FOO}}",
                 "${FOO:+${BAR}}", "${QUUX:+${BAR}}", "${FOO:+|${BAR}|}}", "${FOO:+|${BAR}{|}"]
SYSTEMD_RESULT = ["FOO$FOO", "FOO$FOOFOO", "FOOBAR BAR$FOO", "FOOBAR BAR", "BAR BAR", "BAR", "BAR",
                  "BAR BARwaldo", "${FOO", "FOO$BAR BAR", "$FOOBAR BAR", "${FOO:-waldo}", "${QUUX:-BAR BAR}",
                  "${FOO:+waldo}", "${QUUX:+waldo}", "${FOO:+|waldo|}}", "${FOO:+|waldo{|}"]


def test_expansion_matches_systemds_test_vector():
    assert expand(["/bin/prog"] + SYSTEMD_LINES, SYSTEMD_ENV)[1:] == SYSTEMD_RESULT


def test_unset_variables_and_the_program_word():
    assert expand(["/bin/echo", "$NOPE", "${NOPE}x", "$FOO"], {"FOO": "  a\tb  "}) == ["/bin/echo", "x", "a", "b"]
    assert expand(["${DIR}/bin/x y"], {"DIR": "/opt/a b"}) == ["/opt/a b/bin/x y"]


def test_unit_env_as_systemd_builds_it():
    spec = ServiceSpec(name="u", unit="u.service", environment={"A": "1", "B": "2", "C": "3"},
                       pass_env=("KEEP", "ABSENT"), unset_env=("B", "C=4", "A=1"),
                       directories=(Directory(kind="runtime", path="u"), Directory(kind="state", path="u"),
                                    Directory(kind="runtime", path="u2")))
    env = unit_env(spec, {"KEEP": "k", "SECRET": "s", "LANG": "C.UTF-8"},
                   {"USER": "nobody", "HOME": "/"}, {"C": "3", "D": "d"})
    assert env == {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                   "KEEP": "k", "USER": "nobody", "HOME": "/", "RUNTIME_DIRECTORY": "/run/u:/run/u2",
                   "STATE_DIRECTORY": "/var/lib/u", "C": "3", "D": "d"}


def C(name, value, **kw):
    return Condition(name=name, value=value, **kw)


def test_conditions_and_asserts(tmp_path):
    (tmp_path / "full").write_text("x")
    (tmp_path / "empty").write_text("")
    (tmp_path / "d").mkdir()
    t = str(tmp_path)
    assert check_conditions([C("PathExists", t + "/full"), C("FileNotEmpty", t + "/full"),
                             C("PathIsDirectory", t + "/d"), C("PathExists", t + "/nope", negate=True),
                             C("PathExistsGlob", t + "/fu*"), C("DirectoryNotEmpty", t)], {}) is None
    assert check_conditions([C("FileNotEmpty", t + "/empty")], {}) == ("ConditionFileNotEmpty=%s/empty" % t, False)
    assert check_conditions([C("PathExists", t + "/nope", assert_=True)], {})[1] is True
    # "|" triggers: one is enough, none fails
    assert check_conditions([C("PathExists", t + "/nope", trigger=True),
                             C("PathExists", t + "/full", trigger=True)], {}) is None
    failed = check_conditions([C("PathExists", t + "/a", trigger=True), C("PathExists", t + "/b", trigger=True)], {})
    assert failed[0].count("|") == 3 and failed[1] is False
    assert check_conditions([C("Virtualization", "container"), C("Environment", "X=1")], {"X": "1"}) is None
    assert check_conditions([C("Virtualization", "container", negate=True)], {}) is not None


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_directories_owned_by_the_user_with_their_mode(tmp_path, monkeypatch):
    from richinit import unitexec
    monkeypatch.setitem(unitexec.DIRECTORY_BASES, "runtime", str(tmp_path))
    monkeypatch.setitem(unitexec.DIRECTORY_BASES, "configuration", str(tmp_path / "etc"))
    assert make_directories([Directory(kind="runtime", path="a/b", mode=0o750),
                             Directory(kind="configuration", path="c", mode=0o700)], 65534, 65534) == []
    st = os.stat(tmp_path / "a/b")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o750)
    assert os.stat(tmp_path / "etc/c").st_uid == 0, "ConfigurationDirectory= stays root's"


def test_child_setup_in_a_child():
    setup = child_setup(0o027, 5, {"NOFILE": [100, 200]}, False)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            setup()
            import resource
            um = os.umask(0)
            os.write(w, ("%o %d %s" % (um, os.getpriority(os.PRIO_PROCESS, 0),
                                       resource.getrlimit(resource.RLIMIT_NOFILE))).encode())
        finally:
            os._exit(0)
    os.close(w)
    out = os.read(r, 200).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert out.startswith("27 ") and out.endswith("(100, 200)")
    assert int(out.split()[1]) >= 5


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace needs root")
def test_private_tmp_in_a_child(tmp_path):
    from richinit.unitexec import probe_private_tmp
    marker = "/tmp/richinit-private-%d" % os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            if probe_private_tmp() == 0:
                with open(marker, "w") as f:
                    f.write("x")
                os.write(w, b"%d" % len(os.listdir("/tmp")))
                code = 0
        finally:
            os._exit(code)
    os.close(w)
    seen = os.read(r, 20)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        pytest.skip("no mount namespace here")
    assert seen == b"1", "the child's /tmp was empty but for its own file"
    assert not os.path.exists(marker), "the host's /tmp is untouched"


def test_a_limit_above_the_hard_limit_is_capped_in_the_child():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    setup = child_setup(None, None, {"NOFILE": [hard + 1000, hard + 1000]}, False)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setuid(65534)  # no CAP_SYS_RESOURCE: the hard limit cannot be raised
            os.dup2(w, 2)
            setup()
            os.write(w, b"|%d %d" % resource.getrlimit(resource.RLIMIT_NOFILE))
        finally:
            os._exit(0)
    os.close(w)
    out = b""
    while True:
        chunk = os.read(r, 1000)
        if not chunk:
            break
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    assert out.endswith(b"|%d %d" % (hard, hard)), out
