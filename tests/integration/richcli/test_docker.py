"""Docker 20.10 (Debian's docker.io) as its users run it, with the runtimes `rich install --docker`
registers: rich through `-e RICHINIT_RICH=true` (Docker < 24 has no --annotation) and through the
`rich-all` runtime; the container lifecycle; --memory seen in /proc/meminfo; exit codes; `docker
stop` of an app that ignores TERM ended by richinit's own KILL; --user and --init; richctl inside
and `rich ctl` from the host.

dockerd is started by the fixture with its own data and exec roots, socket and cgroup parent, off
the host network (--bridge=none --iptables=false); everything is removed afterwards.
"""

import json
import os
import shutil
import signal
import subprocess
import uuid

import pytest

from tests.integration.richmode.test_engines import leftovers  # noqa: F401
from tests.support.wait import wait_until

from .conftest import need_root_and, write_shims

DOCKER = "/usr/bin/docker"  # Debian's CLI (a newer one may sit earlier on PATH)
PROBE = "readlink /proc/1/exe; head -1 /proc/meminfo; exit 7"


def _umount_below(path):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in sorted((p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True)


@pytest.fixture(scope="module")
def dockerd(richenv, tmp_path_factory, busybox_rootfs):
    need_root_and("dockerd", "runc")
    if not os.access(DOCKER, os.X_OK):
        pytest.skip("Debian's docker.io is not installed")
    base = tmp_path_factory.mktemp("docker")
    execroot = "/run/rdk-%s" % uuid.uuid4().hex[:8]  # short: containerd's socket lives below it
    cgparent = "/rdk-%s" % uuid.uuid4().hex[:8]
    os.makedirs(execroot)
    # The programs with the session's directories baked in (the shim passes dockerd's env, but a
    # real install needs nothing of the kind either: its paths are the defaults).
    bindir = write_shims(str(base / "bin"), bake=richenv.vars)
    stage = base / "stage"
    (stage / "etc/richinit").mkdir(parents=True)
    (stage / "etc/richinit/runtime.yaml").write_text("runtime: runc\nruntime_dir: %s\nhook: %s/rich-hook\n"
                                                     % (richenv.runtime_dir, bindir))
    r = richenv.rich("install", "--docker", "--root", stage, "--bin-dir", bindir)
    assert r.returncode == 0, r.stderr
    daemon_json = stage / "etc/docker/daemon.json"
    runtimes = json.loads(daemon_json.read_text())["runtimes"]
    assert set(runtimes) == {"rich", "rich-all"}
    sock = os.path.join(execroot, "docker.sock")
    log = open(base / "dockerd.log", "w")
    proc = subprocess.Popen(["dockerd", "--data-root", str(base / "data"), "--exec-root", execroot,
                             "-H", "unix://" + sock, "--pidfile", os.path.join(execroot, "docker.pid"),
                             "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
                             "--ip-masq=false", "--cgroup-parent", cgparent, "--config-file", str(daemon_json)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    env = dict(os.environ, DOCKER_HOST="unix://" + sock)

    def docker(*args, timeout=60, **kw):
        return subprocess.run([DOCKER] + [str(a) for a in args], env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    try:
        if not wait_until(lambda: proc.poll() is None and docker("version").returncode == 0, 30):
            pytest.skip("dockerd did not start: %s" % (base / "dockerd.log").read_text()[-500:])
        subprocess.run(["tar", "-C", busybox_rootfs, "-cf", str(base / "bb.tar"), "."], check=True)
        r = docker("import", base / "bb.tar", "richbb:1")
        assert r.returncode == 0, r.stderr
        yield docker, env, execroot, stage
    finally:
        ids = docker("ps", "-aq").stdout.split() if proc.poll() is None else []
        if ids:
            docker("rm", "-f", *ids)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _umount_below(execroot)
        _umount_below(str(base / "data"))
        shutil.rmtree(execroot, ignore_errors=True)
        for ctrl in os.listdir("/sys/fs/cgroup"):
            d = os.path.join("/sys/fs/cgroup", ctrl, cgparent.lstrip("/"))
            for sub, _dirs, _files in os.walk(d, topdown=False):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


def _lines(r):
    return r.stdout.splitlines()


def test_opt_in_through_the_environment_and_rich_all(dockerd, leftovers):  # noqa: F811
    docker, _env, _, _stage = dockerd
    # rich: plain unless the container asks
    r = docker("run", "--rm", "--runtime", "rich", "--network", "none", "richbb:1", "sh", "-c", PROBE)
    assert r.returncode == 7 and _lines(r)[0] == "/bin/busybox", (r.stdout, r.stderr)
    # -e RICHINIT_RICH=true: richinit is PID 1, the memory limit is what /proc/meminfo says
    r = docker("run", "--rm", "--runtime", "rich", "--network", "none", "--memory", "256m", "-e",
               "RICHINIT_RICH=true", "richbb:1", "sh", "-c", PROBE)
    assert r.returncode == 7, (r.stdout, r.stderr)
    assert _lines(r)[0] == "/.richinit/lib/ld-linux-x86-64.so.2" and _lines(r)[1].split()[1] == str(256 * 1024), \
        r.stdout
    # rich-all: every container; the user's RICHINIT_SERVICES=none beats the wrapper's default
    r = docker("run", "--rm", "--runtime", "rich-all", "--network", "none", "-e", "RICHINIT_SERVICES=none",
               "richbb:1", "sh", "-c", "readlink /proc/1/exe; ps -o args | grep -c '^richinit-' ; exit 3")
    assert r.returncode == 3 and _lines(r) == ["/.richinit/lib/ld-linux-x86-64.so.2", "0"], (r.stdout, r.stderr)
    # ... and opts out with RICHINIT_RICH=false
    r = docker("run", "--rm", "--runtime", "rich-all", "--network", "none", "-e", "RICHINIT_RICH=false",
               "richbb:1", "readlink", "/proc/1/exe")
    assert r.returncode == 0 and _lines(r) == ["/bin/busybox"], (r.stdout, r.stderr)
    # a bad value: the reason reaches the user through the runtime's log
    r = docker("run", "--rm", "--runtime", "rich-all", "--network", "none", "-e", "RICHINIT_GRACE=soon",
               "richbb:1", "true")
    assert r.returncode != 0 and "process.env.RICHINIT_GRACE: must be seconds" in r.stderr, r.stderr


def test_lifecycle_services_and_richctl_inside_and_from_the_host(dockerd, richenv, leftovers):  # noqa: F811
    docker, env, _, _stage = dockerd
    name = "rich-life-%d" % os.getpid()
    r = docker("run", "-d", "--name", name, "--runtime", "rich-all", "--network", "none", "richbb:1",
               "sh", "-c", "trap 'exit 5' TERM; while :; do sleep 0.2; done")
    assert r.returncode == 0, r.stderr
    up = lambda: docker("exec", name, "richctl", "status")  # noqa: E731 - bound on the image's PATH
    assert wait_until(lambda: "syslog" in up().stdout, 15), up()
    r = docker("exec", name, "/.richinit/bin/richctl", "status")
    assert r.returncode == 0 and "cron" in r.stdout, r.stderr
    ctl_env = dict(richenv.env, DOCKER_HOST=env["DOCKER_HOST"], PATH="/usr/bin:/bin:/usr/sbin:/sbin")
    r = richenv.rich("ctl", name, "status", env=ctl_env)
    assert r.returncode == 0 and "syslog" in r.stdout and "running" in r.stdout, r.stdout + r.stderr
    assert docker("pause", name).returncode == 0
    assert docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "paused"
    assert docker("unpause", name).returncode == 0
    assert docker("restart", name).returncode == 0
    assert wait_until(lambda: "syslog" in up().stdout, 15), up()
    r = docker("stop", name)
    assert r.returncode == 0, r.stderr
    assert docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "5"
    assert docker("rm", name).returncode == 0
    assert richenv.registered() == [], "views unregistered by rich-hook poststop"


def test_docker_stop_of_an_app_ignoring_term_ends_with_richinits_kill(dockerd, leftovers):  # noqa: F811
    docker, _env, _, _stage = dockerd
    name = "rich-stubborn-%d" % os.getpid()
    r = docker("run", "-d", "--name", name, "--runtime", "rich-all", "--network", "none", "richbb:1",
               "sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.2; done")
    assert r.returncode == 0, r.stderr
    assert wait_until(lambda: "up" in docker("logs", name).stdout, 15)
    r = docker("stop", name, timeout=60)  # Docker's own 10 s, then its SIGKILL to PID 1
    assert r.returncode == 0, r.stderr
    logs = docker("logs", name)
    # richinit reached its own KILL (after --grace 5 and --kill-grace 2) while Docker was still waiting:
    # had Docker's SIGKILL come first, richinit (PID 1) would have died without a word.
    assert "did not exit within 5.0s" in logs.stderr and "sending SIGKILL" in logs.stderr, logs.stderr
    assert docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "137"
    docker("rm", name)


def test_user_and_init(dockerd, richenv, leftovers):  # noqa: F811
    docker, _env, _, _stage = dockerd
    # --init: Docker puts docker-init (tini) in front; richinit is the init, the command runs directly
    r = docker("run", "--rm", "--init", "--runtime", "rich-all", "--network", "none", "-e",
               "RICHINIT_SERVICES=none", "richbb:1", "sh", "-c",
               "ps -o comm | grep -c docker-init; grep PPid /proc/$$/status; exit 4")
    assert r.returncode == 4 and _lines(r) == ["0", "PPid:\t1"], (r.stdout, r.stderr)  # richinit's own child
    assert "docker-init given as the command" in richenv.hook_log()
    # --user 65534: richinit runs what it can as that user and says what it skipped. The app waits
    # for the control socket (made once the services are loaded): an app that has already exited
    # gets no services loaded at all, so nothing would be skipped.
    r = docker("run", "--rm", "--user", "65534", "--runtime", "rich-all", "--network", "none", "richbb:1",
               "sh", "-c", "until [ -S /run/richinit/control.sock ]; do sleep 0.05; done; "
               "readlink /proc/1/exe; id -u; exit 6")
    assert r.returncode == 6 and _lines(r) == ["/.richinit/lib/ld-linux-x86-64.so.2", "65534"], (r.stdout, r.stderr)
    assert "running as uid 65534: skipped " in r.stderr and "(they need root)" in r.stderr, r.stderr
    assert "crash" not in r.stderr and "failed" not in r.stderr, r.stderr


def test_read_only_rootfs(dockerd, leftovers):  # noqa: F811
    docker, _env, _, _stage = dockerd
    """What rich mode mounts itself (/.richinit, the /run tmpfs, the views, richctl) works on a
    read-only rootfs without a word; what the image's files cannot take says so once."""
    r = docker("run", "--rm", "--read-only", "--runtime", "rich-all", "--network", "none", "--memory", "128m",
               "richbb:1", "sh", "-c", "readlink /proc/1/exe; head -1 /proc/meminfo;"
               " richctl status | grep -cE '^(syslog|cron) +up '; exit 2")
    assert r.returncode == 2, (r.stdout, r.stderr)
    out = [line for line in _lines(r) if not line.startswith("[syslog]")]  # syslog falls back to stdout
    assert out[0] == "/.richinit/lib/ld-linux-x86-64.so.2" and out[1].split()[1] == str(128 * 1024), out
    assert out[2] == "2", (out, r.stderr)  # syslog and cron
    for line in r.stderr.splitlines():
        assert not any(p in line for p in ("/run", "/.richinit", "/proc", "richctl", "/dev/log")), line


def test_doctor_sees_the_runtimes_loaded(dockerd, richenv):
    _docker, env, _, stage = dockerd
    r = richenv.rich("doctor", "--json", "--root", stage, env=dict(richenv.env, DOCKER_HOST=env["DOCKER_HOST"],
                                                                    PATH="/usr/bin:/usr/sbin:/bin:/sbin"))
    rows = {row["area"]: row for row in json.loads(r.stdout)}
    assert rows["docker"]["status"] == "ok" and "rich, rich-all" in rows["docker"]["found"], rows["docker"]
    assert rows["docker daemon"]["status"] == "ok" and "rich-all" in rows["docker daemon"]["found"], rows
