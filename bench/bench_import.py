"""`rich import` and a VM's services under `rich run`, against the peers, in the same run.

    sudo .venv/bin/python bench/bench_import.py [--rounds N] [--json FILE] [--skip-boot] [--skip-podman]

The disk is the test suite's (tests/support/vm_disk.py: Debian 12 qcow2, / on ext4, /var on xfs
in LVM, ~660 MB of files), built and cached on first use.

1. Import throughput (target: >= 0.8x the peer's): `rich import DISK.qcow2 --output DIR` against
   what one does by hand: `qemu-img convert -O raw` of the whole disk, then read-only loop devices
   for / and the LV, mounts, and `cp -a` of the tree. GB/s = bytes of files copied (the tar
   stream's size, the same tree for both) / wall time. Rounds are interleaved.
2. Time to all services ready (targets: <= 1/5 of the VM's boot, <= 0.5x systemd under podman):
   - rich: `rich run --vm -d` of the imported rootfs (an overlay over it; richinit reads the
     image's systemd units) until richinit's control socket reports every service up or done
     (asked through `rich ps --json`'s code) and the disk's own rich-hello.service (after nginx
     and ssh) wrote /run/rich-hello.up;
   - qemu: the same disk booted with qemu's TCG (this machine's KVM cannot run a stock kernel;
     -snapshot, 1 vCPU, 1 GiB) until rich-hello.service prints its marker on the serial console;
   - podman: `podman run --systemd=always --rootfs IMPORTED:O /sbin/init` (systemd as PID 1, the
     overlay keeps the rootfs clean) until /run/rich-hello.up exists (podman exec test -f).
Everything runs in a temporary directory and is removed; containers by name, processes by pid.
"""

import argparse
import contextlib
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime_hooks import portable  # noqa: E402
from runtime_hooks.cli_containers import services_health  # noqa: E402
from tests.integration.richcli.conftest import write_shims  # noqa: E402
from tests.support import vm_disk  # noqa: E402


def _run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)
    if r.returncode != 0:
        raise SystemExit("failed (%d): %s: %s" % (r.returncode, " ".join(argv), (r.stderr or r.stdout)[-400:]))
    return r.stdout


def _drop_caches():
    subprocess.run(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def ours(disk, work):
    out = os.path.join(work, "ours")
    t0 = time.monotonic()
    rep = json.loads(_run([sys.executable, "-m", "runtime_hooks.cli", "import", disk.qcow2, "--output", out, "--json"],
                          cwd=REPO))
    dt = time.monotonic() - t0
    shutil.rmtree(out)
    return dt, rep["bytes"]


@contextlib.contextmanager
def _loop(path, offset, size):
    dev = _run(["losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit", str(size), path]).strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev])


def peer(disk, work):
    raw, mnt, out = os.path.join(work, "peer.raw"), os.path.join(work, "mnt"), os.path.join(work, "peer")
    os.makedirs(mnt, exist_ok=True)
    t0 = time.monotonic()
    _run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", disk.qcow2, raw])
    with _loop(raw, *vm_disk.ROOT_PART) as root, _loop(raw, *vm_disk.LVM_PART) as pv:
        off, size = vm_disk._lv_offset(pv)
        with _loop(raw, vm_disk.LVM_PART[0] + off, size) as lv:
            _run(["mount", "-o", "ro,noload", root, mnt])
            try:
                _run(["mount", "-o", "ro,norecovery,nouuid", lv, os.path.join(mnt, "var")])
                try:
                    _run(["cp", "-a", mnt + "/.", out])
                finally:
                    subprocess.run(["umount", os.path.join(mnt, "var")])
            finally:
                subprocess.run(["umount", mnt])
    dt = time.monotonic() - t0
    shutil.rmtree(out)
    os.unlink(raw)
    return dt


# ---------------------------------------------------------------- services ready

