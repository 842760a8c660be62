"""Bad input: one line naming the rule, and nothing half-applied (mounts, images, IDs, records)."""

import os
import shutil
import subprocess
import sys

import pytest

from runtime_hooks import quota
from runtime_hooks.quota import mountinfo
from runtime_hooks.quota.ids import FIRST_ID, IdAllocator
from tests.support.containers import REPO, make_bundle, new_id

QUOTA = "io.richinit.quota"
BACKEND = "io.richinit.quota-backend"


def _bind(src, dst):
    return {"destination": dst, "type": "bind", "source": str(src), "options": ["rbind", "rprivate"]}


def _snapshot(state_dir):
    # Mounts under the test's own directory (state and scratch): other programs mount and unmount
    # elsewhere on this host meanwhile.
    top = os.path.dirname(os.path.realpath(state_dir)) + "/"
    files = sorted(os.path.relpath(os.path.join(t, f), state_dir) for t, _, fs in os.walk(state_dir) for f in fs)
    return sorted(m.mount_point for m in mountinfo.read() if m.mount_point.startswith(top)), \
        [f for f in files if not f.endswith(("ids.lock", "ids.json"))], IdAllocator(state_dir).owned()


@pytest.fixture
def rootfs(busybox_rootfs, scratch):
    """A private copy: these tests put directories and symlinks into the image."""
    dest = str(scratch / "rootfs")
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    return dest


def _expect_error(cid, cfg, bundle, state_dir, fragment, apply=False):
    before = _snapshot(state_dir)
    with pytest.raises(quota.QuotaError) as ei:
        p = quota.plan(cid, cfg, bundle, state_dir=state_dir)
        if apply:
            quota.apply(p)
    msg = str(ei.value)
    assert "\n" not in msg and fragment in msg, msg
    assert _snapshot(state_dir) == before
    return msg


def test_unsupported_filesystem(rootfs, scratch, state_dir, need_loop):
    tm = scratch / "tmpfs"
    tm.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(tm)], check=True)
    bundle = str(scratch / "b")
    cfg = make_bundle(bundle, rootfs, ["true"], mounts=[_bind(tm, "/data")],
                      annotations={QUOTA: "/data=10M", BACKEND: "project"})
    msg = _expect_error(new_id("q"), cfg, bundle, state_dir, "is on tmpfs; the project backend needs xfs or ext4")
    assert msg.startswith("quota rule '/data=10M' (annotation io.richinit.quota): ")


def test_limit_below_usage(rootfs, scratch, state_dir, need_loop):
    vol = scratch / "vol"
    vol.mkdir()
    (vol / "big").write_bytes(os.urandom(2 << 20))
    bundle = str(scratch / "b")
    cfg = make_bundle(bundle, rootfs, ["true"], mounts=[_bind(vol, "/data")], annotations={QUOTA: "/data=1M"})
    _expect_error(new_id("q"), cfg, bundle, state_dir, "'/data=1M' (annotation io.richinit.quota): limit 1M is "
                  "below current usage 2M")


def test_unknown_destination_and_non_bind_mount(rootfs, scratch, state_dir, need_loop):
    bundle = str(scratch / "b")
    cfg = make_bundle(bundle, rootfs, ["true"], annotations={QUOTA: "/nope=10M"})
    _expect_error(new_id("q"), cfg, bundle, state_dir, "'/nope=10M' (annotation io.richinit.quota): unknown "
                  "destination /nope: no mount in config.json and no directory of the image")
    cfg["annotations"][QUOTA] = "/dev=10M"  # runc spec's /dev is a tmpfs
    _expect_error(new_id("q"), cfg, bundle, state_dir, "/dev is a tmpfs mount, not a directory on disk")


def test_regex_matching_nothing(rootfs, scratch, state_dir, need_loop):
    vol = scratch / "vol"
    vol.mkdir()
    bundle = str(scratch / "b")
    cfg = make_bundle(bundle, rootfs, ["true"], mounts=[_bind(vol, "/data")],
                      annotations={QUOTA: "^/logs.*=10M"})
    _expect_error(new_id("q"), cfg, bundle, state_dir, "'^/logs.*=10M' (annotation io.richinit.quota): the regex "
                  "matches no mount destination")
    # and one that matches gives each matching mount its own limit
    vol2 = scratch / "vol2"
    vol2.mkdir()
    cfg = make_bundle(str(scratch / "b2"), rootfs, ["true"],
                      mounts=[_bind(vol, "/logs/a"), _bind(vol2, "/logs/b")], annotations={QUOTA: "^/logs/.*=10M"})
    p = quota.plan(new_id("q"), cfg, str(scratch / "b2"), state_dir=state_dir)
    assert [[d.dest for d in g.dirs] for g in p.groups] == [["/logs/a"], ["/logs/b"]]


