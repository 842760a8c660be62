"""What rich import switches off in a VM's tree, and undo.sh putting it all back (run in a chroot of a
busybox tree holding the VM's files); a hostile symlink never leads a write out of the tree."""

import os
import shutil
import subprocess

import pytest

from runtime_hooks.vmimport import container

UNITS = ("lib/systemd/system/NetworkManager.service", "lib/systemd/system/cloud-init.service",
         "lib/systemd/system/cloud-final.service", "lib/systemd/system/systemd-networkd.service",
         "lib/systemd/system/nginx.service", "lib/systemd/system/systemd-udevd.service",
         "lib/systemd/system/getty@.service")


def _vm_tree(root):
    def put(rel, text=""):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    for u in UNITS:
        put(u, "[Service]\nExecStart=/bin/true\n")
    put("etc/systemd/system/NetworkManager.service", "# a local copy of the unit\n")
    put("etc/fstab", "UUID=1 / ext4 defaults 0 1\nUUID=2 /var xfs defaults 0 2\n/swapfile none swap sw 0 0\n"
                     "tmpfs /tmp tmpfs defaults 0 0\nserver:/x /mnt nfs defaults 0 0\n")
    put("etc/netplan/50-cloud-init.yaml", "network: {}\n")
    put("etc/NetworkManager/system-connections/eth0.nmconnection", "[connection]\n")
    put("etc/systemd/network/10-eth0.network", "[Match]\n")
    put("etc/network/interfaces", "auto lo\niface lo inet loopback\nauto eth0\niface eth0 inet dhcp\n")
    put("etc/cloud/cloud.cfg", "datasource_list: [None]\n")
    put("etc/hostname", "vm1\n")


def test_disable_and_report(tmp_path):
    root = str(tmp_path)
    _vm_tree(root)
    changes = container.disable(root, {"/", "/var"})
    by = {(c["action"], c.get("unit") or c["path"]) for c in changes}
    assert {("mask", "NetworkManager.service"), ("mask", "cloud-init.service"), ("mask", "cloud-final.service"),
            ("mask", "systemd-networkd.service"), ("mask", "systemd-udevd.service"), ("mask", "getty@.service"),
            ("move", "/etc/netplan/50-cloud-init.yaml"), ("move", "/etc/systemd/network/10-eth0.network"),
            ("move", "/etc/NetworkManager/system-connections/eth0.nmconnection"),
            ("replace", "/etc/network/interfaces"), ("create", "/etc/cloud/cloud-init.disabled")} <= by
    assert not [c for c in changes if c.get("unit") == "nginx.service"]
    fstab = open(os.path.join(root, "etc/fstab")).read().splitlines()
    assert [ln.startswith(container.MARK) for ln in fstab] == [True, True, True, False, False]
    assert os.readlink(os.path.join(root, "etc/systemd/system/cloud-init.service")) == "/dev/null"
    saved = os.path.join(root, "var/lib/richinit/import-disabled")
    local = open(os.path.join(saved, "etc/systemd/system/NetworkManager.service")).read()
    assert local == "# a local copy of the unit\n"
    assert os.path.exists(os.path.join(saved, "etc/netplan/50-cloud-init.yaml"))
    assert open(os.path.join(root, "etc/hostname")).read() == "vm1\n"
    # a second run finds nothing more to do (masks are there, the files moved)
    again = container.disable(root, {"/", "/var"})
    assert [c for c in again if c["action"] in ("mask", "move", "create")] == []


def test_undo_script_puts_everything_back(tmp_path, busybox_rootfs):
    if os.geteuid() != 0:
        pytest.skip("chroot needs root")
    root = str(tmp_path / "root")
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    _vm_tree(root)
    before = {}
    for dirpath, _dirs, files in os.walk(os.path.join(root, "etc")):
        for n in files:
            p = os.path.join(dirpath, n)
            before[os.path.relpath(p, root)] = open(p).read()
    container.disable(root, {"/", "/var"})
    r = subprocess.run(["chroot", root, "/bin/sh", container.SAVE_DIR + "/undo.sh"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = {}
    for dirpath, _dirs, files in os.walk(os.path.join(root, "etc")):
        for n in files:
            p = os.path.join(dirpath, n)
            after[os.path.relpath(p, root)] = open(p).read()
    assert after == before
    assert not [n for n in os.listdir(os.path.join(root, "etc/systemd/system"))
                if os.path.islink(os.path.join(root, "etc/systemd/system", n))]


def test_a_hostile_symlink_stays_inside(tmp_path):
    root, outside = str(tmp_path / "root"), str(tmp_path / "outside")
    os.makedirs(os.path.join(outside, "netplan"))
    with open(os.path.join(outside, "netplan", "host.yaml"), "w") as f:
        f.write("host\n")
    os.makedirs(os.path.join(root, "etc"))
    os.symlink(outside, os.path.join(root, "etc", "netplan-link"))
    os.symlink("/../../../../" + outside.lstrip("/") + "/netplan", os.path.join(root, "etc", "netplan"))
    with open(os.path.join(root, "etc/fstab"), "w") as f:
        f.write("UUID=1 / ext4 defaults 0 1\n")
    container.disable(root, {"/"})
    assert os.listdir(os.path.join(outside, "netplan")) == ["host.yaml"]
