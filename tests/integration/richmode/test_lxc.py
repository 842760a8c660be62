"""LXC (the stand-in for runlxc) with the shipped include, hooks/lxc/richinit.conf: an unmodified
busybox rootfs with no Python boots under richinit from the read-only runtime, with its built-in
syslog and cron, and the app's orphans are reaped.

LXC hooks get no OCI state, so the include brings richinit and the runtime mount only; the test
points the include's runtime path at this session's build, as `rich install` would at the system's.
"""

import os
import shutil
import subprocess

from tests.support.containers import REPO

from .conftest import need_root_and

APP = """#!/bin/sh
{ readlink /proc/1/exe | tr '\\n' ' '; tr '\\0' ' ' </proc/1/cmdline; } > /out.txt; echo >> /out.txt
sh -c 'sleep 0.2 &'
sleep 0.6
ps -o stat,args >> /out.txt
grep -c . /proc/mounts >/dev/null
exit 3
"""


def _pivots():
    """The lxc.pivot cgroups LXC leaves behind in every hierarchy (empty; it uses them to clean up)."""
    base = "/sys/fs/cgroup"
    return {os.path.join(base, d, "lxc.pivot") for d in os.listdir(base)
            if os.path.isdir(os.path.join(base, d, "lxc.pivot"))}


def test_lxc_container_boots_under_richinit(tmp_path, portable_runtime, nopy_rootfs):
    need_root_and("lxc-start")
    before = _pivots()
    try:
        _boot(tmp_path, portable_runtime, nopy_rootfs)
    finally:
        for d in _pivots() - before:
            try:
                os.rmdir(d)
            except OSError:
                pass


def _boot(tmp_path, portable_runtime, nopy_rootfs):
    lxcpath = tmp_path / "lxc"
    ct = lxcpath / "rc1"
    rootfs = ct / "rootfs"
    shutil.copytree(nopy_rootfs, rootfs, symlinks=True)
    (rootfs / "app.sh").write_text(APP)
    (rootfs / "app.sh").chmod(0o755)
    with open(os.path.join(REPO, "hooks", "lxc", "richinit.conf")) as f:
        include = f.read()
    assert "/var/lib/richinit/runtime " in include
    (tmp_path / "richinit.conf").write_text(include.replace("/var/lib/richinit/runtime ", portable_runtime + " "))
    init_cmd = [line for line in include.splitlines() if line.startswith("lxc.init.cmd")][0]
    (ct / "config").write_text("\n".join([
        "lxc.uts.name = rc1",
        "lxc.rootfs.path = dir:%s" % rootfs,
        "lxc.net.0.type = empty",
        "lxc.apparmor.profile = unconfined",
        "lxc.mount.auto = proc:mixed sys:ro cgroup:mixed",
        "lxc.include = %s" % (tmp_path / "richinit.conf"),
        init_cmd.replace("-- /sbin/init", "-- /app.sh"),  # the shipped command line, with our app
    ]) + "\n")
    log = tmp_path / "lxc.log"
    r = subprocess.run(["lxc-start", "-P", str(lxcpath), "-n", "rc1", "-F", "-l", "INFO", "-o", str(log)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    try:
        out = (rootfs / "out.txt").read_text()
    except FileNotFoundError:
        out = "(no output)\n" + r.stdout + r.stderr + log.read_text()[-2000:]
    first, *ps = out.splitlines()
    assert "/.richinit/" in first and "richinit" in first and "-- /app.sh" in first, out
    assert any("richinit-syslogd" in line for line in ps) and any("richinit-cron" in line for line in ps), out
    assert not [line for line in ps[1:] if line.split()[0].startswith("Z")], "an orphan was left a zombie: " + out
    # lxc-start itself exits 0; the init's exit status (the app's 3, passed on by richinit) is in its log
    assert "ended on error (3)" in log.read_text(), log.read_text()[-2000:]
    subprocess.run(["lxc-stop", "-P", str(lxcpath), "-n", "rc1", "-k"], capture_output=True, timeout=30)
