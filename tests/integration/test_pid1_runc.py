"""richinit as PID 1 of a real runc container (busybox rootfs, host Python bound in read-only)."""

import os
import subprocess
import time

import pytest

from tests.support import containers as ct

pytestmark = pytest.mark.skipif(not ct.have("runc") or os.geteuid() != 0, reason="needs root and runc")


class Foreground:
    """`runc run` in the foreground (so its exit code is the container's), signalled with `runc kill`."""

    def __init__(self, bundle, runtime="runc"):
        self.cid, self.runtime = ct.new_id(), runtime
        self.proc = subprocess.Popen(ct.runtime_argv(runtime) + ["run", "--bundle", bundle, self.cid],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)

    def wait_for(self, path, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return
            time.sleep(0.02)
        raise AssertionError("container never wrote %s" % path)

    def kill(self, sig):
        subprocess.run(ct.runtime_argv(self.runtime) + ["kill", self.cid, sig], check=True, capture_output=True)

    def wait(self, timeout=30):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        ct.delete(self.cid, self.runtime)


@pytest.fixture
def bundle(tmp_path, busybox_rootfs):
    shared = tmp_path / "shared"
    shared.mkdir()

    def make(script, *opts, runtime="runc"):
        b = str(tmp_path / ("bundle-" + runtime))
        ct.make_bundle(b, busybox_rootfs, ct.richinit_argv(*opts, "--", "sh", "-c", script), python=True,
                       mounts=[{"destination": "/shared", "type": "bind", "source": str(shared),
                                "options": ["rbind", "rw"]}])
        return b
    make.shared = shared
    return make


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_richinit_is_pid1_and_exit_code_propagates(bundle, runtime):
    if not ct.have(runtime):
        pytest.skip("%s not installed" % runtime)
    r = ct.run(bundle("tr '\\0' ' ' < /proc/1/cmdline; echo; exit 42", runtime=runtime), runtime=runtime)
    assert r.returncode == 42, r.stderr
    first = r.stdout.splitlines()[0]
    # argv as started, or the process title richinit sets once CMD runs
    assert "-m richinit -- sh -c" in first or first.startswith("richinit -- sh -c"), first


def test_death_by_signal_inside_runc(bundle):
    r = ct.run(bundle("kill -USR1 $$"))
    assert r.returncode == 128 + 10, r.stderr


def test_orphans_are_reaped_inside(bundle):
    # 200 orphans exit while the app keeps running; none may stay a zombie.
    script = ("i=0; while [ $i -lt 200 ]; do (sleep 0.2 &); i=$((i+1)); done; sleep 1.5; "
              "z=$(ps -o stat | grep -c '^Z'); echo zombies=$z; ps -o pid,ppid,stat,args | head -20")
    r = ct.run(bundle(script))
    assert r.returncode == 0, r.stderr
    assert "zombies=0" in r.stdout, r.stdout


def test_runc_kill_signals_are_forwarded(bundle):
    b = bundle("trap 'echo usr1 > /shared/usr1' USR1; trap 'echo hup > /shared/hup; exit 7' HUP; "
               "touch /shared/ready; while true; do sleep 0.05; done")
    with Foreground(b) as c:
        c.wait_for(str(bundle.shared / "ready"))
        c.kill("USR1")
        c.wait_for(str(bundle.shared / "usr1"))
        c.kill("HUP")
        rc, out, err = c.wait()
    assert rc == 7, err
    assert (bundle.shared / "hup").exists()


def test_term_ignoring_app_is_killed_after_grace(bundle):
    b = bundle("trap '' TERM; touch /shared/ready; while true; do sleep 0.05; done", "--grace", "1",
               "--kill-grace", "1")
    with Foreground(b) as c:
        c.wait_for(str(bundle.shared / "ready"))
        t0 = time.monotonic()
        c.kill("TERM")
        rc, out, err = c.wait()
        took = time.monotonic() - t0
    assert rc == 137, err
    assert took < 8


def test_stop_terminates_background_daemons_of_the_app(bundle):
    # A daemon started by the app (setsid, reparented to PID 1) gets TERM at stop.
    b = bundle("setsid sh -c \"trap 'touch /shared/daemon-term; exit 0' TERM; while true; do sleep 0.05; done\" & "
               "touch /shared/ready; while true; do sleep 0.05; done")
    with Foreground(b) as c:
        c.wait_for(str(bundle.shared / "ready"))
        time.sleep(0.2)
        c.kill("TERM")
        rc, out, err = c.wait()
    assert rc == 143, err
    assert (bundle.shared / "daemon-term").exists()
