"""Issue 4's "Must show": the cached Debian image (sshd, cron, rsyslog), UNMODIFIED, comes up rich.

The image has no richinit and no service definitions of ours; its config.json is what an engine
would write (the image's own command, a shell that waits) plus the annotations
io.richinit.rich=true and io.richinit.services=sshd,cron,syslog. It goes through rich-runtime
(the wrapper) with the full host side of this session (rich-hook, /proc views), and real runc
runs the rewritten bundle in a network namespace reached from the host over a veth pair.

Shown from the host: richinit is PID 1; richctl (run inside with the portable runtime's own
interpreter) reports the image's sshd, cron and rsyslogd up; ssh with a key over the veth logs
in; `logger` inside lands in /var/log/syslog; TERM to the container stops it cleanly (exit 0,
every process of the container gone, the view registration released by poststop).
Everything is removed at the end: the container, the overlay, the netns and veth, the key.
"""

import json
import os
import subprocess
import time

import pytest

from runtime_hooks.portable_manifest import load_manifest, richinit_argv
from tests.integration.services_debian.conftest import debian_base, netns, ssh_key  # noqa: F401 (fixtures)
from tests.support import containers as ct
from tests.support import debian_image
from tests.support.wait import wait_until as _wait_until

from .conftest import need_root_and

# The image's command, as a Dockerfile's CMD would have it: no richinit anywhere.
APP = ["/bin/bash", "-c", "trap 'exit 0' TERM; touch /tmp/app-up; sleep infinity & wait"]




def _pids_in_pidns(ns_link):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.readlink("/proc/%s/ns/pid" % p) == ns_link:
                    out.append(int(p))
            except OSError:
                pass
    return out


