"""rich-hook as a program: state parsing, the stages that need no container, precreate, failure lines.

These run the real program (a subprocess with an explicit env, as a runtime would call it) on
temporary bundles; nothing here mounts or starts servers.
"""

import io
import json
import os
import subprocess
import sys

import pytest

from runtime_hooks import hook
from tests.support.containers import REPO


def run_hook(stage, stdin, tmp_path, extra_env=None):
    env = {"PATH": "/usr/bin:/bin", "RICHINIT_LOG_DIR": str(tmp_path / "log"),
           "RICHINIT_STATE_DIR": str(tmp_path / "state"), "RICHINIT_VIEWS_REGISTRY": str(tmp_path / "views.d"),
           "PYTHONPATH": REPO}
    env.update(extra_env or {})
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    return subprocess.run([sys.executable, "-m", "runtime_hooks.hook", stage], input=data, env=env,
                          capture_output=True, timeout=30)


def log_lines(tmp_path):
    try:
        return (tmp_path / "log" / "hook.log").read_text().splitlines()
    except FileNotFoundError:
        return []


def make_bundle(tmp_path, annotations=None, mounts=()):
    b = tmp_path / "bundle"
    (b / "rootfs").mkdir(parents=True)
    cfg = {"ociVersion": "1.0.2", "process": {"args": ["/bin/sh"], "cwd": "/"}, "root": {"path": "rootfs"},
           "mounts": list(mounts), "annotations": dict(annotations or {})}
    (b / "config.json").write_text(json.dumps(cfg))
    return str(b)


def state(bundle, cid="c1", pid=None, **kw):
    s = {"ociVersion": "1.0.2", "id": cid, "status": "creating", "bundle": bundle}
    if pid:
        s["pid"] = pid
    s.update(kw)
    return s


@pytest.mark.parametrize("data,field", [
    (b"not json", "not JSON"),
    (b"[]", "JSON object"),
    (json.dumps({"bundle": "/b"}).encode(), "state.id"),
    (json.dumps({"id": "../x", "bundle": "/b"}).encode(), "state.id"),
    (json.dumps({"id": "c", "bundle": "rel/b"}).encode(), "state.bundle"),
    (json.dumps({"id": "c", "bundle": "/b", "pid": "12"}).encode(), "state.pid"),
    (json.dumps({"id": "c", "bundle": "/b", "pid": True}).encode(), "state.pid"),
    (json.dumps({"id": "c", "bundle": "/b", "annotations": []}).encode(), "state.annotations"),
])
def test_bad_state_is_refused_with_the_field(data, field):
    with pytest.raises(hook.HookError, match=field.replace(".", r"\.")):
        hook.parse_state(data)


def test_state_of_runc_and_crun():
    # runc: "creating" with the host pid; crun adds "root" and says "created". Status is never used.
    for extra in ({"status": "creating"}, {"status": "created", "root": "/run/crun"}):
        s = hook.parse_state(json.dumps(dict({"id": "abc", "pid": 42, "bundle": "/b"}, **extra)))
        assert (s.id, s.pid, s.bundle, s.annotations) == ("abc", 42, "/b", {})
    # runsc's poststop says pid -1: no process
    assert hook.parse_state(json.dumps({"id": "abc", "pid": -1, "bundle": "/b"})).pid is None


def test_create_runtime_fails_closed_with_one_line(tmp_path):
    r = run_hook("createRuntime", state(str(tmp_path / "nope"), pid=1), tmp_path)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "config.json: cannot read" in err and "Traceback" not in err
    assert "FAILED" in log_lines(tmp_path)[-1]


def test_create_runtime_ignores_containers_that_are_not_rich(tmp_path):
    b = make_bundle(tmp_path)
    r = run_hook("createRuntime", state(b, pid=os.getpid()), tmp_path)
    assert r.returncode == 0, r.stderr
    assert "not a rich container" in log_lines(tmp_path)[-1]


