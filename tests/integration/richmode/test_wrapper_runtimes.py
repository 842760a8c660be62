"""runc and crun through rich-runtime: a busybox image without Python comes up with richinit as PID 1."""

import json
import subprocess

import pytest

from tests.support import containers as c

from .conftest import need_root_and, wrapper_env
from .test_portable_runtime import SCRIPT


def wrapped(tools, runtime, args, timeout=60):
    return subprocess.run([tools["wrapper"]] + args, env=wrapper_env(tools, runtime), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_rich_busybox_through_the_wrapper(tmp_path, tools, nopy_rootfs, runtime):
    need_root_and(runtime, "unshare")
    b = str(tmp_path / "bundle")
    c.make_bundle(b, nopy_rootfs, ["/bin/sh", "-c", SCRIPT], readonly=True,
                  annotations={"io.richinit.rich": "true", "io.richinit.grace": "2"})
    cid = c.new_id("rich")
    try:
        r = wrapped(tools, runtime, ["run", "--bundle", b, cid])
    finally:
        wrapped(tools, runtime, ["delete", "--force", cid])
    assert r.returncode == 7, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    # PID 1's executable (the runtime's loader), then the argv the wrapper wrote or richinit's title
    assert "/.richinit/" in lines[0] and "richinit" in lines[0] and "-- /bin/sh -c" in lines[0], lines[0]
    stats = [s for s in lines if s.startswith("stats: ")][0].split()[1:]
    assert stats and not [s for s in stats if s.startswith("Z")]
    assert not [s for s in lines if s.startswith("leak: ")]
    cfg = json.load(open(b + "/config.json"))
    assert cfg["annotations"]["io.richinit.rewritten"] == "1"
    assert any(m["destination"] == "/run" and m["type"] == "tmpfs" for m in cfg["mounts"])


def test_rich_detached_lifecycle_through_the_wrapper(tmp_path, tools, nopy_rootfs):
    """create/start/exec/kill/delete of a rich container, all through the wrapper (as containerd does)."""
    need_root_and("runc")
    b = str(tmp_path / "bundle")
    c.make_bundle(b, nopy_rootfs, ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"],
                  annotations={"io.richinit.rich": "true", "io.richinit.grace": "1"})
    cid = c.new_id("rich")
    try:
        # The container inherits create's stdio: files, not pipes, or nothing would ever see EOF.
        with open(tmp_path / "out", "wb") as out:
            r = subprocess.run([tools["wrapper"], "create", "--bundle", b, cid], env=wrapper_env(tools),
                               stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=30)
        assert r.returncode == 0, (tmp_path / "out").read_text()
        assert wrapped(tools, "runc", ["start", cid]).returncode == 0
        ps = wrapped(tools, "runc", ["exec", cid, "/bin/ps", "-o", "pid,args"])
        assert ps.returncode == 0, ps.stderr
        first = [line for line in ps.stdout.splitlines()[1:] if line.split()[0] == "1"][0]
        assert "richinit" in first
        assert wrapped(tools, "runc", ["kill", cid, "TERM"]).returncode == 0
        for _ in range(200):
            st = json.loads(wrapped(tools, "runc", ["state", cid]).stdout)
            if st["status"] == "stopped":
                break
            subprocess.run(["sleep", "0.05"])
        assert st["status"] == "stopped"
    finally:
        wrapped(tools, "runc", ["delete", "--force", cid])
    assert wrapped(tools, "runc", ["state", cid]).returncode != 0
