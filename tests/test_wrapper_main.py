"""rich-runtime as a program: exec pass-through fidelity, the bundle rewrite on disk, bad input.

The wrapper really execs; the "real runtime" here is a small shell script that records what it
received (argv, its pid, fds, LISTEN_FDS, stdin) so the test can compare with what was sent.
Real runtimes run in tests/integration/richmode.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.support.containers import REPO

RECORDER = r"""#!/bin/sh
out="$RECORD"
{ echo "pid=$$"; echo "listen=${LISTEN_FDS:-}"; echo "fds=$(ls /proc/$$/fd | sort -n | tr '\n' ' ')"
  for a in "$@"; do printf 'arg=%s\n' "$a"; done
  printf 'stdin=%s\n' "$(cat)"; } > "$out"
exit 42
"""


def write_shim(d):
    """What the console script will be: the venv's python, isolated, calling main()."""
    path = os.path.join(d, "rich-runtime")
    with open(path, "w") as f:
        f.write("#!%s -IS\nimport sys\nsys.path.insert(0, %r)\nfrom runtime_hooks.wrapper import main\n"
                "sys.exit(main())\n" % (sys.executable, REPO))
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def env(tmp_path):
    rec = tmp_path / "runtime.sh"
    rec.write_text(RECORDER)
    rec.chmod(0o755)
    rt = tmp_path / "rt"
    for rel in ("lib/ld-linux-x86-64.so.2", "bin/python3", "bin/python3._pth"):
        (rt / rel).parent.mkdir(parents=True, exist_ok=True)
        (rt / rel).write_text("")
    (rt / "runtime.json").write_text(json.dumps({"format": 1, "loader": "ld-linux-x86-64.so.2"}))
    conf = tmp_path / "runtime.yaml"
    conf.write_text("runtime: %s\nruntime_dir: %s\n" % (rec, rt))
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RICHINIT_RUNTIME_CONFIG": str(conf),
         "RECORD": str(tmp_path / "record")}
    return {"env": e, "shim": write_shim(str(tmp_path)), "record": tmp_path / "record", "rt": rt,
            "tmp": tmp_path, "conf": conf}


def bundle(tmp_path, annotations=None, name="b", raw=None, mode=0o644):
    b = tmp_path / name
    (b / "rootfs").mkdir(parents=True)
    cfg = {"ociVersion": "1.0.2", "process": {"args": ["/bin/sh", "-c", "exit 3"], "cwd": "/"},
           "root": {"path": "rootfs"}, "mounts": []}
    if annotations:
        cfg["annotations"] = annotations
    p = b / "config.json"
    p.write_bytes(raw if raw is not None else json.dumps(cfg, indent=3).encode())
    p.chmod(mode)
    return b


def record(e):
    lines = e["record"].read_text().splitlines()
    d = {"args": [line[4:] for line in lines if line.startswith("arg=")]}
    for line in lines:
        k, _, v = line.partition("=")
        if k != "arg":
            d[k] = v
    return d


def call(e, args, **kw):
    return subprocess.run([e["shim"]] + args, env=kw.pop("env", e["env"]), capture_output=True, text=True,
                          timeout=30, stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)


