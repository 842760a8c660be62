"""The boxes the VM services expectations run against, one at a time (module scope, one boot each):

  rich-run      `rich run --vm NAME ROOTFS -- /sbin/init` (the rich CLI, real runc)
  rich-runtime  rich-runtime run with io.richinit.rich=true and io.richinit.vm=true, real runc
  systemd       the same rootfs under real systemd: podman --systemd=always (the peer)

Each boots the cached Debian 12 VM image with this test's layer (image.py: units, a SysV script, a
PostgreSQL cluster) under a writable overlay of its own, in its own network namespace; a host
directory is mounted at /var/log/vmtest (the .deb to install, the stop log read after the end).
Everything is removed at the end: containers, overlays, podman's storage and run directories.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import uuid

import pytest

from tests.integration.richcli.conftest import need_root_and, portable_runtime, richenv  # noqa: F401 (fixtures)
from tests.integration.vmservices import image
from tests.support import containers as ct
from tests.support import debian_image
from tests.support.wait import wait_until

SHARED = "/var/log/vmtest"
BOOT_TIMEOUT = 60


def _mount_overlay(lower, upper, work, merged):
    for d in (upper, work, merged):
        os.makedirs(d, exist_ok=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work), merged], check=True)


def _umount(path):
    if subprocess.run(["umount", path], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True)


@pytest.fixture(scope="session")
def vm_lower(tmp_path_factory):
    """"LAYER:BASE": the cached VM image with this test's layer on top (built once per session: the
    files of image.py, then `pg_createcluster 15 main` run inside it, as the image's author would)."""
    need_root_and("runc", "debootstrap", "dpkg-deb")
    try:
        base = debian_image.vm_image()
    except debian_image.ImageUnavailable as e:
        pytest.skip(str(e))
    work = str(tmp_path_factory.mktemp("vmlayer"))
    layer, merged = os.path.join(work, "layer"), os.path.join(work, "merged")
    _mount_overlay(base, layer, os.path.join(work, "work"), merged)
    try:
        image.customize(merged)
        bundle = os.path.join(work, "bundle")
        ct.make_bundle(bundle, merged, ["/usr/bin/pg_createcluster", "15", "main"], hostname="vm")
        r = ct.run(bundle, timeout=120)
        assert r.returncode == 0, "pg_createcluster: %s %s" % (r.stdout[-500:], r.stderr[-500:])
    finally:
        _umount(merged)
    shutil.rmtree(os.path.join(work, "work"), ignore_errors=True)
    yield "%s:%s" % (layer, base)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def deb(tmp_path_factory):
    return image.build_deb(str(tmp_path_factory.mktemp("deb")))