class Rich:
    def __init__(self, work):
        self.bin = write_shims(os.path.join(work, "bin"))
        runtime = os.path.join(work, "runtime")
        portable.build(runtime)
        conf = os.path.join(work, "runtime.yaml")
        with open(conf, "w") as f:
            f.write("runtime: runc\nruntime_dir: %s\n" % runtime)
        views = tempfile.mkdtemp(prefix="bench-imp-views-", dir="/run")
        self.views = views
        self.env = dict(os.environ, RICHINIT_RUNTIME_CONFIG=conf, RICHINIT_CONTAINERS_DIR=os.path.join(work, "c"),
                        RICHINIT_RUN_ROOT=os.path.join(work, "rr"), RICHINIT_STATE_DIR=os.path.join(work, "s"),
                        RICHINIT_LOG_DIR=os.path.join(work, "log"), RICHINIT_VIEWS_MOUNT=os.path.join(views, "v"),
                        RICHINIT_VIEWS_REGISTRY=os.path.join(views, "r"),
                        RICHINIT_VIEWS_PIDFILE=os.path.join(views, "p"),
                        RICHINIT_VIEWS_WATCH_PIDFILE=os.path.join(views, "w"),
                        RICHINIT_HOOK=os.path.join(self.bin, "rich-hook"))

    def rich(self, *args, check=True):
        r = subprocess.run([os.path.join(self.bin, "rich")] + list(args), env=self.env, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL, timeout=300)
        if check and r.returncode != 0:
            raise SystemExit("rich %s: %s" % (" ".join(args), r.stderr[-400:]))
        return r

    def close(self):
        from tests.integration.richcli.conftest import RichEnv
        env = RichEnv.__new__(RichEnv)
        env.vars = {k: v for k, v in self.env.items() if k.startswith("RICHINIT_")}
        env.stop_services()
        shutil.rmtree(self.views, ignore_errors=True)


def _status(pid):
    """Every service's state, through richinit's control socket (the code rich ps uses)."""
    import socket

    from osbase import safepath
    from runtime_hooks.cli_containers import CONTROL_SOCKET
    try:
        root = os.open("/proc/%d/root" % pid, safepath.O_PATH | os.O_DIRECTORY)
        fd = safepath.open_in_root(root, CONTROL_SOCKET, safepath.O_PATH)
    except OSError:
        return None
    s = socket.socket(socket.AF_UNIX)
    try:
        s.settimeout(2)
        s.connect(safepath.fd_path(fd))
        s.sendall(b"status\n")
        data = b""
        while b"\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return [sv["state"] for sv in json.loads(data.split(b"\n")[0])["services"]]
    except (OSError, ValueError, KeyError):
        return None
    finally:
        s.close()
        os.close(fd)
        os.close(root)


def rich_ready(rich, rootfs, i):
    name = "bench-vm-%d-%d" % (os.getpid(), i)
    t0 = time.monotonic()
    rich.rich("run", "--vm", "-d", "--network", "none", "--name", name, rootfs, "--", "/sbin/init")
    try:
        pid = json.loads(rich.rich("ps", "--json").stdout)
        pid = next(r["pid"] for r in pid if r["name"] == name)
        while True:
            states = _status(pid)
            if (states and all(s in ("up", "done", "skipped") for s in states)
                    and os.path.exists("/proc/%d/root/run/rich-hello.up" % pid)):
                return time.monotonic() - t0, services_health(pid)
            if time.monotonic() - t0 > 120:
                raise SystemExit("rich: services not ready in 120 s: %s" % states)
            time.sleep(0.01)
    finally:
        rich.rich("rm", "-f", name, check=False)


