"""Kubernetes' path: containerd 1.6's CRI plugin with the config `rich install --containerd` merged,
driven through a Python CRI client (container-runtime-interface-api's v1 stubs) as kubelet drives it:
RunPodSandbox with the `rich` handler and the annotation, CreateContainer, StartContainer, ExecSync,
StopContainer, RemovePodSandbox. The app's PID 1 is richinit, the pause container is not, the views
and exit codes hold, `rich ctl` reaches the container, and a bad annotation's reason reaches the CRI
error.

containerd runs with its own root, state and sockets, in a network namespace of its own (its
streaming server and the pods' bridge live there). The pause image is a local
busybox image imported with ctr: no registry.
"""

import json
import os
import shutil
import subprocess
import uuid

import pytest

from tests.integration.richmode.test_engines import _oci_archive, leftovers  # noqa: F401
from tests.support.wait import wait_until

from .conftest import need_root_and, write_shims

LOADER = "/.richinit/lib/ld-linux-x86-64.so.2"


def _api():
    try:
        import grpc
        from cri_api.v1 import api_pb2, api_pb2_grpc
    except ImportError:
        pytest.skip("container-runtime-interface-api (a Python CRI client) is not installed")
    return grpc, api_pb2, api_pb2_grpc


def _cni_bin():
    for d in ("/usr/lib/cni", "/opt/cni/bin"):
        if all(os.path.exists(os.path.join(d, p)) for p in ("bridge", "host-local", "loopback")):
            return d
    pytest.skip("no CNI bridge, host-local and loopback plugins (containernetworking-plugins)")


CONFIG = """version = 2
root = "{base}/root"
state = "{base}/state"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = "{sock}.debug"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{pause}"
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "{cni_bin}"
      conf_dir = "{base}/cni"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
"""


class _Timed:
    """The runtime service stub with a deadline on every call: a wedged daemon fails the test, never hangs it."""

    def __init__(self, stub, timeout=60):
        self._stub, self._timeout = stub, timeout

    def __getattr__(self, name):
        fn = getattr(self._stub, name)
        return lambda req: fn(req, timeout=self._timeout)


@pytest.fixture(scope="module")
def cri(richenv, tmp_path_factory, busybox_rootfs):
    need_root_and("containerd", "ctr", "unshare", "ip")
    grpc, pb, pb_grpc = _api()
    cni_bin = _cni_bin()
    base = tmp_path_factory.mktemp("cri")
    sock = "/run/rcri-%s.sock" % uuid.uuid4().hex[:8]
    (base / "cni").mkdir()
    # A bridge inside containerd's own network namespace: no gateway, no masquerading, no iptables.
    (base / "cni/10-rich.conflist").write_text(json.dumps({"cniVersion": "0.4.0", "name": "rcri", "plugins": [
        {"type": "bridge", "bridge": "rcri0", "isGateway": False, "ipMasq": False,
         "ipam": {"type": "host-local", "subnet": "10.255.77.0/24", "dataDir": str(base / "ipam")}},
        {"type": "loopback"}]}))
    tag = uuid.uuid4().hex[:8]
    pause, image = "localhost/richpause:%s" % tag, "localhost/richbb:%s" % tag
    stage = base / "stage"
    (stage / "etc/containerd").mkdir(parents=True)
    original = CONFIG.format(base=base, sock=sock, pause=pause, cni_bin=cni_bin)
    (stage / "etc/containerd/config.toml").write_text(original)
    bindir = write_shims(str(base / "bin"), bake=richenv.vars)
    (stage / "etc/richinit").mkdir(parents=True)
    (stage / "etc/richinit/runtime.yaml").write_text("runtime: runc\nruntime_dir: %s\nhook: %s/rich-hook\n"
                                                     % (richenv.runtime_dir, bindir))
    r = richenv.rich("install", "--containerd", "--root", stage, "--bin-dir", bindir)
    assert r.returncode == 0, r.stderr
    merged = (stage / "etc/containerd/config.toml").read_text()
    assert merged.startswith(original.split("[plugins]")[0]) and ".runtimes.rich]" in merged
    log = open(base / "containerd.log", "wb")
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec containerd --config "$0"',
                             str(stage / "etc/containerd/config.toml")], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    channel = None
    try:
        if not wait_until(lambda: os.path.exists(sock) or proc.poll() is not None, 30) or proc.poll() is not None:
            pytest.fail("containerd did not start: %s" % (base / "containerd.log").read_text()[-800:])
        for name, cmd in ((pause, ("/bin/sleep", "2147483647")), (image, ("/bin/sh",))):
            (base / "image.tar").write_bytes(_oci_archive(busybox_rootfs, name, cmd))
            r = subprocess.run(["ctr", "-a", sock, "-n", "k8s.io", "images", "import", str(base / "image.tar")],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
        r = subprocess.run(["ctr", "-a", sock, "plugins", "ls"], capture_output=True, text=True, timeout=30)
        assert any(line.split()[:2] == ["io.containerd.grpc.v1", "cri"] and line.split()[-1] == "ok"
                   for line in r.stdout.splitlines()), "the CRI plugin loads with the merged config: " + r.stdout
        channel = grpc.insecure_channel("unix://" + sock)
        rt = _Timed(pb_grpc.RuntimeServiceStub(channel))
        assert rt.Version(pb.VersionRequest()).runtime_name == "containerd"
        yield rt, pb, grpc, image, sock, base
    finally:
        if channel is not None:
            try:
                rt = _Timed(pb_grpc.RuntimeServiceStub(channel))
                for s in rt.ListPodSandbox(pb.ListPodSandboxRequest()).items:
                    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=s.id))
                    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))
            except grpc.RpcError:
                pass
            channel.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        subprocess.run(["umount", "-R", str(base / "root")], capture_output=True)
        subprocess.run(["umount", "-R", str(base / "state")], capture_output=True)
        for p in (sock, sock + ".ttrpc", sock + ".debug"):
            if os.path.lexists(p):
                os.unlink(p)
        for ctrl in os.listdir("/sys/fs/cgroup"):
            d = os.path.join("/sys/fs/cgroup", ctrl, "rcri-" + tag)
            for sub, _dirs, _files in os.walk(d, topdown=False):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
        shutil.rmtree(base / "root", ignore_errors=True)


