"""A throwaway qemu VM booting Debian's own kernel, for kernel features this machine lacks.

    reason = qemu_vm.unavailable()          # None, or why the VM cannot run here (tests skip on it)
    vm = qemu_vm.Kernel.ensure()             # download/unpack/cache Debian's linux-image once
    res = vm.run_job("/path/job.sh", work_dir, modules=[...], timeout=240)
    res.exit_code, res.console

How it works (see the team's machine notes): `apt-get download` the linux-image-6.1.*-amd64 that
linux-image-amd64 depends on, `dpkg -x` it, `depmod`, decompress the bzImage's xz payload into an
ELF vmlinux (qemu boots it through the PVH entry, skipping the slow in-guest decompression under
TCG), and build a busybox initramfs holding the needed modules in `modprobe --show-depends` order.
The guest shares the host's root read-only over 9p (cache=loose: Python starts fast), mounts fresh
proc/sys/dev/tmp/run over it, mounts a read-write 9p share of work_dir at the same path, chroots
in and runs the job with /bin/sh. The init prints RICH-EXIT=<code> on the serial console and
powers off. Always TCG (the host's KVM cannot run a stock kernel), always under a timeout.

The kernel, its modules and the initramfs are cached under /var/cache/richinit/vm.
"""

import lzma
import os
import re
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass

CACHE = "/var/cache/richinit/vm"
QEMU = "qemu-system-x86_64"
BASE_MODULES = ["virtio_pci", "9pnet_virtio", "9p"]
_EXIT_TAG = "RICH-EXIT="

