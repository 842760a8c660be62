"""The sh front of rich-runtime (hooks/bin/rich-runtime) against the Python wrapper it stands before.

Differential: on many argv shapes the front must go to the Python wrapper exactly when
wrapper.parse_argv finds create/run; on runtime.yaml texts and RICHINIT_RUNTIME values it must exec
the runtime settings.load + resolve_runtime pick, or hand over to the Python wrapper (never pick
another one, never pass a file the Python side refuses). Argv, stdin, inherited fds and LISTEN_FDS
reach the runtime untouched. Real /bin/sh (dash); the "runtimes" are recorder scripts.
"""

import os
import random
import re
import subprocess

import pytest

from runtime_hooks import install, settings, wrapper

RECORDER = """#!/bin/sh
{ printf '%%s\\n' "%s:$0"; for a do printf '%%s\\0' "$a"; done; } > "$FRONT_OUT"
"""


@pytest.fixture
def front(tmp_path):
    """The installed front with PY = a recorder; a PATH dir with recorder runc/crun; an output file."""
    py = tmp_path / "py-wrapper"
    py.write_text(RECORDER % "PY")
    py.chmod(0o755)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("runc", "crun"):
        (bindir / name).write_text(RECORDER % "RT")
        (bindir / name).chmod(0o755)
    f = tmp_path / "rich-runtime"
    f.write_text(install.render_front(str(py)))
    f.chmod(0o755)
    out = tmp_path / "out"
    conf = tmp_path / "runtime.yaml"

    def call(args, yaml=None, runtime=None, path=None, **kw):
        if yaml is not None:
            conf.write_bytes(yaml.encode() if isinstance(yaml, str) else yaml)
        elif conf.exists():
            conf.unlink()
        env = {"PATH": str(bindir) if path is None else path, "FRONT_OUT": str(out),
               "RICHINIT_RUNTIME_CONFIG": str(conf)}
        if runtime is not None:
            env["RICHINIT_RUNTIME"] = runtime
        if out.exists():
            out.unlink()
        r = subprocess.run([str(f)] + args, env=env, capture_output=True, timeout=10, **kw)
        assert r.returncode == 0, r.stderr
        head, _, rest = out.read_bytes().partition(b"\n")
        who, _, prog = head.decode().partition(":")
        got = [a.decode() for a in rest.split(b"\0")[:-1]]
        assert got == args, "argv must reach the program untouched"
        return who, prog

    call.bindir, call.conf, call.env_path = str(bindir), conf, str(bindir)
    return call


def _alternatives(text, first):
    """The names of the sh `case` branch that starts with `first` (continued lines joined)."""
    joined = text.replace("\\\n", "")
    m = re.search(r"^\s*(%s\|[^)]*)\)" % re.escape(first), joined, re.M)
    return frozenset(m.group(1).split("|"))


def test_front_knows_the_same_flags_and_subcommands_as_the_wrapper():
    text = open(os.path.join(install._hooks_src(), install.FRONT[0])).read()
    assert _alternatives(text, "create") == wrapper.SUBCOMMANDS
    assert _alternatives(text, "debug") == wrapper.BOOL_FLAGS
    assert _alternatives(text, "root") == wrapper.VALUE_FLAGS


HAND_CASES = [
    [], ["state", "x"], ["create", "--bundle", "/b", "id"], ["run", "id"], ["--root", "/r", "create", "x"],
    ["--root", "create", "state", "x"],  # --root takes a value: "create" is it
    ["--unknown", "create", "x"],  # an unknown flag before a subcommand takes no value
    ["--unknown", "value", "run", "x"], ["--unknown", "--", "run"], ["--", "create"], ["-", "create"],
    ["---", "create"], ["", "create"], ["--debug", "run", "x"], ["--log=/l", "create", "x"],
    ["--log", "/l", "--log-format", "json", "create", "--bundle", "/b", "x"], ["-v"], ["--version"],
    ["--systemd-cgroup", "delete", "x"], ["--debug"], ["--root"], ["--weird=1", "run", "x"],
    ["--=x", "create", "x"], ["-root", "/r", "run"], ["--root=/r", "run"], ["*", "create"],
    ["--unknown", "*", "create"], ["--log", "a b", "kill", "x", "TERM"], ["--h", "create"],
    ["-debug", "create"], ["--platform", "ptrace", "run", "x"], ["--network", "none", "--", "create"],
    ["--unknown", "events"], ["exec", "--", "create"], ["ps", "create"],
]

