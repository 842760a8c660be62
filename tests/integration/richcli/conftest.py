"""Fixtures for `rich` on real runtimes: the portable runtime built once, the rich / rich-runtime /
rich-hook programs as shims (what the console scripts will be), and every directory rich-mode
uses (containers, runtime state, quota records, logs, the view server's mount, registry and pid
files) private to the session. The view server and watcher that rich starts are stopped by PID,
their mount detached and the directories removed at the end.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from tests.support.containers import REPO, have

PROGRAMS = {"rich": ("runtime_hooks.cli", "entry"), "rich-runtime": ("runtime_hooks.wrapper", "entry"),
            "rich-hook": ("runtime_hooks.hook", "entry")}


def need_root_and(*tools):
    if os.geteuid() != 0:
        pytest.skip("needs root to run containers")
    for t in tools:
        if not have(t):
            pytest.skip("%s is not installed" % t)


def write_shims(bin_dir, bake=None):
    """Our programs as setup.sh installs them (runtime_hooks.launchers: the -IS launchers, rich-runtime's
    sh launcher with its memo in bin_dir), on the venv's Python with the repository and site-packages
    spelled out; `bake` sets env vars inside them (engines such as containerd do not pass our
    environment on)."""
    import sysconfig

    from runtime_hooks import launchers
    os.makedirs(bin_dir, exist_ok=True)
    paths = [REPO, sysconfig.get_paths()["purelib"]]
    for name in PROGRAMS:
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write(launchers.render(name, sys.executable, paths, env=bake,
                                     memo=os.path.join(os.path.abspath(bin_dir), "rich-runtime.memo")))
        os.chmod(path, 0o755)
    return bin_dir


def _pid_from(pidfile):
    try:
        with open(pidfile) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def _stop_pid(pid):
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class RichEnv:
    def __init__(self, base, views_base, runtime_dir):
        self.base, self.views_base, self.runtime_dir = base, views_base, runtime_dir
        self.bin = write_shims(os.path.join(base, "bin"))
        self.conf = os.path.join(base, "runtime.yaml")
        with open(self.conf, "w") as f:
            f.write("runtime: runc\nruntime_dir: %s\n" % runtime_dir)
        self.vars = {
            "RICHINIT_RUNTIME_CONFIG": self.conf,
            "RICHINIT_CONTAINERS_DIR": os.path.join(base, "containers"),
            "RICHINIT_RUN_ROOT": os.path.join(base, "runroot"),
            "RICHINIT_STATE_DIR": os.path.join(base, "state"),
            "RICHINIT_LOG_DIR": os.path.join(base, "log"),
            "RICHINIT_VIEWS_MOUNT": os.path.join(views_base, "views"),
            "RICHINIT_VIEWS_REGISTRY": os.path.join(views_base, "views.d"),
            "RICHINIT_VIEWS_PIDFILE": os.path.join(views_base, "views.pid"),
            "RICHINIT_VIEWS_WATCH_PIDFILE": os.path.join(views_base, "watch.pid"),
            "RICHINIT_HOOK": os.path.join(self.bin, "rich-hook"),
        }
        self.env = dict(os.environ, **self.vars)
        self.env.pop("RICHINIT_RUNTIME", None)

    def rich(self, *args, timeout=60, input=None, env=None):
        return subprocess.run([os.path.join(self.bin, "rich")] + [str(a) for a in args], env=env or self.env,
                              capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def hook_log(self):
        try:
            with open(os.path.join(self.vars["RICHINIT_LOG_DIR"], "hook.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def containers(self):
        try:
            return sorted(os.listdir(self.vars["RICHINIT_CONTAINERS_DIR"]))
        except FileNotFoundError:
            return []

    def settle(self):
        """Wait for the teardowns foreground `rich run`s finish after their exit (their plans go)."""
        from runtime_hooks import pipeline
        from runtime_hooks.hostprep import HostPaths
        paths = HostPaths(state_dir=self.vars["RICHINIT_STATE_DIR"])
        for plan in pipeline.load_all(paths):
            if plan.get("phase") == "removing":
                pipeline.wait_gone(plan["owner"], 30)

    def registered(self):
        try:
            return sorted(os.listdir(self.vars["RICHINIT_VIEWS_REGISTRY"]))
        except FileNotFoundError:
            return []

    def stop_services(self):
        from lxcfs import detect
        from osbase import libc
        _stop_pid(_pid_from(self.vars["RICHINIT_VIEWS_WATCH_PIDFILE"]))
        _stop_pid(_pid_from(self.vars["RICHINIT_VIEWS_PIDFILE"]))
        mount = self.vars["RICHINIT_VIEWS_MOUNT"]
        for _ in range(8):
            if detect.mount_id(mount, detect.SERVER_FSTYPE) is None:
                break
            try:
                libc.umount(mount, libc.MNT_DETACH)
            except OSError:
                break


@pytest.fixture(scope="session")
def portable_runtime(tmp_path_factory):
    need_root_and("runc", "ldd")
    if not os.access("/usr/bin/python3.11", os.X_OK):
        pytest.skip("Debian's /usr/bin/python3.11 is not installed")
    from runtime_hooks import portable
    out = str(tmp_path_factory.mktemp("richcli-runtime") / "runtime")
    portable.build(out)
    return out


@pytest.fixture(scope="session")
def richenv(tmp_path_factory, portable_runtime):
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse for the view server")
    base = str(tmp_path_factory.mktemp("richcli"))
    # Short and world-traversable: the container's processes reach the view files through it.
    views_base = "/run/richcli-test-%s" % uuid.uuid4().hex[:8]
    os.makedirs(views_base)
    env = RichEnv(base, views_base, portable_runtime)
    try:
        yield env
    finally:
        for name in env.containers():
            env.rich("rm", "-f", name)
        env.stop_services()
        shutil.rmtree(views_base, ignore_errors=True)


@pytest.fixture(scope="session")
def nopy_rootfs(busybox_rootfs):
    for _dirpath, _dirs, files in os.walk(busybox_rootfs):
        assert not any(f.startswith("python") for f in files), "the test image must not have Python"
    return busybox_rootfs


@pytest.fixture
def clean(richenv):
    """Each test leaves no container, registration or quota record behind (checked after it)."""
    yield richenv
    richenv.settle()
    leftover = richenv.containers()
    for name in leftover:
        richenv.rich("rm", "-f", name)
    assert leftover == [], "containers left behind: %s" % leftover
    assert richenv.registered() == [], "view registrations left behind"
    qdir = os.path.join(richenv.vars["RICHINIT_STATE_DIR"], "quota", "containers")
    assert not os.path.isdir(qdir) or os.listdir(qdir) == [], "quota records left behind"
