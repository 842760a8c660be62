"""The loop backend on this machine, through real runc containers."""

import os

import pytest

from runtime_hooks import quota
from runtime_hooks.quota import loopfs
from tests.integration.quota.conftest import mounted
from tests.support.containers import make_bundle, new_id, run

QUOTA = "io.richinit.quota"
BACKEND = "io.richinit.quota-backend"


def _bind(src, dst):
    return {"destination": dst, "type": "bind", "source": str(src), "options": ["rbind", "rprivate"]}


def _loop_devices_of(image):
    out = []
    for name in os.listdir("/sys/block"):
        try:
            with open("/sys/block/%s/loop/backing_file" % name) as f:
                if f.read().strip().startswith(image):
                    out.append(name)
        except OSError:
            pass
    return out


def test_loop_backend_stops_writes_past_10m_in_data_only(busybox_rootfs, scratch, state_dir, need_loop):
    vol, other = scratch / "vol", scratch / "other"
    vol.mkdir()
    other.mkdir()
    (vol / "keep.txt").write_text("kept\n")
    (vol / "sub").mkdir()
    (vol / "sub" / "f").write_bytes(b"x" * 5000)
    os.symlink("/etc/shadow", vol / "link")  # copied as a link, never followed on the host
    bundle, cid = str(scratch / "bundle"), new_id("quota")
    script = ("cat /data/keep.txt; cat /data/sub/f | wc -c; readlink /data/link;"
              " dd if=/dev/zero of=/data/big bs=64k count=320 2>/tmp/dd.err; echo data_rc=$?;"
              " grep -o 'No space left' /tmp/dd.err;"
              " ls -l /data/big | awk '{print \"data_size=\" $5}';"
              " dd if=/dev/zero of=/other/big bs=1M count=20 2>/dev/null; echo other_rc=$?;"
              " df -k /data | tail -1 | awk '{print \"df_kb=\" $2}'")
    cfg = make_bundle(bundle, busybox_rootfs, ["sh", "-c", script],
                      mounts=[_bind(vol, "/data"), _bind(other, "/other"),
                              {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}],
                      annotations={QUOTA: "/data=10M", BACKEND: "loop"})
    plan = quota.plan(cid, cfg, bundle, state_dir=state_dir)
    assert [(g.backend, g.limit, [d.dest for d in g.dirs]) for g in plan.groups] == [("loop", 10 << 20, ["/data"])]
    assert plan.groups[0].dirs[0].host == str(vol)
    quota.apply(plan)
    image = loopfs.image_path(state_dir, cid, "/data")
    try:
        assert mounted(vol)
        r = run(bundle, cid)
        out = r.stdout
        assert "kept" in out and "5000" in out and "/etc/shadow" in out, (out, r.stderr)
        assert "data_rc=1" in out and "No space left" in out, out
        size = int(out.split("data_size=")[1].split()[0])
        df_kb = int(out.split("df_kb=")[1].split()[0])
        # df inside shows the limit (the image is sized so ext4's metadata does not eat into
        # its size) and the writer stopped there, less the few % ext4 keeps for its metadata.
        assert 10 * 1024 <= df_kb <= 11 * 1024, df_kb
        assert 0.92 * (10 << 20) < size <= df_kb * 1024, size
        assert "other_rc=0" in out and os.path.getsize(other / "big") == 20 << 20
        rows = quota.list_quotas(state_dir)
        assert [(r_["container"], r_["dirs"], r_["backend"], r_["limit"]) for r_ in rows] == \
            [(cid, "/data", "loop", 10 << 20)]
        assert rows[0]["used"] >= size
    finally:
        problems = quota.release(cid, state_dir=state_dir)
    assert problems == []
    assert not mounted(vol)
    assert not os.path.exists(image)
    assert (vol / "keep.txt").read_text() == "kept\n"  # the original content is still underneath
    assert not (vol / "big").exists()
    assert _loop_devices_of(image) == []  # AUTOCLEAR freed the device
    assert quota.list_quotas(state_dir) == []


