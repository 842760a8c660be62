"""Timer and socket units, /dev/log held by PID 1: the real richinit as PID 1 of a runc container
(busybox rootfs, its own pid and network namespaces, `--units yes`), observed from the host.

- a timer with OnActiveSec=2s + OnUnitActiveSec=2s fires on schedule, in order;
- a Persistent= daily timer whose stamp is two days old fires at boot, and a restarted container
  (stamp fresh) does not fire it again; meanwhile PID 1 sleeps: no wake-up in 10 s with timers armed;
- socket activation: Accept=no (TCP on 127.0.0.1 and a unix socket, both fds handed over at the
  first connection, LISTEN_PID the service's own) and Accept=yes (an instance per connection with
  the connection as fd 3, REMOTE_ADDR; with StandardInput=socket as stdin and stdout);
- the built-in syslogd killed with SIGKILL while a writer (started through a ListenFIFO= socket)
  logs numbered lines: every line arrives.
"""

import json
import os
import select
import shutil
import subprocess
import sys
import time

import pytest

from tests.support import containers as ct
from tests.support.wait import wait_until

pytestmark = pytest.mark.skipif(not ct.have("runc") or os.geteuid() != 0, reason="needs root and runc")

ECHO_SERVER = r'''
import os, select, socket
# Accept=no: serve every listening fd PID 1 passed (3 .. 3+LISTEN_FDS-1).
assert os.environ["LISTEN_PID"] == str(os.getpid()), os.environ["LISTEN_PID"]
n = int(os.environ["LISTEN_FDS"])
socks = [socket.socket(fileno=fd) for fd in range(3, 3 + n)]
with open("/shared/echo.starts", "a") as f:
    f.write("%d %s %s\n" % (os.getpid(), n, os.environ.get("LISTEN_FDNAMES")))
while True:
    ready, _, _ = select.select(socks, [], [])
    for s in ready:
        c, _ = s.accept()
        line = c.makefile().readline().strip()
        c.sendall(("echo %d %s %s\n" % (os.getpid(), s.family.name, line)).encode())
        c.close()
'''

CLIENT = r'''
import socket, sys
addr = sys.argv[1]
if addr.startswith("/"):
    c = socket.socket(socket.AF_UNIX)
    c.connect(addr)
else:
    host, port = addr.rsplit(":", 1)
    c = socket.create_connection((host, int(port)), timeout=10)
c.sendall((sys.argv[2] + "\n").encode())
print(c.makefile().readline().strip())
'''

UNITS = {
    "tick.timer": "[Timer]\nOnActiveSec=2s\nOnUnitActiveSec=2s\nAccuracySec=1ms\n[Install]\nWantedBy=timers.target\n",
    "tick.service": "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=oneshot\n"
                    "ExecStart=/bin/sh -c 'read up idle < /proc/uptime; echo \"$$$$ $up\" >> /shared/ticks'\n",
    "daily.timer": "[Timer]\nOnCalendar=daily\nPersistent=true\n[Install]\nWantedBy=timers.target\n",
    "daily.service": "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo daily >> /shared/daily'\n",
    "far.timer": "[Timer]\nOnActiveSec=1h\n[Install]\nWantedBy=timers.target\n",
    "far.service": "[Service]\nExecStart=/bin/true\n",
    "echo.socket": "[Socket]\nListenStream=127.0.0.1:7777\nListenStream=/run/echo.sock\n"
                   "FileDescriptorName=echo\n[Install]\nWantedBy=sockets.target\n",
    "echo.service": "[Service]\nExecStart={python} /echo_server.py\n",
    "conn.socket": "[Socket]\nListenStream=127.0.0.1:7778\nAccept=yes\nMaxConnections=4\n"
                   "[Install]\nWantedBy=sockets.target\n",
    "conn@.service": "[Service]\nExecStart=/bin/sh -c 'read line <&3; "
                     "echo \"conn $line $LISTEN_FDS $REMOTE_ADDR\" >&3'\n",
    # inetd style: the connection is stdin and (inherited) stdout
    "greet.socket": "[Socket]\nListenStream=/run/greet.sock\nAccept=yes\n[Install]\nWantedBy=sockets.target\n",
    "greet@.service": "[Service]\nStandardInput=socket\nExecStart=/bin/sh -c 'read line; echo \"greet $line\"'\n",
    # started by the test through a FIFO: numbered lines through /dev/log while syslogd is killed
    "writer.socket": "[Socket]\nListenFIFO=/run/writer.fifo\n[Install]\nWantedBy=sockets.target\n",
    "writer.service": "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'read go <&3; i=0; while [ $i -lt 1000 ]; "
                      "do logger -t num n$i; i=$((i+1)); done; touch /shared/writer-done'\n",
}