class Box:
    """One booted container: exec inside, stop it, read what it left in the shared directory."""

    kind = "richinit"

    def __init__(self, name, shared):
        self.name, self.shared = name, shared

    def sh(self, script, timeout=60):
        return self.exec(["/bin/sh", "-c", script], timeout=timeout)

    def exec(self, argv, timeout=60):
        return subprocess.run(self.exec_argv() + list(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=self.env)

    def booted(self):
        r = self.exec(["systemctl", "is-system-running"], timeout=20)
        return r.stdout.strip() in ("running", "degraded")

    def shared_file(self, name):
        try:
            with open(os.path.join(self.shared, name)) as f:
                return f.read()
        except FileNotFoundError:
            return ""


class RichRun(Box):
    """`rich run --vm` in the foreground (its exit code is the container's)."""

    def __init__(self, name, shared, rich_env, rootfs):
        super().__init__(name, shared)
        self.richenv, self.env = rich_env, rich_env.env
        self.proc = subprocess.Popen([os.path.join(rich_env.bin, "rich"), "run", "--vm", "--name", name,
                                      "-v", "%s:%s" % (shared, SHARED), rootfs, "--", "/sbin/init"],
                                     env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def exec_argv(self):
        return [os.path.join(self.richenv.bin, "rich"), "exec", self.name, "--"]

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        return "" if self.alive() else self.proc.stdout.read()[-3000:]

    def stop(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)  # rich forwards it to the runtime, runc to PID 1
        return self.proc.wait(timeout=timeout)

    def remove(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.richenv.rich("rm", "-f", self.name)


class RichRuntime(Box):
    """rich-runtime run --bundle B ID in the foreground, annotations rich + vm, command /sbin/init."""

    def __init__(self, name, shared, rich_env, rootfs, bundle):
        super().__init__(name, shared)
        self.richenv, self.env = rich_env, rich_env.env
        ct.make_bundle(bundle, rootfs, ["/sbin/init"], hostname="vm",
                       mounts=[{"destination": SHARED, "type": "bind", "source": shared, "options": ["rbind", "rw"]}],
                       annotations={"io.richinit.rich": "true", "io.richinit.vm": "true", "io.richinit.grace": "20"})
        self.proc = subprocess.Popen([os.path.join(rich_env.bin, "rich-runtime"), "run", "--bundle", bundle, name],
                                     env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def exec_argv(self):
        return ["runc", "exec", self.name]

    alive, output = RichRun.alive, RichRun.output

    def stop(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def remove(self):
        if self.proc.poll() is None:
            subprocess.run(["runc", "kill", self.name, "KILL"], capture_output=True)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        ct.delete(self.name)


class Podman(Box):
    """podman run -d --systemd=always: systemd as PID 1, stopped with podman stop (SIGRTMIN+3)."""

    kind = "systemd"

    def __init__(self, name, shared, rootfs, confdir):
        super().__init__(name, shared)
        self.runroot = tempfile.mkdtemp(prefix="rr-", dir="/tmp")  # conmon's socket path must be short
        conf = os.path.join(confdir, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                    '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    'tmp_dir = "%s/libpod"\n' % self.runroot)
        storage = os.path.join(confdir, "storage.conf")
        with open(storage, "w") as f:
            f.write('[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n'
                    % (os.path.join(confdir, "graph"), self.runroot))
        self.env = dict(os.environ, CONTAINERS_CONF=conf, CONTAINERS_STORAGE_CONF=storage)
        self.launch = subprocess.Popen(["podman", "run", "-d", "--name", name, "--network", "none",
                                        "--systemd=always", "--hostname", "vm", "-v", "%s:%s" % (shared, SHARED),
                                        "--rootfs", rootfs, "/sbin/init"],
                                       env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                       stdin=subprocess.DEVNULL)

    def started(self):
        """Wait for `podman run -d`; (True, "") or (False, its error)."""
        _, errors = self.launch.communicate(timeout=120)
        return self.launch.returncode == 0, errors.strip()[-500:]

    def exec_argv(self):
        return ["podman", "exec", self.name]

    def alive(self):
        r = subprocess.run(["podman", "inspect", "--format", "{{.State.Running}}", self.name], env=self.env,
                           capture_output=True, text=True)
        return r.stdout.strip() == "true"

    def output(self):
        return subprocess.run(["podman", "logs", self.name], env=self.env, capture_output=True,
                              text=True).stdout[-3000:]

    def stop(self, timeout=60):
        subprocess.run(["podman", "stop", "-t", str(timeout), self.name], env=self.env, capture_output=True,
                       timeout=timeout + 30)
        r = subprocess.run(["podman", "inspect", "--format", "{{.State.ExitCode}}", self.name], env=self.env,
                           capture_output=True, text=True)
        return int(r.stdout.strip() or -1)

    def remove(self):
        subprocess.run(["podman", "rm", "-f", self.name], env=self.env, capture_output=True, timeout=60)
        subprocess.run(["podman", "system", "reset", "--force"], env=self.env, capture_output=True, timeout=120)
        subprocess.run(["umount", "-R", self.runroot], capture_output=True)
        shutil.rmtree(self.runroot, ignore_errors=True)


ENGINES = ("rich-run", "rich-runtime", "systemd")


@pytest.fixture(scope="module", params=ENGINES)
def box(request, tmp_path_factory, vm_lower, deb):
    engine = request.param
    if engine == "systemd":
        need_root_and("podman")
    work = str(tmp_path_factory.mktemp(engine))
    shared = os.path.join(work, "shared")
    os.makedirs(shared)
    os.chmod(shared, 0o777)
    shutil.copy(deb, os.path.join(shared, "hello-pkg.deb"))
    rootfs = os.path.join(work, "rootfs")
    _mount_overlay(vm_lower, os.path.join(work, "upper"), os.path.join(work, "work"), rootfs)
    name = "vmsvc-%s-%s" % (engine.split("-")[-1], uuid.uuid4().hex[:8])
    b = None
    try:
        if engine == "rich-run":
            b = RichRun(name, shared, request.getfixturevalue("richenv"), rootfs)
        elif engine == "rich-runtime":
            b = RichRuntime(name, shared, request.getfixturevalue("richenv"), rootfs, os.path.join(work, "bundle"))
        else:
            b = Podman(name, shared, rootfs, work)
            ok, why = b.started()
            if not ok:
                pytest.skip("podman --systemd=always cannot run here: %s" % why)
        b.engine = engine
        if not wait_until(lambda: not b.alive() or b.booted(), BOOT_TIMEOUT, step=0.1):
            pytest.fail("%s: not booted within %d s" % (engine, BOOT_TIMEOUT))
        if not b.alive():
            pytest.fail("%s: the container ended during the boot: %s" % (engine, b.output()))
        yield b
    finally:
        if b is not None:
            b.remove()
        _umount(rootfs)
        shutil.rmtree(work, ignore_errors=True)