def test_shared_limit_and_growing(busybox_rootfs, scratch, state_dir, need_loop):
    a, b = scratch / "a", scratch / "b"
    a.mkdir()
    b.mkdir()
    (b / "old").write_bytes(b"y" * 100)
    bundle, cid = str(scratch / "bundle"), new_id("quota")
    script = ("dd if=/dev/zero of=/a/f bs=1M count=5 2>/dev/null; echo a_rc=$?;"
              " dd if=/dev/zero of=/b/f bs=1M count=20 2>/dev/null; echo b_rc=$?; cat /b/old | wc -c")
    mounts = [_bind(a, "/a"), _bind(b, "/b")]
    cfg = make_bundle(bundle, busybox_rootfs, ["sh", "-c", script], mounts=mounts,
                      annotations={QUOTA: "/a&/b=12M", BACKEND: "loop"})
    plan = quota.plan(cid, cfg, bundle, state_dir=state_dir)
    assert len(plan.groups) == 1 and plan.groups[0].key == "/a&/b"
    quota.apply(plan)
    try:
        out = run(bundle, cid).stdout
        assert "a_rc=0" in out and "b_rc=1" in out and "100" in out, out
        used = os.path.getsize(a / "f") + os.path.getsize(b / "f")
        assert 0.9 * (12 << 20) < used <= 13 << 20  # one limit for both
    finally:
        assert quota.release(cid, state_dir=state_dir) == []
    assert not mounted(a) and not mounted(b)
    assert (b / "old").stat().st_size == 100

    # Growing: the same container again with a raised limit keeps the image's content.
    c = scratch / "c"
    c.mkdir()
    bundle = str(scratch / "bundle2")
    cfg = make_bundle(bundle, busybox_rootfs, ["true"], mounts=[_bind(c, "/c")],
                      annotations={QUOTA: "/c=8M", BACKEND: "loop"})
    quota.apply(quota.plan(cid, cfg, bundle, state_dir=state_dir))
    try:
        (c / "mark").write_text("on the image")
        assert 8 << 20 <= os.statvfs(c).f_blocks * os.statvfs(c).f_frsize <= 9 << 20
        cfg["annotations"][QUOTA] = "/c=64M"
        quota.apply(quota.plan(cid, cfg, bundle, state_dir=state_dir))
        st = os.statvfs(c)
        assert st.f_blocks * st.f_frsize > 50 << 20
        assert (c / "mark").read_text() == "on the image"
        cfg["annotations"][QUOTA] = "/c=4M"
        with pytest.raises(quota.QuotaError, match="cannot shrink"):
            quota.apply(quota.plan(cid, cfg, bundle, state_dir=state_dir))
        assert mounted(c)  # a refused change leaves the applied quota alone
    finally:
        assert quota.release(cid, state_dir=state_dir) == []
    assert not mounted(c)


def test_root_rule_on_a_plain_rootfs(busybox_rootfs, scratch, state_dir, need_loop):
    import shutil

    rootfs = str(scratch / "rootfs")
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    bundle, cid = str(scratch / "bundle"), new_id("quota")
    cfg = make_bundle(bundle, rootfs, ["sh", "-c", "head -1 /etc/passwd; dd if=/dev/zero of=/big bs=64k count=640"
                                                   " 2>/dev/null; echo rc=$?; df -k / | tail -1"],
                      annotations={QUOTA: "/=16M", BACKEND: "loop"})
    plan = quota.plan(cid, cfg, bundle, state_dir=state_dir)
    assert [(d.kind, d.host) for d in plan.groups[0].dirs] == [("rootfs", rootfs)]
    quota.apply(plan)
    try:
        out = run(bundle, cid).stdout
        assert out.startswith("root:x:0:0") and "rc=1" in out, out
        assert 12 << 20 < os.path.getsize(os.path.join(rootfs, "big")) <= 16 << 20  # busybox itself takes 2M
    finally:
        assert quota.release(cid, state_dir=state_dir) == []
    assert not mounted(rootfs) and not os.path.exists(os.path.join(rootfs, "big"))


def test_root_rule_on_an_overlay_names_the_upperdir(busybox_rootfs, scratch, state_dir, need_loop):
    import subprocess

    from runtime_hooks.quota import planner

    upper, work, merged = scratch / "upper", scratch / "work", scratch / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", "lowerdir=%s,upperdir=%s,workdir=%s"
                    % (busybox_rootfs, upper, work), str(merged)], check=True)
    bundle = str(scratch / "bundle")
    cfg = make_bundle(bundle, str(merged), ["true"], annotations={QUOTA: "/=10G"})
    d = planner._Resolver(cfg, bundle, "/proc").resolve("/", "test")
    assert (d.kind, d.host) == ("upper", str(upper))
    # Here the automatic choice is the loop backend, which cannot limit a mounted overlay's upperdir.
    with pytest.raises(quota.QuotaError, match=r"^quota rule '/=10G' .*overlay upperdir; the loop backend cannot"):
        quota.plan(new_id("quota"), cfg, bundle, state_dir=state_dir)