def test_pass_through_is_an_exec_with_everything_preserved(env):
    r, w = os.pipe()
    os.write(w, b"hello runtime")
    os.close(w)
    e = dict(env["env"], LISTEN_FDS="1", LISTEN_PID="1")
    keep_r, keep_w = os.pipe()  # an extra inherited fd, like a socket-activation one
    try:
        args = ["--root", "/run/x", "--log-format", "json", "exec", "--process", "/p.json", "cid", "--", "-b", "x"]
        p = subprocess.Popen([env["shim"]] + args, env=e, stdin=r, pass_fds=(keep_w,),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.communicate(timeout=30)
    finally:
        os.close(r)
        os.close(keep_r)
        os.close(keep_w)
    assert p.returncode == 42, "the real runtime's exit status is the wrapper's (exec, no proxy)"
    got = record(env)
    assert got["args"] == args
    assert got["pid"] == str(p.pid), "the runtime runs in the wrapper's own process"
    assert got["listen"] == "1"
    assert str(keep_w) in got["fds"].split()
    assert got["stdin"] == "hello runtime"


def test_non_rich_create_leaves_config_byte_identical(env):
    b = bundle(env["tmp"])
    before = (b / "config.json").read_bytes()
    ino = os.stat(b / "config.json").st_ino
    r = call(env, ["create", "--bundle", str(b), "cid"])
    assert r.returncode == 42, r.stderr
    assert (b / "config.json").read_bytes() == before
    assert os.stat(b / "config.json").st_ino == ino
    assert record(env)["args"] == ["create", "--bundle", str(b), "cid"]


def test_rich_create_rewrites_atomically_and_idempotently(env):
    b = bundle(env["tmp"], {"io.richinit.rich": "true", "io.richinit.grace": "4"}, mode=0o640)
    before = os.stat(b / "config.json")
    r = call(env, ["--log", "/dev/null", "create", "-b=%s" % b, "cid"])
    assert r.returncode == 42, r.stderr
    after = os.stat(b / "config.json")
    assert after.st_ino != before.st_ino, "written as a new file and renamed over"
    assert after.st_mode & 0o7777 == 0o640
    assert sorted(os.listdir(b)) == ["config.json", "rootfs"], "no temporary file left behind"
    cfg = json.loads((b / "config.json").read_text())
    assert cfg["process"]["args"][-5:] == ["--grace", "4", "--", "/bin/sh", "-c", "exit 3"][-5:]
    assert cfg["process"]["args"][:4] == ["/.richinit/lib/ld-linux-x86-64.so.2", "--library-path", "/.richinit/lib",
                                          "/.richinit/bin/python3"]
    assert {"destination": "/.richinit", "type": "bind", "source": str(env["rt"]),
            "options": ["rbind", "ro", "nosuid", "nodev", "rprivate"]} in cfg["mounts"]
    assert "hooks" not in cfg, "no hook program configured: none registered"
    once = (b / "config.json").read_bytes()
    r = call(env, ["run", "--bundle", str(b), "cid"])
    assert r.returncode == 42
    assert (b / "config.json").read_bytes() == once, "a second pass changes nothing"


def test_rich_for_all_and_hooks_from_settings(env):
    env["conf"].write_text(env["conf"].read_text() + "rich: all\nhook: /usr/local/bin/rich-hook\n")
    b = bundle(env["tmp"])
    r = call(env, ["run", "--bundle", str(b), "cid"], cwd="/")
    assert r.returncode == 42, r.stderr
    cfg = json.loads((b / "config.json").read_text())
    assert cfg["hooks"]["createRuntime"][0]["args"] == ["/usr/local/bin/rich-hook", "createRuntime"]
    assert cfg["hooks"]["createRuntime"][0]["env"]


def test_bundle_defaults_to_cwd(env):
    b = bundle(env["tmp"], {"io.richinit.rich": "true"})
    r = call(env, ["create", "cid"], cwd=str(b))
    assert r.returncode == 42, r.stderr
    assert "/.richinit" in (b / "config.json").read_text()


BAD = [
    ("not-json", None, b"{nope", "config.json: not JSON"),
    ("no-process", None, json.dumps({"root": {"path": "rootfs"}, "annotations": {"io.richinit.rich": "true"}}).encode(),
     "config.json: process: missing"),
    ("bad-rich", {"io.richinit.rich": "perhaps"}, None, "config.json: annotations.io.richinit.rich: must be true"),
    ("bad-grace", {"io.richinit.rich": "true", "io.richinit.grace": "soon"}, None,
     "config.json: annotations.io.richinit.grace: must be seconds"),
    ("no-rootfs", {"io.richinit.rich": "true"}, None, "config.json: root.path: "),
]


@pytest.mark.parametrize("name,ann,raw,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_input_one_line_no_runtime_config_untouched(env, name, ann, raw, msg):
    b = bundle(env["tmp"], ann, raw=raw)
    if name == "no-rootfs":
        (b / "rootfs").rmdir()
    before = (b / "config.json").read_bytes()
    r = call(env, ["create", "--bundle", str(b), "cid"])
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("rich-runtime: %s/config.json: " % b)
    assert msg in r.stderr
    assert not env["record"].exists(), "the real runtime must not be called"
    assert (b / "config.json").read_bytes() == before
    assert sorted(os.listdir(b)) == sorted(["config.json"] + (["rootfs"] if name != "no-rootfs" else []))


def test_missing_bundle_and_runtime_dir(env):
    r = call(env, ["create", "--bundle", str(env["tmp"] / "nope"), "cid"])
    assert r.returncode == 1 and "nope: bundle: no such directory" in r.stderr
    b = bundle(env["tmp"], {"io.richinit.rich": "true"})
    before = (b / "config.json").read_bytes()
    os.unlink(env["rt"] / "runtime.json")
    r = call(env, ["create", "--bundle", str(b), "cid"])
    assert r.returncode == 1 and "runtime.json: no portable runtime here" in r.stderr
    assert (b / "config.json").read_bytes() == before
    assert not env["record"].exists()


def test_error_also_goes_to_the_engines_json_log(env):
    b = bundle(env["tmp"], raw=b"[")
    log = env["tmp"] / "log.json"
    r = call(env, ["--log", str(log), "--log-format", "json", "create", "--bundle", str(b), "cid"])
    assert r.returncode == 1
    entry = json.loads(log.read_text())
    assert entry["level"] == "error" and "not JSON" in entry["msg"]


def test_bad_settings_stop_even_a_pass_through(env):
    env["conf"].write_text("runtime: [runc]\n")
    r = call(env, ["state", "cid"])
    assert r.returncode == 1 and r.stderr.startswith("rich-runtime: %s:1: " % env["conf"])
    assert not env["record"].exists()


def test_missing_real_runtime(env):
    r = call(env, ["state", "cid"], env=dict(env["env"], RICHINIT_RUNTIME="/nonexistent/runc"))
    assert r.returncode == 127 and "/nonexistent/runc: cannot execute" in r.stderr


def test_runnable_as_a_module(env):
    r = subprocess.run([sys.executable, "-m", "runtime_hooks.wrapper", "--debug", "state", "cid"], cwd=REPO,
                       env=env["env"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 42, r.stderr
    assert record(env)["args"] == ["--debug", "state", "cid"]


def test_error_reaches_the_log_when_stderr_cannot_be_written(env):
    """containerd's shim gives a sandbox's runtime a read-only /dev/null as stderr."""
    b = bundle(env["tmp"], {"io.richinit.rich": "true", "io.richinit.grace": "soon"})
    log = env["tmp"] / "log.json"
    with open("/dev/null", "rb") as ro:
        r = subprocess.run([env["shim"], "--log", str(log), "--log-format", "json", "create", "--bundle", str(b),
                            "cid"], env=env["env"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=ro,
                           timeout=30)
    assert r.returncode == 1
    entry = json.loads(log.read_text())
    assert entry["level"] == "error" and "annotations.io.richinit.grace: must be seconds" in entry["msg"], entry
    text = env["tmp"] / "log.txt"
    call(env, ["--log", str(text), "create", "--bundle", str(b), "cid"])
    assert text.read_text().startswith('time="') and " level=error msg=\"rich-runtime: " in text.read_text()


def test_runtime_arguments_opt_in_and_never_reach_the_runtime(env):
    b = bundle(env["tmp"])
    r = call(env, ["--richinit-rich=true", "--richinit-services=none", "--root", "/r", "create", "--bundle", str(b),
                   "cid"])
    assert r.returncode == 42, r.stderr
    assert record(env)["args"] == ["--root", "/r", "create", "--bundle", str(b), "cid"]
    cfg = json.loads((b / "config.json").read_text())
    assert cfg["process"]["args"][-6:] == ["--services", "none", "--", "/bin/sh", "-c", "exit 3"]
    r = call(env, ["--richinit-rich=true", "state", "cid"])
    assert r.returncode == 42 and record(env)["args"] == ["state", "cid"]
    r = call(env, ["--richinit-color=red", "state", "cid"])
    assert r.returncode == 1 and "runtime argument --richinit-color=red" in r.stderr


def test_environment_opt_in_and_the_users_services_win(env):
    b = bundle(env["tmp"])
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["env"] = ["RICHINIT_RICH=true", "RICHINIT_SERVICES=none"]
    cfg["process"]["args"] = ["/sbin/docker-init", "--", "/app", "x"]
    (b / "config.json").write_text(json.dumps(cfg))
    r = call(env, ["--richinit-services=all", "create", "--bundle", str(b), "cid"])
    assert r.returncode == 42, r.stderr
    new = json.loads((b / "config.json").read_text())
    assert new["process"]["args"][-5:] == ["--services", "none", "--", "/app", "x"], "docker-init taken out"
    assert new["annotations"]["io.richinit.services"] == "none"
