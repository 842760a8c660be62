"""richctl from inside a rich container (/.richinit/bin/richctl and on the image's PATH) and from the
host (`rich ctl NAME ...`, `rich status NAME`, found by the container's PID 1): rich run and podman
here; Docker and CRI in test_docker.py and test_cri.py."""

import json
import os
import subprocess

from tests.integration.richmode.test_engines import leftovers, podman  # noqa: F401
from tests.support.wait import wait_until

from .conftest import write_shims


def _status(env, name):
    r = env.rich("status", name, "--json")
    return r.returncode == 0 and json.loads(r.stdout)


def test_rich_run_container_reached_from_inside_and_outside(clean, nopy_rootfs):
    name = "reach-%d" % os.getpid()
    assert clean.rich("run", "-d", "--name", name, nopy_rootfs, "--", "sleep", "60").returncode == 0
    try:
        st = wait_until(lambda: _status(clean, name), 15)
        assert st and {s["name"] for s in st["services"]} >= {"syslog", "cron"}, st
        assert st["app"]["state"] == "running", st["app"]
        r = clean.rich("ctl", name, "status")
        assert r.returncode == 0 and "syslog" in r.stdout and "running" in r.stdout, r.stdout + r.stderr
        r = clean.rich("ctl", name, "restart", "cron")
        assert r.returncode == 0, r.stderr
        # inside: the runtime's copy, and the one bound onto the image's PATH (busybox: /bin is on it)
        for argv in (["/.richinit/bin/richctl", "status"], ["richctl", "status"]):
            r = clean.rich("exec", name, "--", *argv)
            assert r.returncode == 0 and "cron" in r.stdout, (argv, r.stdout, r.stderr)
        r = clean.rich("exec", name, "--", "sh", "-c", "command -v richctl")
        assert r.stdout.strip() == "/bin/richctl", r.stdout  # the first directory of its PATH the image has
    finally:
        clean.rich("rm", "-f", name)


def test_rich_ctl_refuses_what_is_not_a_rich_container(clean):
    r = clean.rich("ctl", "no-such-container-%d" % os.getpid(), "status")
    assert r.returncode == 125 and "no running container" in r.stderr and r.stderr.count("\n") == 1
    p = subprocess.Popen(["sleep", "30"])
    try:
        r = clean.rich("status", str(p.pid))
        assert r.returncode == 125 and "is not richinit" in r.stderr, r.stderr
    finally:
        p.kill()
        p.wait()


def test_podman_container_reached_from_inside_and_outside(richenv, podman, tmp_path):  # noqa: F811
    env, image = podman
    bindir = write_shims(str(tmp_path / "bin"), bake=richenv.vars)  # podman does not pass our env on
    name = "reach-pm-%d" % os.getpid()
    r = subprocess.run(["podman", "--runtime", os.path.join(bindir, "rich-runtime"), "run", "-d", "--name", name,
                        "--network", "none", "--annotation", "io.richinit.rich=true", image, "sh", "-c",
                        "while :; do sleep 0.2; done"], env=env, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    try:
        inside = lambda: subprocess.run(["podman", "exec", name, "richctl", "status"], env=env,  # noqa: E731
                                        capture_output=True, text=True, timeout=60)
        assert wait_until(lambda: "syslog" in inside().stdout, 15), inside()
        r = richenv.rich("ctl", name, "status", env=dict(richenv.env, **{k: env[k] for k in (
            "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF")}))
        assert r.returncode == 0 and "cron" in r.stdout, r.stdout + r.stderr
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], env=env, capture_output=True, timeout=60)
