"""Issue 3's "Must show" on a real Debian image: sshd, cron and rsyslog under richinit as PID 1.

One container (runc, its own network namespace reached over a veth pair) boots with
`richinit --services all` from the portable runtime bound at /.richinit, so the image's own
/usr (sshd, cron, rsyslogd) is what runs: richinit's defaults pick them. The checks share that
boot (module scope) and run in order; the last one stops the container.

Observed from the host: ssh over the veth, richctl through `runc exec`, files in the overlay's
rootfs, the exit order of the daemons through pidfds (readable the moment a process exits).
"""

import json
import os
import select
import signal
import subprocess
import threading
import time

import pytest

from tests.support import containers as ct
from tests.support import debian_image
from tests.support.wait import wait_until

GREETING = "hello-from-config"
APP = "trap 'exit 7' TERM; touch /run/app-up; sleep 100000 & wait"

SERVICES = {
    # Exits at once, over and over: failed after 3 starts; nothing else is affected.
    "flaky.yaml": """
command: "echo flaky starting; exit 3"
backoff: {initial: 0.1, max: 0.2, factor: 2, reset_after: 10}
crash_loop: {starts: 3, within: 20}
""",
    # The image's sshd as a forking daemon. Started by PID 1 in its own session, sshd takes itself
    # for daemonized already and does not fork: its pidfile names the starter, which is adopted.
    "sshd2.yaml": """
type: forking
pidfile: /run/sshd2.pid
command: [/usr/sbin/sshd, -p, "2222", -o, "PidFile=/run/sshd2.pid"]
ready: {tcp: 2222}
after: [sshd]
""",
    # A daemon that really forks away: the starter exits, its child writes the pidfile.
    "forker.yaml": """
type: forking
pidfile: /run/forker.pid
command: "setsid sh -c 'echo $$ > /run/forker.pid; exec sleep 100000' </dev/null >/dev/null 2>&1 &"
after: [syslog]
""",
    # Depends on sshd: stops before it. Logs its stop through syslog, which must still be up.
    "worker.yaml": """
command: "trap 'logger -t worker worker-stopping; exit 0' TERM; sleep 100000 & wait"
after: [sshd]
""",
    # Ignores SIGTERM: killed after its 1 s stop timeout, before syslog is stopped.
    "stubborn.yaml": """
command: "trap '' TERM; while :; do sleep 0.2; done"
after: [syslog]
stop_timeout: 1
""",
}

CRON = """\
@reboot root echo "reboot-job GREETING=$GREETING" > /run/cron-reboot.out; logger -t cronjob reboot-job-ran
* * * * * root echo "minute-job GREETING=$GREETING" >> /run/cron-minute.out; logger -t cronjob minute-job-ran
"""


pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")




