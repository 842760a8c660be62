"""What a container must not take from a VM, switched off in an imported rootfs, each change undoable.

- /etc/fstab: the entries for /, swap and every filesystem that was folded into the rootfs are
  commented out (the engine gives the container its root; there is no swap or disk to mount);
- units for the kernel, initramfs, bootloader and modules, hardware and udev, the VM's network
  configuration (ifupdown, NetworkManager, systemd-networkd, netplan's generated units) and
  cloud-init are masked (a symlink to /dev/null in /etc/systemd/system), but only those the image has;
- the VM's network configuration files are moved aside (/etc/network/interfaces is replaced by a
  loopback-only one); /etc/hostname and /etc/hosts are kept: the container keeps its name;
- cloud-init gets its own off switch, /etc/cloud/cloud-init.disabled.

Every file replaced or moved is kept under /var/lib/richinit/import-disabled/ (same relative path),
and undo.sh there reverses every change (`sh /var/lib/richinit/import-disabled/undo.sh` inside the
container). All paths are opened through osbase.safepath: the rootfs came from a VM.
"""

import errno
import fnmatch
import os
import stat

from osbase import safepath
from runtime_hooks.vmimport.parse import parse_fstab

SAVE_DIR = "/var/lib/richinit/import-disabled"
REPORT_PATH = "/var/lib/richinit/import-report.json"
UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
MARK = "#rich-import-disabled# "

# (reason, unit name patterns)
MASKS = (
    ("boot: kernel, initramfs, bootloader and modules belong to the host", (
        "systemd-modules-load.service", "kmod-static-nodes.service", "systemd-remount-fs.service",
        "systemd-fsck-root.service", "systemd-fsck@.service", "systemd-growfs-root.service",
        "systemd-growfs@.service", "systemd-hibernate-resume@.service", "systemd-sysctl.service",
        "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount", "sys-kernel-*.mount",
        "systemd-boot-update.service", "systemd-boot-system-token.service", "grub-common.service",
        "grub-initrd-fallback.service", "kexec*.service",
        "lvm2-*.service", "lvm2-lvmpolld.socket", "blk-availability.service", "dm-event.*",
        "mdmonitor*.service", "multipathd.*", "e2scrub*", "fstrim.*", "apparmor.service",
        "systemd-journald-audit.socket", "systemd-cryptsetup@.service")),
    ("hardware: devices, consoles and clocks are the host's", (
        "systemd-udevd.service", "systemd-udevd-*.socket", "systemd-udev-trigger.service",
        "systemd-udev-settle.service", "systemd-hwdb-update.service", "systemd-rfkill.*",
        "systemd-backlight@.service", "keyboard-setup.service", "console-setup.service",
        "setvtrgb.service", "getty@.service", "serial-getty@.service", "getty-static.service",
        "smartd.service", "smartmontools.service", "irqbalance.service", "acpid.*", "thermald.service",
        "open-vm-tools.service", "vgauth.service", "qemu-guest-agent.service", "hv-*.service",
        "systemd-timesyncd.service", "chrony.service", "ntp.service", "ntpsec.service")),
    ("network: the engine gives the container its network", (
        "networking.service", "ifup@.service", "ifupdown-pre.service", "ifupdown-wait-online.service",
        "NetworkManager*.service", "systemd-networkd*.service", "systemd-networkd.socket",
        "systemd-network-generator.service", "netplan-*.service", "dhcpcd.service", "wpa_supplicant*.service")),
    ("cloud-init: the VM's first-boot provisioning", (
        "cloud-init*.service", "cloud-config.service", "cloud-final.service", "cloud-init.target",
        "cloud-init-hotplugd.*")),
)
# (reason, directory, file name patterns): configuration moved aside
MOVES = (
    ("network: ifupdown configuration", "/etc/network/interfaces.d", ("*",)),
    ("network: netplan configuration", "/etc/netplan", ("*.yaml", "*.yml")),
    ("network: NetworkManager connections", "/etc/NetworkManager/system-connections", ("*",)),
    ("network: systemd-networkd configuration", "/etc/systemd/network", ("*.network", "*.netdev", "*.link")),
)
LOOPBACK_ONLY = ("# rich import: the VM's configuration is in %s/etc/network/interfaces;\n"
                 "# the engine gives the container its network.\nauto lo\niface lo inet loopback\n" % SAVE_DIR)


