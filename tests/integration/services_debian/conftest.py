"""Fixtures for services on a real Debian image: the cached image, the portable runtime, a netns
with a veth pair to reach the container from the host, and an ssh key.

Everything created here is removed here: the overlay over the cached image (debian_image), the
network namespace and the veth (deleting the host end removes the pair), the key's temp dir.
"""

import ipaddress
import os
import random
import shutil
import subprocess
import tempfile
import uuid

import pytest

from tests.support import debian_image
from tests.support.containers import have


def need(*tools):
    if os.geteuid() != 0:
        pytest.skip("needs root to run containers and create network namespaces")
    for t in tools:
        if not have(t):
            pytest.skip("%s is not installed" % t)


@pytest.fixture(scope="session")
def debian_base():
    """The cached debootstrap image (built on first use, ~80 s; then reused)."""
    need("runc", "debootstrap")
    try:
        return debian_image.cached_image()
    except debian_image.ImageUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def richinit_runtime():
    """The portable runtime built from this tree (~2 s), bound read-only at /.richinit."""
    need("ldd")
    if not os.access("/usr/bin/python3.11", os.X_OK):
        pytest.skip("Debian's /usr/bin/python3.11 is not installed")
    from runtime_hooks import portable
    parent = tempfile.mkdtemp(prefix="richinit-runtime-")
    try:
        out = os.path.join(parent, "runtime")
        m = portable.build(out)
        assert os.path.exists(os.path.join(out, "lib", "site-packages", "services.d", "sshd.yaml"))
        yield {"dir": out, "argv": list(m["argv"])}
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _addresses_in_use():
    r = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True)
    nets = []
    for line in r.stdout.splitlines():
        for word in line.split():
            if "/" in word and word[0].isdigit():
                try:
                    nets.append(ipaddress.ip_interface(word).network)
                except ValueError:
                    pass
    return nets


def _free_slash30():
    """A /30 in 10.0.0.0/8 that overlaps nothing on the host's interfaces."""
    used = _addresses_in_use()
    rnd = random.Random()
    for _ in range(100):
        net = ipaddress.ip_network("10.%d.%d.%d/30" % (rnd.randrange(200, 250), rnd.randrange(256),
                                                      rnd.randrange(64) * 4))
        if not any(net.overlaps(u) for u in used):
            return net
    pytest.skip("no free 10.x /30 for the veth pair")


def _is_mount_point(path):
    """From mountinfo: os.path.ismount misses a directory bind-mounted onto itself (same device)."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


@pytest.fixture(scope="module")
def netns():
    """A fresh network namespace with lo up and a veth /30 to the host. Yields a small record."""
    need("ip")
    tag = uuid.uuid4().hex[:8]
    name, host_if, ns_if = "rich-%s" % tag, "rh%s" % tag, "rc%s" % tag
    net = _free_slash30()
    host_addr, ns_addr = [str(a) for a in net.hosts()]

    def ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    # `ip netns add` turns /run/netns into a mount point the first time; undo that only if we did it
    # and nobody else has a namespace there by then.
    netns_was_mounted = _is_mount_point("/run/netns")
    created_ns = created_link = False
    try:
        ip("netns", "add", name)
        created_ns = True
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        created_link = True
        ip("link", "set", ns_if, "netns", name)
        ip("addr", "add", "%s/30" % host_addr, "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("-n", name, "addr", "add", "%s/30" % ns_addr, "dev", ns_if)
        ip("-n", name, "link", "set", ns_if, "up")
        ip("-n", name, "link", "set", "lo", "up")
        ns = type("Netns", (), {})()
        ns.name, ns.path, ns.host_addr, ns.addr, ns.host_if = name, "/run/netns/" + name, host_addr, ns_addr, host_if
        yield ns
    finally:
        if created_link:
            subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        if created_ns:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        if not netns_was_mounted and _is_mount_point("/run/netns") and not os.listdir("/run/netns"):
            subprocess.run(["umount", "/run/netns"], capture_output=True)


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory):
    """An ed25519 key pair without passphrase: (private path, public key text)."""
    need("ssh", "ssh-keygen")
    d = tmp_path_factory.mktemp("sshkey")
    key = str(d / "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "richinit-test", "-f", key], check=True)
    with open(key + ".pub") as f:
        pub = f.read()
    yield key, pub
    shutil.rmtree(str(d), ignore_errors=True)
