"""Pure decisions: which backend a container gets, registry validation, config.json mounts, lxcfs detection."""

import os

import pytest

from lxcfs import bind, detect, registry


@pytest.mark.parametrize("runtime,annotations,lxcfs,want", [
    ("runc", {}, None, "builtin"),
    ("runc", {}, "/var/lib/lxcfs", "lxcfs"),
    ("/usr/bin/crun", {"io.richinit.lxcfs": "builtin"}, "/var/lib/lxcfs", "builtin"),
    ("runc", {"io.richinit.lxcfs": "off"}, "/var/lib/lxcfs", None),
    ("/usr/local/bin/runsc", {}, "/var/lib/lxcfs", None),
    ("kata-runtime", {"io.richinit.lxcfs": "lxcfs"}, "/var/lib/lxcfs", None),
    ("runc", {"io.katacontainers.config.hypervisor.path": "/x"}, None, None),
    ("runc", {"io.kubernetes.cri.runtime-handler": "runsc"}, None, None),
    ("runc", {"io.kubernetes.cri.runtime-handler": "runc"}, None, "builtin"),
])
def test_choose_backend(runtime, annotations, lxcfs, want):
    assert detect.choose_backend(runtime, annotations, lxcfs) == want


def test_explicit_lxcfs_without_lxcfs_is_an_error_naming_the_field():
    with pytest.raises(detect.BadAnnotation, match=r"annotations\[io.richinit.lxcfs\]=lxcfs"):
        detect.choose_backend("runc", {"io.richinit.lxcfs": "lxcfs"}, None)


def test_bad_annotation_value():
    with pytest.raises(detect.BadAnnotation, match="auto|lxcfs|builtin|off"):
        detect.choose_backend("runc", {"io.richinit.lxcfs": "yes"}, None)


def test_registry_rejects_hostile_entries(tmp_path):
    d = str(tmp_path)
    for bad in ({"id": "../etc"}, {"id": "ok", "pid": -1}, {"id": "ok", "cgroups": {"memory": "../../x"}},
                {"id": "ok", "cgroups": {"memory": "rel"}}, {"id": "ok", "backend": "nfs"}):
        with pytest.raises(registry.BadEntry):
            registry.write(bad, d)
    assert os.listdir(d) == []


def test_registry_roundtrip_and_garbage_skipped(tmp_path):
    d = str(tmp_path)
    registry.write({"id": "a", "pid": 5, "cgroups": {"memory": "/x"}}, d)
    with open(os.path.join(d, "b.json"), "w") as f:
        f.write("{not json")
    with open(os.path.join(d, "c.json"), "w") as f:
        f.write('{"id": "other", "pid": 1}')  # id must match the file name
    assert list(registry.read_all(d)) == ["a"]
    registry.remove("a", d)
    registry.remove("a", d)
    assert registry.read_all(d) == {}


def test_oci_mounts_only_for_existing_sources(tmp_path):
    src = tmp_path / "v"
    (src / "proc").mkdir(parents=True)
    (src / "proc" / "meminfo").write_text("x")
    (src / "sys/devices/system/cpu").mkdir(parents=True)
    (src / "sys/devices/system/cpu/online").write_text("0\n")
    mounts = bind.oci_mounts(str(src))
    assert [m["destination"] for m in mounts] == ["/proc/meminfo", "/sys/devices/system/cpu/online"]
    assert mounts[0] == {"destination": "/proc/meminfo", "type": "bind", "source": str(src / "proc/meminfo"),
                         "options": ["rbind", "rprivate", "ro"]}


def test_find_lxcfs_from_mountinfo(tmp_path):
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    live = tmp_path / "live"
    (live / "proc").mkdir(parents=True)
    (proc / "self/mountinfo").write_text(
        "30 1 0:30 / /nonexistent/lxcfs rw - fuse.lxcfs lxcfs rw\n"
        "31 1 0:31 / %s rw,nosuid - fuse.lxcfs lxcfs rw\n"
        "32 1 0:32 / /run/x rw - fuse.richviews richviews rw\n" % live)
    assert detect.find_lxcfs(str(proc)) == str(live)
    assert detect.mount_id("/run/x", "fuse.richviews", str(proc)) == 32
    assert detect.mount_id("/run/y", "fuse.richviews", str(proc)) is None
