"""Pass-through fidelity: a container without rich mode behaves through rich-runtime exactly as with bare runc.

The same lifecycle runs twice, once with `runc` and once with the wrapper (real runtime runc);
exit codes and normalised outputs are compared step by step, and config.json must be
byte-identical after the wrapper.
"""

import json
import re
import subprocess
import time

from tests.support import containers as c

from .conftest import need_root_and, wrapper_env


def _norm(text, cid, bundle):
    text = text.replace(cid, "ID").replace(bundle, "BUNDLE")
    return re.sub(r'time="[^"]*"', 'time="T"', text)


def _state(out):
    try:
        s = json.loads(out)
    except ValueError:
        return out
    return {"status": s.get("status"), "keys": sorted(s), "has_pid": bool(s.get("pid"))}


def lifecycle(tmp_path, argv, env, name):
    bundle = str(tmp_path / name)
    rootfs = c.busybox_rootfs(str(tmp_path / (name + "-rootfs")))
    c.make_bundle(bundle, rootfs, ["/bin/sleep", "1000"])
    before = open(bundle + "/config.json", "rb").read()
    cid = c.new_id("pt")
    steps = []

    def step(label, args, parse=None, stdio_file=False):
        if stdio_file:  # create: the container keeps its stdio; a file never blocks us
            with open(tmp_path / (name + ".out"), "wb") as out:
                r = subprocess.run(argv + args, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                   timeout=30)
            stdout = stderr = ""
        else:
            r = subprocess.run(argv + args, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=30)
            stdout, stderr = _norm(r.stdout, cid, bundle), _norm(r.stderr, cid, bundle)
        steps.append((label, r.returncode, parse(stdout) if parse else stdout, stderr))
        return r

    try:
        step("version", ["--version"])
        step("state-missing", ["state", cid])
        step("create", ["create", "--bundle", bundle, cid], stdio_file=True)
        step("state-created", ["state", cid], _state)
        step("start", ["start", cid])
        step("state-running", ["state", cid], _state)
        step("exec", ["exec", cid, "/bin/echo", "hi"])
        step("exec-fails", ["exec", cid, "/bin/sh", "-c", "exit 3"])
        step("ps", ["ps", "--format", "json", cid], lambda out: len(json.loads(out)))
        step("pause", ["pause", cid])
        step("state-paused", ["state", cid], _state)
        step("resume", ["resume", cid])
        step("update", ["update", "--pids-limit", "100", cid])
        step("update-bad", ["update", "--memory", "nonsense", cid])
        step("kill", ["kill", cid, "KILL"])
        for _ in range(200):
            if json.loads(subprocess.run(["runc", "state", cid], capture_output=True, text=True).stdout)[
                    "status"] == "stopped":
                break
            time.sleep(0.05)
        step("state-stopped", ["state", cid], _state)
        step("delete", ["delete", cid])
        step("state-deleted", ["state", cid])
    finally:
        c.delete(cid)
    after = open(bundle + "/config.json", "rb").read()
    return steps, before == after


def test_lifecycle_is_identical_to_bare_runc(tmp_path, tools):
    need_root_and("runc")
    bare, _ = lifecycle(tmp_path, ["runc"], None, "bare")
    wrapped, identical = lifecycle(tmp_path, [tools["wrapper"]], wrapper_env(tools, "runc"), "wrapped")
    assert identical, "config.json of a non-rich container must be byte-identical after the wrapper"
    assert [s[0] for s in bare] == [s[0] for s in wrapped]
    for b, w in zip(bare, wrapped, strict=True):
        assert b == w, "step %s differs: bare %r, wrapped %r" % (b[0], b[1:], w[1:])
    # the lifecycle really exercised the runtime (not two equal failures)
    codes = {s[0]: s[1] for s in bare}
    assert codes["create"] == codes["start"] == codes["exec"] == codes["delete"] == 0
    assert codes["exec-fails"] == 3 and codes["state-missing"] != 0 and codes["update-bad"] != 0
    assert dict((s[0], s[2]) for s in bare)["state-paused"]["status"] == "paused"
