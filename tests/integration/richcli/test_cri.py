"""Kubernetes' path: containerd 1.6's CRI plugin with the config `rich install --containerd` merged,
driven through a Python CRI client (container-runtime-interface-api's v1 stubs) as kubelet drives it:
RunPodSandbox with the `rich` handler and the annotation, CreateContainer, StartContainer, ExecSync,
StopContainer, RemovePodSandbox. The app's PID 1 is richinit, the pause container is not, the views
and exit codes hold, `rich ctl` reaches the container, and a bad annotation's reason reaches the CRI
error. The daemon and its images: tests/support/cri.py.
"""

import json
import os
import subprocess

import pytest

from tests.integration.richmode.test_engines import leftovers  # noqa: F401
from tests.support import cri as cri_mod
from tests.support.wait import wait_until

from .conftest import need_root_and, write_shims


@pytest.fixture(scope="module")
def cri(richenv, tmp_path_factory, busybox_rootfs):
    need_root_and("containerd", "ctr")
    base = tmp_path_factory.mktemp("cri")
    bindir = write_shims(str(base / "bin"), bake=richenv.vars)  # the shim passes containerd's env, not ours
    try:
        with cri_mod.containerd_cri(str(base), richenv.rich, bindir, richenv.runtime_dir, busybox_rootfs) as c:
            r = subprocess.run(["ctr", "-a", c.sock, "plugins", "ls"], capture_output=True, text=True, timeout=30)
            assert any(line.split()[:2] == ["io.containerd.grpc.v1", "cri"] and line.split()[-1] == "ok"
                       for line in r.stdout.splitlines()), "the CRI plugin loads with the merged config: " + r.stdout
            assert ".runtimes.rich]" in c.merged and "restrict_oom_score_adj = true" in c.merged
            assert c.rt.Version(c.pb.VersionRequest()).runtime_name == "containerd"
            yield c
    except cri_mod.Unavailable as e:
        pytest.skip(str(e))


def test_pod_with_the_rich_handler(cri, richenv, leftovers):  # noqa: F811
    pb, rt = cri.pb, cri.rt
    pod = cri.pod_config("rich-%d" % os.getpid(), {"io.richinit.rich": "true"})
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod, runtime_handler="rich")).pod_sandbox_id
    try:
        # the pause container stays what it is (once runc's init has exec'd it: start returns before)
        pause = cri_mod.init_pid(sid)
        exe = lambda: os.readlink("/proc/%d/exe" % pause)  # noqa: E731
        assert wait_until(lambda: exe() in ("/bin/busybox", cri_mod.LOADER), 10) and exe() == "/bin/busybox", exe()
        cfg = cri.container_config(["/bin/sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.2; done"],
                                   memory=256 << 20)
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg,
                                                           sandbox_config=pod)).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, timeout=30,
                                           cmd=["sh", "-c", "readlink /proc/1/exe; head -1 /proc/meminfo; exit 4"]))
        out = r.stdout.decode().splitlines()
        assert r.exit_code == 4 and out[0] == cri_mod.LOADER and out[1].split()[1] == str(256 * 1024), (out, r.stderr)
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
        cri.remove_pod(sid)
    assert richenv.registered() == []


def test_a_bad_annotations_reason_reaches_the_cri_error(cri, leftovers):  # noqa: F811
    pb, rt = cri.pb, cri.rt
    pod = cri.pod_config("bad-%d" % os.getpid(), {"io.richinit.rich": "true", "io.richinit.grace": "soon"})
    sid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod, runtime_handler="rich")).pod_sandbox_id
    try:
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=cri.container_config(["true"]),
                                                           sandbox_config=pod)).container_id
        with pytest.raises(cri.grpc.RpcError) as e:
            rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        assert "annotations.io.richinit.grace: must be seconds" in e.value.details(), e.value.details()
    finally:
        cri.remove_pod(sid)


def test_doctor_sees_the_cri_plugin_with_the_handler(cri, richenv):
    r = richenv.rich("doctor", "--json", env=dict(richenv.env, CONTAINERD_ADDRESS=cri.sock))
    rows = {row["area"]: row for row in json.loads(r.stdout)}
    assert rows["containerd CRI"]["status"] == "ok", rows.get("containerd CRI")
