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

from .conftest import in_netns as _in
from .conftest import leftovers, listing, need_tools, rich_import, scratch_env

BOOT_TIMEOUT = 600  # TCG on two shared cores
# a unit the user adds inside the running container and enables (the lifecycle test)
EXTRA_UNIT = ("[Unit]\\nDescription=added inside\\n[Service]\\nType=oneshot\\nRemainAfterExit=yes\\n"
              "ExecStart=/bin/sh -c \"echo ran >> /root/extra.ran\"\\n[Install]\\nWantedBy=multi-user.target\\n")


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


@pytest.fixture(scope="module")
def imported_listing(imported):
    return listing(imported[0])


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
def test_vmdk_and_raw_copies_import_to_the_same_files(fmt, disk, imported_listing, tmp_path):
    path = disk.vmdk if fmt == "vmdk" else disk.raw
    before = _sha(path)
    dest = str(tmp_path / "rootfs")
    r = rich_import(path, "--output", dest)
    assert r.returncode == 0, r.stderr
    try:
        assert listing(dest) == imported_listing
        assert _sha(path) == before
        assert leftovers() == []
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_sigterm_during_the_copy_leaves_nothing(disk, tmp_path):
    out = str(tmp_path / "out")
    proc = subprocess.Popen([sys.executable, "-m", "runtime_hooks.cli", "import", disk.qcow2, "--output", out],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=scratch_env())
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


def _ok(r):
    return r if r.returncode == 0 else None


def _ssh(netns, key, port, command):
    return _in(netns, ["ssh", "-i", key, "-p", str(port), "-o", "StrictHostKeyChecking=no", "-o",
                       "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o",
                       "ConnectTimeout=5", "root@127.0.0.1", command])


def _comms_in_pid_ns(init):
    """The command names of every process in the PID namespace of `init` (read from the host)."""
    ns = os.readlink("/proc/%d/ns/pid" % init)
    comms = []
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.readlink("/proc/%s/ns/pid" % pid) == ns:
                with open("/proc/%s/comm" % pid) as f:
                    comms.append(f.read().strip())
        except OSError:
            continue
    return comms


def _loops_under(base):
    """Loop devices whose backing file lies under `base` (rich's own: quota and view images)."""
    out = []
    for dev in os.listdir("/sys/block"):
        try:
            with open("/sys/block/%s/loop/backing_file" % dev) as f:
                if f.read().strip().startswith(base + "/"):
                    out.append(dev)
        except OSError:
            continue
    return out


def test_the_imported_vm_runs_rich_reached_on_published_ports(disk, imported, richenv, own_netns):  # noqa: F811
    """The imported rootfs under `rich run --vm ... /sbin/init`: richinit reads the image's units,
    so the VM's own nginx and rich-hello.service run beside ssh (richinit's default sshd gives
    way to ssh.service), no systemd-* daemon starts, and the masked units stay stopped."""
    need_root_and("runc")
    out, _ = imported
    name = "richvm-%d" % os.getpid()
    rich = [os.path.join(richenv.bin, "rich")]
    # --vm: --network bridge by default
    r = _in(own_netns, rich + ["run", "--vm", "-d", "--name", name, "--hostname", "imported", "--ip", "10.77.0.50",
                                "-p", "127.0.0.1:2222:22", "-p", "127.0.0.1:8080:80/tcp", out, "--", "/sbin/init"],
            env=richenv.env, timeout=120)
    assert r.returncode == 0, r.stderr
    alloc = os.path.join(richenv.vars["RICHINIT_STATE_DIR"], "cni", "networks", "rich-richbr0", "10.77.0.50")
    try:
        assert os.path.exists("/run/netns/rich-" + name) and os.path.exists(alloc)
        init = _container_pid(richenv, name)
        assert "richinit" in open("/proc/%d/cmdline" % init, "rb").read().decode(errors="replace")
        login = wait_until(lambda: _ok(_ssh(own_netns, disk.ssh_key, 2222, "hostname; ip -o -4 addr show eth0")), 60)
        assert login, (_ssh(own_netns, disk.ssh_key, 2222, "true").stderr, richenv.rich("logs", name).stdout[-2000:])
        assert login.stdout.split()[0] == "imported" and "10.77.0.50/24" in login.stdout
        # the disk's own unit ran after nginx and ssh: its marker is there
        assert wait_until(lambda: os.path.exists("/proc/%d/root/run/rich-hello.up" % init), 60), \
            richenv.rich("logs", name).stdout[-2000:]
        up = _ssh(own_netns, disk.ssh_key, 2222, "cat /run/rich-hello.up; test -d /run/systemd/system && echo sd; "
                  "systemctl is-active nginx.service ssh.service rich-hello.service networking.service; "
                  "systemctl is-enabled networking.service")
        assert up.stdout.split() == ["up", "sd", "active", "active", "active", "inactive", "masked"], \
            (up.stdout, up.stderr)
        page = wait_until(lambda: _ok(_in(own_netns, [sys.executable, "-c", "import urllib.request as u; r = "
                                                       "u.urlopen('http://127.0.0.1:8080/'); print(r.status, "
                                                       "r.headers['Server'])"])), 30)
        assert page and page.stdout.split()[0] == "200" and page.stdout.split()[1].startswith("nginx"), page
        comms = _comms_in_pid_ns(init)
        assert {"nginx", "sshd"} <= set(comms) and not [c for c in comms if c.startswith("systemd")], comms
        health = next(row for row in json.loads(richenv.rich("ps", "--json").stdout) if row["name"] == name)
        assert health["services"]["failed"] == 0, health
    finally:
        rm = _in(own_netns, rich + ["rm", "-f", name], env=richenv.env)
    assert rm.returncode == 0, rm.stderr
    # nothing of the container is left: namespace, veth, iptables rules, the address, mounts, loops
    assert not os.path.exists("/run/netns/rich-" + name) and not os.path.exists(alloc)
    links = _in(own_netns, ["ip", "-o", "link"]).stdout
    assert "veth" not in links, links
    rules = _in(own_netns, ["iptables-save"]).stdout
    assert "rich-%s" % name not in rules and "10.77.0.50" not in rules, rules
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert richenv.base not in mounts and out not in mounts, mounts
    assert _loops_under(richenv.base) == []
    assert leftovers() == []