TOKENS = sorted(wrapper.SUBCOMMANDS)[:12] + ["create", "run", "create", "run", "--", "-", "", "x", "id-1", "*",
                                             "a b", "-x", "--x=1", "--bundle", "/b", "---", "-=", "--="]


def _random_flag(rnd):
    name = rnd.choice(sorted(wrapper.VALUE_FLAGS) + sorted(wrapper.BOOL_FLAGS) + ["zz", "foo-bar", "b"])
    dashes = rnd.choice(["-", "--", "---"])
    return dashes + name + rnd.choice(["", "", "=v", "="])


def _random_argv(rnd):
    return [_random_flag(rnd) if rnd.random() < 0.5 else rnd.choice(TOKENS) for _ in range(rnd.randrange(0, 7))]


def test_subcommand_parsing_matches_the_wrapper_on_many_argv_shapes(front):
    rnd = random.Random(4)
    cases = HAND_CASES + [_random_argv(rnd) for _ in range(400)]
    went_py = 0
    for args in cases:
        want = "PY" if wrapper.parse_argv(list(args)).command in wrapper.REWRITE_COMMANDS else "RT"
        who, _prog = front(args)
        assert who == want, args
        went_py += who == "PY"
    assert 0 < went_py < len(cases)  # both ways were exercised


def _python_pick(yaml, runtime, path):
    """What the Python wrapper would exec for a pass-through call, or 'error'."""
    import tempfile
    with tempfile.NamedTemporaryFile("wb") as f:
        if yaml is not None:
            f.write(yaml.encode() if isinstance(yaml, str) else yaml)
            f.flush()
        env = {"PATH": path}
        if runtime is not None:
            env["RICHINIT_RUNTIME"] = runtime
        try:
            conf = settings.load(f.name if yaml is not None else f.name + ".absent", environ=env)
            return settings.resolve_runtime(conf.runtime, environ=env)
        except settings.SettingsError:
            return "error"


PLAIN = [  # the front must handle these itself (no Python start)
    None, "", "runtime: runc\n", "runtime: crun", "# comment\nruntime: crun  \n",
    "runtime: runc\nrich: annotation\nruntime_dir: /var/lib/richinit/runtime\nhook: /usr/bin/rich-hook\n"
    "hook_timeout: 10\n", "---\nrich: all\n", "rich: off\n...\n",
]
OTHER = [  # the front may hand these over, but must never disagree
    "runtime: 'crun'\n", "runtime: crun # the real one\n", "runtime: ./runc\n", "runtime: a/b\n",
    "runtime:\n", "runtime: crun\nruntime: runc\n", "  runtime: crun\n", "runtime: [crun]\n", "rich: maybe\n",
    "rich: Yes\n", "hook: relative\n", "hook_timeout: 0\n", "hook_timeout: 99999\n", "colour: blue\n",
    "runtime: crun\r\n", "runtime: /nonexistent/runc\n", "runtime: nosuch\n", "runtime:crun\n",
    b"# \xff\xfe\nruntime: crun\n", "# a\rruntime: crun\n", "hook: /a b\n", "runtime_dir: rel\n",
    "runtime: crun\thook: /x\n", "\ufeffruntime: crun\n",
]


@pytest.mark.parametrize("yaml", PLAIN + OTHER)
@pytest.mark.parametrize("runtime", [None, "crun", "runc", "/nonexistent/x", "rel/x", ""])
def test_runtime_choice_matches_the_wrapper(front, yaml, runtime):
    want = _python_pick(yaml, runtime, front.env_path)
    who, prog = front(["state", "x"], yaml=yaml, runtime=runtime)
    if who == "PY":
        assert yaml in OTHER or want == "error" or not os.access(want, os.X_OK), (yaml, runtime, want)
    else:
        assert want != "error" and os.path.samefile(prog, want), (yaml, runtime, want, prog)


def test_front_skips_itself_on_path(front, tmp_path):
    """A PATH where `runc` is the front itself: the next runc is taken, as the Python side does."""
    selfdir = tmp_path / "self"
    selfdir.mkdir()
    os.symlink(str(tmp_path / "rich-runtime"), str(selfdir / "runc"))
    who, prog = front(["state", "x"], path="%s::%s" % (selfdir, front.bindir))
    assert who == "RT" and prog == os.path.join(front.bindir, "runc")


