"""Real containers for tests: busybox rootfs, OCI bundles, runc runs, host Python bound in.

Nothing here fakes a runtime: bundles are real config.json files run by real runc/crun.
Every helper that creates something returns or registers a way to remove it.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def have(tool):
    return shutil.which(tool) is not None


def busybox_rootfs(dest):
    """A minimal busybox-static rootfs (the same builder as the demo image's)."""
    from runtime_hooks.demo_image import busybox_rootfs as build
    return build(dest)


def _bind(src, dst, ro=True):
    return {"destination": dst, "type": "bind", "source": src,
            "options": ["rbind", "rprivate"] + (["ro"] if ro else [])}


def host_python_mounts():
    """Bind the host's /usr (Python lives there), the venv and the project read-only.

    Until the portable runtime exists this is how richinit runs inside a busybox
    image: the venv's interpreter resolves into the bound /usr.
    """
    mounts = [_bind("/usr", "/usr")]
    for d in ("/lib", "/lib64"):
        if os.path.exists(d):
            mounts.append(_bind(os.path.realpath(d), d))
    mounts.append(_bind(REPO, REPO))
    venv = os.path.dirname(os.path.dirname(sys.executable))
    if not venv.startswith(REPO):
        mounts.append(_bind(venv, venv))
    return mounts


def richinit_argv(*richinit_args):
    """argv that runs richinit from the bound venv inside a container."""
    return [sys.executable, "-m", "richinit", *richinit_args]


def make_bundle(bundle, rootfs, args, *, env=None, mounts=(), annotations=None, hooks=None,
                memory=None, cpu_quota=None, cpu_period=100000, cpuset=None, netns=None,
                readonly=False, cwd="/", hostname="rich", python=False):
    """Write BUNDLE/config.json (runc spec defaults, terminal off) and return the config dict.

    rootfs may be absolute (used as is) or relative to the bundle.
    """
    os.makedirs(bundle, exist_ok=True)
    subprocess.run(["runc", "spec", "--bundle", bundle], check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    os.unlink(path)
    cfg["root"] = {"path": rootfs, "readonly": readonly}
    cfg["hostname"] = hostname
    p = cfg["process"]
    p["terminal"] = False
    p["args"] = list(args)
    p["cwd"] = cwd
    p["env"] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"] + list(env or [])
    p["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    # Keep the capabilities a legacy workload (sshd, cron) needs.
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
            "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT",
            "CAP_AUDIT_WRITE", "CAP_SETFCAP"]
    for k in ("bounding", "effective", "permitted"):
        p["capabilities"][k] = list(caps)
    p["capabilities"].pop("inheritable", None)
    p["capabilities"].pop("ambient", None)
    all_mounts = list(cfg["mounts"])
    if python:
        all_mounts += host_python_mounts()
    all_mounts += list(mounts)
    cfg["mounts"] = all_mounts
    lin = cfg["linux"]
    res = lin.setdefault("resources", {})
    if memory:
        res["memory"] = {"limit": int(memory)}
    if cpu_quota:
        res.setdefault("cpu", {}).update({"quota": int(cpu_quota), "period": int(cpu_period)})
    if cpuset:
        res.setdefault("cpu", {})["cpus"] = cpuset
    if netns:
        for ns in lin["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = netns
    else:
        # No network namespace of our own means sharing the host's: keep a fresh, empty one.
        pass
    if annotations:
        cfg["annotations"] = dict(annotations)
    if hooks:
        cfg["hooks"] = hooks
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    return cfg


def new_id(prefix="rt"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def runtime_argv(runtime="runc"):
    """crun refuses hybrid cgroups: run it in a private mount ns without the v2 mount."""
    if runtime == "crun":
        return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"', "crun"]
    return [runtime]


def run(bundle, cid=None, runtime="runc", timeout=60, input=None):
    """`RUNTIME run` in the foreground; returns CompletedProcess. Always deletes the container."""
    cid = cid or new_id()
    try:
        return subprocess.run(runtime_argv(runtime) + ["run", "--bundle", bundle, cid],
                              capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
    finally:
        delete(cid, runtime)


def delete(cid, runtime="runc"):
    subprocess.run(runtime_argv(runtime) + ["delete", "--force", cid], capture_output=True)


class Detached:
    """A container started with `runc run -d`, its stdout/stderr in files; deleted on exit.

    c = Detached(bundle); c.start(); c.pid (host pid of its init); c.exec([...]); c.kill("TERM");
    c.wait() -> exit status of the init, via the pid (runc reparents it to us as subreaper).
    """

    def __init__(self, bundle, cid=None, runtime="runc"):
        self.bundle, self.cid, self.runtime = bundle, cid or new_id(), runtime
        self.out = os.path.join(bundle, "stdout.log")
        self.err = os.path.join(bundle, "stderr.log")
        self.pid = None

    def start(self, timeout=30):
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            subprocess.run(runtime_argv(self.runtime) + ["run", "-d", "--bundle", self.bundle, self.cid],
                           stdin=subprocess.DEVNULL, stdout=o, stderr=e, check=True, timeout=timeout)
        self.pid = int(self.state()["pid"])
        return self

    def state(self):
        r = subprocess.run(runtime_argv(self.runtime) + ["state", self.cid], capture_output=True, text=True)
        return json.loads(r.stdout) if r.returncode == 0 else {}

    def running(self):
        return self.state().get("status") == "running"

    def exec(self, argv, timeout=30, check=False):
        return subprocess.run(runtime_argv(self.runtime) + ["exec", self.cid] + list(argv),
                              capture_output=True, text=True, timeout=timeout, check=check,
                              stdin=subprocess.DEVNULL)

    def kill(self, sig="TERM"):
        subprocess.run(runtime_argv(self.runtime) + ["kill", self.cid, sig], capture_output=True)

    def wait_stopped(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state().get("status") in ("stopped", None):
                return True
            time.sleep(0.05)
        return False

    def logs(self):
        with open(self.out) as o, open(self.err) as e:
            return o.read(), e.read()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        delete(self.cid, self.runtime)
