"""containerd's CRI plugin for tests and benchmarks, as kubelet sees it.

    with containerd_cri(base, rich, bin_dir, runtime_dir, rootfs) as c:
        c.rt.RunPodSandbox(...)           # the v1 RuntimeService stub, every call with a deadline

containerd runs with its own root, state and sockets under BASE and /run, in a network namespace of
its own (its streaming server and the pods' CNI bridge live there: no gateway, no masquerading, no
iptables). Its config.toml is a CRI config into which `rich install --containerd --root` merged the
`rich` handler (`rich` runs the CLI; rich-runtime and rich-hook are found in BIN_DIR). Two local
busybox images are imported with ctr (no registry): a pause image and the app image. At the end
every pod is stopped and removed, containerd is stopped by its pid, and its sockets, mounts and
the pods' cgroup parent are removed.
"""

import contextlib
import json
import os
import shutil
import subprocess
import uuid

from tests.support.wait import wait_until

LOADER = "/.richinit/lib/ld-linux-x86-64.so.2"

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


HANDLER = """      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
        runtime_type = "io.containerd.runc.v2"
        pod_annotations = ["io.richinit.*"]
        container_annotations = ["io.richinit.*"]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
          BinaryName = "{binary}"
"""


class Unavailable(Exception):
    """What this machine lacks for a CRI run (the caller skips with it)."""


def api():
    try:
        import grpc
        from cri_api.v1 import api_pb2, api_pb2_grpc
    except ImportError:
        raise Unavailable("container-runtime-interface-api (a Python CRI client) is not installed")
    return grpc, api_pb2, api_pb2_grpc


def cni_bin():
    for d in ("/usr/lib/cni", "/opt/cni/bin"):
        if all(os.path.exists(os.path.join(d, p)) for p in ("bridge", "host-local", "loopback")):
            return d
    raise Unavailable("no CNI bridge, host-local and loopback plugins (containernetworking-plugins)")


class Timed:
    """A stub with a deadline on every call: a wedged daemon fails the caller, never hangs it."""

    def __init__(self, stub, timeout=60):
        self._stub, self._timeout = stub, timeout

    def __getattr__(self, name):
        fn = getattr(self._stub, name)
        return lambda req: fn(req, timeout=self._timeout)


class CRI:
    def __init__(self, rt, pb, grpc, image, sock, tag, merged):
        self.rt, self.pb, self.grpc, self.image, self.sock, self.tag, self.merged = (
            rt, pb, grpc, image, sock, tag, merged)

    def pod_config(self, name, annotations):
        """A pod as kubelet sends it without shareProcessNamespace: each container its own PID namespace."""
        pb = self.pb
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default", attempt=0),
            annotations=annotations, linux=pb.LinuxPodSandboxConfig(
                cgroup_parent="/rcri-%s" % self.tag,
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=self.own_pid())))

    def own_pid(self):
        return self.pb.NamespaceOption(pid=self.pb.CONTAINER)

    def container_config(self, command, memory=None):
        pb = self.pb
        res = pb.LinuxContainerResources(memory_limit_in_bytes=memory) if memory else None
        return pb.ContainerConfig(metadata=pb.ContainerMetadata(name="app"), image=pb.ImageSpec(image=self.image),
                                  command=list(command), linux=pb.LinuxContainerConfig(
                                      resources=res, security_context=pb.LinuxContainerSecurityContext(
                                          namespace_options=self.own_pid())))

    def remove_pod(self, sid):
        self.rt.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        self.rt.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=sid))


def init_pid(cid):
    """The host pid of a CRI container's (or sandbox's) init: runc's state under containerd's shim root."""
    with open("/run/containerd/runc/k8s.io/%s/state.json" % cid) as f:
        return json.load(f)["init_process_pid"]


def _oci_archive(rootfs, name, cmd):
    from tests.integration.richmode.test_engines import _oci_archive as archive
    return archive(rootfs, name, cmd)