def test_loop_quota_without_the_wrapper_fails_closed(tmp_path):
    """A loop mount made at createRuntime would not be seen inside: refuse rather than pretend."""
    vol = tmp_path / "vol"
    vol.mkdir()
    b = make_bundle(tmp_path, {"io.richinit.rich": "true", "io.richinit.quota": "/data=10M",
                               "io.richinit.quota-backend": "loop", "io.richinit.lxcfs": "off"},
                    [{"destination": "/data", "type": "bind", "source": str(vol), "options": ["rbind"]}])
    r = run_hook("createRuntime", state(b, pid=os.getpid()), tmp_path)
    assert r.returncode == 1
    assert "/data=10M" in r.stderr.decode() and "rich-runtime" in r.stderr.decode()
    assert not os.path.exists(tmp_path / "state" / "quota" / "containers" / "c1.json")


def test_views_off_by_annotation(tmp_path):
    b = make_bundle(tmp_path, {"io.richinit.rich": "true", "io.richinit.lxcfs": "off"})
    r = run_hook("createRuntime", state(b, pid=os.getpid()), tmp_path)
    assert r.returncode == 0, r.stderr
    assert "views: skipped" in log_lines(tmp_path)[-1]


def test_bad_lxcfs_annotation_fails_closed(tmp_path):
    b = make_bundle(tmp_path, {"io.richinit.rich": "true", "io.richinit.lxcfs": "maybe"})
    r = run_hook("createRuntime", state(b, pid=os.getpid()), tmp_path)
    assert r.returncode == 1 and "io.richinit.lxcfs" in r.stderr.decode()


def test_vm_runtime_skips_views(tmp_path):
    b = make_bundle(tmp_path, {"io.richinit.rich": "true"})
    r = run_hook("createRuntime", state(b, pid=os.getpid()), tmp_path, {"RICHINIT_HOOK_RUNTIME": "runsc"})
    assert r.returncode == 0, r.stderr
    assert "views: skipped (VM runtime)" in log_lines(tmp_path)[-1]


def test_poststop_is_best_effort_and_never_fails(tmp_path):
    # Unknown container, no bundle on disk any more: still 0, and the log says what it did.
    r = run_hook("poststop", state("/nonexistent", cid="gone"), tmp_path)
    assert r.returncode == 0, r.stderr
    lines = log_lines(tmp_path)
    assert any("gone: no plan: nothing to undo" in line for line in lines)
    # even unparsable state does not block removal
    r = run_hook("poststop", b"garbage", tmp_path)
    assert r.returncode == 0 and r.stderr.count(b"\n") == 1


def test_unknown_stage_and_bad_env(tmp_path):
    r = run_hook("prestop", state("/b"), tmp_path)
    assert r.returncode == 2 and b"usage" in r.stderr
    r = run_hook("poststart", state("/b"), tmp_path, {"RICHINIT_STATE_DIR": "relative"})
    assert r.returncode == 1 and b"RICHINIT_STATE_DIR" in r.stderr


@pytest.fixture
def runtime_dir(tmp_path):
    rt = tmp_path / "rt"
    for rel in ("lib/ld-linux-x86-64.so.2", "bin/python3", "bin/python3._pth"):
        (rt / rel).parent.mkdir(parents=True, exist_ok=True)
        (rt / rel).write_text("")
    (rt / "runtime.json").write_text(json.dumps({"format": 1, "loader": "ld-linux-x86-64.so.2"}))
    conf = tmp_path / "runtime.yaml"
    conf.write_text("runtime_dir: %s\n" % rt)
    return {"RICHINIT_RUNTIME_CONFIG": str(conf)}