@pytest.fixture
def debian_rich(tmp_path, richenv, debian_base, netns, ssh_key):  # noqa: F811 (fixtures imported above)
    need_root_and("runc", "ssh")
    key, pub = ssh_key
    work = str(tmp_path / "deb")
    os.makedirs(work)
    wrapper = os.path.join(richenv.bin, "rich-runtime")
    with debian_image.image_copy(debian_base, work) as rootfs:
        # The only change to the image: the user's public key (what a real user's image would have).
        os.makedirs(os.path.join(rootfs, "root/.ssh"), mode=0o700, exist_ok=True)
        with open(os.path.join(rootfs, "root/.ssh/authorized_keys"), "w") as f:
            f.write(pub)
        os.chmod(os.path.join(rootfs, "root/.ssh/authorized_keys"), 0o600)
        assert not os.path.exists(os.path.join(rootfs, ".richinit/bin")), "the image must not carry richinit"
        bundle = os.path.join(work, "bundle")
        ct.make_bundle(bundle, rootfs, APP, netns=netns.path, hostname="debian",
                       annotations={"io.richinit.rich": "true", "io.richinit.services": "sshd,cron,syslog",
                                    "io.richinit.grace": "5"})
        cid = ct.new_id("richdeb")
        out_path, err_path = os.path.join(work, "stdout"), os.path.join(work, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen([wrapper, "run", "--bundle", bundle, cid], env=richenv.env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err)

        def logs():
            return open(out_path, errors="replace").read()[-2000:], open(err_path, errors="replace").read()[-2000:]
        try:
            if not wait_until(lambda: os.path.exists(os.path.join(rootfs, "tmp/app-up")) or proc.poll() is not None,
                              30):
                pytest.fail("the app never started: %s" % (logs(),))
            assert proc.poll() is None, logs()
            yield {"cid": cid, "proc": proc, "rootfs": rootfs, "bundle": bundle, "key": key, "netns": netns,
                   "logs": logs, "wrapper": wrapper}
        finally:
            if proc.poll() is None:
                subprocess.run(["runc", "kill", cid, "KILL"], capture_output=True)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            ct.delete(cid)  # runs poststop (rich-hook) too if runc had not yet


def richctl(cid, runtime_dir, *args):
    python = richinit_argv(loader=load_manifest(runtime_dir)["loader"])[:-2]  # without "-m richinit"
    return subprocess.run(["runc", "exec", cid, *python, "-m", "richinit.ctl", *args],
                          capture_output=True, text=True, timeout=30)


def ssh(d, command):
    return subprocess.run(["ssh", "-i", d["key"], "-o", "StrictHostKeyChecking=no",
                           "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                           "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
                           "root@" + d["netns"].addr, command],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_unmodified_debian_image_comes_up_rich_and_ssh_reaches_it(debian_rich, richenv, portable_runtime):
    d = debian_rich
    cid = d["cid"]
    state = json.loads(subprocess.run(["runc", "state", cid], capture_output=True, text=True, check=True).stdout)
    init = int(state["pid"])
    # The wrapper rewrote config.json: richinit from the read-only runtime mount, the app after "--".
    cfg = json.load(open(os.path.join(d["bundle"], "config.json")))
    args = cfg["process"]["args"]
    assert args[0].startswith("/.richinit/") and args[args.index("--") + 1:] == APP, args
    assert any(m["destination"] == "/.richinit" and "ro" in m["options"] for m in cfg["mounts"])

    # PID 1 is richinit (its process title, or the argv the wrapper wrote).
    cmdline = open("/proc/%d/cmdline" % init, "rb").read().replace(b"\0", b" ").decode()
    assert "richinit" in cmdline, cmdline

    # The image's own daemons, supervised and ready.
    def up():
        r = richctl(cid, portable_runtime, "status", "--json")
        if r.returncode != 0:
            return None
        st = {s["name"]: s for s in json.loads(r.stdout)["services"]}
        return st if all(st.get(n, {}).get("state") == "up" and st[n].get("ready") for n in ("sshd", "cron",
                                                                                          "syslog")) else None
    st = wait_until(up, 30)
    assert st, (richctl(cid, portable_runtime, "status").stdout, d["logs"]())
    ns = os.readlink("/proc/%d/ns/pid" % init)
    comms = set()
    for p in _pids_in_pidns(ns):
        try:
            comms.add(open("/proc/%d/comm" % p).read().strip())
        except OSError:
            pass
    assert {"sshd", "cron", "rsyslogd"} <= comms, comms

    # ssh with a key over the veth; logger through the image's rsyslogd into /var/log/syslog.
    r = wait_until(lambda: (lambda x: x if x.returncode == 0 else None)(ssh(d, "cat /proc/1/cmdline | tr '\\0' ' '; "
                                                                         "logger -t richtest hello-from-ssh")), 20)
    assert r and "richinit" in r.stdout, (r, d["logs"]())
    syslog = os.path.join(d["rootfs"], "var/log/syslog")
    assert wait_until(lambda: "richtest: hello-from-ssh" in open(syslog, errors="replace").read()
                      if os.path.exists(syslog) else False, 10), open(syslog, errors="replace").read()[-2000:]
    assert richenv.registered(), "the view registration of a running rich container"

    # TERM stops it cleanly: the app's trap exits 0, services stopped, the whole pid namespace gone.
    assert subprocess.run(["runc", "kill", cid, "TERM"], capture_output=True).returncode == 0
    t0 = time.monotonic()
    rc = d["proc"].wait(timeout=30)
    took = time.monotonic() - t0
    assert rc == 0, d["logs"]()
    assert took < 10, "stopping took %.1f s" % took
    assert _pids_in_pidns(ns) == []
    err = d["logs"]()[1]
    assert "Traceback" not in err, err
    subprocess.run(["runc", "delete", cid], capture_output=True)
    assert wait_until(lambda: richenv.registered() == [], 10), "poststop released the view registration"


def wait_until(pred, timeout=20, step=0.1):
    return _wait_until(pred, timeout, step)
