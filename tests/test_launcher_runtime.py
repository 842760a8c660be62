"""rich-runtime's sh launcher (runtime_hooks.launchers) against the Python wrapper it stands before.

The launcher execs the real runtime itself only for a call that cannot be a create or run and only
when the wrapper's memo was made from today's inputs; everything else reaches the wrapper. Here the
launcher's interpreter is a script that notes each start of Python and execs the real one, and the
"runtimes" are recorders: each case checks who decided (the launcher alone or the wrapper), that
both pick the same runtime, and that argv, stdin, inherited fds and the pid reach it untouched.
Real /bin/sh (dash).
"""

import os
import random
import subprocess
import sys

import pytest

from runtime_hooks import launchers, wrapper
from tests.support.containers import REPO

RECORDER = r"""#!/bin/sh
{ echo "who=%s"; echo "pid=$$"; echo "fds=$(/bin/ls /proc/$$/fd | /usr/bin/tr '\n' ' ')"
  for a in "$@"; do printf 'arg=%%s\n' "$a"; done
  printf 'stdin=%%s\n' "$(/bin/cat)"; } > "$RECORD"
exit 42
"""


@pytest.fixture
def rt(tmp_path):
    """The launcher (on a noting python), two recorder runtimes on a PATH, runtime.yaml."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("runc", "crun"):
        (bindir / name).write_text(RECORDER % name)
        (bindir / name).chmod(0o755)
    py = tmp_path / "py"
    py.write_text('#!/bin/sh\necho py >> "$PYLOG"\nexec %s "$@"\n' % sys.executable)
    py.chmod(0o755)
    launcher = tmp_path / "rich-runtime"
    memo = tmp_path / "run" / "rich-runtime.memo"
    launcher.write_text(launchers.render("rich-runtime", str(py), [REPO], memo=str(memo)))
    launcher.chmod(0o755)
    conf = tmp_path / "runtime.yaml"
    conf.write_text("runtime: runc\n")

    def call(args, env=None, **kw):
        for f in ("record", "pylog"):
            if (tmp_path / f).exists():
                (tmp_path / f).unlink()
        e = {"PATH": str(bindir), "RICHINIT_RUNTIME_CONFIG": str(conf), "RECORD": str(tmp_path / "record"),
             "PYLOG": str(tmp_path / "pylog")}
        e.update(env or {})
        e = {k: v for k, v in e.items() if v is not None}
        r = subprocess.run([str(launcher)] + args, env=e, capture_output=True, text=True, timeout=30,
                           stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)
        r.python = (tmp_path / "pylog").exists()
        r.record = {}
        if (tmp_path / "record").exists():
            lines = (tmp_path / "record").read_text().splitlines()
            r.record = {"args": [x[4:] for x in lines if x.startswith("arg=")]}
            r.record.update(x.split("=", 1) for x in lines if not x.startswith("arg="))
        return r

    call.conf, call.memo, call.bindir, call.launcher = conf, memo, bindir, launcher
    return call


def test_a_pass_through_needs_python_once_then_never(rt):
    first = rt(["--root", "/r", "state", "cid"])
    assert first.returncode == 42 and first.python and first.record["who"] == "runc"
    assert rt.memo.exists()
    again = rt(["--root", "/r", "--log", "/l.json", "--log-format", "json", "start", "cid"])
    assert again.returncode == 42 and not again.python, "the memo matches: the launcher execs runc itself"
    assert again.record["who"] == "runc"
    assert again.record["args"] == ["--root", "/r", "--log", "/l.json", "--log-format", "json", "start", "cid"]


def test_create_and_run_always_reach_the_wrapper(rt, tmp_path):
    rt(["state", "cid"])
    b = tmp_path / "b"
    (b / "rootfs").mkdir(parents=True)
    (b / "config.json").write_text('{"ociVersion": "1.0.2", "process": {"args": ["/bin/true"]}, '
                                   '"root": {"path": "rootfs"}}')
    for args in (["create", "--bundle", str(b), "cid"], ["--root", "/r", "run", "-b", str(b), "cid"],
                 ["--richinit-rich=false", "state", "cid"]):
        r = rt(args)
        assert r.returncode == 42 and r.python, (args, r.stderr)


def test_the_exec_keeps_pid_stdin_and_fds(rt):
    rt(["state", "cid"])
    (rt.conf.parent / "pylog").unlink()
    r, w = os.pipe()
    os.write(w, b"hello runtime")
    os.close(w)
    keep_r, keep_w = os.pipe()
    try:
        p = subprocess.Popen([str(rt.launcher), "kill", "cid", "KILL"], stdin=r, pass_fds=(keep_w,),
                             env={"PATH": str(rt.bindir), "RICHINIT_RUNTIME_CONFIG": str(rt.conf),
                                  "RECORD": str(rt.conf.parent / "record"), "PYLOG": str(rt.conf.parent / "pylog")},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        p.wait(timeout=30)
    finally:
        os.close(r)
        os.close(keep_r)
        os.close(keep_w)
    assert p.returncode == 42
    got = dict(x.split("=", 1) for x in (rt.conf.parent / "record").read_text().splitlines() if "=" in x)
    assert got["pid"] == str(p.pid) and got["stdin"] == "hello runtime"
    assert str(keep_w) in got["fds"].split()
    assert not (rt.conf.parent / "pylog").exists()


@pytest.mark.parametrize("change", ["yaml", "newline", "env", "path", "absent", "config-var", "runtime-gone"])
def test_any_changed_input_goes_back_to_the_wrapper(rt, tmp_path, change):
    rt(["state", "cid"])
    env = {}
    want = "runc"
    if change == "yaml":
        rt.conf.write_text("runtime: crun\n")
        want = "crun"
    elif change == "newline":
        rt.conf.write_text("runtime: runc")  # the same YAML, other bytes: the wrapper decides again
    elif change == "env":
        env = {"RICHINIT_RUNTIME": "crun"}
        want = "crun"
    elif change == "path":
        other = tmp_path / "bin2"
        other.mkdir()
        (other / "runc").write_text(RECORDER % "runc2")
        (other / "runc").chmod(0o755)
        env = {"PATH": "%s:%s" % (other, rt.bindir)}
        want = "runc2"
    elif change == "absent":
        rt.conf.unlink()
    elif change == "config-var":
        alt = tmp_path / "alt.yaml"
        alt.write_text("runtime: crun\n")
        env = {"RICHINIT_RUNTIME_CONFIG": str(alt)}
        want = "crun"
    elif change == "runtime-gone":
        (rt.bindir / "runc").unlink()
        (tmp_path / "bin2").mkdir()
        (tmp_path / "bin2" / "runc").write_text(RECORDER % "runc2")
        (tmp_path / "bin2" / "runc").chmod(0o755)
        env = {"PATH": "%s:%s" % (rt.bindir, tmp_path / "bin2")}
        want = "runc2"
    r = rt(["state", "cid"], env)
    assert r.returncode == 42 and r.python and r.record["who"] == want, (r.stderr, r.record)
    r = rt(["start", "cid"], env)
    assert r.returncode == 42 and not r.python and r.record["who"] == want, "the new memo serves the next call"


def test_a_broken_runtime_yaml_is_reported_by_the_wrapper(rt):
    rt(["state", "cid"])
    rt.conf.write_text("runtime: [runc]\n")
    r = rt(["state", "cid"])
    assert r.returncode == 1 and r.python and r.stderr.startswith("rich-runtime: %s:1: " % rt.conf)
    assert r.record == {}


def test_a_bad_or_foreign_memo_is_not_trusted(rt):
    rt(["state", "cid"])
    for text in (b"", b"/nonexistent/runc\n", rt.memo.read_bytes().replace(b"runtime: runc", b"runtime: crun"),
                 b"/bin\n" + rt.memo.read_bytes().split(b"\n", 1)[1]):
        rt.memo.write_bytes(text)
        r = rt(["state", "cid"])
        assert r.returncode == 42 and r.python and r.record["who"] == "runc", text


def test_no_memo_dir_writable_still_works(rt):
    rt.memo.parent.parent.joinpath("run").write_text("")  # a file where the memo's directory would go
    for _ in range(2):
        r = rt(["state", "cid"])
        assert r.returncode == 42 and r.python and r.record["who"] == "runc"


# Differential: on generated argv shapes the launcher hands over to the wrapper whenever the
# wrapper would read a config.json (create, run) or take runtime arguments off.
WORDS = ["create", "run", "start", "state", "kill", "delete", "exec", "--root", "/r", "--log", "run.json", "-b",
         "--bundle=/x", "--debug", "cid", "create-1", "KILL", "--", "--richinit-rich=true", "x run", "--format",
         "json", "-"]


def test_handed_over_whenever_the_wrapper_may_rewrite(rt):
    rt(["state", "cid"])
    rng = random.Random(13)
    for _ in range(60):
        args = [rng.choice(WORDS) for _ in range(rng.randint(0, 6))]
        call = wrapper.parse_argv(args)
        r = rt(args)
        if call.command in wrapper.REWRITE_COMMANDS or (args and args[0].startswith("--richinit-")):
            assert r.python, args
        if not r.python:
            assert r.record["who"] == "runc" and r.record["args"] == args, args


def test_render_refuses_what_sh_cannot_hold():
    with pytest.raises(launchers.LauncherError):
        launchers.render("rich-runtime", "/usr/bin/python3", ["/it's"])
    with pytest.raises(launchers.LauncherError):
        launchers.render("rich-runtime", "/usr/bin/python3", ["/a"], memo="relative/memo")
    with pytest.raises(launchers.LauncherError):
        launchers.render("rich-runtime", "/usr/bin/python3", ["/a"], env={"A B": "x"})
