"""The project backend on this machine's kernel (no quota support): IDs and flags on a real xfs,
read back with FS_IOC_FSGETXATTR, through a real runc container; limits refused with a clear line."""

import os

import pytest

from osbase import fsquota
from runtime_hooks import quota
from runtime_hooks.quota import project
from runtime_hooks.quota.ids import FIRST_ID, IdAllocator
from tests.support.containers import make_bundle, new_id, run

QUOTA = "io.richinit.quota"
BACKEND = "io.richinit.quota-backend"


def _bind(src, dst):
    return {"destination": dst, "type": "bind", "source": str(src), "options": ["rbind", "rprivate"]}


def _xattr(path):
    """(project ID, PROJINHERIT bit) read back with FS_IOC_FSGETXATTR."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        projid, flags = fsquota.get_project(fd)
        return projid, flags & fsquota.FS_XFLAG_PROJINHERIT
    finally:
        os.close(fd)


def _kernel_has_quota(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        fsquota.xfs_get_quota(fd, 0)
    except OSError as e:
        return e.errno != 38
    finally:
        os.close(fd)
    return True


def _fill(vol):
    os.makedirs(os.path.join(vol, "sub/deeper"))
    for p in ("a", "sub/b", "sub/deeper/c"):
        with open(os.path.join(vol, p), "w") as f:
            f.write("x" * 100)
    os.symlink("/etc/passwd", os.path.join(vol, "sub/link"))
    os.mkfifo(os.path.join(vol, "fifo"))


def test_project_ids_and_flags_on_xfs_through_a_container(busybox_rootfs, xfs_dir, scratch, state_dir):
    vol = os.path.join(xfs_dir, "vol")
    os.mkdir(vol)
    _fill(vol)
    cid = new_id("quota")
    qid = IdAllocator(state_dir).allocate(cid, "/data")
    assert qid == FIRST_ID
    fd = os.open(vol, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert project.tag_tree(fd, qid) == 6  # vol, sub, deeper, a, b, c (not the link nor the fifo)
    finally:
        os.close(fd)
    for d in ("", "sub", "sub/deeper"):
        assert _xattr(os.path.join(vol, d)) == (qid, fsquota.FS_XFLAG_PROJINHERIT)
    for f in ("a", "sub/b", "sub/deeper/c"):
        assert _xattr(os.path.join(vol, f)) == (qid, 0)
    # New files and directories made inside a real container inherit the ID (PROJINHERIT).
    bundle = str(scratch / "bundle")
    make_bundle(bundle, busybox_rootfs, ["sh", "-c", "mkdir /data/new && echo hi > /data/new/f && echo ok"],
                mounts=[_bind(vol, "/data")])
    r = run(bundle)
    assert r.stdout.strip() == "ok", r.stderr
    assert _xattr(os.path.join(vol, "new")) == (qid, fsquota.FS_XFLAG_PROJINHERIT)
    assert _xattr(os.path.join(vol, "new/f"))[0] == qid
    fd = os.open(vol, os.O_RDONLY | os.O_DIRECTORY)
    try:
        project.tag_tree(fd, 0)
    finally:
        os.close(fd)
    assert _xattr(os.path.join(vol, "new/f")) == (0, 0) and _xattr(vol) == (0, 0)
    assert IdAllocator(state_dir).release(cid) == [qid]


def test_project_backend_says_this_kernel_cannot_enforce(busybox_rootfs, xfs_dir, scratch, state_dir):
    if _kernel_has_quota(xfs_dir):
        pytest.skip("this kernel has quota support (the VM test covers enforcement)")
    vol = os.path.join(xfs_dir, "vol")
    os.mkdir(vol)
    _fill(vol)
    bundle, cid = str(scratch / "bundle"), new_id("quota")
    cfg = make_bundle(bundle, busybox_rootfs, ["true"], mounts=[_bind(vol, "/data")],
                      annotations={QUOTA: "/data=10M", BACKEND: "project"})
    with pytest.raises(quota.QuotaError) as ei:
        quota.plan(cid, cfg, bundle, state_dir=state_dir)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith("quota rule '/data=10M' (annotation io.richinit.quota): ")
    assert "this kernel cannot enforce project quotas" in msg and "io.richinit.quota-backend=loop" in msg
    # The same rule with the automatic choice falls back to the loop backend.
    cfg["annotations"][BACKEND] = "auto"
    assert quota.plan(cid, cfg, bundle, state_dir=state_dir).groups[0].backend == "loop"
    # apply() reaching quotactl itself (a plan made elsewhere) undoes its tags and its ID.
    cfg["annotations"][BACKEND] = "loop"
    plan = quota.plan(cid, cfg, bundle, state_dir=state_dir)
    plan.groups[0].backend = "project"
    with pytest.raises(quota.QuotaError, match="this kernel cannot enforce project quotas"):
        quota.apply(plan)
    for p in ("", "sub", "sub/deeper", "a", "sub/deeper/c"):
        assert _xattr(os.path.join(vol, p)) == (0, 0), p
    assert IdAllocator(state_dir).owned() == {}
    assert quota.list_quotas(state_dir) == []