@contextlib.contextmanager
def containerd_cri(base, rich, bin_dir, runtime_dir, rootfs, handlers=None):
    """handlers: {name: runc binary} more runc.v2 handlers passing io.richinit.* annotations, as the
    `rich` one does (a benchmark's other revision of rich-runtime)."""
    grpc, pb, pb_grpc = api()
    cni = cni_bin()
    for tool in ("containerd", "ctr", "unshare", "ip"):
        if shutil.which(tool) is None:
            raise Unavailable("%s is not installed" % tool)
    tag = uuid.uuid4().hex[:8]
    sock = "/run/rcri-%s.sock" % tag
    os.makedirs(os.path.join(base, "cni"))
    with open(os.path.join(base, "cni/10-rich.conflist"), "w") as f:
        json.dump({"cniVersion": "0.4.0", "name": "rcri", "plugins": [
            {"type": "bridge", "bridge": "rcri0", "isGateway": False, "ipMasq": False,
             "ipam": {"type": "host-local", "subnet": "10.255.77.0/24", "dataDir": os.path.join(base, "ipam")}},
            {"type": "loopback"}]}, f)
    pause, image = "localhost/richpause:%s" % tag, "localhost/richbb:%s" % tag
    stage = os.path.join(base, "stage")
    config = os.path.join(stage, "etc/containerd/config.toml")
    os.makedirs(os.path.dirname(config))
    os.makedirs(os.path.join(stage, "etc/richinit"))
    with open(config, "w") as f:
        f.write(CONFIG.format(base=base, sock=sock, pause=pause, cni_bin=cni))
        for name, binary in sorted((handlers or {}).items()):
            f.write(HANDLER.format(name=name, binary=binary))
    with open(os.path.join(stage, "etc/richinit/runtime.yaml"), "w") as f:
        f.write("runtime: runc\nruntime_dir: %s\nhook: %s/rich-hook\n" % (runtime_dir, bin_dir))
    r = rich("install", "--containerd", "--root", stage, "--bin-dir", bin_dir)
    if r.returncode != 0:
        raise RuntimeError("rich install --containerd: %s" % r.stderr)
    with open(config) as f:
        merged = f.read()
    log = open(os.path.join(base, "containerd.log"), "wb")
    proc = subprocess.Popen(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec containerd --config "$0"',
                             config], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    channel = rt = None
    try:
        if not wait_until(lambda: os.path.exists(sock) or proc.poll() is not None, 30) or proc.poll() is not None:
            with open(os.path.join(base, "containerd.log")) as f:
                raise RuntimeError("containerd did not start: %s" % f.read()[-800:])
        for name, cmd in ((pause, ("/bin/sleep", "2147483647")), (image, ("/bin/sh",))):
            with open(os.path.join(base, "image.tar"), "wb") as f:
                f.write(_oci_archive(rootfs, name, cmd))
            r = subprocess.run(["ctr", "-a", sock, "-n", "k8s.io", "images", "import",
                                os.path.join(base, "image.tar")], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError("ctr images import: %s" % r.stderr)
        channel = grpc.insecure_channel("unix://" + sock)
        rt = Timed(pb_grpc.RuntimeServiceStub(channel))
        yield CRI(rt, pb, grpc, image, sock, tag, merged)
    finally:
        if rt is not None:
            try:
                for s in rt.ListPodSandbox(pb.ListPodSandboxRequest()).items:
                    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=s.id))
                    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))
            except grpc.RpcError:
                pass
        if channel is not None:
            channel.close()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for d in ("root", "state"):
            subprocess.run(["umount", "-R", os.path.join(base, d)], capture_output=True)
        for p in (sock, sock + ".ttrpc", sock + ".debug"):
            if os.path.lexists(p):
                os.unlink(p)
        for ctrl in os.listdir("/sys/fs/cgroup"):
            for sub, _dirs, _files in os.walk(os.path.join("/sys/fs/cgroup", ctrl, "rcri-" + tag), topdown=False):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
        shutil.rmtree(os.path.join(base, "root"), ignore_errors=True)
