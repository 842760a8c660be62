"""Fixtures for `rich import` on real disks: small synthetic disks made with the host's tools
(sfdisk, mkfs.*, loop devices), the import run as its own process (it unshares its mount
namespace), and a check that nothing of an import is left: loop devices over its exports,
qemu-storage-daemon processes, scratch directories. This test run's imports keep their scratch
directories in SCRATCH (their TMPDIR), so the check sees only them, never the imports another test
run on the machine has under way.
"""

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from tests.support.containers import REPO

MIB = 1 << 20
TOOLS = ("qemu-storage-daemon", "qemu-img", "sfdisk", "blkid", "mkfs.ext4", "lvm", "tar")
SCRATCH = os.path.join(tempfile.gettempdir(), "vmimport-tests-%d" % os.getpid())


def scratch_env(env=None):
    """ENV (default: ours) with TMPDIR=SCRATCH: where an import makes its scratch directory."""
    os.makedirs(SCRATCH, exist_ok=True)
    return dict(os.environ if env is None else env, TMPDIR=SCRATCH)


@pytest.fixture(scope="session", autouse=True)
def _scratch_removed():
    yield
    with contextlib.suppress(OSError):
        os.rmdir(SCRATCH)  # left in place when not empty: leftovers() said so


def need_tools(*extra):
    if os.geteuid() != 0:
        pytest.skip("rich import needs root (loop devices, mounts)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse for qemu-storage-daemon's export")
    missing = [t for t in TOOLS + extra if shutil.which(t) is None]
    if missing:
        pytest.skip("missing: %s (bash scripts/setup.sh)" % " ".join(missing))


def rich_import(*args, timeout=600):
    """`rich import ARGS` as its own process (the CompletedProcess)."""
    r = subprocess.run([sys.executable, "-m", "runtime_hooks.cli", "import"] + [str(a) for a in args], cwd=REPO,
                       capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=scratch_env())
    return r


def leftovers():
    """What this run's imports could leave behind: loop devices over an export, its daemons, scratch
    dirs."""
    mark = SCRATCH + "/rich-import-"
    out = []
    for dev in sorted(os.listdir("/sys/block")):
        try:
            with open("/sys/block/%s/loop/backing_file" % dev) as f:
                backing = f.read().strip()
        except OSError:
            continue
        if backing.startswith(mark):
            out.append("%s over %s" % (dev, backing))
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("qemu-storage-daemon") and mark in cmd:
                out.append("qemu-storage-daemon %s" % pid)
    if os.path.isdir(SCRATCH):
        out += [os.path.join(SCRATCH, n) for n in os.listdir(SCRATCH)]
    return out


def run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


@contextlib.contextmanager
def loop(path, offset, size):
    dev = run(["losetup", "-f", "--show", "-o", str(offset), "--sizelimit", str(size), path]).strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


@contextlib.contextmanager
def mounted(dev, target, *opts):
    os.makedirs(target, exist_ok=True)
    run(["mount"] + list(opts) + [dev, target])
    try:
        yield target
    finally:
        subprocess.run(["umount", target], capture_output=True)


def make_disk(path, size, label, parts):
    """A raw disk with an sfdisk table: parts = [(offset, size, type-or-guid[, name])]."""
    with open(path, "wb") as f:
        f.truncate(size)
    lines = ["label: %s" % label, "unit: sectors"]
    for p in parts:
        extra = ', name="%s"' % p[3] if len(p) > 3 else ""
        lines.append("start=%d, size=%d, type=%s%s" % (p[0] // 512, p[1] // 512, p[2], extra))
    subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", path], input="\n".join(lines) + "\n",
                   check=True, capture_output=True, text=True)
    return path


def write_os(root, fstab, pretty="Test Linux 1"):
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    with open(os.path.join(root, "etc/os-release"), "w") as f:
        f.write('ID=testlinux\nVERSION_ID=1\nPRETTY_NAME="%s"\n' % pretty)
    with open(os.path.join(root, "etc/fstab"), "w") as f:
        f.write(fstab)


def listing(root, skip=("var/lib/richinit",)):
    """A sorted listing of a tree: path, type+mode, owner, size/link/rdev, content hash."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        rel_dir = os.path.relpath(dirpath, root)
        if any(rel_dir == s or rel_dir.startswith(s + "/") for s in skip):
            dirs[:] = []
            continue
        for name in sorted(dirs + files):
            p = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                what = h.hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                what = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                what = ""
            out.append("%s %o %d:%d %s" % (rel, st.st_mode, st.st_uid, st.st_gid, what))
    return out


@pytest.fixture
def own_netns():
    """A network namespace of the test's own: the bridge, veths and iptables rules of
    `--network bridge` are made in it (rich runs there through nsenter), never on the host's."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    missing = [t for t in ("ip", "nsenter", "iptables", "ssh") if shutil.which(t) is None]
    if missing:
        pytest.skip("missing: %s" % " ".join(missing))
    if not os.path.exists("/usr/lib/cni/bridge"):
        pytest.skip("containernetworking-plugins is not installed")
    name = "rvmt-%d-%s" % (os.getpid(), os.urandom(2).hex())
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield "/run/netns/" + name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def in_netns(netns, argv, env=None, timeout=60):
    return subprocess.run(["nsenter", "--net=" + netns] + argv, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
