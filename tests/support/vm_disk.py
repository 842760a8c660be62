"""A bootable Debian 12 VM disk (qcow2, with raw and vmdk copies), built once and cached.

    disk = vm_disk.cached_disk()      # builds on first use (debootstrap + partitioning, minutes)
    disk.qcow2, disk.raw, disk.vmdk, disk.ssh_key, disk.layout

What is on it, as a VM would have it:
- an MBR partition table: p1 ext4 root (bootable, extlinux in the MBR and /boot/extlinux),
  p2 a swap partition (LABEL=vmswap), p3 an LVM physical volume holding VG `richvm`, LV `var`
  (xfs) mounted on /var; /etc/fstab names root by UUID=, /var by its /dev/richvm/var path and
  swap by LABEL=;
- debootstrap minbase + systemd, udev, linux-image-amd64 (initramfs-tools), lvm2, ifupdown (a
  static address for qemu's user network in /etc/network/interfaces), openssh-server (root logs
  in with the key kept beside the disk), nginx-light, and a unit of its own, rich-hello.service,
  enabled: after nginx and ssh it writes /run/rich-hello.up and prints READY_MARK on the console.

This kernel has no device-mapper, so the LV is made with lvm's `global/activation=0` (metadata
only) and formatted through a loop device at the LV's extents; lvm runs with a filter admitting
only our loop device and no backups, so the host's own LVM state is never touched.

The cache lives in CACHE_DIR/vmdisk-KEY (KEY: a hash of the package list, the layout and this
file's build recipe version), built in a sibling temporary directory under a lock and renamed
into place only when complete.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass

from tests.support.debian_image import CACHE_DIR, MIRROR, SUITE, ImageUnavailable, _umount_below

RECIPE = 3  # bump when the build below changes what ends up on the disk
PACKAGES = ("systemd", "systemd-sysv", "udev", "linux-image-amd64", "initramfs-tools", "lvm2", "ifupdown",
            "iproute2", "openssh-server", "nginx-light")
MIB = 1024 * 1024
DISK_SIZE = 2048 * MIB
ROOT_PART = (1 * MIB, 1280 * MIB)      # (offset, size) of p1
SWAP_PART = (1281 * MIB, 64 * MIB)     # p2
LVM_PART = (1345 * MIB, DISK_SIZE - 1345 * MIB)  # p3 to the end
VG, LV, LV_SIZE = "richvm", "var", "600M"
HOSTNAME = "richvm"
READY_MARK = "RICH-VM-READY"
BUILD_TIMEOUT = 1200
BUILD_TOOLS = ("debootstrap", "sfdisk", "losetup", "mkfs.ext4", "mkfs.xfs", "mkswap", "lvm", "extlinux", "qemu-img")

HELLO_UNIT = """[Unit]
Description=richvm's own service: says it is up once nginx and ssh are
After=nginx.service ssh.service networking.service

[Service]
Type=simple
ExecStart=/bin/sh -c 'echo up > /run/rich-hello.up; echo %s > /dev/console; exec sleep infinity'

[Install]
WantedBy=multi-user.target
""" % READY_MARK

INTERFACES = """# The VM's own network configuration (ifupdown)
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

allow-hotplug ens3
iface ens3 inet static
    address 10.0.2.15/24
    gateway 10.0.2.2
