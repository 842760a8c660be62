"""The same Python-less busybox image made rich through real engines: podman --runtime and ctr --runc-binary.

Each engine is kept off the machine's defaults (its own config, storage, state and sockets in the
test's temp dir) and everything it leaves behind is removed.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid

import pytest

from .conftest import need_root_and
from .test_portable_runtime import SCRIPT

LEFTOVERS = ("/var/lib/containers/cache", "/run/containers", "/run/containerd/fifo", "/run/containerd/s",
             "/run/containerd/runc")


def _engine_cgroups():
    """Parent cgroups the engines create and leave (podman's libpod_parent, containerd's default)."""
    out = []
    for ctrl in os.listdir("/sys/fs/cgroup"):
        for name in ("libpod_parent", "default"):
            d = os.path.join("/sys/fs/cgroup", ctrl, name)
            if os.path.isdir(d):
                out.append(d)
    return out


def _rmdir_cgroup_tree(d):
    """Remove an (empty) cgroup directory tree, children first; cgroupfs only allows rmdir."""
    for sub, _dirs, _files in os.walk(d, topdown=False):
        try:
            os.rmdir(sub)
        except OSError:
            pass


@pytest.fixture
def leftovers():
    """Engine paths that are hard-coded outside our temp dirs: removed afterwards if we created them."""
    existed = {p for p in LEFTOVERS + ("/run/containerd", "/var/lib/containers") if os.path.lexists(p)}
    cgroups_before = set(_engine_cgroups())
    yield
    for d in set(_engine_cgroups()) - cgroups_before:
        _rmdir_cgroup_tree(d)
    for p in LEFTOVERS + ("/run/containerd", "/var/lib/containers"):
        if p not in existed and os.path.lexists(p):
            if p in ("/run/containerd", "/var/lib/containers"):
                try:
                    os.rmdir(p)  # only if empty: never remove what something else put there
                except OSError:
                    pass
            else:
                shutil.rmtree(p, ignore_errors=True)


def check_rich_output(r):
    assert r.returncode == 7, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    # PID 1's executable (the runtime's loader), then the argv the wrapper wrote or richinit's title
    assert "/.richinit/" in lines[0] and "richinit" in lines[0] and " -- /bin/sh -c" in lines[0], lines[0]
    stats = [s for s in lines if s.startswith("stats: ")][0].split()[1:]
    assert stats and not [s for s in stats if s.startswith("Z")]


# ---------------------------------------------------------------- podman

@pytest.fixture
def podman(tmp_path, nopy_rootfs, leftovers):
    need_root_and("podman")
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                    '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    storage = tmp_path / "storage.conf"
    # A short runroot: conmon's attach socket lives there and must fit in sun_path (108 bytes);
    # under pytest's long tmp paths podman falls back to waiting out conmon's 20 s timeout.
    runroot = tempfile.mkdtemp(prefix="rr-", dir="/tmp")
    storage.write_text('[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n'
                       % (tmp_path / "graph", runroot))
    env = dict(os.environ, CONTAINERS_CONF=str(conf), CONTAINERS_STORAGE_CONF=str(storage))
    image = "localhost/richbb-%s" % uuid.uuid4().hex[:8]
    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", nopy_rootfs, "-cf", str(tar), "."], check=True)
    subprocess.run(["podman", "import", "-q", str(tar), image], env=env, check=True, capture_output=True)
    try:
        yield env, image
    finally:
        subprocess.run(["podman", "system", "reset", "--force"], env=env, capture_output=True, timeout=120)
        subprocess.run(["umount", "-R", runroot], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)


def test_podman_runtime_flag(podman, tools):
    env, image = podman
    r = subprocess.run(["podman", "--runtime", tools["baked"], "run", "--rm", "--network", "none",
                        "--annotation", "io.richinit.rich=true", image, "/bin/sh", "-c", SCRIPT],
                       env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    check_rich_output(r)
    # without the annotation the same image runs as before: its command is PID 1
    r = subprocess.run(["podman", "--runtime", tools["baked"], "run", "--rm", "--network", "none", image,
                        "/bin/sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; exit 4"],
                       env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 4 and r.stdout.startswith("/bin/sh -c"), (r.stdout, r.stderr)


# ---------------------------------------------------------------- containerd

def _oci_archive(rootfs, name, cmd=("/bin/sh",)):
    """An OCI image layout tar of one uncompressed layer, as `ctr images import` reads it."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as t:
        t.add(rootfs, arcname=".")
    layer = layer.getvalue()
    blobs = {}

    def blob(data):
        d = hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return "sha256:" + d
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": list(cmd)},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}
                         }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(layer),
                    "size": len(layer)}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"}}]}).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for path, data in [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("index.json", index)] + \
                [("blobs/sha256/" + d, v) for d, v in blobs.items()]:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def containerd(tmp_path, nopy_rootfs, leftovers):
    need_root_and("containerd", "ctr")
    sock = str(tmp_path / "c.sock")
    conf = tmp_path / "config.toml"
    conf.write_text('version = 2\nroot = "%s"\nstate = "%s"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    '[grpc]\naddress = "%s"\n[ttrpc]\naddress = "%s.ttrpc"\n[debug]\naddress = "%s.debug"\n'
                    % (tmp_path / "root", tmp_path / "state", sock, sock, sock))
    cgroups_before = {d for d in os.listdir("/sys/fs/cgroup") if os.path.isdir("/sys/fs/cgroup/%s/default" % d)}
    with open(tmp_path / "containerd.log", "wb") as log:
        proc = subprocess.Popen(["containerd", "--config", str(conf)], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        else:
            pytest.fail("containerd did not start: %s" % (tmp_path / "containerd.log").read_text()[-500:])
        name = "localhost/richbb:%s" % uuid.uuid4().hex[:8]
        archive = tmp_path / "image.tar"
        archive.write_bytes(_oci_archive(nopy_rootfs, name))
        r = subprocess.run(["ctr", "-a", sock, "images", "import", str(archive)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        yield sock, name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        subprocess.run(["umount", "-R", str(tmp_path / "root")], capture_output=True)
        for d in os.listdir("/sys/fs/cgroup"):
            cg = "/sys/fs/cgroup/%s/default" % d
            if d not in cgroups_before and os.path.isdir(cg):
                try:
                    os.rmdir(cg)
                except OSError:
                    pass


def test_containerd_runc_binary(containerd, tools):
    sock, image = containerd
    cid = "rich-%s" % uuid.uuid4().hex[:8]
    r = subprocess.run(["ctr", "-a", sock, "run", "--rm", "--runc-binary", tools["baked"],
                        "--annotation", "io.richinit.rich=true", image, cid, "/bin/sh", "-c", SCRIPT],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    check_rich_output(r)