def _exec(cid, *argv, timeout=30):
    return subprocess.run(["runc", "exec", cid, *argv], capture_output=True, text=True, timeout=timeout)


def richctl(cid, *args):
    return _exec(cid, sys.executable, "-m", "richinit.ctl", *args)


def status(cid):
    r = richctl(cid, "status", "--json")
    return {s["name"]: s for s in json.loads(r.stdout)["services"]} if r.returncode == 0 else {}


def control(cid, cmd):
    code = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect('/run/richinit/control.sock'); "
            "s.sendall(sys.argv[1].encode()+b'\\n'); print(s.makefile().readline())")
    r = _exec(cid, sys.executable, "-c", code, cmd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def init_pid(cid):
    return int(json.loads(subprocess.run(["runc", "state", cid], capture_output=True, text=True).stdout)["pid"])


def switches(pid):
    with open("/proc/%d/status" % pid) as f:
        st = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
    return int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])


def quiet(pid, window):
    """Whether pid made no context switch during the next `window` seconds."""
    before = switches(pid)
    select.select([], [], [], window)
    return switches(pid) == before


def _write_rootfs(rootfs):
    etc = os.path.join(rootfs, "etc/systemd/system")
    for target in ("timers.target.wants", "sockets.target.wants"):
        os.makedirs(os.path.join(etc, target), exist_ok=True)
    for name, text in UNITS.items():
        with open(os.path.join(etc, name), "w") as f:
            f.write(text.replace("{python}", sys.executable))
        target = {"timer": "timers.target.wants", "socket": "sockets.target.wants"}.get(name.rsplit(".", 1)[1])
        if target:
            os.symlink("../" + name, os.path.join(etc, target, name))
    for name, text in (("echo_server.py", ECHO_SERVER), ("client.py", CLIENT)):
        with open(os.path.join(rootfs, name), "w") as f:
            f.write(text)
    stamps = os.path.join(rootfs, "var/lib/richinit/timers")
    os.makedirs(stamps)
    stamp = os.path.join(stamps, "stamp-daily.timer")
    open(stamp, "w").close()
    old = time.time() - 2 * 86400
    os.utime(stamp, (old, old))  # the last daily run was two days ago: missed while "down"
    return stamp


