"""Build richinit's Debian package with dpkg-deb alone (no debhelper, no `rich` installed needed).

    python3 scripts/build-deb.py [--output DIR]     -> DIR/richinit_VERSION_all.deb (default: dist/)

What the package holds:
    /usr/lib/python3/dist-packages/{osbase,richinit,runtime_hooks,lxcfs}   the sources (.py; byte-compiled
                                    by py3compile in postinst, cleaned by py3clean in prerm, as Debian's
                                    python packages do)
    /usr/lib/python3/dist-packages/mfusepy.py    the FUSE binding of the view server (not in Debian; ISC,
                                    one file, taken from the interpreter running this script)
    /usr/share/richinit/{services.d,hooks,demo}  the default services, the hook bundle, the demo app
    /usr/bin/{rich,rich-runtime,rich-hook,richctl,richinit}   the fast launchers (runtime_hooks.launchers:
                                    `#!/usr/bin/python3 -IS`, dist-packages spelled out)
It depends on Debian's python3, python3-yaml, python3-setproctitle, python3-tomlkit and python3-daemon. postinst builds
the portable runtime (/var/lib/richinit/runtime) — a failure there is a warning, `rich runtime build`
retries — and prerm removes it, so `dpkg -r` leaves nothing behind. Engines are wired by
`rich install --docker|--containerd|--podman|--crio` (undone by `rich uninstall`), never by the package.
"""

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime_hooks import launchers  # noqa: E402  (a pure module: renders the launcher text)

PACKAGES = ("osbase", "richinit", "runtime_hooks", "lxcfs")
DATA = ("services.d", "hooks", "demo")
DIST = "usr/lib/python3/dist-packages"
DEPENDS = "python3 (>= 3.11), python3-yaml, python3-setproctitle, python3-tomlkit, python3-daemon"
RECOMMENDS = "runc | crun, fuse3"
SUGGESTS = "lxcfs, docker.io, containerd, podman"

POSTINST = """#!/bin/sh
set -e
if [ "$1" = configure ]; then
    py3compile -p richinit
    # The portable runtime every rich container mounts at /.richinit (built from this host's python3).
    rich runtime build >/dev/null || echo "richinit: the portable runtime was not built; run: rich runtime build" >&2
fi
exit 0
"""
PRERM = """#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = upgrade ] || [ "$1" = deconfigure ]; then
    py3clean -p richinit
    rm -rf /var/lib/richinit/runtime /var/lib/richinit/.runtime.new-* /var/lib/richinit/.runtime.old-*
    rmdir /var/lib/richinit 2>/dev/null || true
fi
exit 0
"""
POSTRM = """#!/bin/sh
set -e
if [ "$1" = purge ]; then
    # State and logs the tools made (containers, quota records, hook.log); `rich install`'s engine
    # configuration is the administrator's, taken out by `rich uninstall`.
    rm -rf /var/lib/richinit /var/log/richinit
fi
exit 0
"""


def version():
    with open(os.path.join(REPO, "pyproject.toml")) as f:
        for line in f:
            if line.startswith("version"):
                return line.split("=", 1)[1].strip().strip('"')
    raise SystemExit("build-deb: pyproject.toml: no version")


def _copy_tree(src, dst, keep):
    for dirpath, dirnames, files in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d not in ("__pycache__", "tests"))
        rel = os.path.relpath(dirpath, src)
        for fn in sorted(files):
            if keep(fn):
                out = os.path.normpath(os.path.join(dst, rel, fn))
                os.makedirs(os.path.dirname(out), mode=0o755, exist_ok=True)
                shutil.copyfile(os.path.join(dirpath, fn), out)
                os.chmod(out, 0o755 if os.access(os.path.join(dirpath, fn), os.X_OK) and "/bin" in out else 0o644)


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def stage(root, ver):
    for pkg in PACKAGES:
        _copy_tree(os.path.join(REPO, pkg), os.path.join(root, DIST, pkg), lambda fn: fn.endswith(".py"))
    spec = importlib.util.find_spec("mfusepy")
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise SystemExit("build-deb: mfusepy is not importable by %s (pip install mfusepy)" % sys.executable)
    shutil.copyfile(spec.origin, os.path.join(root, DIST, "mfusepy.py"))
    os.chmod(os.path.join(root, DIST, "mfusepy.py"), 0o644)
    for d in DATA:
        _copy_tree(os.path.join(REPO, d), os.path.join(root, "usr/share/richinit", d), lambda fn: True)
    for name in launchers.PROGRAMS:
        _write(os.path.join(root, "usr/bin", name), launchers.render(name, "/usr/bin/python3", ["/" + DIST]), 0o755)
    _write(os.path.join(root, "usr/share/doc/richinit/copyright"),
           "richinit: Apache-2.0 (see the project's README)\nmfusepy.py: ISC, (c) its authors (PyPI: mfusepy)\n")
    size = sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(root) for f in fs) // 1024
    _write(os.path.join(root, "DEBIAN/control"), "\n".join([
        "Package: richinit", "Version: %s" % ver, "Architecture: all",
        "Maintainer: richinit developers <richinit@localhost>",
        "Section: admin", "Priority: optional", "Depends: %s" % DEPENDS, "Recommends: %s" % RECOMMENDS,
        "Suggests: %s" % SUGGESTS, "Installed-Size: %d" % size,
        "Description: rich containers: an init, services and /proc views for unmodified images",
        " richinit runs as PID 1 in any OCI container (reaping, signals, ordered shutdown, sshd/cron/syslog),",
        " injected by the rich-runtime wrapper or OCI hooks for Docker, containerd (Kubernetes), podman,",
        " CRI-O and LXC, with /proc views of the container's limits and quota directories.", ""]))
    _write(os.path.join(root, "DEBIAN/postinst"), POSTINST, 0o755)
    _write(os.path.join(root, "DEBIAN/prerm"), PRERM, 0o755)
    _write(os.path.join(root, "DEBIAN/postrm"), POSTRM, 0o755)


def main(argv=None):
    p = argparse.ArgumentParser(prog="build-deb", description="Build richinit's .deb with dpkg-deb.")
    p.add_argument("--output", default=os.path.join(REPO, "dist"), help="directory for the .deb (default dist/)")
    a = p.parse_args(argv)
    if shutil.which("dpkg-deb") is None:
        raise SystemExit("build-deb: dpkg-deb not found (apt-get install dpkg)")
    ver = version()
    os.makedirs(a.output, exist_ok=True)
    out = os.path.join(os.path.abspath(a.output), "richinit_%s_all.deb" % ver)
    with tempfile.TemporaryDirectory(prefix="richinit-deb-") as tmp:
        root = os.path.join(tmp, "richinit")
        os.makedirs(root, mode=0o755)
        os.chmod(tmp, 0o755)
        stage(root, ver)
        r = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, out],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("build-deb: dpkg-deb failed: %s" % r.stderr.strip())
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