def qemu_ready(disk):
    t0 = time.monotonic()
    proc = subprocess.Popen(["qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "1",
                             "-nographic", "-no-reboot", "-snapshot", "-drive",
                             "file=%s,format=qcow2,if=virtio" % disk.qcow2, "-nic", "user,model=virtio-net-pci"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    console = b""
    try:
        while vm_disk.READY_MARK.encode() not in console:
            if not select.select([proc.stdout], [], [], 600)[0]:
                raise SystemExit("qemu: no marker in 600 s")
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise SystemExit("qemu exited: %s" % console[-500:])
            console += chunk
        return time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()


def podman_ready(rootfs, work, i):
    conf = os.path.join(work, "containers.conf")
    with open(conf, "w") as f:
        f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    storage = os.path.join(work, "storage.conf")
    runroot = tempfile.mkdtemp(prefix="rr-", dir="/tmp")
    with open(storage, "w") as f:
        f.write('[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n'
                % (os.path.join(work, "g"), runroot))
    env = dict(os.environ, CONTAINERS_CONF=conf, CONTAINERS_STORAGE_CONF=storage)
    name = "bench-sd-%d-%d" % (os.getpid(), i)
    t0 = time.monotonic()
    try:
        _run(["podman", "run", "-d", "--name", name, "--network", "none", "--systemd=always",
              "--rootfs", rootfs + ":O", "/sbin/init"], env=env)
        while subprocess.run(["podman", "exec", name, "test", "-f", "/run/rich-hello.up"], env=env,
                             capture_output=True).returncode != 0:
            if time.monotonic() - t0 > 120:
                raise SystemExit("podman: rich-hello.service not up in 120 s")
            time.sleep(0.01)
        return time.monotonic() - t0
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], env=env, capture_output=True)
        subprocess.run(["podman", "system", "reset", "--force"], env=env, capture_output=True, timeout=120)
        subprocess.run(["umount", "-R", runroot], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--skip-boot", action="store_true", help="no qemu boot (about a minute under TCG)")
    ap.add_argument("--skip-podman", action="store_true")
    a = ap.parse_args()
    disk = vm_disk.cached_disk(log=lambda m: print("vm_disk:", m, file=sys.stderr))
    work = tempfile.mkdtemp(prefix="bench-import-")
    res = {"disk": disk.qcow2, "rounds": a.rounds}
    try:
        o, p, nbytes = [], [], 0
        for _ in range(a.rounds):
            _drop_caches()
            dt, nbytes = ours(disk, work)
            o.append(dt)
            _drop_caches()
            p.append(peer(disk, work))
        mo, mp = statistics.median(o), statistics.median(p)
        res["import"] = {"bytes": nbytes, "ours_s": mo, "peer_s": mp, "ours_gbps": nbytes / mo / 1e9,
                         "peer_gbps": nbytes / mp / 1e9, "ratio": mp / mo}
        print("import: rich import %.1f s (%.3f GB/s), qemu-img convert + cp -a %.1f s (%.3f GB/s): %.2fx "
              "(target >= 0.8x)" % (res["import"]["ours_s"], res["import"]["ours_gbps"], res["import"]["peer_s"],
                 res["import"]["peer_gbps"], res["import"]["ratio"]))

        rootfs = os.path.join(work, "rootfs")
        _run([sys.executable, "-m", "runtime_hooks.cli", "import", disk.qcow2, "--output", rootfs], cwd=REPO)
        rich = Rich(work)
        try:
            times = [rich_ready(rich, rootfs, i) for i in range(a.rounds)]
        finally:
            rich.close()
        res["rich_ready_s"] = statistics.median(t for t, _ in times)
        res["rich_services"] = times[-1][1]
        res["rich_times_s"] = [t for t, _ in times]
        print("rich run --vm: all services ready, rich-hello.up written, in %.2f s (%s up, %s failed)" % (
            res["rich_ready_s"], times[-1][1][0] if times[-1][1] else "?", times[-1][1][1] if times[-1][1] else "?"))
        if not a.skip_boot:
            res["qemu_tcg_ready_s"] = qemu_ready(disk)
            res["ratio_vs_qemu"] = res["rich_ready_s"] / res["qemu_tcg_ready_s"]
            print("qemu (TCG) boot to rich-hello's marker: %.1f s; rich/qemu = %.3f (target <= 0.2)"
                  % (res["qemu_tcg_ready_s"], res["ratio_vs_qemu"]))
        if not a.skip_podman and shutil.which("podman"):
            res["podman_times_s"] = [podman_ready(rootfs, work, i) for i in range(a.rounds)]
            res["podman_systemd_ready_s"] = statistics.median(res["podman_times_s"])
            res["ratio_vs_podman_systemd"] = res["rich_ready_s"] / res["podman_systemd_ready_s"]
            print("podman --systemd=always to rich-hello.up: %.2f s; rich/podman = %.2f (target <= 0.5)"
                  % (res["podman_systemd_ready_s"], res["ratio_vs_podman_systemd"]))
    finally:
        for d in ("mnt",):
            subprocess.run(["umount", "-R", os.path.join(work, d)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
