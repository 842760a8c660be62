"""The hook bundle with real engines: podman with no wrapper (hooks.d + precreate keyed on the
annotation), containerd through rich-runtime, and gVisor (views skipped, richinit still PID 1)."""

import json
import os
import subprocess
import uuid

import pytest

# The engines' fixtures (private config/storage/state, image import, cleanup) are shared with richmode.
from tests.integration.richmode.test_engines import containerd, leftovers, podman  # noqa: F401

from .conftest import need_root_and, write_shims

PROBE = ("readlink /proc/1/exe | tr '\\n' ' '; tr '\\0' ' ' < /proc/1/cmdline; echo; head -1 /proc/meminfo;"
         " dd if=/sys/devices/system/cpu/online bs=64 count=1 2>/dev/null; exit 7")


def check_probe(r, views=True):
    assert r.returncode == 7, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert "/.richinit/" in lines[0] and "richinit" in lines[0], lines[0]
    if views:
        assert lines[1].split()[1] == str(256 * 1024), lines[1]
        assert lines[2] == "0-1", lines


@pytest.fixture
def hooks_dir(richenv, tmp_path):
    """`rich install --podman` into a temp root; the installed JSON gets the session's paths in its env
    (a real installation keeps the defaults and needs nothing more)."""
    root = tmp_path / "root"
    r = richenv.rich("install", "--podman", "--root", root, "--bin-dir", richenv.bin)
    assert r.returncode == 0, r.stderr
    src = root / "usr/share/containers/oci/hooks.d"
    out = tmp_path / "hooks.d"
    out.mkdir()
    for f in sorted(os.listdir(src)):
        h = json.loads((src / f).read_text())
        assert h["hook"]["path"] == os.path.join(richenv.bin, "rich-hook")
        h["hook"]["env"] += ["%s=%s" % kv for kv in sorted(richenv.vars.items())]
        (out / f).write_text(json.dumps(h))
    return str(out)


def test_podman_without_wrapper_through_hooks_dir(richenv, podman, hooks_dir):  # noqa: F811
    env, image = podman
    name = "rich-%s" % uuid.uuid4().hex[:8]
    r = subprocess.run(["podman", "--hooks-dir", hooks_dir, "run", "--rm", "--name", name, "--network", "none",
                        "--memory", "256m", "--cpus", "1.5", "--annotation", "io.richinit.rich=true", image,
                        "/bin/sh", "-c", PROBE],
                       env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    check_probe(r)
    log = richenv.hook_log()
    assert "precreate -: config rewritten for rich mode" in log
    assert "views: builtin bound into pid" in log and "plan undone (bind, views, quota)" in log
    assert richenv.registered() == []
    # without the annotation no hook runs: the command is PID 1, host /proc
    before = richenv.hook_log()
    r = subprocess.run(["podman", "--hooks-dir", hooks_dir, "run", "--rm", "--network", "none", image,
                        "/bin/sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; exit 4"],
                       env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 4 and r.stdout.startswith("/bin/sh -c"), (r.stdout, r.stderr)
    assert richenv.hook_log() == before


def test_containerd_through_rich_runtime(richenv, containerd, tmp_path):  # noqa: F811
    sock, image = containerd
    baked = write_shims(str(tmp_path / "bin"), bake=dict(richenv.vars, RICHINIT_HOOK=os.path.join(
        str(tmp_path / "bin"), "rich-hook")))
    cid = "rich-%s" % uuid.uuid4().hex[:8]
    r = subprocess.run(["ctr", "-a", sock, "run", "--rm", "--runc-binary", os.path.join(baked, "rich-runtime"),
                        "--memory-limit", str(256 << 20), "--cpu-quota", "150000", "--cpu-period", "100000",
                        "--annotation", "io.richinit.rich=true", image, cid, "/bin/sh", "-c", PROBE],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    check_probe(r)
    log = richenv.hook_log()
    # The views (checked by the probe) were found by the rootfs: no hook ran at createRuntime.
    assert "createRuntime %s" % cid not in log
    assert "poststop %s: plan undone (config, views, quota)" % cid in log
    assert richenv.registered() == []


def test_runsc_skips_views_and_runs_under_richinit(clean, nopy_rootfs):
    need_root_and("runsc")
    # rich passes --network=none to runsc; stdio are pipes here (runsc overwrites regular files)
    script = "tr '\\0' ' ' < /proc/1/cmdline; echo; grep -c fuse /proc/self/mountinfo; exit 6"
    r = clean.rich("run", "--keep", "--runtime", "/usr/bin/runsc", "--memory", "256m", "--name", "gv", nopy_rootfs,
                   "--", "/bin/sh", "-c", script, timeout=120)
    try:
        assert r.returncode == 6, (r.stdout, r.stderr)
        first, fuse = r.stdout.splitlines()[:2]
        assert "richinit" in first
        assert fuse == "0", "no view mounts under gVisor"
        with open(os.path.join(clean.vars["RICHINIT_CONTAINERS_DIR"], "gv", "config.json")) as f:
            assert json.load(f)["annotations"]["io.richinit.views"] == "off"
        assert clean.registered() == []
    finally:
        assert clean.rich("rm", "gv").returncode == 0
