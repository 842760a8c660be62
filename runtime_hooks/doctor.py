"""rich doctor: what this host can do for rich containers, and what to fix.

Each check is one line: `ok`, `warn` (works, with less) or `FAIL` (rich mode will not work there),
what was found and, when not ok, what to do. Engines are checked only where they are configured
or installed: whether their configuration loads with richinit in it (containerd: `containerd
config dump` of config.toml shows the `rich` handler, and a running daemon's CRI plugin is loaded;
Docker: daemon.json names the runtime and a running daemon lists it). Exit status 1 when a check
failed, else 0. Reads the host only; changes nothing.

    rich doctor [--json] [--root DIR]   (DOCKER_HOST and CONTAINERD_ADDRESS say which daemons to ask)
"""

import json
import os
import shutil
import subprocess

OK, WARN, FAIL = "ok", "warn", "FAIL"


class Check:
    def __init__(self, area, status, found, fix=""):
        self.area, self.status, self.found, self.fix = area, status, found, fix


def _run(argv, timeout=10, env=None):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 255, "", str(e)
    return r.returncode, r.stdout, r.stderr


def _first_line(text):
    return (text.strip().splitlines() or [""])[0]


# ---------------------------------------------------------------- the host

def runtimes():
    out = []
    for name in ("runc", "crun", "runsc"):
        exe = shutil.which(name)
        if exe:
            rc, so, se = _run([exe, "--version"])
            out.append(Check("runtime", OK, "%s: %s" % (exe, _first_line(so or se))))
    if not out:
        out.append(Check("runtime", FAIL, "no runc, crun or runsc on PATH", "apt-get install runc"))
    return out


def portable_runtime():
    from runtime_hooks import settings
    from runtime_hooks.portable_manifest import BuildError, load_manifest
    try:
        conf = settings.load(os.environ.get("RICHINIT_RUNTIME_CONFIG") or settings.DEFAULT_PATH)
    except settings.SettingsError as e:
        return [Check("settings", FAIL, str(e), "fix the file, or `rich uninstall` and `rich install`")]
    out = [Check("settings", OK, "%s: runtime %s, rich: %s" % (conf.source or "defaults", conf.runtime, conf.rich))]
    try:
        m = load_manifest(conf.runtime_dir)
        out.append(Check("portable runtime", OK, "%s: python %s, built %s" % (conf.runtime_dir, m.get("python"),
                                                                              m.get("built"))))
    except BuildError as e:
        out.append(Check("portable runtime", FAIL, str(e), "rich runtime build"))
    return out


def cgroups(proc="/proc"):
    kinds = {}
    try:
        with open(os.path.join(proc, "self/mountinfo")) as f:
            for line in f:
                fields = line.split()
                fstype = fields[fields.index("-") + 1]
                if fstype in ("cgroup", "cgroup2") and fields[4].startswith("/sys/fs/cgroup"):
                    kinds.setdefault(fstype, []).append(fields[4])
    except (OSError, ValueError, IndexError):
        return [Check("cgroups", WARN, "cannot read %s/self/mountinfo" % proc)]
    if "cgroup2" in kinds and "cgroup" not in kinds:
        return [Check("cgroups", OK, "unified (v2) at %s" % kinds["cgroup2"][0])]
    if "cgroup" in kinds and "cgroup2" in kinds:
        return [Check("cgroups", WARN, "hybrid: v1 controllers and v2 at %s" % kinds["cgroup2"][0],
                      "crun refuses hybrid hosts (use runc); views read the v1 controllers")]
    if "cgroup" in kinds:
        return [Check("cgroups", OK, "legacy (v1): %d hierarchies" % len(kinds["cgroup"]))]
    return [Check("cgroups", FAIL, "no cgroup filesystem under /sys/fs/cgroup", "mount cgroup2 on /sys/fs/cgroup")]


def fuse():
    import ctypes.util
    out = []
    if not os.path.exists("/dev/fuse"):
        return [Check("fuse", WARN, "no /dev/fuse: no /proc views from our server", "modprobe fuse")]
    lib = ctypes.util.find_library("fuse3")
    try:
        import mfusepy  # noqa: F401
        binding = True
    except (ImportError, OSError):
        binding = False
    if lib and binding:
        out.append(Check("fuse", OK, "/dev/fuse, %s, mfusepy" % lib))
    else:
        out.append(Check("fuse", WARN, "/dev/fuse, but %s" % ("no libfuse3" if not lib else "no mfusepy"),
                         "apt-get install libfuse3-3 fuse3" if not lib else "pip install mfusepy"))
    from lxcfs import detect
    lx = detect.find_lxcfs()
    out.append(Check("lxcfs", OK, "running at %s: views from lxcfs" % lx) if lx else
               Check("lxcfs", OK, "not running: views from our own server (io.richinit.lxcfs=auto)"))
    return out