def test_id_taken(rootfs, scratch, state_dir, need_loop):
    IdAllocator(state_dir).allocate("other", "/data", wanted=FIRST_ID + 7)
    vol = scratch / "vol"
    vol.mkdir()
    bundle = str(scratch / "b")
    cfg = make_bundle(bundle, rootfs, ["true"], mounts=[_bind(vol, "/data")],
                      annotations={QUOTA: "/data=10M", "io.richinit.quota-id": str(FIRST_ID + 7)})
    _expect_error(new_id("q"), cfg, bundle, state_dir,
                  "annotation io.richinit.quota-id: project ID %d is taken by container other" % (FIRST_ID + 7))
    cfg["annotations"]["io.richinit.quota-id"] = "banana"
    _expect_error(new_id("q"), cfg, bundle, state_dir, "'banana' is not a project ID")
    cfg["annotations"][QUOTA] = "/data=10Q"
    _expect_error(new_id("q"), cfg, bundle, state_dir, "bad size '10Q'")


def test_failure_in_apply_undoes_the_groups_already_applied(rootfs, scratch, state_dir, need_loop):
    a, b = scratch / "a", scratch / "b"
    a.mkdir()
    b.mkdir()
    (a / "keep").write_text("a")
    for i in range(250):  # ~1000K in 4K files: under the 1M limit, but no room left for ext4's metadata
        (b / ("f%d" % i)).write_bytes(b"z" * 4000)
    bundle = str(scratch / "bundle")
    cfg = make_bundle(bundle, rootfs, ["true"], mounts=[_bind(a, "/a"), _bind(b, "/b")],
                      annotations={QUOTA: "/a=10M,/b=1M", BACKEND: "loop"})
    cid = new_id("q")
    msg = _expect_error(cid, cfg, bundle, state_dir, "quota rule '/b=1M' (annotation io.richinit.quota): ",
                        apply=True)
    assert "does not fit in an ext4 image of this size" in msg
    assert mountinfo.at(mountinfo.read(), str(a)) is None
    assert (a / "keep").read_text() == "a"
    assert not os.path.exists(os.path.join(state_dir, "quota", "images", cid))


def test_image_symlinks_stay_inside_the_rootfs(rootfs, scratch, state_dir, need_loop):
    os.symlink("../../../../../etc", os.path.join(rootfs, "data"))  # a hostile image
    bundle = str(scratch / "b")
    cfg = make_bundle(bundle, rootfs, ["true"], annotations={QUOTA: "/data=10M"})
    p = quota.plan(new_id("q"), cfg, bundle, state_dir=state_dir)
    assert p.groups[0].dirs[0].host == os.path.join(rootfs, "etc")
    assert p.groups[0].dirs[0].kind == "image"


def test_cli_ls_lists_backend_id_limit_usage(rootfs, scratch, state_dir, need_loop):
    vol = scratch / "vol"
    vol.mkdir()
    bundle, cid = str(scratch / "b"), new_id("q")
    cfg = make_bundle(bundle, rootfs, ["true"], mounts=[_bind(vol, "/data")],
                      annotations={QUOTA: "/data=20M", BACKEND: "loop"})
    quota.apply(quota.plan(cid, cfg, bundle, state_dir=state_dir))
    try:
        (vol / "f").write_bytes(b"q" * (3 << 20))
        os.sync()
        r = subprocess.run([sys.executable, "-m", "runtime_hooks.quota", "--state-dir", state_dir, "ls"],
                           capture_output=True, text=True, cwd=REPO)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].split() == ["CONTAINER", "DIRS", "BACKEND", "ID", "LIMIT", "USED"]
        cols = lines[1].split()
        assert cols[:5] == [cid, "/data", "loop", "-", "20M"]
        assert cols[5].endswith("M") and 3 <= float(cols[5][:-1]) < 5
    finally:
        r = subprocess.run([sys.executable, "-m", "runtime_hooks.quota", "--state-dir", state_dir, "release", cid],
                           capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert mountinfo.at(mountinfo.read(), str(vol)) is None
