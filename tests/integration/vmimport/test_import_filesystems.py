"""`rich import` of a small GPT disk: btrfs root in subvolume @ with /home in @home, /srv on xfs
named by PARTUUID=, /data on ext4 named by LABEL=; what a file can carry survives the copy (owners,
modes, set-id bits, xattrs, ACLs, file capabilities, hard links, sparse files, device nodes, fifos);
the same disk as vmdk, .ova, vdi, vhd, vhdx and qcow2 imports to the same file set; an OCI archive
that podman, Docker and containerd import; the disk never written and nothing left attached.
"""

import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile
import uuid

import pytest

from tests.support.wait import wait_until

from .conftest import MIB, leftovers, listing, loop, make_disk, mounted, need_tools, rich_import, run, write_os

LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
P1, P2, P3 = (1 * MIB, 160 * MIB), (161 * MIB, 300 * MIB), (461 * MIB, 40 * MIB)
SIZE = 502 * MIB
BUSYBOX = "/bin/busybox"  # Debian's busybox-static (busybox_rootfs uses it too)
# VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_BIND_SERVICE (10)
CAP = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)
# system.posix_acl_access: version 2; USER_OBJ rw, USER 4321 r, GROUP_OBJ r, MASK r, OTHER none
ACL = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in (
    (0x01, 6, 0xFFFFFFFF), (0x02, 4, 4321), (0x04, 4, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)))