def test_precreate_rewrites_a_rich_config(tmp_path, runtime_dir):
    cfg = {"ociVersion": "1.0.2", "process": {"args": ["/bin/app", "x"], "cwd": "/"}, "root": {"path": "/r"},
           "mounts": [], "annotations": {"io.richinit.rich": "true"}}
    r = run_hook("precreate", cfg, tmp_path, runtime_dir)
    assert r.returncode == 0, r.stderr
    new = json.loads(r.stdout)
    assert new["process"]["args"][-4:] == ["all", "--", "/bin/app", "x"]
    assert "/.richinit/bin/python3" in new["process"]["args"]
    assert any(m["destination"] == "/.richinit" and "ro" in m["options"] for m in new["mounts"])
    assert "hooks" not in new, "hooks.d registers the stage hooks, not precreate"
    # running it again (podman may) changes nothing
    again = run_hook("precreate", r.stdout, tmp_path, runtime_dir)
    assert json.loads(again.stdout) == new
    # services narrowed by the annotation
    cfg["annotations"]["io.richinit.services"] = "none"
    new = json.loads(run_hook("precreate", cfg, tmp_path, runtime_dir).stdout)
    assert new["process"]["args"][-5:-3] == ["--services", "none"]


def test_precreate_passes_other_configs_through_byte_for_byte(tmp_path, runtime_dir):
    raw = b'{"ociVersion": "1.0.2",  "process": {"args": ["/bin/sh"]}, "root": {"path": "r"}}'
    r = run_hook("precreate", raw, tmp_path, runtime_dir)
    assert r.returncode == 0 and r.stdout == raw


@pytest.mark.parametrize("cfg,field", [
    (b"{", "not JSON"),
    ({"process": {"args": []}, "root": {"path": "r"}, "annotations": {"io.richinit.rich": "true"}}, "process.args"),
    ({"process": {"args": ["x"]}, "root": {"path": "r"}, "annotations": {"io.richinit.rich": "maybe"}},
     "io.richinit.rich"),
])
def test_precreate_refuses_bad_configs(tmp_path, runtime_dir, cfg, field):
    r = run_hook("precreate", cfg, tmp_path, runtime_dir)
    assert r.returncode == 1 and r.stdout == b""
    assert field in r.stderr.decode() and r.stderr.count(b"\n") == 1


def test_precreate_without_a_built_runtime_says_how_to_build_it(tmp_path):
    conf = tmp_path / "runtime.yaml"
    conf.write_text("runtime_dir: %s\n" % (tmp_path / "none"))
    cfg = {"process": {"args": ["x"]}, "root": {"path": "r"}, "annotations": {"io.richinit.rich": "true"}}
    r = run_hook("precreate", cfg, tmp_path, {"RICHINIT_RUNTIME_CONFIG": str(conf)})
    assert r.returncode == 1 and b"rich runtime build" in r.stderr


def test_main_in_process_precreate_pass_through(tmp_path, monkeypatch, runtime_dir):
    monkeypatch.setenv("RICHINIT_RUNTIME_CONFIG", runtime_dir["RICHINIT_RUNTIME_CONFIG"])
    out = io.StringIO()
    rc = hook.main(["rich-hook", "precreate"], stdin=io.BytesIO(b'{"a": 1}'), stdout=out,
                   environ={"RICHINIT_LOG_DIR": str(tmp_path / "log")})
    assert rc == 0 and out.getvalue() == '{"a": 1}'


@pytest.mark.parametrize("args,cid", [
    (["create", "--bundle", "/b", "id1"], "id1"),
    (["--root", "/r", "--log", "/l", "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "/p", "id2"],
     "id2"),
    (["run", "-d", "--console-socket", "/s", "-b", "/b", "id3"], "id3"),
    (["run", "--pid-file", "/p", "id4", "--", "ignored"], "id4"),
    (["-root", "/r", "run", "-bundle=/b", "-pid-file", "/p", "id5"], "id5"),  # runsc
    (["create", "--bundle", "/b"], None),
    (["state", "id6"], None),  # only create/run are prepared
])
def test_wrapper_finds_the_container_id_it_registers_hooks_for(args, cid):
    from runtime_hooks.wrapper import parse_argv
    assert parse_argv(args).container_id == cid
