"""The Debian package as a host administrator installs it: built by scripts/build-deb.py, installed
with dpkg into a fresh Debian 12 minbase chroot that has only python3 and the declared dependencies
(tests/support/debian_image.python_image), the tools run there, and `dpkg -r` leaves nothing behind."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.support import debian_image
from tests.support.containers import REPO

# What dpkg and the chroot's own bookkeeping change whatever the package does.
IGNORED = ("proc/", "tmp/", "var/lib/dpkg/", "var/log/", "var/cache/debconf/", "var/cache/ldconfig/")


def _tree(root):
    out = set()
    for dirpath, dirnames, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for n in dirnames + files:
            p = os.path.normpath(os.path.join(rel, n))
            if not (p + "/").startswith(IGNORED):
                out.add(p)
    return out


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    if os.geteuid() != 0 or shutil.which("dpkg-deb") is None or shutil.which("unshare") is None:
        pytest.skip("needs root, dpkg-deb and unshare")
    out = tmp_path_factory.mktemp("deb")
    r = subprocess.run([sys.executable, os.path.join(REPO, "scripts/build-deb.py"), "--output", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture
def chroot(tmp_path):
    try:
        base = debian_image.python_image()
    except debian_image.ImageUnavailable as e:
        pytest.skip(str(e))
    with debian_image.image_copy(base, str(tmp_path)) as rootfs:
        def run(script, timeout=120):
            # a private mount namespace: /proc for the chroot goes away with it
            return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                   'mount -t proc proc "$0/proc" && exec chroot "$0" /bin/sh -c "$1"', rootfs, script],
                                  capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                  env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"})
        yield rootfs, run


def test_deb_installs_runs_and_removes_cleanly(deb, chroot):
    rootfs, run = chroot
    before = _tree(rootfs)
    shutil.copy(deb, os.path.join(rootfs, "tmp/richinit.deb"))
    r = run("dpkg -i /tmp/richinit.deb")
    assert r.returncode == 0, r.stdout + r.stderr
    # postinst built the portable runtime from the chroot's own python3
    assert os.path.isfile(os.path.join(rootfs, "var/lib/richinit/runtime/runtime.json")), r.stdout + r.stderr
    for prog in ("rich", "rich-hook", "richctl"):
        with open(os.path.join(rootfs, "usr/bin", prog)) as f:
            assert f.readline() == "#!/usr/bin/python3 -IS\n", prog
    with open(os.path.join(rootfs, "usr/bin/rich-runtime")) as f:
        text = f.read()  # the sh launcher: create/run to the wrapper on Debian's python3
    assert text.startswith("#!/bin/sh\n") and "exec /usr/bin/python3 -IS -c " in text
    r = run("rich --help && richctl --help && rich-hook; echo rc=$?")
    assert "uninstall" in r.stdout and "rc=2" in r.stdout and "usage: rich-hook" in r.stderr, r.stdout + r.stderr
    # the hook bundle from /usr/share/richinit, staged into a directory and taken out again
    r = run("rich install --docker --containerd --podman --root /tmp/stage")
    assert r.returncode == 0 and "installed /tmp/stage/etc/docker/daemon.json" in r.stdout, r.stdout + r.stderr
    r = run("rich uninstall --root /tmp/stage && find /tmp/stage -type f | wc -l")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "0", r.stdout + r.stderr
    r = run("rich runtime build --output /tmp/rt && test -x /tmp/rt/bin/python3")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("dpkg -r richinit")
    assert r.returncode == 0, r.stdout + r.stderr
    left = _tree(rootfs) - before
    assert left == set(), sorted(left)
