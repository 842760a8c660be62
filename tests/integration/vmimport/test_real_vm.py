"""A real VM's disk (tests/support/vm_disk.py: Debian 12, extlinux, / on ext4, /var on xfs in LVM,
ifupdown, sshd, nginx-light and a unit of its own) boots in qemu (TCG), then `rich import` makes a
rootfs of it that runs rich; the vmdk and raw copies import to the same file set; the disk's
checksum never changes; an import stopped by SIGTERM mid-copy leaves nothing behind.
"""

import hashlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.richcli.conftest import need_root_and, portable_runtime, richenv  # noqa: F401 (fixtures)
from tests.support import vm_disk
from tests.support.containers import REPO
from tests.support.debian_image import ImageUnavailable
from tests.support.wait import wait_until

from .conftest import leftovers, listing, need_tools, rich_import

BOOT_TIMEOUT = 600  # TCG on two shared cores


@pytest.fixture(scope="module")
def disk():
    need_tools("mkfs.xfs")
    try:
        return vm_disk.cached_disk()
    except ImageUnavailable as e:
        pytest.skip("the VM disk cannot be built here: %s" % e)


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def imported(disk, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("vmimp") / "rootfs")
    before = _sha(disk.qcow2)
    r = rich_import(disk.qcow2, "--output", out, "--json")
    assert r.returncode == 0, r.stderr
    assert _sha(disk.qcow2) == before, "the disk was written"
    assert leftovers() == []
    yield out, json.loads(r.stdout)
    shutil.rmtree(out, ignore_errors=True)


def test_the_disk_boots_in_qemu(disk):
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    # -snapshot: the guest's writes go to a temporary overlay, never to the cached disk
    proc = subprocess.Popen(["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1",
                             "-nographic", "-no-reboot", "-snapshot",
                             "-drive", "file=%s,format=qcow2,if=virtio" % disk.qcow2,
                             "-nic", "user,model=virtio-net-pci"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    console = b""
    deadline = time.monotonic() + BOOT_TIMEOUT
    try:
        while vm_disk.READY_MARK.encode() not in console and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
            if not ready:
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            console += chunk
    finally:
        proc.kill()
        proc.wait()
    text = console.decode(errors="replace")
    assert vm_disk.READY_MARK in text, text[-3000:]
    assert "SYSLINUX" in text


def test_report_of_the_vm_disk(disk, imported):
    out, rep = imported
    assert (rep["format"], rep["table"], rep["os"]["id"], rep["os"]["version_id"]) == ("qcow2", "dos", "debian", "12")
    assert [(m["mountpoint"], m["volume"], m["fstype"]) for m in rep["mounts"]] == [
        ("/", "p1", "ext4"), ("/var", "%s/%s" % (vm_disk.VG, vm_disk.LV), "xfs")]
    assert [(s["mountpoint"], s["reason"]) for s in rep["skipped"]] == [("none", "swap: not used in a container")]
    assert os.path.isfile(os.path.join(out, "var/lib/dpkg/status")), "/var (on the LV) is missing"
    assert os.listdir(os.path.join(out, "boot")), "/boot is part of /"
    masked = {c["unit"] for c in rep["changes"] if c["action"] == "mask"}
    assert {"networking.service", "ifup@.service", "systemd-udevd.service", "systemd-modules-load.service",
            "serial-getty@.service", "lvm2-monitor.service"} <= masked
    for unit in masked:
        assert os.readlink(os.path.join(out, "etc/systemd/system", unit)) == "/dev/null"
    assert not {"ssh.service", "nginx.service", "rich-hello.service"} & masked
    fstab = [ln for ln in open(os.path.join(out, "etc/fstab")).read().splitlines() if not ln.startswith("# <")]
    assert fstab and all(ln.startswith("#rich-import-disabled# ") for ln in fstab), fstab
    interfaces = open(os.path.join(out, "etc/network/interfaces")).read()
    assert "iface lo inet loopback" in interfaces and "ens3" not in interfaces
    saved = os.path.join(out, "var/lib/richinit/import-disabled")
    assert "ens3" in open(os.path.join(saved, "etc/network/interfaces")).read()
    assert open(os.path.join(out, "etc/hostname")).read().strip() == vm_disk.HOSTNAME  # kept
    undo = open(os.path.join(saved, "undo.sh")).read()
    assert "rm -f '/etc/systemd/system/networking.service'" in undo
    assert json.load(open(os.path.join(out, "var/lib/richinit/import-report.json")))["changes"] == rep["changes"]


@pytest.mark.parametrize("fmt", ["vmdk", "raw"])
def test_vmdk_and_raw_copies_import_to_the_same_files(fmt, disk, imported, tmp_path):
    out, _ = imported
    path = disk.vmdk if fmt == "vmdk" else disk.raw
    before = _sha(path)
    dest = str(tmp_path / "rootfs")
    r = rich_import(path, "--output", dest)
    assert r.returncode == 0, r.stderr
    try:
        assert listing(dest) == listing(out)
        assert _sha(path) == before
        assert leftovers() == []
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_sigterm_during_the_copy_leaves_nothing(disk, tmp_path):
    out = str(tmp_path / "out")
    proc = subprocess.Popen([sys.executable, "-m", "runtime_hooks.cli", "import", disk.qcow2, "--output", out],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    partial = "%s.partial-%d" % (out, proc.pid)
    try:
        # /etc is written early in a copy of 600 MB: the import is mid-copy then
        assert wait_until(lambda: os.path.exists(os.path.join(partial, "etc")) or proc.poll() is not None, 120)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.decode().strip().splitlines()[-1].endswith("interrupted; nothing left mounted or attached")
    assert not os.path.exists(out) and not os.path.exists(partial)
    assert leftovers() == []


def _container_pid(env, name):
    r = env.rich("ps")
    line = [ln for ln in r.stdout.splitlines()[1:] if ln.split()[:1] == [name]]
    return int(line[0].split()[2]) if line else None


def test_the_imported_vm_runs_rich(imported, richenv):  # noqa: F811
    need_root_and("runc")
    out, _ = imported
    name = "richvm-%d" % os.getpid()
    r = richenv.rich("run", "--vm", "-d", "--name", name, out, "--", "/sbin/init", timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        def listening():
            r = richenv.rich("exec", name, "--", "ss", "-Hltn")
            return r.returncode == 0 and ":22 " in r.stdout and r.stdout
        assert wait_until(listening, 60), richenv.rich("logs", name).stdout[-2000:]
        init = _container_pid(richenv, name)
        assert "richinit" in open("/proc/%d/cmdline" % init, "rb").read().decode(errors="replace")
        if not os.path.exists(os.path.join(REPO, "richinit", "services", "unitfile.py")):
            pytest.skip("this richinit does not read systemd units yet: nginx and rich-hello.service not checked")
        assert wait_until(lambda: richenv.rich("exec", name, "--", "cat", "/run/rich-hello.up").returncode == 0, 60)
        assert ":80 " in listening()
    finally:
        richenv.rich("rm", "-f", name)
    assert leftovers() == []
