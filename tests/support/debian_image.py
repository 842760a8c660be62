"""A real Debian image (debootstrap minbase + sshd, cron, rsyslog), built once and cached.

    base = cached_image()                 # builds on first use (~40 s, needs the Debian mirror)
    vm = vm_image()                       # the VM variant: systemd and packaged daemons (~3-4 min)
    py = python_image()                   # the variant for installing our .deb: python3 and its deps
    with image_copy(base, workdir) as rootfs:   # a writable overlay (or copy) for one test
        ...

The cache lives in CACHE_DIR (RICHINIT_TEST_CACHE overrides it), one directory per key: the
suite, variant, mirror and package list. A build goes to a sibling temporary directory and is
renamed into place only when debootstrap succeeded, under a lock, so a failed or concurrent
build never leaves a half image that later runs would trust. Tests never write into the cached
tree: they get an overlay mount on top of it (a full copy where overlayfs is unavailable).
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

CACHE_DIR = os.environ.get("RICHINIT_TEST_CACHE", "/var/cache/richinit")
SUITE = "bookworm"
VARIANT = "minbase"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("openssh-server", "cron", "rsyslog", "iproute2")
# What the richinit .deb depends on (scripts/build-deb.py), so `dpkg -i` needs no mirror.
PYTHON_PACKAGES = ("python3", "python3-yaml", "python3-setproctitle", "python3-tomlkit", "python3-daemon")
BUILD_TIMEOUT = 300  # a hung mirror must not hang the suite
# The VM variant (issue 10): what a Debian 12 VM runs, with systemd installed (its units, /sbin/init)
# and packaged daemons whose postinsts enable their units in multi-user.target.wants. The unit loader's
# tests and the systemctl/systemd peer tests share it (one cache key).
VM_PACKAGES = ("systemd", "systemd-sysv", "openssh-server", "cron", "rsyslog", "iproute2", "nginx-light",
               "redis-server", "memcached", "postgresql", "python3", "curl", "netcat-openbsd", "procps")
VM_BUILD_TIMEOUT = 900


class ImageUnavailable(Exception):
    """The image cannot be had on this machine (no debootstrap, no mirror): tests skip with this."""


def cache_key(suite=SUITE, variant=VARIANT, mirror=MIRROR, packages=PACKAGES):
    text = json.dumps({"suite": suite, "variant": variant, "mirror": mirror, "packages": sorted(packages)},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_dir(cache_dir=CACHE_DIR, **key):
    return os.path.join(cache_dir, "debian-%s-%s" % (key.get("suite", SUITE), cache_key(**key)))


def _complete(path, check):
    return os.path.isfile(os.path.join(path, check)) and os.path.isfile(os.path.join(path, ".richinit-image"))


def vm_image(cache_dir=CACHE_DIR):
    """The cached VM variant (VM_PACKAGES), built first if needed. Raises ImageUnavailable."""
    return cached_image(cache_dir, packages=VM_PACKAGES, timeout=VM_BUILD_TIMEOUT)


def python_image(cache_dir=CACHE_DIR):
    """The minbase image with Debian's python3 and what the richinit .deb depends on."""
    return cached_image(cache_dir, packages=PYTHON_PACKAGES, check="usr/bin/python3")


def cached_image(cache_dir=CACHE_DIR, suite=SUITE, variant=VARIANT, mirror=MIRROR, packages=PACKAGES,
                 timeout=BUILD_TIMEOUT, check="usr/sbin/sshd"):
    """The cached image directory, built first if needed (complete when `check`, a file of one of
    the packages, is there). Raises ImageUnavailable with the reason."""
    final = image_dir(cache_dir, suite=suite, variant=variant, mirror=mirror, packages=packages)
    if _complete(final, check):
        return final
    if shutil.which("debootstrap") is None:
        raise ImageUnavailable("debootstrap is not installed")
    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    with open(os.path.join(cache_dir, ".debian-build.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent run builds it once; we then use theirs
        if _complete(final, check):
            return final
        tmp = tempfile.mkdtemp(prefix=".%s.new-" % os.path.basename(final), dir=cache_dir)
        try:
            r = subprocess.run(["debootstrap", "--variant=" + variant, "--include=" + ",".join(packages),
                                suite, tmp, mirror], capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
                raise ImageUnavailable("debootstrap %s failed (no network or mirror?): %s"
                                       % (suite, " | ".join(tail)))
            with open(os.path.join(tmp, ".richinit-image"), "w") as f:
                json.dump({"suite": suite, "variant": variant, "mirror": mirror, "packages": sorted(packages)}, f)
            # debootstrap leaves the mirror's .debs behind: not needed to run, 80 MB of cache.
            archives = os.path.join(tmp, "var/cache/apt/archives")
            for name in os.listdir(archives) if os.path.isdir(archives) else ():
                if name.endswith(".deb"):
                    os.unlink(os.path.join(archives, name))
            os.chmod(tmp, 0o755)  # mkdtemp made it 0700: the image's / must be traversable by its users
            if os.path.lexists(final):
                shutil.rmtree(final)
            os.rename(tmp, final)
        except subprocess.TimeoutExpired:
            raise ImageUnavailable("debootstrap %s took longer than %d s" % (suite, timeout)) from None
        finally:
            if os.path.lexists(tmp):
                _umount_below(tmp)
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def _umount_below(path):
    """debootstrap mounts proc/sys in the target; a failed run can leave them behind."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in sorted((p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True)


@contextlib.contextmanager
def image_copy(base, workdir):
    """A writable rootfs over the cached image at WORKDIR/rootfs: overlayfs, or a copy as fallback.

    The overlay is unmounted (lazily, in case a process still holds it) and WORKDIR's layers removed
    on exit.
    """
    rootfs = os.path.join(workdir, "rootfs")
    upper, work = os.path.join(workdir, "upper"), os.path.join(workdir, "work")
    for d in (rootfs, upper, work):
        os.makedirs(d, exist_ok=True)
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        "lowerdir=%s,upperdir=%s,workdir=%s" % (base, upper, work), rootfs],
                       capture_output=True, text=True)
    mounted = r.returncode == 0
    if not mounted:
        subprocess.run(["cp", "-a", base + "/.", rootfs], check=True)
    try:
        yield rootfs
    finally:
        if mounted:
            subprocess.run(["umount", rootfs], capture_output=True)
            if os.path.ismount(rootfs):
                subprocess.run(["umount", "-l", rootfs], capture_output=True)
        for d in (rootfs, upper, work):
            shutil.rmtree(d, ignore_errors=True)
