"""`rich run --network bridge` on a busybox rootfs, in a network namespace of the test's own: the
container's address, published port and hostname; and `rich run` SIGKILLed before and after the
network step, then `rich gc`: no namespace, veth, iptables rule or address allocation is left."""

import os
import signal
import sys

import pytest

from tests.integration.richcli.conftest import need_root_and, portable_runtime, richenv  # noqa: F401 (fixtures)
from tests.support.containers import REPO
from tests.support.wait import wait_until

from .conftest import in_netns


def _alloc_dir(env):
    return os.path.join(env.vars["RICHINIT_STATE_DIR"], "cni", "networks", "rich-richbr0")


def _nothing_left(env, netns, name):
    assert not os.path.exists("/run/netns/rich-" + name)
    d = _alloc_dir(env)
    assert not os.path.isdir(d) or [n for n in os.listdir(d) if n[0].isdigit()] == []
    assert "veth" not in in_netns(netns, ["ip", "-o", "link"]).stdout
    rules = in_netns(netns, ["iptables-save"]).stdout
    assert "rich-%s" % name not in rules, rules
    assert env.containers() == []


@pytest.fixture
def bridge_env(richenv, own_netns):  # noqa: F811
    need_root_and("runc")
    if not os.path.exists("/usr/lib/cni/bridge"):
        pytest.skip("containernetworking-plugins is not installed")
    return richenv, own_netns


def test_address_port_and_hostname(bridge_env, busybox_rootfs):
    env, netns = bridge_env
    name = "br-%d" % os.getpid()
    rich = [os.path.join(env.bin, "rich")]
    serve = "echo hello-from-the-container > /tmp/index.html; exec httpd -f -p 8000 -h /tmp"
    r = in_netns(netns, rich + ["run", "-d", "--network", "bridge", "--name", name, "--hostname", "box",
                                "-p", "127.0.0.1:18080:8000", "--no-services", busybox_rootfs, "--", "/bin/sh", "-c",
                                serve], env=env.env)
    assert r.returncode == 0, r.stderr
    try:
        ip = in_netns(netns, rich + ["exec", name, "--", "sh", "-c", "hostname; ip -o -4 addr show eth0"],
                      env=env.env).stdout.split()
        assert ip[0] == "box" and [w for w in ip if w.startswith("10.77.0.")], ip
        fetch = [sys.executable, "-c", "import urllib.request as u; print(u.urlopen('http://127.0.0.1:18080/').read())"]
        got = wait_until(lambda: (lambda p: p.returncode == 0 and p)(in_netns(netns, fetch)), 30)
        assert got and "hello-from-the-container" in got.stdout, got
    finally:
        rm = in_netns(netns, rich + ["rm", "-f", name], env=env.env)
    assert rm.returncode == 0, rm.stderr
    _nothing_left(env, netns, name)


def test_bad_network_options_are_one_line(bridge_env, busybox_rootfs):
    env, netns = bridge_env
    rich = [os.path.join(env.bin, "rich")]
    for args, why in ((["-p", "80:80"], "-p needs --network bridge"),
                      (["--network", "bridge", "-p", "1:2:3:4"], "not an IP address"),
                      (["--network", "bridge", "--ip", "192.168.1.1"], "not a free host address"),
                      (["--hostname", "a b"], "--hostname")):
        r = in_netns(netns, rich + ["run"] + args + [busybox_rootfs, "--", "true"], env=env.env)
        assert r.returncode == 125 and len(r.stderr.splitlines()) == 1 and why in r.stderr, (args, r.stderr)
    assert env.containers() == []


@pytest.mark.parametrize("when", ["before", "after"])
def test_killed_at_the_network_step_then_gc(bridge_env, busybox_rootfs, when):
    env, netns = bridge_env
    name = "brk-%s-%d" % (when, os.getpid())
    r = in_netns(netns, [sys.executable, "-m", "tests.support.killstep", "network", when, "rich", "run", "-d",
                         "--network", "bridge", "-p", "127.0.0.1:18081:80", "--name", name, busybox_rootfs, "--",
                         "sleep", "60"], env=dict(env.env, PYTHONPATH=REPO), timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    if when == "after":
        assert os.path.exists("/run/netns/rich-" + name)
        assert "rich-%s" % name in in_netns(netns, ["iptables-save"]).stdout
    gc = in_netns(netns, [os.path.join(env.bin, "rich"), "gc"], env=env.env)
    assert gc.returncode == 0 and name in gc.stderr, (gc.stdout, gc.stderr)
    _nothing_left(env, netns, name)