def _pod_config(pb, name, tag, annotations):
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default", attempt=0),
        annotations=annotations, log_directory="",
        linux=pb.LinuxPodSandboxConfig(cgroup_parent="/rcri-%s" % tag, security_context=pb.LinuxSandboxSecurityContext(
            namespace_options=_own_pid(pb))))


def _own_pid(pb):
    """What kubelet asks for without shareProcessNamespace: each container its own PID namespace."""
    return pb.NamespaceOption(pid=pb.CONTAINER)


def _tag(cri):
    return os.path.basename(cri[3]).split(":")[1]


def _init_pid(cid):
    with open("/run/containerd/runc/k8s.io/%s/state.json" % cid) as f:
        return json.load(f)["init_process_pid"]


def test_pod_with_the_rich_handler(cri, richenv, leftovers):  # noqa: F811
    rt, pb, grpc, image, _sock, _base = cri
    pod = _pod_config(pb, "rich-%d" % os.getpid(), _tag(cri), {"io.richinit.rich": "true"})
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod, runtime_handler="rich")).pod_sandbox_id
    try:
        # the pause container stays what it is
        assert os.readlink("/proc/%d/exe" % _init_pid(sid)) == "/bin/busybox"
        cfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="app"), image=pb.ImageSpec(image=image),
            command=["/bin/sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.2; done"],
            linux=pb.LinuxContainerConfig(resources=pb.LinuxContainerResources(memory_limit_in_bytes=256 << 20),
                                          security_context=pb.LinuxContainerSecurityContext(
                                              namespace_options=_own_pid(pb))))
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg,
                                                           sandbox_config=pod)).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, timeout=30,
                                           cmd=["sh", "-c", "readlink /proc/1/exe; head -1 /proc/meminfo; exit 4"]))
        out = r.stdout.decode().splitlines()
        assert r.exit_code == 4 and out[0] == LOADER and out[1].split()[1] == str(256 * 1024), (out, r.stderr)
        status = lambda: rt.ExecSync(pb.ExecSyncRequest(container_id=cid, timeout=30,  # noqa: E731
                                                        cmd=["richctl", "status"]))
        assert wait_until(lambda: b"syslog" in status().stdout, 15), status()
        r = richenv.rich("ctl", cid[:12], "status")
        assert r.returncode == 0 and "cron" in r.stdout, r.stdout + r.stderr
        rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=10))
        st = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
        assert st.state == pb.CONTAINER_EXITED and st.exit_code == 3, st
        rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    finally:
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert richenv.registered() == []


def test_a_bad_annotations_reason_reaches_the_cri_error(cri, leftovers):  # noqa: F811
    rt, pb, grpc, image, _sock, _base = cri
    pod = _pod_config(pb, "bad-%d" % os.getpid(), _tag(cri), {"io.richinit.rich": "true",
                                                               "io.richinit.grace": "soon"})
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod, runtime_handler="rich")).pod_sandbox_id
    try:
        cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name="app"), image=pb.ImageSpec(image=image),
                                 command=["true"])
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg,
                                                           sandbox_config=pod)).container_id
        with pytest.raises(grpc.RpcError) as e:
            rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        assert "annotations.io.richinit.grace: must be seconds" in e.value.details(), e.value.details()
    finally:
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