class Container:
    def __init__(self, tmp, rootfs, shared, name):
        mounts = [{"destination": "/shared", "type": "bind", "source": str(shared), "options": ["rbind", "rw"]}]
        for d in ("/usr/lib/systemd", "/lib/systemd"):  # the host's units are not the image's
            mounts.append({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["ro", "mode=755"]})
        bundle = str(tmp / ("bundle-" + name))
        app = "touch /shared/app-up-%s; exec sleep 1000" % name
        ct.make_bundle(bundle, rootfs, ct.richinit_argv("-v", "--units", "yes", "--", "sh", "-c", app),
                       python=True, mounts=mounts)
        self.cid = ct.new_id("tmr")
        self.proc = subprocess.Popen(["runc", "run", "--bundle", bundle, self.cid], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if not wait_until(lambda: (shared / ("app-up-" + name)).exists() and status(self.cid), 30):
            self.close()
            raise AssertionError("container %s did not come up: %s" % (name, self.proc.communicate()))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        ct.delete(self.cid)


@pytest.fixture(scope="module")
def box(tmp_path_factory, busybox_rootfs):
    tmp = tmp_path_factory.mktemp("timers")
    rootfs = str(tmp / "rootfs")
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    stamp = _write_rootfs(rootfs)
    shared = tmp / "shared"
    shared.mkdir()
    os.chmod(str(shared), 0o777)
    c = Container(tmp, rootfs, shared, "a")
    c.tmp, c.rootfs, c.shared, c.stamp = tmp, rootfs, shared, stamp
    try:
        yield c
    finally:
        c.close()


def test_timer_fires_on_schedule_and_in_order(box):
    ticks = box.shared / "ticks"
    assert wait_until(lambda: ticks.exists() and len(ticks.read_text().split("\n")) >= 4, 20), "tick fired < 3 times"
    rows = [line.split() for line in ticks.read_text().splitlines()]
    pids = [int(r[0]) for r in rows]
    ups = [float(r[1]) for r in rows]
    assert pids == sorted(pids) and len(set(pids)) == len(pids), "one run of the service per trigger"
    gaps = [b - a for a, b in zip(ups, ups[1:], strict=False)]
    # OnUnitActiveSec=2s counts from each start: ~2 s apart (uptime has 10 ms steps); never early
    assert all(g >= 1.98 for g in gaps), gaps
    print("tick gaps (s): %s" % ", ".join("%.2f" % g for g in gaps))
    rows = control(box.cid, "timers")["timers"]
    tick = next(r for r in rows if r["unit"] == "tick.timer")
    assert tick["activates"] == "tick.service" and tick["last"] is not None and 0 < tick["left"] <= 2.1
    far = next(r for r in rows if r["unit"] == "far.timer")
    assert far["last"] is None and 3500 < far["left"] <= 3600


def test_persistent_timer_catches_up_at_boot_and_stamps(box):
    assert wait_until(lambda: (box.shared / "daily").exists(), 10), "the missed daily run did not fire at boot"
    assert abs(os.stat(box.stamp).st_mtime - time.time()) < 120


def test_socket_accept_no_hands_both_fds_at_the_first_connection(box):
    assert status(box.cid)["echo"]["state"] in ("down", "skipped"), "not started before traffic"
    first = _exec(box.cid, sys.executable, "/client.py", "127.0.0.1:7777", "hello")
    assert first.returncode == 0, first.stderr
    word, pid, family, line = first.stdout.split()
    assert (word, family, line) == ("echo", "AF_INET", "hello")
    second = _exec(box.cid, sys.executable, "/client.py", "/run/echo.sock", "again")
    assert second.stdout.split() == ["echo", pid, "AF_UNIX", "again"], "the same service serves both"
    starts = (box.shared / "echo.starts").read_text().split()
    assert starts == [pid, "2", "echo:echo"]


def test_socket_accept_yes_starts_an_instance_per_connection(box):
    for i in range(3):
        r = _exec(box.cid, sys.executable, "/client.py", "127.0.0.1:7778", "n%d" % i)
        assert r.stdout.split() == ["conn", "n%d" % i, "1", "127.0.0.1"], (r.stdout, r.stderr)
    r = _exec(box.cid, sys.executable, "/client.py", "/run/greet.sock", "you")
    assert r.stdout.split() == ["greet", "you"], (r.stdout, r.stderr)  # StandardInput=socket
    sockets = {s["name"]: s for s in control(box.cid, "sockets")["sockets"]}
    assert sockets["conn"]["accepted"] == 3
    assert wait_until(lambda: not [n for n in status(box.cid) if n.startswith("conn@")], 10), \
        "instances are dropped once done"


def test_no_syslog_line_lost_while_syslogd_is_killed(box):
    assert _exec(box.cid, "sh", "-c", "echo go > /run/writer.fifo").returncode == 0  # ListenFIFO= activation

    def logged():
        return _exec(box.cid, "grep", "-c", "num", "/var/log/messages").stdout.strip()
    assert wait_until(lambda: int(logged() or 0) >= 50, 20)
    pid = status(box.cid)["syslog"]["pid"]
    assert _exec(box.cid, "kill", "-9", str(pid)).returncode == 0
    assert wait_until(lambda: (box.shared / "writer-done").exists(), 60)
    # Every line the socket queued while no syslogd ran arrives; the one line the killed syslogd had
    # taken off the socket and not yet written (if the kill fell between the two) is the only loss.
    assert wait_until(lambda: status(box.cid)["syslog"]["state"] == "up" and int(logged() or 0) >= 999, 20), \
        logged()
    text = _exec(box.cid, "cat", "/var/log/messages").stdout
    got = [line.rsplit(" ", 1)[1] for line in text.splitlines() if " num" in line]
    want = ["n%d" % i for i in range(1000)]
    assert got == sorted(got, key=lambda n: int(n[1:])), "reordered around the kill"
    assert len(set(want) - set(got)) <= 1 and set(got) <= set(want), sorted(set(want) - set(got))
    assert status(box.cid)["syslog"]["pid"] != pid


def test_restart_honours_the_stamp_and_pid1_sleeps_between_due_times(box):
    os.unlink(os.path.join(box.rootfs, "etc/systemd/system/timers.target.wants/tick.timer"))
    seconds_to_midnight = 86400 - time.time() % 86400
    if seconds_to_midnight < 30:
        pytest.skip("too close to midnight UTC: the daily timer is due within the idle window")
    c = Container(box.tmp, box.rootfs, box.shared, "b")
    try:
        # The boot (the loader, the built-ins) is not what is measured: wait until the app is up and
        # PID 1 has gone quiet (its switch count unchanged over 0.5 s), then count.
        assert wait_until(lambda: (box.shared / "app-up-b").exists(), 30)
        pid = init_pid(c.cid)
        assert wait_until(lambda: quiet(pid, 0.5), 30)
        before = switches(pid)
        time.sleep(10)
        woke = switches(pid) - before
        assert (box.shared / "daily").read_text().split() == ["daily"], "the fresh stamp: no second run"
        assert woke == 0, "PID 1 woke %d times in 10 s with timers armed 1 h and hours away" % woke
    finally:
        c.close()
