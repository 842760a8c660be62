"""rich-runtime's host side, seen by the runtime it execs: view mounts, rich-hook entries with an
explicit env, loop quotas already mounted at `create`, and nothing half-applied on refusal."""

import json
import os
import subprocess

from runtime_hooks.quota import mountinfo
from tests.support.containers import make_bundle

# Stands in for runc: records config.json and whether /data's source is a mount point right now.
RECORDER = """#!/bin/sh
cp "$BUNDLE/config.json" "$OUT/seen.json"
grep -c " $VOL " /proc/self/mountinfo > "$OUT/mounted"
exit 0
"""


def wrapper(richenv, tmp_path, args, extra=None):
    rec = tmp_path / "fake-runc"
    rec.write_text(RECORDER)
    rec.chmod(0o755)
    env = dict(richenv.env, RICHINIT_RUNTIME=str(rec), OUT=str(tmp_path), **(extra or {}))
    return subprocess.run([os.path.join(richenv.bin, "rich-runtime")] + args, env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_create_gets_views_hooks_and_mounted_quota(richenv, nopy_rootfs, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    b = str(tmp_path / "bundle")
    make_bundle(b, nopy_rootfs, ["/bin/true"],
                mounts=[{"destination": "/data", "type": "bind", "source": str(vol), "options": ["rbind"]}],
                annotations={"io.richinit.rich": "true", "io.richinit.quota": "/data=10M"})
    cid = "hostside-1"
    try:
        r = wrapper(richenv, tmp_path, ["create", "--bundle", b, cid], {"BUNDLE": b, "VOL": str(vol)})
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "mounted").read_text().strip() == "1", "the loop filesystem must exist before create"
        cfg = json.loads((tmp_path / "seen.json").read_text())
        args = cfg["process"]["args"]
        assert args[args.index("--") - 2:args.index("--")] == ["--services", "all"]
        views = [m for m in cfg["mounts"] if m["source"].startswith(richenv.vars["RICHINIT_VIEWS_MOUNT"] + "/")]
        assert {m["destination"] for m in views} >= {"/proc/meminfo", "/proc/cpuinfo", "/proc/stat"}
        assert cfg["annotations"]["io.richinit.views"] == "builtin"
        # poststop alone: nothing waits for a hook process at createRuntime (the views find the
        # init by the rootfs)
        assert sorted(cfg["hooks"]) == ["poststop"]
        [h] = cfg["hooks"]["poststop"]
        assert h["path"] == richenv.vars["RICHINIT_HOOK"] and h["args"][1:] == ["poststop"]
        env = dict(e.split("=", 1) for e in h["env"])
        assert env["PATH"] and env["RICHINIT_STATE_DIR"] == richenv.vars["RICHINIT_STATE_DIR"]
        assert env["RICHINIT_HOOK_RUNTIME"] == "fake-runc" and h["timeout"] == 10
        assert richenv.registered() == [cid + ".json"]
    finally:
        # what runc would do at delete: the poststop hook
        state = json.dumps({"ociVersion": "1.0.2", "id": cid, "status": "stopped", "bundle": b})
        p = subprocess.run([richenv.vars["RICHINIT_HOOK"], "poststop"], input=state, text=True, capture_output=True,
                           env=dict(richenv.vars, PATH="/usr/bin:/bin"))
    assert p.returncode == 0, p.stderr
    assert richenv.registered() == []
    assert mountinfo.at(mountinfo.read(), str(vol)) is None


def test_refused_after_views_were_registered_leaves_nothing(richenv, nopy_rootfs, tmp_path):
    b = str(tmp_path / "bundle")
    make_bundle(b, nopy_rootfs, ["/bin/true"], annotations={"io.richinit.rich": "true",
                                                            "io.richinit.quota": "/nowhere=10M"})
    before = open(os.path.join(b, "config.json"), "rb").read()
    r = wrapper(richenv, tmp_path, ["create", "--bundle", b, "hostside-2"], {"BUNDLE": b, "VOL": "/x"})
    assert r.returncode == 1 and "/nowhere=10M" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "seen.json").exists(), "the runtime must not have been called"
    assert open(os.path.join(b, "config.json"), "rb").read() == before
    assert richenv.registered() == []


def test_quota_without_the_hook_is_refused(richenv, nopy_rootfs, tmp_path):
    b = str(tmp_path / "bundle")
    make_bundle(b, nopy_rootfs, ["/bin/true"], annotations={"io.richinit.rich": "true",
                                                            "io.richinit.quota": "/tmp=10M"})
    env = {"BUNDLE": b, "VOL": "/x", "RICHINIT_HOOK": str(tmp_path / "no-such-hook")}
    r = wrapper(richenv, tmp_path, ["create", "--bundle", b, "hostside-3"], env)
    assert r.returncode == 1 and "needs the rich-hook program" in r.stderr
    assert not (tmp_path / "seen.json").exists()