def test_stdin_fds_and_listen_fds_reach_the_runtime(tmp_path):
    """exec, not proxy: the runtime reads the caller's stdin and sees fd 3 and LISTEN_FDS as given."""
    rt = tmp_path / "runc"
    rt.write_text("#!/bin/sh\n/bin/cat > \"$DIR/stdin\"\n/bin/ls /proc/$$/fd > \"$DIR/fds\"\n"
                  "echo \"$LISTEN_FDS $LISTEN_PID\" > \"$DIR/listen\"\necho $PPID > \"$DIR/ppid\"\n")
    rt.chmod(0o755)
    f = tmp_path / "rich-runtime"
    f.write_text(install.render_front("/nonexistent/py"))
    f.chmod(0o755)
    r_fd, w_fd = os.pipe()
    try:
        p = subprocess.Popen([str(f), "--log", "/dev/null", "kill", "x", "TERM"], pass_fds=(r_fd,),
                             stdin=subprocess.PIPE, env={"PATH": str(tmp_path), "DIR": str(tmp_path),
                                                         "LISTEN_FDS": "1", "LISTEN_PID": "1234",
                                                         "RICHINIT_RUNTIME_CONFIG": str(tmp_path / "absent")})
        p.communicate(b"from the caller", timeout=10)
    finally:
        os.close(r_fd)
        os.close(w_fd)
    assert p.returncode == 0
    assert (tmp_path / "stdin").read_bytes() == b"from the caller"
    assert str(r_fd) in (tmp_path / "fds").read_text().split()
    assert (tmp_path / "listen").read_text().split() == ["1", "1234"]
    assert int((tmp_path / "ppid").read_text()) == os.getpid()  # the same process: exec'ed, not a child


def test_real_python_wrapper_behind_the_front(tmp_path):
    """create with a missing bundle: the front hands over, the Python wrapper reports it and exits 1."""
    import sys

    from tests.support.containers import REPO
    shim = tmp_path / "rich-runtime.py"
    shim.write_text("#!%s -IS\nimport sys\nsys.path.insert(0, %r)\nfrom runtime_hooks.wrapper import main\n"
                    "sys.exit(main())\n" % (sys.executable, REPO))
    shim.chmod(0o755)
    f = tmp_path / "rich-runtime"
    f.write_text(install.render_front(str(shim)))
    f.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "RICHINIT_RUNTIME": "/bin/true",
           "RICHINIT_RUNTIME_CONFIG": str(tmp_path / "absent")}
    bad = str(tmp_path / "nobundle")
    r = subprocess.run([str(f), "create", "--bundle", bad, "x"], env=env, capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr == "rich-runtime: %s: bundle: no such directory\n" % bad
    r = subprocess.run([str(f), "--root", "/r", "state", "x"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""


def test_render_front_quotes_the_path():
    text = install.render_front("/opt/it's here/rich-runtime")
    assert "PY='/opt/it'\"'\"'s here/rich-runtime'" in text
    with pytest.raises(install.InstallError):
        install.render_front("relative/rich-runtime")


def test_our_runtime_arguments_are_taken_off_before_the_real_runtime(tmp_path):
    """daemon.json runtimeArgs (--richinit-KEY=VALUE) come first: the real runtime never sees them;
    create/run and anything unusual go to the Python wrapper with them."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "runc").write_text(RECORDER % "RT")
    (bindir / "runc").chmod(0o755)
    py = tmp_path / "py"
    py.write_text(RECORDER % "PY")
    py.chmod(0o755)
    f = tmp_path / "rich-runtime"
    f.write_text(install.render_front(str(py), str(tmp_path / "staged/runtime.yaml")))
    f.chmod(0o755)
    out = tmp_path / "out"
    env = {"PATH": str(bindir), "FRONT_OUT": str(out)}
    for args, who, want in [
        (["--richinit-rich=true", "--root", "/r", "state", "x"], "RT", ["--root", "/r", "state", "x"]),
        (["--richinit-rich=true", "create", "x"], "PY", ["--richinit-rich=true", "create", "x"]),
        (["--richinit-rich", "state", "x"], "PY", ["--richinit-rich", "state", "x"]),
        (["--root", "/r", "--richinit-rich=true", "state"], "RT", ["--root", "/r", "--richinit-rich=true", "state"]),
    ]:
        r = subprocess.run([str(f)] + args, env=env, capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
        head, _, rest = out.read_bytes().partition(b"\n")
        assert head.decode().partition(":")[0] == who, args
        assert [a.decode() for a in rest.split(b"\0")[:-1]] == want, args
    # the Python wrapper is told which runtime.yaml this (staged) install reads
    (py).write_text('#!/bin/sh\necho "$RICHINIT_RUNTIME_CONFIG" > "$FRONT_OUT"\n')
    subprocess.run([str(f), "create", "x"], env=env, timeout=10)
    assert out.read_text().strip() == str(tmp_path / "staged/runtime.yaml")
