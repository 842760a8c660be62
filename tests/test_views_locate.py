"""lxcfs.locate on fixture /proc trees: a container's init found from a reader inside it, and by scan.

Each fake process has status (NSpid), stat (ppid), ns/pid (a link naming its pid namespace), root
(a link to a directory: what the kernel's magic link resolves to) and cgroup.
"""

import os

from lxcfs import locate


class FakeProc:
    def __init__(self, tmp_path):
        self.proc = tmp_path / "proc"
        self.cg = tmp_path / "cgroup"
        self.roots = tmp_path / "roots"
        for d in (self.proc, self.cg, self.roots):
            d.mkdir()

    def root(self, name):
        d = self.roots / name
        d.mkdir(exist_ok=True)
        return d

    def add(self, pid, nspid, ppid, ns, root, cgroup="/", pids_cgroup=None):
        d = self.proc / str(pid)
        (d / "ns").mkdir(parents=True)
        (d / "status").write_text("Name:\tx\nNSpid:\t%s\n" % "\t".join(map(str, nspid)))
        (d / "stat").write_text("%d (x) S %d %d %d 0 0\n" % (pid, ppid, pid, pid))
        os.symlink("pid:[%s]" % ns, d / "ns" / "pid")
        os.symlink(str(root), d / "root")
        lines = ["0::%s" % cgroup] + (["3:pids:%s" % pids_cgroup] if pids_cgroup else [])
        (d / "cgroup").write_text("\n".join(lines) + "\n")
        for base, path in ((self.cg, cgroup), (self.cg / "v1-pids", pids_cgroup)):
            if path is None:
                continue
            procs = base / path.lstrip("/") / "cgroup.procs"
            procs.parent.mkdir(parents=True, exist_ok=True)
            with open(procs, "a") as f:
                f.write("%d\n" % pid)

    def mounts(self):
        return {"": str(self.cg), "pids": str(self.cg / "v1-pids")}


def _container(fp):
    """host init 1; a container: init 100 (ns 1), its child 101 and grandchild 102; 200 entered by
    `runc exec` (its parent, 150, is a host process); the rootfs directory."""
    host = fp.root("host")
    rootfs = fp.root("ct")
    fp.add(1, [1], 0, "host", host)
    fp.add(150, [150], 1, "host", host)
    fp.add(100, [100, 1], 1, "ct", rootfs, "/ct")
    fp.add(101, [101, 7], 100, "ct", rootfs, "/ct")
    fp.add(102, [102, 8], 101, "ct", rootfs, "/ct/nested")
    fp.add(200, [200, 9], 150, "ct", rootfs, "/ct")
    return locate.root_id(str(rootfs)), locate.root_id(str(host))


def test_the_reader_is_the_init(tmp_path):
    fp = FakeProc(tmp_path)
    want, _ = _container(fp)
    assert locate.init_for_reader(100, want, fp.mounts(), str(fp.proc)) == 100


def test_from_a_descendant_through_its_parents(tmp_path):
    fp = FakeProc(tmp_path)
    want, _ = _container(fp)
    assert locate.init_for_reader(102, want, fp.mounts(), str(fp.proc)) == 100  # even from a nested cgroup


def test_from_runc_exec_through_the_cgroup(tmp_path):
    fp = FakeProc(tmp_path)
    want, _ = _container(fp)
    assert locate.init_for_reader(200, want, fp.mounts(), str(fp.proc)) == 100
    assert locate.init_for_reader(200, want, {}, str(fp.proc)) is None  # no cgroup mounts known: no answer


def test_a_reader_in_a_nested_pid_namespace_finds_the_containers_init(tmp_path):
    fp = FakeProc(tmp_path)
    want, _ = _container(fp)
    fp.add(50, [50, 20, 1], 101, "nested", fp.roots / "ct", "/ct")  # `unshare -p` inside the container
    fp.add(51, [51, 21, 2], 50, "nested", fp.roots / "ct", "/ct")
    assert locate.init_for_reader(51, want, fp.mounts(), str(fp.proc)) == 100


def test_runc_exec_on_a_hybrid_host_where_the_unified_group_was_left_alone(tmp_path):
    # cgroup v1 controllers plus a cgroup2 mount the runtime did not use: the init is in pids:/c2
    fp = FakeProc(tmp_path)
    rootfs = fp.root("c2")
    fp.add(1, [1], 0, "host", fp.root("host"), "/", "/")
    fp.add(400, [400, 1], 1, "c2", rootfs, "/engine", "/c2")  # the unified group its engine had
    fp.add(450, [450], 1, "host", fp.root("host"), "/ops", "/")
    fp.add(401, [401, 5], 450, "c2", rootfs, "/ops", "/c2")  # runc exec from an ops shell: a host parent
    assert locate.init_for_reader(401, locate.root_id(str(rootfs)), fp.mounts(), str(fp.proc)) == 400


def test_host_readers_and_other_roots_find_nothing(tmp_path):
    fp = FakeProc(tmp_path)
    want, host = _container(fp)
    assert locate.init_for_reader(150, want, fp.mounts(), str(fp.proc)) is None  # a host process
    assert locate.init_for_reader(150, host, fp.mounts(), str(fp.proc)) is None  # ... whatever root is asked
    other = locate.root_id(str(fp.root("other")))
    assert locate.init_for_reader(101, other, fp.mounts(), str(fp.proc)) is None  # not this container's init
    assert locate.init_for_reader(999, want, fp.mounts(), str(fp.proc)) is None  # gone


def test_scan_finds_the_init_with_that_root(tmp_path, monkeypatch):
    fp = FakeProc(tmp_path)
    want, host = _container(fp)
    other_root = fp.root("other")
    fp.add(300, [300, 1], 1, "other", other_root, "/other")
    assert locate.init_by_scan(want, str(fp.proc)) == 100
    assert locate.init_by_scan(locate.root_id(str(other_root)), str(fp.proc)) == 300
    assert locate.init_by_scan(host, str(fp.proc)) is None  # the host's init is no container's
    # a nested pid namespace started inside the container, same root: the container's init still wins
    fp.add(50, [50, 20, 1], 101, "nested", fp.roots / "ct", "/ct")
    monkeypatch.setattr(locate.procfs, "pids", lambda proc: [1, 150, 50, 300, 100, 101, 102, 200])  # nested first
    assert locate.init_by_scan(want, str(fp.proc)) == 100