class Rootfs:
    """Reads and writes inside an imported rootfs, every path resolved in the root."""

    def __init__(self, root):
        self.root = root
        self.fd = safepath.open_root(root)

    def close(self):
        os.close(self.fd)

    def lstat(self, path):
        parent, name = self._parent(path)
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)

    def exists(self, path):
        try:
            self.lstat(path)
            return True
        except OSError:
            return False

    def _parent(self, path):
        head, _, name = path.rstrip("/").rpartition("/")
        if not name or name in (".", ".."):
            raise safepath.UnsafePath(errno.EINVAL, "not a file path: %s" % path)
        return safepath.open_in_root(self.fd, head or "/", safepath.O_PATH | os.O_DIRECTORY), name

    def read(self, path, limit=1 << 20):
        fd = safepath.open_in_root(self.fd, path, os.O_RDONLY)
        try:
            return os.read(fd, limit).decode("utf-8", "replace")
        finally:
            os.close(fd)

    def listdir(self, path):
        try:
            fd = safepath.open_in_root(self.fd, path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return []
        try:
            return sorted(os.listdir(fd))
        finally:
            os.close(fd)

    def write(self, path, text, mode=0o644):
        """Replace PATH's content (a new file, renamed over the old one)."""
        parent, name = self._parent(path)
        tmp = ".%s.rich-import" % name
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        finally:
            os.close(parent)

    def symlink(self, target, path):
        parent, name = self._parent(path)
        try:
            os.symlink(target, name, dir_fd=parent)
        finally:
            os.close(parent)

    def move_aside(self, path):
        """Move PATH to SAVE_DIR/PATH (same filesystem: a rename)."""
        src_parent, name = self._parent(path)
        dst_parent = safepath.open_dirs_nofollow(self.fd, SAVE_DIR + os.path.dirname(path.rstrip("/")), 0o700)
        try:
            os.rename(name, name, src_dir_fd=src_parent, dst_dir_fd=dst_parent)
        finally:
            os.close(src_parent)
            os.close(dst_parent)


def _quote(path):
    return "'%s'" % path.replace("'", "'\\''")


def disable(root, folded):
    """Switch off what a container must not run; FOLDED: the mount points copied into the rootfs.
    Returns the list of changes, each {action, path, reason, undo}."""
    fs = Rootfs(root)
    try:
        changes = []
        _fstab(fs, folded, changes)
        _masks(fs, changes)
        _moves(fs, changes)
        _cloud_init(fs, changes)
        if changes:
            _undo_script(fs, changes)
        return changes
    finally:
        fs.close()


def _fstab(fs, folded, changes):
    try:
        text = fs.read("/etc/fstab")
    except OSError:
        return
    lines = text.splitlines()
    hit = []
    for e in parse_fstab(text):
        mp = e.file.rstrip("/") or "/"
        if mp == "/" or e.vfstype == "swap" or mp in folded:
            hit.append(e)
            lines[e.line - 1] = MARK + lines[e.line - 1]
    if not hit:
        return
    fs.move_aside("/etc/fstab")
    fs.write("/etc/fstab", "\n".join(lines) + "\n")
    for e in hit:
        why = "swap: a container has no swap device" if e.vfstype == "swap" else \
            "root: the engine gives the container its root" if e.file == "/" else \
            "folded: the disk's %s is part of the rootfs" % e.file
        changes.append({"action": "fstab", "path": "/etc/fstab", "line": e.line, "entry": "%s %s %s" % (
            e.spec, e.file, e.vfstype), "reason": why, "undo": "cp -p %s/etc/fstab /etc/fstab" % SAVE_DIR})


def _unit_names(fs):
    names = {}
    for d in UNIT_DIRS:
        for n in fs.listdir(d):
            names.setdefault(n, d)
    return names


def _masks(fs, changes):
    names = _unit_names(fs)
    for reason, patterns in MASKS:
        for name in sorted(names):
            if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                continue
            path = "/etc/systemd/system/" + name
            try:
                st = fs.lstat(path)
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode) and _link(fs, path) == "/dev/null":
                continue  # masked already
            undo = "rm -f %s" % _quote(path)
            if st is not None:
                if stat.S_ISDIR(st.st_mode):
                    continue
                fs.move_aside(path)
                undo += " && mv %s %s" % (_quote(SAVE_DIR + path), _quote(path))
            fs.symlink("/dev/null", path)
            changes.append({"action": "mask", "path": path, "unit": name, "reason": reason, "undo": undo})


def _link(fs, path):
    parent, name = fs._parent(path)
    try:
        return os.readlink(name, dir_fd=parent)
    finally:
        os.close(parent)


def _moves(fs, changes):
    if fs.exists("/etc/network/interfaces"):
        body = fs.read("/etc/network/interfaces")
        if any(ln.split()[:1] == ["iface"] and " lo " not in " %s " % ln for ln in body.splitlines()):
            fs.move_aside("/etc/network/interfaces")
            fs.write("/etc/network/interfaces", LOOPBACK_ONLY)
            changes.append({"action": "replace", "path": "/etc/network/interfaces",
                            "reason": "network: ifupdown configuration (loopback kept)",
                            "undo": "mv %s/etc/network/interfaces /etc/network/interfaces" % SAVE_DIR})
    for reason, d, patterns in MOVES:
        for name in fs.listdir(d):
            if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                continue
            path = "%s/%s" % (d, name)
            fs.move_aside(path)
            changes.append({"action": "move", "path": path, "reason": reason,
                            "undo": "mv %s %s" % (_quote(SAVE_DIR + path), _quote(path))})


def _cloud_init(fs, changes):
    if not fs.exists("/etc/cloud") or fs.exists("/etc/cloud/cloud-init.disabled"):
        return
    fs.write("/etc/cloud/cloud-init.disabled", "rich import: a container is not provisioned by cloud-init\n")
    changes.append({"action": "create", "path": "/etc/cloud/cloud-init.disabled",
                    "reason": "cloud-init: the VM's first-boot provisioning",
                    "undo": "rm -f /etc/cloud/cloud-init.disabled"})


def _undo_script(fs, changes):
    lines = ["#!/bin/sh", "# Reverses what `rich import` switched off (see %s)." % REPORT_PATH,
             "# Run it inside the container: sh %s/undo.sh" % SAVE_DIR, "set -e"]
    done = set()
    for c in reversed(changes):
        if c["undo"] not in done:
            lines.append(c["undo"])
            done.add(c["undo"])
    os.close(safepath.open_dirs_nofollow(fs.fd, SAVE_DIR, 0o700))
    fs.write(SAVE_DIR + "/undo.sh", "\n".join(lines) + "\n", 0o755)