_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /lib/modules/$m 2>/dev/null || echo "init: insmod $m failed"; done
job=; work=
for a in $(cat /proc/cmdline); do
  case "$a" in rich.job=*) job=${a#rich.job=};; rich.work=*) work=${a#rich.work=};; esac
done
mkdir -p /host
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose host /host || echo "init: no host share"
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/shm && mount -t tmpfs tmpfs /host/dev/shm
mount -t tmpfs -o mode=1777 tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
mkdir -p /host$work 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 work /host$work || echo "init: no work share"
PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot /host /bin/sh "$job" </dev/null >/dev/console 2>&1
rc=$?
echo "%s$rc" >/dev/console
sync
poweroff -f
""" % _EXIT_TAG


def unavailable():
    """None when a VM can be booted here, else the reason (for pytest.skip)."""
    if os.geteuid() != 0:
        return "needs root (9p passthrough of the host root)"
    for tool in (QEMU, "busybox", "depmod", "modprobe", "apt-get", "dpkg"):
        if shutil.which(tool) is None:
            return "%s is not installed (apt-get install qemu-system-x86 kmod busybox-static)" % tool
    return None


def _run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def kernel_package():
    """linux-image-6.1.0-NN-amd64: what the linux-image-amd64 metapackage depends on today."""
    out = _run(["apt-cache", "depends", "linux-image-amd64"]).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends:") and "linux-image-" in line:
            return line.split()[1]
    raise RuntimeError("apt-cache depends linux-image-amd64: no linux-image dependency in %r" % out)


def _vmlinux_from_bzimage(bz, out):
    with open(bz, "rb") as f:
        data = f.read()
    at = data.find(b"\xfd7zXZ\x00")
    if at < 0:
        raise RuntimeError("%s: no xz payload" % bz)
    d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elf = d.decompress(data[at:])
    if not elf.startswith(b"\x7fELF"):
        raise RuntimeError("%s: the xz payload is not an ELF kernel" % bz)
    with open(out + ".tmp", "wb") as f:
        f.write(elf)
    os.rename(out + ".tmp", out)


def _cpio_newc(entries):
    """entries: [(name, mode, data bytes or symlink target)] -> newc archive bytes."""
    out = bytearray()

    def pad():
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (name, mode, data) in enumerate(list(entries) + [("TRAILER!!!", 0, b"")], start=1):
        nb = name.encode() + b"\0"
        fields = [ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data), 0, 0, 0, 0, len(nb), 0]
        out.extend(b"070701" + b"".join(b"%08X" % v for v in fields))
        out.extend(nb)
        pad()
        out.extend(data)
        pad()
    return bytes(out)


@dataclass
class Result:
    exit_code: int | None
    console: str
    seconds: float


class Kernel:
    def __init__(self, root, version):
        self.root, self.version = root, version
        self.vmlinux = os.path.join(root, "vmlinux")

    @classmethod
    def ensure(cls, cache=CACHE):
        pkg = kernel_package()
        root = os.path.join(cache, pkg)
        version = pkg[len("linux-image-"):]
        marker = os.path.join(root, ".ready")
        if not os.path.exists(marker):
            os.makedirs(cache, exist_ok=True)
            debs = [f for f in os.listdir(cache) if f.startswith(pkg + "_") and f.endswith(".deb")]
            if not debs:
                _run(["apt-get", "download", pkg], cwd=cache)
                debs = [f for f in os.listdir(cache) if f.startswith(pkg + "_") and f.endswith(".deb")]
            shutil.rmtree(root, ignore_errors=True)
            _run(["dpkg", "-x", os.path.join(cache, sorted(debs)[-1]), root])
            _run(["depmod", "-b", root, version])
            _vmlinux_from_bzimage(os.path.join(root, "boot", "vmlinuz-" + version), os.path.join(root, "vmlinux"))
            open(marker, "w").close()
        return cls(root, version)

    def module_files(self, modules):
        """The .ko files for modules and their dependencies, in load order."""
        out = []
        for m in list(BASE_MODULES) + list(modules):
            deps = _run(["modprobe", "--show-depends", "-d", self.root, "-S", self.version, m]).stdout
            for line in deps.splitlines():
                parts = line.split()
                if parts and parts[0] == "insmod" and parts[1] not in out:
                    out.append(parts[1])
        return out

    def initramfs(self, modules):
        """Build (or reuse) the initramfs holding busybox, our init and these modules."""
        files = self.module_files(modules)
        name = "initrd-%08x.cpio" % (hash(tuple(files) + (_INIT,)) & 0xFFFFFFFF)
        path = os.path.join(self.root, name)
        if os.path.exists(path):
            return path
        with open(shutil.which("busybox"), "rb") as f:
            bb = f.read()
        entries = [("bin", 0o40755, b""), ("proc", 0o40755, b""), ("sys", 0o40755, b""), ("dev", 0o40755, b""),
                   ("lib", 0o40755, b""), ("lib/modules", 0o40755, b""),
                   ("bin/busybox", 0o100755, bb), ("init", 0o100755, _INIT.encode())]
        order = []
        for ko in files:
            with open(ko, "rb") as f:
                entries.append(("lib/modules/" + os.path.basename(ko), 0o100644, f.read()))
            order.append(os.path.basename(ko))
        entries.append(("modules.order", 0o100644, "\n".join(order).encode() + b"\n"))
        with open(path + ".tmp", "wb") as f:
            f.write(_cpio_newc(entries))
        os.rename(path + ".tmp", path)
        return path

    def run_job(self, job, work_dir, modules=(), timeout=240, memory_mb=1024, cpus=2):
        """Boot, run `sh job` chrooted into the host's root, power off. Never outlives timeout."""
        initrd = self.initramfs(modules)
        work_dir = os.path.realpath(work_dir)
        argv = ["timeout", "-k", "5", str(timeout), QEMU, "-accel", "tcg", "-cpu", "max", "-m", str(memory_mb),
                "-smp", str(cpus), "-nographic", "-no-reboot", "-monitor", "none",
                "-kernel", self.vmlinux, "-initrd", initrd,
                "-append", "console=ttyS0 quiet panic=-1 rdinit=/init rich.job=%s rich.work=%s" % (job, work_dir),
                "-virtfs", "local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap",
                "-virtfs", "local,path=%s,mount_tag=work,security_model=passthrough,multidevs=remap" % work_dir]
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
        console = r.stdout + r.stderr
        found = re.findall(_EXIT_TAG + r"(-?[0-9]+)", console)
        code = int(found[-1]) if found else None
        return Result(code, console, time.monotonic() - t0)