"""


@dataclass
class Disk:
    dir: str

    @property
    def qcow2(self):
        return os.path.join(self.dir, "disk.qcow2")

    @property
    def raw(self):
        return os.path.join(self.dir, "disk.raw")

    @property
    def vmdk(self):
        return os.path.join(self.dir, "disk.vmdk")

    @property
    def ssh_key(self):
        return os.path.join(self.dir, "id_ed25519")

    @property
    def layout(self):
        with open(os.path.join(self.dir, "layout.json")) as f:
            return json.load(f)


def cache_key():
    text = json.dumps({"suite": SUITE, "mirror": MIRROR, "packages": sorted(PACKAGES), "recipe": RECIPE,
                       "parts": [ROOT_PART, SWAP_PART, LVM_PART], "lv": [VG, LV, LV_SIZE]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def disk_dir(cache_dir=CACHE_DIR):
    return os.path.join(cache_dir, "vmdisk-%s" % cache_key())


def _complete(path):
    return os.path.isfile(os.path.join(path, "layout.json"))


def unavailable():
    """None when the disk can be built here, else the reason (tests skip with it)."""
    if os.geteuid() != 0:
        return "building a VM disk needs root"
    missing = [t for t in BUILD_TOOLS if shutil.which(t) is None]
    if missing:
        return "missing tools: %s (bash scripts/setup.sh)" % " ".join(missing)
    return None


def cached_disk(cache_dir=CACHE_DIR, log=None):
    """The cached Disk, built first if needed. Raises ImageUnavailable with the reason."""
    final = disk_dir(cache_dir)
    if _complete(final):
        return Disk(final)
    why = unavailable()
    if why:
        raise ImageUnavailable(why)
    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    with open(os.path.join(cache_dir, ".vmdisk-build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _complete(final):
            return Disk(final)
        tmp = tempfile.mkdtemp(prefix=".%s.new-" % os.path.basename(final), dir=cache_dir)
        try:
            _build(tmp, log or (lambda m: None))
            os.chmod(tmp, 0o755)
            if os.path.lexists(final):
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            if os.path.lexists(tmp):
                _umount_below(tmp)
                shutil.rmtree(tmp, ignore_errors=True)
    return Disk(final)


def _run(argv, timeout=300, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    if r.returncode != 0:
        tail = " | ".join((r.stdout + r.stderr).strip().splitlines()[-4:])
        raise ImageUnavailable("%s failed: %s" % (argv[0], tail))
    return r.stdout


def lvm_config(loopdev):
    """lvm --config text: only LOOPDEV is seen, no device-mapper, no backups, no host devices file."""
    return ('devices { filter=["a|^%s$|","r|.*|"] use_devicesfile=0 scan=["/dev"] } '
            'global { activation=0 } backup { backup=0 archive=0 }' % loopdev)


def _write(root, rel, text, mode=0o644):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


@contextlib.contextmanager
def _loop(path, offset, size):
    argv = ["losetup", "-f", "--show", "-o", str(offset), "--sizelimit", str(size), path]
    dev = _run(argv).strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


@contextlib.contextmanager
def _mounted(dev, target, *opts):
    os.makedirs(target, exist_ok=True)
    _run(["mount"] + list(opts) + [dev, target])
    try:
        yield target
    finally:
        subprocess.run(["umount", target], capture_output=True)


def _debootstrap(tree, log):
    log("debootstrap %s with %s" % (SUITE, ",".join(PACKAGES)))
    _run(["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, tree, MIRROR],
         timeout=BUILD_TIMEOUT)
    _umount_below(tree)


def _configure(tree, root_uuid, key_pub):
    _write(tree, "etc/hostname", HOSTNAME + "\n")
    _write(tree, "etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost\n" % HOSTNAME)
    _write(tree, "etc/fstab", "# <file system> <mount point> <type> <options> <dump> <pass>\n"
           "UUID=%s / ext4 errors=remount-ro 0 1\n"
           "/dev/%s/%s /var xfs defaults 0 2\n"
           "LABEL=vmswap none swap sw 0 0\n" % (root_uuid, VG, LV))
    _write(tree, "etc/network/interfaces", INTERFACES)
    _write(tree, "etc/systemd/system/rich-hello.service", HELLO_UNIT)
    wants = os.path.join(tree, "etc/systemd/system/multi-user.target.wants")
    os.makedirs(wants, exist_ok=True)
    os.symlink("/etc/systemd/system/rich-hello.service", os.path.join(wants, "rich-hello.service"))
    _write(tree, "root/.ssh/authorized_keys", key_pub, 0o600)
    os.chmod(os.path.join(tree, "root/.ssh"), 0o700)
    _write(tree, "etc/machine-id", "")
    # A small initramfs: the disk is virtio, root is ext4 (lvm2's hook adds dm for itself).
    _write(tree, "etc/initramfs-tools/conf.d/richvm", "MODULES=list\n")
    _write(tree, "etc/initramfs-tools/modules", "virtio_pci\nvirtio_blk\next4\n")
    _run(["chroot", tree, "update-initramfs", "-u", "-k", "all"], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    kernels = sorted(n for n in os.listdir(os.path.join(tree, "boot")) if n.startswith("vmlinuz-"))
    version = kernels[-1][len("vmlinuz-"):]
    _write(tree, "boot/extlinux/extlinux.conf",
           "DEFAULT debian\nTIMEOUT 0\nPROMPT 0\nLABEL debian\n  KERNEL /boot/vmlinuz-%s\n"
           "  INITRD /boot/initrd.img-%s\n  APPEND root=UUID=%s ro console=ttyS0 quiet\n"
           % (version, version, root_uuid))
    archives = os.path.join(tree, "var/cache/apt/archives")
    for name in os.listdir(archives):
        if name.endswith(".deb"):
            os.unlink(os.path.join(archives, name))
    return version


def _lv_offset(loopdev):
    """Byte offset and size of VG/LV inside the PV on LOOPDEV (a single linear segment)."""
    cfg = lvm_config(loopdev)
    segs = json.loads(_run(["lvm", "lvs", "--config", cfg, "--nolocking", "--readonly", "--reportformat", "json",
                            "--units", "b", "--nosuffix", "--segments", "-o",
                            "vg_name,lv_name,segtype,seg_pe_ranges,vg_extent_size", VG]))["report"][0]["seg"]
    pvs = json.loads(_run(["lvm", "pvs", "--config", cfg, "--nolocking", "--readonly", "--reportformat", "json",
                           "--units", "b", "--nosuffix", "-o", "pv_name,pe_start"]))["report"][0]["pv"]
    (seg,) = [s for s in segs if s["lv_name"] == LV]
    first, last = seg["seg_pe_ranges"].rsplit(":", 1)[1].split("-")
    extent = int(seg["vg_extent_size"])
    return int(pvs[0]["pe_start"]) + int(first) * extent, (int(last) - int(first) + 1) * extent


def _build(out, log):
    work = tempfile.mkdtemp(prefix="build-", dir=out)
    tree = os.path.join(work, "tree")
    _debootstrap(tree, log)
    raw = os.path.join(out, "disk.raw")
    with open(raw, "wb") as f:
        f.truncate(DISK_SIZE)
    table = ("label: dos\nunit: sectors\n"
             "start=%d, size=%d, type=83, bootable\nstart=%d, size=%d, type=82\nstart=%d, size=%d, type=8e\n"
             % tuple(x // 512 for x in ROOT_PART + SWAP_PART + LVM_PART))
    r = subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", raw], input=table, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise ImageUnavailable("sfdisk failed: %s" % r.stderr.strip())
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "richvm-test", "-f", os.path.join(out, "id_ed25519")])
    with open(os.path.join(out, "id_ed25519.pub")) as f:
        key_pub = f.read()
    root_uuid = str(uuid.uuid4())
    log("configuring the tree (initramfs, extlinux)")
    version = _configure(tree, root_uuid, key_pub)
    mnt = os.path.join(work, "mnt")
    with _loop(raw, *ROOT_PART) as rootdev, _loop(raw, *SWAP_PART) as swapdev, _loop(raw, *LVM_PART) as pvdev:
        log("formatting")
        _run(["mkfs.ext4", "-q", "-O", "^64bit", "-U", root_uuid, "-L", "richroot", rootdev])
        _run(["mkswap", "-L", "vmswap", swapdev])
        cfg = lvm_config(pvdev)
        _run(["lvm", "pvcreate", "--config", cfg, "--nolocking", pvdev])
        _run(["lvm", "vgcreate", "--config", cfg, "--nolocking", VG, pvdev])
        _run(["lvm", "lvcreate", "--config", cfg, "--nolocking", "-an", "-Zn", "-n", LV, "-L", LV_SIZE, VG])
        lv_off, lv_size = _lv_offset(pvdev)
        with _loop(pvdev, lv_off, lv_size) as lvdev:
            _run(["mkfs.xfs", "-q", "-L", "richvar", lvdev])
            with _mounted(rootdev, mnt):
                log("copying / (without /var)")
                _run(["tar", "-C", tree, "--exclude=./var/*", "--xattrs", "--acls", "--numeric-owner", "-cf",
                      os.path.join(work, "root.tar"), "."], timeout=BUILD_TIMEOUT)
                _run(["tar", "-C", mnt, "--xattrs", "--acls", "--numeric-owner", "-xpf",
                      os.path.join(work, "root.tar")], timeout=BUILD_TIMEOUT)
                os.unlink(os.path.join(work, "root.tar"))
                _run(["extlinux", "--install", os.path.join(mnt, "boot/extlinux")])
                with _mounted(lvdev, os.path.join(work, "var")):
                    log("copying /var")
                    _run(["cp", "-a", "--sparse=always", os.path.join(tree, "var") + "/.", os.path.join(work, "var")],
                         timeout=BUILD_TIMEOUT)
    with open("/usr/lib/EXTLINUX/mbr.bin", "rb") as f:
        mbr = f.read(440)
    with open(raw, "r+b") as f:
        f.write(mbr)
    log("converting to qcow2 and vmdk")
    _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, os.path.join(out, "disk.qcow2")],
         timeout=BUILD_TIMEOUT)
    _run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", raw, os.path.join(out, "disk.vmdk")],
         timeout=BUILD_TIMEOUT)
    shutil.rmtree(work)
    with open(os.path.join(out, "layout.json"), "w") as f:
        json.dump({"root_uuid": root_uuid, "kernel": version, "vg": VG, "lv": LV, "hostname": HOSTNAME,
                   "packages": sorted(PACKAGES), "ready_mark": READY_MARK}, f)


if __name__ == "__main__":
    import sys
    print(cached_disk(log=lambda m: print("vm_disk:", m, file=sys.stderr, flush=True)).dir)