def _populate_root(root):
    os.makedirs(os.path.join(root, "usr/bin"))
    for d in ("home", "srv", "data", "mnt/other", "dev", "var/lib"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    p = os.path.join(root, "usr/bin/tool")
    with open(p, "wb") as f:
        f.write(b"#!/bin/sh\necho tool\n")
    os.chown(p, 0, 0)
    os.chmod(p, 0o4755)
    os.setxattr(p, "security.capability", CAP)
    secret = os.path.join(root, "etc/secret")
    with open(secret, "w") as f:
        f.write("s3cret\n")
    os.chown(secret, 1234, 5678)
    os.chmod(secret, 0o640)
    os.setxattr(secret, "user.note", b"kept")
    os.setxattr(secret, "system.posix_acl_access", ACL)
    os.link(secret, os.path.join(root, "etc/secret.link"))
    with open(os.path.join(root, "var/lib/sparse"), "wb") as f:
        f.truncate(64 * MIB)
        f.seek(64 * MIB - 4096)
        f.write(b"x" * 4096)
    os.mknod(os.path.join(root, "dev/null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(os.path.join(root, "dev/loopX"), 0o660 | stat.S_IFBLK, os.makedev(7, 200))
    os.mkfifo(os.path.join(root, "var/lib/fifo"), 0o600)
    os.symlink("/etc/passwd-of-the-vm", os.path.join(root, "etc/abs-link"))
    if os.path.exists(BUSYBOX):  # a shell and tools for the engines' containers of the OCI archive
        os.makedirs(os.path.join(root, "bin"))
        shutil.copy(BUSYBOX, os.path.join(root, "bin/busybox"))
        for tool in ("sh", "cat", "stat"):
            os.symlink("busybox", os.path.join(root, "bin", tool))


@pytest.fixture(scope="module")
def gpt_disk(tmp_path_factory):
    need_tools("mkfs.btrfs", "btrfs", "mkfs.xfs")
    work = str(tmp_path_factory.mktemp("gptdisk"))
    disk = make_disk(os.path.join(work, "gpt.raw"), SIZE, "gpt",
                     [P1 + (LINUX, "root"), P2 + (LINUX, "srv"), P3 + (LINUX, "data")])
    btrfs_uuid = str(uuid.uuid4())
    with loop(disk, *P1) as d1, loop(disk, *P2) as d2, loop(disk, *P3) as d3:
        run(["mkfs.btrfs", "-q", "-U", btrfs_uuid, d1])
        run(["mkfs.xfs", "-q", d2])
        run(["mkfs.ext4", "-q", "-L", "data", d3])
        partuuid = run(["sfdisk", "--part-uuid", disk, "2"]).strip().lower()
        top = os.path.join(work, "top")
        with mounted(d1, top):
            run(["btrfs", "subvolume", "create", os.path.join(top, "@")])
            run(["btrfs", "subvolume", "create", os.path.join(top, "@home")])
            root = os.path.join(top, "@")
            write_os(root, "UUID=%s / btrfs subvol=@,compress=zstd 0 0\n"
                           "UUID=%s /home btrfs subvol=@home 0 0\n"
                           "PARTUUID=%s /srv xfs defaults 0 0\n"
                           "LABEL=data /data ext4 defaults 0 2\n"
                           "/dev/sdb1 /mnt/other ext4 defaults 0 0\n"
                           "tmpfs /tmp tmpfs defaults 0 0\n" % (btrfs_uuid, btrfs_uuid, partuuid))
            _populate_root(root)
            os.makedirs(os.path.join(top, "@home/alice"))
            with open(os.path.join(top, "@home/alice/notes"), "w") as f:
                f.write("alice\n")
            os.chown(os.path.join(top, "@home/alice"), 1000, 1000)
        with mounted(d2, os.path.join(work, "srv")) as srv:
            with open(os.path.join(srv, "index.html"), "w") as f:
                f.write("<h1>srv</h1>\n")
        with mounted(d3, os.path.join(work, "data")) as data:
            with open(os.path.join(data, "db"), "wb") as f:
                f.write(os.urandom(100000))
    yield disk
    shutil.rmtree(work, ignore_errors=True)


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def imported(gpt_disk, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("imp") / "rootfs")
    before = _sha(gpt_disk)
    r = rich_import(gpt_disk, "--output", out, "--json")
    assert r.returncode == 0, r.stderr
    assert _sha(gpt_disk) == before, "the disk was written"
    assert leftovers() == []
    yield out, json.loads(r.stdout)
    shutil.rmtree(out, ignore_errors=True)


def test_layout_found_and_mounted(imported):
    out, rep = imported
    assert rep["table"] == "gpt" and rep["format"] == "raw"
    assert rep["os"]["pretty_name"] == "Test Linux 1"
    assert [(m["mountpoint"], m["volume"], m["fstype"], m["subvol"]) for m in rep["mounts"]] == [
        ("/", "p1", "btrfs", "@"), ("/home", "p1", "btrfs", "@home"), ("/srv", "p2", "xfs", ""),
        ("/data", "p3", "ext4", "")]
    assert {s["mountpoint"]: s["reason"] for s in rep["skipped"]} == {
        "/mnt/other": "not on this disk (ext4)", "/tmp": "tmpfs: the engine provides it"}
    assert open(os.path.join(out, "home/alice/notes")).read() == "alice\n"
    assert os.stat(os.path.join(out, "home/alice")).st_uid == 1000
    assert open(os.path.join(out, "srv/index.html")).read() == "<h1>srv</h1>\n"
    assert os.path.getsize(os.path.join(out, "data/db")) == 100000
    # fstab: /, and every filesystem folded into the rootfs, commented out; the rest kept
    fstab = open(os.path.join(out, "etc/fstab")).read().splitlines()
    assert [ln.startswith("#rich-import-disabled# ") for ln in fstab] == [True, True, True, True, False, False]
    saved = os.path.join(out, "var/lib/richinit/import-disabled/etc/fstab")
    assert not open(saved).read().startswith("#")
    assert json.load(open(os.path.join(out, "var/lib/richinit/import-report.json")))["os"] == rep["os"]


def test_file_metadata_survives(imported):
    out, _ = imported
    tool = os.path.join(out, "usr/bin/tool")
    assert stat.S_IMODE(os.stat(tool).st_mode) == 0o4755
    assert os.getxattr(tool, "security.capability") == CAP
    secret = os.path.join(out, "etc/secret")
    st = os.stat(secret)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_nlink) == (1234, 5678, 0o640, 2)
    assert os.stat(os.path.join(out, "etc/secret.link")).st_ino == st.st_ino
    assert os.getxattr(secret, "user.note") == b"kept"
    assert os.getxattr(secret, "system.posix_acl_access") == ACL
    sparse = os.stat(os.path.join(out, "var/lib/sparse"))
    assert sparse.st_size == 64 * MIB and sparse.st_blocks * 512 < 1 * MIB
    null = os.lstat(os.path.join(out, "dev/null"))
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    blk = os.lstat(os.path.join(out, "dev/loopX"))
    assert stat.S_ISBLK(blk.st_mode) and blk.st_rdev == os.makedev(7, 200)
    assert stat.S_ISFIFO(os.lstat(os.path.join(out, "var/lib/fifo")).st_mode)
    assert os.readlink(os.path.join(out, "etc/abs-link")) == "/etc/passwd-of-the-vm"



def test_an_xfs_mounted_elsewhere_does_not_stop_the_import(gpt_disk, tmp_path):
    """xfs refuses a second mount of the same UUID (another import of the same disk running, a clone
    of the VM's disk mounted on the host): the import mounts xfs with nouuid."""
    out = str(tmp_path / "rootfs")
    with loop(gpt_disk, *P2) as d2, mounted(d2, str(tmp_path / "held"), "-o", "ro,norecovery"):
        r = rich_import(gpt_disk, "--output", out)
        assert r.returncode == 0, r.stderr
    assert open(os.path.join(out, "srv/index.html")).read() == "<h1>srv</h1>\n"
    assert leftovers() == []
    shutil.rmtree(out)

@pytest.mark.parametrize("fmt", ["qcow2", "vmdk", "ova", "vdi", "vpc", "vhdx"])
def test_every_format_imports_the_same_files(fmt, gpt_disk, imported, tmp_path):
    out, _ = imported
    image = str(tmp_path / ("disk." + fmt))
    if fmt == "ova":
        vmdk = str(tmp_path / "disk-1.vmdk")
        run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", gpt_disk, vmdk])
        ovf = tmp_path / "vm.ovf"
        ovf.write_text("<Envelope/>\n")
        with tarfile.open(image, "w", format=tarfile.USTAR_FORMAT) as t:
            t.add(str(ovf), "vm.ovf")
            t.add(vmdk, "disk-1.vmdk")
        os.unlink(vmdk)
    else:
        run(["qemu-img", "convert", "-f", "raw", "-O", fmt, gpt_disk, image])
    before = _sha(image)
    dest = str(tmp_path / "rootfs")
    r = rich_import(image, "--output", dest, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["format"] == ("vmdk" if fmt == "ova" else fmt)
    assert listing(dest) == listing(out)
    assert _sha(image) == before
    assert leftovers() == []


@pytest.fixture(scope="module")
def oci_archive(gpt_disk, tmp_path_factory):
    """`rich import --oci-archive` of the GPT disk, once for every engine's test."""
    work = tmp_path_factory.mktemp("oci")
    archive = str(work / "img.tar")
    r = rich_import(gpt_disk, "--oci-archive", archive, "--name", "gptvm")
    assert r.returncode == 0, r.stderr
    assert leftovers() == [] and os.listdir(work) == ["img.tar"]
    yield archive
    shutil.rmtree(work, ignore_errors=True)


def _secret_from_tar(data):
    """(content, uid, gid, mode) of etc/secret in a tar stream (what `docker cp CID:/etc/secret -` writes)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        m = t.next()
        return t.extractfile(m).read(), m.uid, m.gid, stat.S_IMODE(m.mode)


def test_oci_archive_loads_in_podman(oci_archive, tmp_path):
    archive = oci_archive
    with tarfile.open(archive) as t:
        names = set(t.getnames())
        index = json.load(t.extractfile("index.json"))
        manifest = json.load(t.extractfile("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
        layer_name = "blobs/sha256/" + manifest["layers"][0]["digest"].split(":")[1]
        h = hashlib.sha256()
        f = t.extractfile(layer_name)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
        assert "sha256:" + h.hexdigest() == manifest["layers"][0]["digest"]
        assert {"oci-layout", "index.json", "manifest.json"} <= names
        docker = json.load(t.extractfile("manifest.json"))
        assert docker[0]["RepoTags"] == ["gptvm:latest"] and docker[0]["Layers"] == [layer_name]
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: the archive's structure was checked")
    conf = tmp_path / "containers.conf"
    conf.write_text('[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    storage = tmp_path / "storage.conf"
    runroot = tempfile.mkdtemp(prefix="rr-", dir="/tmp")
    storage.write_text('[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' % (tmp_path / "g", runroot))
    env = dict(os.environ, CONTAINERS_CONF=str(conf), CONTAINERS_STORAGE_CONF=str(storage))
    try:
        r = subprocess.run(["podman", "load", "-i", archive], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(["podman", "image", "inspect", "gptvm:latest"], env=env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)[0]["RootFS"]["Layers"] == [manifest["layers"][0]["digest"]]
    finally:
        subprocess.run(["podman", "system", "reset", "--force"], env=env, capture_output=True, timeout=120)
        subprocess.run(["umount", "-R", runroot], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _umount_below(path):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in sorted((p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True)


DOCKER = "/usr/bin/docker"  # Debian's CLI (a newer one may sit earlier on PATH)


def test_oci_archive_loads_in_docker(oci_archive, tmp_path):
    """Debian's Docker 20.10 (`docker load` reads the archive's manifest.json): the image's layer is the
    archive's, a container made of it holds the VM's files with their owners and modes (docker cp), and
    `docker run` runs the image's own shell over them. dockerd is our own: its data and exec roots,
    socket and cgroup parent, off the host network; stopped by PID."""
    need_tools()
    if shutil.which("dockerd") is None or not os.access(DOCKER, os.X_OK):
        pytest.skip("Debian's docker.io is not installed")
    execroot = "/run/rvi-%s" % uuid.uuid4().hex[:8]  # short: containerd's socket lives below it
    cgparent = "/rvi-%s" % uuid.uuid4().hex[:8]
    os.makedirs(execroot)
    sock = os.path.join(execroot, "docker.sock")
    daemon_json = tmp_path / "daemon.json"  # not the host's /etc/docker/daemon.json
    daemon_json.write_text("{}\n")
    with open(tmp_path / "dockerd.log", "wb") as log:
        proc = subprocess.Popen(["dockerd", "--data-root", str(tmp_path / "data"), "--exec-root", execroot,
                                 "-H", "unix://" + sock, "--pidfile", os.path.join(execroot, "docker.pid"),
                                 "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
                                 "--ip-masq=false", "--cgroup-parent", cgparent,
                                 "--config-file", str(daemon_json)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})

    def docker(*args, **kw):
        return subprocess.run([DOCKER, "-H", "unix://" + sock] + [str(a) for a in args], capture_output=True,
                              timeout=120, stdin=subprocess.DEVNULL, **kw)
    cname = "rvi-%d" % os.getpid()
    try:
        if not wait_until(lambda: proc.poll() is None and docker("version").returncode == 0, 30):
            pytest.skip("dockerd did not start: %s" % (tmp_path / "dockerd.log").read_text()[-500:])
        r = docker("load", "-i", oci_archive, text=True)
        assert r.returncode == 0 and "gptvm:latest" in r.stdout, r.stderr
        r = docker("image", "inspect", "gptvm:latest", text=True)
        assert r.returncode == 0, r.stderr
        image = json.loads(r.stdout)[0]
        with tarfile.open(oci_archive) as t:
            layers = json.load(t.extractfile("manifest.json"))[0]["Layers"]
        assert image["RootFS"]["Layers"] == ["sha256:" + os.path.basename(layers[0])]
        assert image["Config"]["Cmd"] == ["/sbin/init"]
        r = docker("create", "--name", cname, "gptvm:latest", text=True)
        assert r.returncode == 0, r.stderr
        r = docker("cp", cname + ":/etc/secret", "-")
        assert r.returncode == 0, r.stderr
        assert _secret_from_tar(r.stdout) == (b"s3cret\n", 1234, 5678, 0o640)
        if not os.path.exists(BUSYBOX):
            pytest.skip("no %s for a shell in the image: the load and the files were checked" % BUSYBOX)
        r = docker("run", "--rm", "--network", "none", "gptvm:latest", "sh", "-c",
                   'cat /home/alice/notes /srv/index.html; stat -c "%u:%g %a" /etc/secret', text=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["alice", "<h1>srv</h1>", "1234:5678 640"]
    finally:
        if proc.poll() is None:
            docker("rm", "-f", cname)
        _stop(proc)
        _umount_below(execroot)
        _umount_below(str(tmp_path / "data"))
        shutil.rmtree(execroot, ignore_errors=True)
        for ctrl in os.listdir("/sys/fs/cgroup"):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join("/sys/fs/cgroup", ctrl, cgparent.lstrip("/")))


def test_oci_archive_imports_in_containerd(oci_archive, tmp_path):
    """containerd 1.6 (`ctr images import` reads the OCI index and its io.containerd.image.name): the image
    is listed under that name, and its unpacked rootfs (`ctr images mount`, the overlayfs snapshotter)
    holds the VM's files with their owners and modes. containerd is our own: root, state and sockets
    in the test's directory, the CRI plugin off; stopped by PID."""
    need_tools()
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("containerd is not installed")
    sock = str(tmp_path / "c.sock")
    conf = tmp_path / "config.toml"
    conf.write_text('version = 2\nroot = "%s"\nstate = "%s"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    '[grpc]\naddress = "%s"\n[ttrpc]\naddress = "%s.ttrpc"\n[debug]\naddress = "%s.debug"\n'
                    % (tmp_path / "root", tmp_path / "state", sock, sock, sock))
    with open(tmp_path / "containerd.log", "wb") as log:
        proc = subprocess.Popen(["containerd", "--config", str(conf)], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    ns = "vmimport-%d" % os.getpid()
    target = str(tmp_path / "mnt")
    os.makedirs(target)

    def ctr(*args):
        return subprocess.run(["ctr", "-a", sock, "-n", ns] + list(args), capture_output=True, text=True,
                              timeout=120, stdin=subprocess.DEVNULL)
    try:
        if not wait_until(lambda: proc.poll() is None and ctr("version").returncode == 0, 30):
            pytest.fail("containerd did not start: %s" % (tmp_path / "containerd.log").read_text()[-500:])
        r = ctr("images", "import", oci_archive)
        assert r.returncode == 0, r.stderr
        assert "gptvm:latest" in ctr("images", "ls", "-q").stdout.split()
        r = ctr("images", "mount", "gptvm:latest", target)
        assert r.returncode == 0, r.stderr
        try:
            st = os.stat(os.path.join(target, "etc/secret"))
            assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o640)
            assert open(os.path.join(target, "etc/secret")).read() == "s3cret\n"
            assert open(os.path.join(target, "home/alice/notes")).read() == "alice\n"
        finally:
            r = ctr("images", "unmount", "--rm", target)
        assert r.returncode == 0, r.stderr
    finally:
        _stop(proc)
        _umount_below(str(tmp_path))