class Vm:
    """The booted container: richctl, ssh, files, host pids."""

    def __init__(self, cid, proc, rootfs, runtime_argv, netns, key):
        self.cid, self.proc, self.rootfs = cid, proc, rootfs
        self.runtime_argv, self.netns, self.key = runtime_argv, netns, key

    def richctl(self, *args):
        python = self.runtime_argv[:-2]  # without "-m richinit"
        return subprocess.run(["runc", "exec", self.cid, *python, "-m", "richinit.ctl", *args],
                              capture_output=True, text=True, timeout=30)

    def status(self):
        r = self.richctl("status", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def services(self):
        return {s["name"]: s for s in self.status()["services"]}

    def ssh(self, command, port=22, timeout=20):
        return subprocess.run(["ssh", "-i", self.key, "-p", str(port), "-o", "StrictHostKeyChecking=no",
                               "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                               "-o", "ConnectTimeout=5", "root@" + self.netns.addr, command],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def read(self, path):
        try:
            with open(os.path.join(self.rootfs, path.lstrip("/")), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def write(self, path, text):
        with open(os.path.join(self.rootfs, path.lstrip("/")), "w") as f:
            f.write(text)

    def host_pid(self, pid):
        """The host pid of a pid inside the container (NSpid, same pid namespace as its init)."""
        init = int(json.loads(subprocess.run(["runc", "state", self.cid], capture_output=True,
                                             text=True).stdout)["pid"])
        want = os.readlink("/proc/%d/ns/pid" % init)
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/status" % p) as f:
                    nspid = next(line.split()[1:] for line in f if line.startswith("NSpid:"))
                if nspid[-1] == str(pid) and os.readlink("/proc/%s/ns/pid" % p) == want:
                    return int(p)
            except (OSError, StopIteration):
                continue
        raise AssertionError("pid %s of the container not found on the host" % pid)

    def diagnostics(self):
        return "status=%s\nsyslog tail=%s" % (self.richctl("status").stdout, self.read("/var/log/syslog")[-3000:])


@pytest.fixture(scope="module")
def vm(tmp_path_factory, debian_base, richinit_runtime, netns, ssh_key):
    work = str(tmp_path_factory.mktemp("debian-vm"))
    key, pub = ssh_key
    with debian_image.image_copy(debian_base, work) as rootfs:
        os.makedirs(os.path.join(rootfs, "root/.ssh"), mode=0o700, exist_ok=True)
        with open(os.path.join(rootfs, "root/.ssh/authorized_keys"), "w") as f:
            f.write(pub)
        os.chmod(os.path.join(rootfs, "root/.ssh/authorized_keys"), 0o600)
        sd = os.path.join(rootfs, "etc/richinit/services.d")
        os.makedirs(sd, exist_ok=True)
        for name, text in SERVICES.items():
            with open(os.path.join(sd, name), "w") as f:
                f.write(text)
        with open(os.path.join(rootfs, "etc/cron.d/richinit-test"), "w") as f:
            f.write(CRON)
        os.chmod(os.path.join(rootfs, "etc/cron.d/richinit-test"), 0o644)
        bundle = os.path.join(work, "bundle")
        argv = richinit_runtime["argv"] + ["-v", "--services", "all", "--", "/bin/sh", "-c", APP]
        ct.make_bundle(bundle, rootfs, argv, env=["GREETING=" + GREETING], netns=netns.path, hostname="debian",
                       mounts=[{"destination": "/.richinit", "type": "bind", "source": richinit_runtime["dir"],
                                "options": ["rbind", "rprivate", "ro"]}])
        cid = ct.new_id("deb")
        out_path, err_path = os.path.join(work, "stdout"), os.path.join(work, "stderr")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(["runc", "run", "--bundle", bundle, cid], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err)
        v = Vm(cid, proc, rootfs, richinit_runtime["argv"], netns, key)
        v.out_path, v.err_path = out_path, err_path
        v.logs = lambda: (open(out_path, errors="replace").read(), open(err_path, errors="replace").read())
        try:
            v.booted_at = time.monotonic()
            if not wait_until(lambda: os.path.exists(os.path.join(rootfs, "run/app-up")) or proc.poll() is not None,
                              30):
                pytest.fail("the app never started: %s" % (v.logs(),))
            assert proc.poll() is None, v.logs()
            yield v
        finally:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            ct.delete(cid)


def test_boot_all_services_up_from_the_image(vm):
    st = wait_until(lambda: (lambda s: s if s["flaky"]["state"] == "failed" and s["sshd2"]["ready"] else None)(
        vm.services()), 20)
    assert st, vm.diagnostics()
    for name in ("syslog", "sshd", "cron", "sshd2", "forker", "worker", "stubborn"):
        assert st[name]["state"] == "up" and st[name]["ready"] and st[name]["pid"], st[name]
    # the image's daemons, not richinit's built-ins
    comms = {n: open("/proc/%d/comm" % vm.host_pid(st[n]["pid"])).read().strip() for n in ("syslog", "sshd", "cron")}
    assert comms == {"syslog": "rsyslogd", "sshd": "sshd", "cron": "cron"}, comms
    full = vm.status()
    assert full["phase"] == "running" and full["errors"] == [], full
    app = full["app"]
    assert app["state"] == "running"
    # Boot order: syslog, then what comes after it; the app last. Pids count up in the fresh pid namespace.
    first = {n: st[n]["pid"] for n in ("syslog", "sshd", "cron", "sshd2", "forker", "worker", "stubborn")}
    assert first["syslog"] < min(first["sshd"], first["cron"], first["forker"], first["stubborn"]), first
    assert first["sshd"] < min(first["sshd2"], first["worker"]), first
    assert app["pid"] > max(first.values()), (app, first)


def test_ssh_login_logger_lands_in_syslog(vm):
    r = vm.ssh("logger -t sshtest hello-1; echo user=$(id -un)")
    assert r.returncode == 0, (r.stdout, r.stderr, vm.diagnostics())
    assert "user=root" in r.stdout
    assert wait_until(lambda: "sshtest: hello-1" in vm.read("/var/log/syslog"), 5), vm.read("/var/log/syslog")[-2000:]


def test_ssh_login_shell_sees_the_container_environment(vm):
    # An interactive login (what ops get) is a login shell: /etc/profile.d/richinit-env.sh loads it.
    r = vm.ssh("bash -lc 'echo GREETING=$GREETING'")
    assert r.returncode == 0, r.stderr
    assert "GREETING=" + GREETING in r.stdout


def test_ssh_command_session_sees_the_container_environment(vm):
    r = vm.ssh("echo GREETING=$GREETING")
    assert r.returncode == 0, r.stderr
    assert "GREETING=" + GREETING in r.stdout


def test_cron_job_sees_the_container_environment(vm):
    assert wait_until(lambda: "reboot-job" in vm.read("/run/cron-reboot.out"), 10)
    assert "GREETING=" + GREETING in vm.read("/run/cron-reboot.out")


def test_cron_reboot_job_runs_and_logs(vm):
    assert wait_until(lambda: "reboot-job" in vm.read("/run/cron-reboot.out"), 10), vm.diagnostics()
    assert wait_until(lambda: "cronjob: reboot-job-ran" in vm.read("/var/log/syslog"), 5), vm.diagnostics()
    syslog = vm.read("/var/log/syslog")
    assert "CRON" in syslog and "CMD (echo \"reboot-job" in syslog, "cron logs what it runs"


def test_sshd_killed_is_restarted_within_a_second(vm):
    before = vm.services()["sshd"]
    old = before["pid"]
    os.kill(vm.host_pid(old), signal.SIGKILL)
    t0 = time.monotonic()
    after = wait_until(lambda: (lambda s: s if s["pid"] not in (None, old) and s["ready"] else None)(
        vm.services()["sshd"]), 5, step=0.02)
    took = time.monotonic() - t0
    print("sshd restarted after kill -9 in %.3f s" % took)
    assert after, vm.diagnostics()
    assert took < 1.0, "sshd back after %.2fs" % took
    assert after["restarts"] == before["restarts"] + 1 and after["last_exit"] == 137
    r = vm.ssh("echo again")
    assert r.returncode == 0 and "again" in r.stdout, r.stderr


def test_crash_loop_fails_only_that_service(vm):
    st = vm.services()
    assert st["flaky"]["state"] == "failed" and "crash loop" in st["flaky"]["reason"], st["flaky"]
    assert st["flaky"]["restarts"] == 2 and st["flaky"]["last_exit"] == 3
    for name in ("syslog", "sshd", "cron", "sshd2", "forker", "worker", "stubborn"):
        assert st[name]["state"] == "up", st[name]
        assert st[name]["restarts"] == (1 if name == "sshd" else 0), st[name]  # sshd: the kill -9 above
    r = vm.richctl("logs", "flaky")
    assert r.stdout.count("flaky starting") == 3, r.stdout


@pytest.mark.parametrize("name", ["forker", "sshd2"])
def test_forking_daemon_followed_through_its_pidfile_and_restarted(vm, name):
    pidfile = "/run/%s.pid" % name
    s = vm.services()[name]
    assert s["state"] == "up" and vm.read(pidfile).strip() == str(s["pid"]), s
    host = vm.host_pid(s["pid"])
    with open("/proc/%d/status" % host) as f:
        ppid = next(int(line.split()[1]) for line in f if line.startswith("PPid:"))
    init = int(json.loads(subprocess.run(["runc", "state", vm.cid], capture_output=True, text=True).stdout)["pid"])
    assert ppid == init, "the daemon is PID 1's child (reparented when its starter exited)"
    if name == "sshd2":
        assert vm.ssh("echo via-2222", port=2222).stdout.strip() == "via-2222"
    os.kill(host, signal.SIGKILL)
    again = wait_until(lambda: (lambda x: x if x["pid"] not in (None, s["pid"]) and x["ready"] else None)(
        vm.services()[name]), 10)
    assert again, vm.diagnostics()
    assert again["restarts"] == s["restarts"] + 1 and again["last_exit"] == 137
    assert vm.read(pidfile).strip() == str(again["pid"])
    if name == "sshd2":
        assert vm.ssh("echo via-2222", port=2222).stdout.strip() == "via-2222"


def test_reload_picks_up_an_added_service(vm):
    vm.write("/etc/richinit/services.d/extra.yaml", 'command: "echo extra up; exec sleep 100000"\nafter: [syslog]\n')
    r = vm.richctl("reload")
    assert r.returncode == 0 and "added: extra" in r.stdout, (r.stdout, r.stderr)
    assert wait_until(lambda: vm.services().get("extra", {}).get("state") == "up", 5), vm.diagnostics()
    assert wait_until(lambda: "extra up" in vm.richctl("logs", "extra").stdout, 5)
    # SIGHUP to the container's init does the same.
    vm.write("/etc/richinit/services.d/extra2.yaml", 'command: "exec sleep 100000"\nafter: [syslog]\n')
    subprocess.run(["runc", "kill", vm.cid, "HUP"], check=True)
    assert wait_until(lambda: vm.services().get("extra2", {}).get("state") == "up", 5), vm.diagnostics()


def test_cron_minute_job_runs_with_the_environment(vm):
    # Debian's cron runs `* * * * *` jobs on the minute: up to 60 s after boot.
    left = 65 - (time.monotonic() - vm.booted_at)
    assert wait_until(lambda: "minute-job" in vm.read("/run/cron-minute.out"), max(left, 1), step=0.5), \
        vm.diagnostics()
    assert wait_until(lambda: "cronjob: minute-job-ran" in vm.read("/var/log/syslog"), 5)


class ExitWatcher:
    """Records the order in which processes (host pids) exit, through pidfds, from a thread."""

    def __init__(self, pids):
        self.fds = {os.pidfd_open(pid): name for name, pid in pids.items()}
        self.exits = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        poll = select.poll()
        for fd in self.fds:
            poll.register(fd, select.POLLIN)
        left = set(self.fds)
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            for fd, _ev in poll.poll(100):
                if fd in left:
                    self.exits.append((self.fds[fd], time.monotonic()))
                    left.discard(fd)
                    poll.unregister(fd)

    def join(self):
        self.thread.join(35)
        for fd in self.fds:
            os.close(fd)
        return self.exits


def test_sigterm_stops_in_reverse_order_and_exits_with_the_apps_code(vm):
    st = vm.services()
    names = ("worker", "sshd2", "forker", "sshd", "cron", "stubborn", "syslog", "extra")
    pids = {n: vm.host_pid(st[n]["pid"]) for n in names}
    pids["app"] = vm.host_pid(vm.status()["app"]["pid"])
    watch = ExitWatcher(pids)
    t0 = time.monotonic()
    subprocess.run(["runc", "kill", vm.cid, "TERM"], check=True)
    code = vm.proc.wait(timeout=30)
    took = time.monotonic() - t0
    exits = watch.join()
    print("stop: %s; container gone after %.3f s" % (", ".join("%s %.3f" % (n, t - t0) for n, t in exits), took))
    order = [n for n, _ in exits]
    at = {n: t - t0 for n, t in exits}
    assert code == 7, (code, vm.logs())
    assert sorted(order) == sorted(pids), order
    assert order[0] == "app", order
    # waves, last first: {worker, sshd2} -> {sshd, cron, forker, extra, stubborn} -> {syslog}
    for late in ("worker", "sshd2"):
        for early in ("sshd", "cron", "forker", "stubborn", "syslog"):
            assert at[late] < at[early], (late, early, at)
    assert order[-1] == "syslog", at
    # stubborn ignores TERM: KILLed at its 1 s stop timeout, not the default 3-5 s.
    assert 0.9 <= at["stubborn"] - at["sshd2"] < 2.0, at
    assert took < 5, "stopped in %.2fs" % took
    # worker logged its stop through rsyslog, which was still up and wrote it out before exiting.
    assert "worker: worker-stopping" in vm.read("/var/log/syslog")