def loop_and_quota():
    out = []
    if os.path.exists("/dev/loop-control"):
        out.append(Check("loop devices", OK, "/dev/loop-control: the loop quota backend works"))
    else:
        out.append(Check("loop devices", WARN, "no /dev/loop-control: no loop quota backend", "modprobe loop"))
    import errno

    from osbase import fsquota
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fsquota.get_quota(fd, 0)
        state = None
    except OSError as e:
        state = e.errno
    finally:
        os.close(fd)
    if state == errno.ENOSYS:
        out.append(Check("quota", WARN, "this kernel has no quota support (quotactl: ENOSYS): project quotas cannot "
                         "be enforced", "io.richinit.quota-backend=loop (automatic), or a kernel with CONFIG_QUOTA"))
    else:
        mounts = _prjquota_mounts()
        out.append(Check("quota", OK, "project quotas on %s" % ", ".join(mounts)) if mounts else
                   Check("quota", WARN, "no filesystem is mounted with project quotas: the loop backend is used",
                         "for the project backend: xfs or ext4 mounted with -o prjquota"))
    return out


def _prjquota_mounts(proc="/proc"):
    out = []
    try:
        with open(os.path.join(proc, "self/mountinfo")) as f:
            for line in f:
                fields = line.split()
                i = fields.index("-")
                opts = set(fields[5].split(",")) | set(fields[i + 3].split(","))
                if fields[i + 1] in ("xfs", "ext4") and opts & {"prjquota", "pquota", "pqnoenforce"}:
                    out.append(fields[4])
    except (OSError, ValueError, IndexError):
        pass
    return out


# ---------------------------------------------------------------- the engines

def docker(root="/"):
    path = os.path.join(root, "etc/docker/daemon.json")
    exe = shutil.which("docker")
    if not os.path.exists(path) and not exe:
        return []
    try:
        with open(path) as f:
            d = json.load(f)
        names = sorted((d.get("runtimes") or {}).keys())
    except FileNotFoundError:
        names = None
    except (OSError, ValueError, AttributeError) as e:
        return [Check("docker", FAIL, "%s: %s" % (path, e), "fix daemon.json: dockerd will not start")]
    ok = "rich" in (names or ())
    found = "no %s" % path if names is None else "%s: runtimes %s" % (path, ", ".join(names) or "none")
    out = [Check("docker", OK if ok else WARN, found, "" if ok else "rich install --docker")]
    if exe:
        rc, so, se = _run([exe, "info", "--format", "{{json .Runtimes}}"])
        if rc == 0:
            listed = sorted(json.loads(so or "{}"))
            ok = "rich" in listed
            out.append(Check("docker daemon", OK if ok else WARN, "runtimes: %s" % ", ".join(listed),
                             "" if ok else "restart dockerd (it reads daemon.json at start)"))
    return out


def containerd(root="/"):
    path = os.path.join(root, "etc/containerd/config.toml")
    exe = shutil.which("containerd")
    if not exe and not os.path.exists(path):
        return []
    out = []
    if exe and os.path.exists(path):
        rc, so, se = _run([exe, "--config", path, "config", "dump"])
        if rc != 0:
            return [Check("containerd", FAIL, "%s does not load: %s" % (path, _first_line(se)), "fix config.toml")]
        ok = ".runtimes.rich]" in so
        out.append(Check("containerd", OK if ok else WARN,
                         "%s loads%s" % (path, ", with the CRI runtime handler rich" if ok else ", without richinit"),
                         "" if ok else "rich install --containerd"))
    elif exe:
        out.append(Check("containerd", WARN, "no %s" % path, "rich install --containerd"))
    ctr = shutil.which("ctr")
    sock = os.environ.get("CONTAINERD_ADDRESS", "/run/containerd/containerd.sock")
    if ctr and os.path.exists(sock):
        rc, so, se = _run([ctr, "-a", sock, "plugins", "ls"])
        if rc == 0:
            cri = [line.split() for line in so.splitlines() if line.split()[:2] == ["io.containerd.grpc.v1", "cri"]]
            st = cri[0][-1] if cri else "absent"
            out.append(Check("containerd CRI", OK if st == "ok" else FAIL, "%s: the CRI plugin is %s" % (sock, st),
                             "" if st == "ok" else "see containerd's log: a config section may have reset it"))
    return out


def podman_crio(root="/"):
    out = []
    hooks = os.path.join(root, "usr/share/containers/oci/hooks.d/richinit-precreate.json")
    if shutil.which("podman") or os.path.exists(hooks):
        ok = os.path.exists(hooks)
        out.append(Check("podman", OK if ok else WARN, "oci hooks %s" % ("installed" if ok else "not installed"),
                         "" if ok else "rich install --podman (or podman --runtime rich-runtime)"))
    crio = os.path.join(root, "etc/crio/crio.conf.d/99-richinit.conf")
    if shutil.which("crio") or os.path.exists(crio):
        ok = os.path.exists(crio)
        out.append(Check("cri-o", OK if ok else WARN, "runtime handler rich %s" % ("configured" if ok else "absent"),
                         "" if ok else "rich install --crio"))
    return out


def checks(root="/"):
    out = []
    for fn in (runtimes, portable_runtime, cgroups, fuse, loop_and_quota):
        out += fn()
    for fn in (docker, containerd, podman_crio):
        out += fn(root)
    return out


def main(json_out=False, out=None, root="/"):
    import sys
    out = out or sys.stdout
    results = checks(root)
    if json_out:
        out.write(json.dumps([vars(c) for c in results], indent=1) + "\n")
    else:
        for c in results:
            out.write("%-4s  %-16s %s\n" % (c.status, c.area, c.found))
            if c.fix:
                out.write("%-4s  %-16s fix: %s\n" % ("", "", c.fix))
    return 1 if any(c.status == FAIL for c in results) else 0