def test_lifecycle_from_the_disk_keeps_changes_until_rm(disk, richenv, own_netns):  # noqa: F811
    """`rich create --vm DISK` imports the disk (cached by content) and makes a container with a
    bridge network; start/stop/restart keep what changed inside; rm leaves nothing."""
    need_root_and("runc")
    name = "richlc-%d" % os.getpid()
    rich = [os.path.join(richenv.bin, "rich")]

    def r(*args, timeout=120):
        return _in(own_netns, rich + list(args), env=scratch_env(richenv.env), timeout=timeout)

    def ps():
        rows = json.loads(r("ps", "--json").stdout)
        return next((row for row in rows if row["name"] == name), None)

    c = r("create", "--vm", "--name", name, disk.qcow2, "--", "/sbin/init", timeout=600)
    assert c.returncode == 0, c.stderr
    images = os.path.join(richenv.vars["RICHINIT_STATE_DIR"], "images")
    try:
        assert [n for n in os.listdir(images) if n.startswith("sha256-")], "the import is not cached"
        assert ps()["status"] == "created" and ps()["network"] == "bridge"
        assert r("start", name).returncode == 0
        assert wait_until(lambda: (ps()["services"] or {}).get("up"), 60), ps()
        row = ps()
        assert row["status"] == "running" and row["address"].startswith("10.77.0.") and row["services"]["failed"] == 0
        # a file written inside, and a unit of the user's own enabled (not started) with systemctl
        change = ("echo kept > /root/state && printf '%s' > /etc/systemd/system/rich-extra.service && "
                  "systemctl enable rich-extra.service && systemctl is-enabled rich-extra.service && "
                  "! test -e /root/extra.ran" % EXTRA_UNIT)
        made = r("exec", name, "--", "sh", "-c", change)
        assert made.returncode == 0 and made.stdout.split()[-1] == "enabled", (made.stdout, made.stderr)
        assert r("stop", name).returncode == 0 and ps()["status"] == "stopped"
        assert r("start", name).returncode == 0 and ps()["status"] == "running"
        # the enabled unit ran at this start, once; it is still enabled
        ran = (lambda n: r("exec", name, "--", "cat", "/root/extra.ran").stdout == "ran\n" * n)
        assert wait_until(lambda: ran(1), 60, step=0.5), \
            r("exec", name, "--", "systemctl", "status", "rich-extra.service").stdout
        check = ("cat /root/state; systemctl is-enabled rich-extra.service; systemctl is-active rich-extra.service; "
                 "readlink /etc/systemd/system/multi-user.target.wants/rich-extra.service")
        assert r("exec", name, "--", "sh", "-c", check).stdout.split() == [
            "kept", "enabled", "active", "/etc/systemd/system/rich-extra.service"]
        assert r("restart", name).returncode == 0 and ps()["status"] == "running"
        assert r("exec", name, "--", "cat", "/root/state").stdout.strip() == "kept"
        assert wait_until(lambda: ran(2), 60, step=0.5), "the enabled unit did not run again at the restart"
        assert ps()["address"] == row["address"], "the address changed across restarts"
    finally:
        rm = r("rm", "-f", name)
    assert rm.returncode == 0, rm.stderr
    assert ps() is None and richenv.containers() == []
    assert not os.path.exists("/run/netns/rich-" + name)
    alloc_dir = os.path.join(richenv.vars["RICHINIT_STATE_DIR"], "cni", "networks", "rich-richbr0")
    assert [n for n in os.listdir(alloc_dir) if n[0].isdigit()] == []
    assert "veth" not in _in(own_netns, ["ip", "-o", "link"]).stdout
    assert "rich-%s" % name not in _in(own_netns, ["iptables-save"]).stdout
    with open("/proc/self/mountinfo") as f:
        assert richenv.vars["RICHINIT_CONTAINERS_DIR"] not in f.read()
    assert leftovers() == []
