"""`rich run` and friends on real runc with a busybox image that has no Python."""

import os
import shlex
import shutil
import signal
import subprocess
import tarfile
import time

import pytest

from runtime_hooks.quota import mountinfo
from tests.support.wait import wait_until

# PID 1's argv, an orphan reparented to PID 1 and reaped, every process's state, then exit 7.
SCRIPT = r"""
readlink /proc/1/exe | tr '\n' ' '; tr '\0' ' ' < /proc/1/cmdline; echo
sh -c 'sleep 0.2 &'
sleep 0.8
echo "stats: $(ps -o stat= | tr -d ' ' | tr '\n' ' ')"
exit 7
"""


def _mounted_below(path):
    real = os.path.realpath(path)
    return [m.mount_point for m in mountinfo.read() if m.mount_point.startswith(real + "/")]


def test_run_puts_richinit_as_pid1_and_passes_the_exit_code(clean, nopy_rootfs):
    r = clean.rich("run", "--name", "pid1", nopy_rootfs, "--", "/bin/sh", "-c", SCRIPT)
    assert r.returncode == 7, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert "/.richinit/" in lines[0] and "richinit" in lines[0] and "-- /bin/sh -c" in lines[0], lines[0]
    # with services, the title is set before the app starts: the whole command line, no loader words
    exe, cmdline = lines[0].split(" ", 1)
    assert exe.startswith("/.richinit/lib/ld-") and cmdline.startswith("richinit -- /bin/sh -c"), lines[0]
    stats = [s for s in lines if s.startswith("stats: ")][0].split()[1:]
    assert stats and not [s for s in stats if s.startswith("Z")], "an orphan was left a zombie"
    # a foreground container is gone afterwards (its teardown finishes after rich run's exit):
    # bundle, overlay, registration
    clean.settle()
    assert clean.containers() == []
    assert _mounted_below(clean.vars["RICHINIT_CONTAINERS_DIR"]) == []
    # rich run is its own engine: no hook program ran, and the view registration is gone all the same
    log = [line for line in clean.hook_log().splitlines() if " pid1: " in line]
    assert not [line for line in log if " rich-hook[" in line], log
    assert [line for line in log if "run pid1: views: builtin (registered by rootfs); quotas: none" in line], log
    assert [line for line in log if "rm pid1: plan undone (record, config, views, quota, rootfs, bundle)" in line], log
    assert clean.registered() == []
    # the image itself was never written to (the overlay took the writes)
    assert not os.path.exists(os.path.join(nopy_rootfs, "run", "richinit"))


def test_run_from_a_tarball(clean, nopy_rootfs, tmp_path):
    tar = tmp_path / "rootfs.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(nopy_rootfs, arcname=".")
    r = clean.rich("run", tar, "--", "/bin/sh", "-c", "tr '\\0' ' ' </proc/1/cmdline; exit 5")
    assert r.returncode == 5, r.stderr
    assert "richinit" in r.stdout


def test_views_follow_memory_and_cpus(clean, nopy_rootfs):
    script = ("head -1 /proc/meminfo; grep -c ^processor /proc/cpuinfo;"
              # busybox cat uses sendfile, which FUSE views do not serve: read with dd
              " dd if=/sys/devices/system/cpu/online bs=64 count=1 2>/dev/null; free -m | sed -n 2p")
    r = clean.rich("run", "--memory", "256m", "--cpus", "1.5", nopy_rootfs, "--", "/bin/sh", "-c", script)
    assert r.returncode == 0, r.stderr
    meminfo, cpus, online, free = r.stdout.splitlines()
    assert meminfo.split()[1] == str(256 * 1024), meminfo
    assert cpus == "2" and online == "0-1"
    # busybox free takes total/free from sysinfo(2), which no /proc view reaches; "available" is ours
    assert int(free.split()[-1]) <= 256, free


def test_views_without_a_hook_follow_the_container_through_a_view_server_restart(clean, nopy_rootfs):
    """No createRuntime hook tells the server the init's pid: it finds it from the first reader (its
    root is the registered rootfs), and the watcher finds it by the rootfs to re-bind after a restart."""
    from lxcfs import api, locate, registry
    v = clean.vars
    assert clean.rich("run", "-d", "--memory", "96m", "--name", "vw", nopy_rootfs, "--", "sleep", "60").returncode == 0
    try:
        entry = registry.read_one("vw", v["RICHINIT_VIEWS_REGISTRY"])
        assert entry["pid"] is None and entry["root"], entry  # registered before the init existed
        meminfo = lambda: clean.rich("exec", "vw", "--", "head", "-1", "/proc/meminfo").stdout  # noqa: E731
        assert meminfo().split()[1:2] == [str(96 * 1024)]
        init = int(subprocess.run(["runc", "--root", v["RICHINIT_RUN_ROOT"], "state", "vw"], capture_output=True,
                                  text=True).stdout.split('"pid": ')[1].split(",")[0])
        assert locate.init_by_scan(entry["root"]) == init
        old = api._read_pid(v["RICHINIT_VIEWS_PIDFILE"])
        os.kill(old, signal.SIGKILL)
        assert wait_until(lambda: not os.path.exists("/proc/%d" % old), 10)
        api.ensure_server_running(v["RICHINIT_VIEWS_MOUNT"], v["RICHINIT_VIEWS_REGISTRY"], v["RICHINIT_VIEWS_PIDFILE"],
                                  os.path.join(v["RICHINIT_LOG_DIR"], "views.log"))
        assert wait_until(lambda: meminfo().split()[1:2] == [str(96 * 1024)], 5), meminfo()
    finally:
        assert clean.rich("rm", "-f", "vw").returncode == 0


def test_tty_gives_the_app_a_terminal(clean, nopy_rootfs):
    if not shutil.which("script"):
        pytest.skip("util-linux script (a pty for the test) is not installed")
    cmd = " ".join(shlex.quote(a) for a in [os.path.join(clean.bin, "rich"), "run", "-t", "--no-services", nopy_rootfs,
                                            "--", "/bin/sh", "-c", "tty; exit 4"])
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=clean.env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 4, (r.stdout, r.stderr)
    assert "/dev/pts/" in r.stdout, r.stdout


def test_detached_ps_exec_stop_rm(clean, nopy_rootfs):
    r = clean.rich("run", "-d", "--name", "bg", nopy_rootfs, "--", "/bin/sh", "-c",
                   "trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.05; done")
    assert r.returncode == 0 and r.stdout.strip() == "bg", r.stderr
    ps = clean.rich("ps")
    row = [line for line in ps.stdout.splitlines() if line.startswith("bg ")]
    assert row and row[0].split()[1] == "running", ps.stdout
    ex = clean.rich("exec", "bg", "--", "ps", "-o", "pid,args")
    assert ex.returncode == 0, ex.stderr
    first = [line for line in ex.stdout.splitlines()[1:] if line.split()[0] == "1"][0]
    assert "richinit" in first
    assert clean.rich("exec", "bg", "--", "sh", "-c", "exit 9").returncode == 9
    t0 = time.monotonic()
    st = clean.rich("stop", "--time", "10", "bg")
    assert st.returncode == 0, st.stderr
    assert time.monotonic() - t0 < 8, "TERM should have stopped it well before the KILL deadline"
    assert "bg" in clean.rich("ps").stdout and "stopped" in clean.rich("ps").stdout
    assert "got TERM" in clean.rich("logs", "bg").stdout
    assert clean.rich("rm", "bg").returncode == 0
    assert "bg" not in clean.rich("ps").stdout
    assert clean.containers() == []


def test_rm_refuses_a_running_container_without_force(clean, nopy_rootfs):
    assert clean.rich("run", "-d", "--name", "busy", nopy_rootfs, "--", "sleep", "60").returncode == 0
    r = clean.rich("rm", "busy")
    assert r.returncode == 125 and "running" in r.stderr and r.stderr.count("\n") == 1
    assert clean.rich("rm", "-f", "busy").returncode == 0


def test_quota_volume_stops_writes_past_the_limit(clean, nopy_rootfs, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    script = ("dd if=/dev/zero of=/data/big bs=64k count=320 2>/tmp/err; echo rc=$?; grep -o 'No space left' /tmp/err;"
              " dd if=/dev/zero of=/tmp/other bs=1M count=12 2>/dev/null; echo other=$?")
    r = clean.rich("run", "--quota", "/data=10M", "-v", "%s:/data" % vol, nopy_rootfs, "--", "/bin/sh", "-c",
                   script)
    assert r.returncode == 0, r.stderr
    assert "rc=1" in r.stdout and "No space left" in r.stdout and "other=0" in r.stdout, r.stdout
    # released on the way out: nothing mounted over the volume, no image, no record
    clean.settle()
    assert mountinfo.at(mountinfo.read(), str(vol)) is None
    assert not (vol / "big").exists()
    assert "(none)" in clean.rich("quota", "ls").stdout or len(clean.rich("quota", "ls").stdout.splitlines()) == 1


def test_quota_ls_shows_a_running_containers_limit(clean, nopy_rootfs, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    r = clean.rich("run", "-d", "--name", "q", "--quota", "/data=10M", "-v", "%s:/data" % vol, nopy_rootfs,
                   "--", "sleep", "60")
    assert r.returncode == 0, r.stderr
    try:
        ls = clean.rich("quota", "ls")
        row = [line for line in ls.stdout.splitlines() if line.startswith("q ")]
        assert row and "/data" in row[0] and "loop" in row[0] and "10M" in row[0], ls.stdout
    finally:
        assert clean.rich("rm", "-f", "q").returncode == 0
    assert mountinfo.at(mountinfo.read(), str(vol)) is None


def test_bad_input_is_one_line_and_leaves_nothing(clean, nopy_rootfs, tmp_path):
    cases = [
        (["run", str(tmp_path / "nope"), "--", "true"], "nope"),
        (["run", "--memory", "lots", nopy_rootfs, "--", "true"], "--memory"),
        (["run", "--cpus", "-1", nopy_rootfs, "--", "true"], "--cpus"),
        (["run", "-v", "rel:/data", nopy_rootfs, "--", "true"], "-v rel:/data"),
        (["run", "--annotation", "io.richinit.grace=soon", nopy_rootfs, "--", "true"], "io.richinit.grace"),
        (["run", "--quota", "/data=lots", nopy_rootfs, "--", "true"], "/data=lots"),
        (["run", "--name", "../x", nopy_rootfs, "--", "true"], "--name"),
        # refused by the wrapper's quota planner: after views were registered, which must be undone
        (["run", "--quota", "/nothere=10M", "-v", "%s:/data" % tmp_path, nopy_rootfs, "--", "true"],
         "/nothere=10M"),
        (["run", nopy_rootfs], "CMD is missing"),
        (["exec", "ghost", "--", "true"], "no container named ghost"),
        (["stop", "ghost"], "no container named ghost"),
        (["frobnicate"], "invalid choice"),
    ]
    for args, needle in cases:
        r = clean.rich(*args)
        assert r.returncode == 125, (args, r.stdout, r.stderr)
        assert needle in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (args, r.stderr)
    assert clean.containers() == []


def test_rootfs_without_a_built_runtime_fails_cleanly(clean, nopy_rootfs, tmp_path):
    conf = tmp_path / "runtime.yaml"
    conf.write_text("runtime: runc\nruntime_dir: %s\n" % (tmp_path / "none"))
    env = dict(clean.env, RICHINIT_RUNTIME_CONFIG=str(conf))
    r = clean.rich("run", "--name", "nort", nopy_rootfs, "--", "true", env=env)
    assert r.returncode == 125 and "rich runtime build" in r.stderr, r.stderr
    assert clean.containers() == []


def test_crun(clean, nopy_rootfs, tmp_path):
    """crun through the same wrapper (a shim drops the cgroup2 mount crun refuses on hybrid hosts)."""
    import shutil
    if not shutil.which("crun") or not shutil.which("unshare"):
        import pytest
        pytest.skip("crun or unshare is not installed")
    shim = tmp_path / "crun"
    shim.write_text("#!/bin/sh\nexec unshare -m --propagation private sh -c "
                    "'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun \"$@\"' crun \"$@\"\n")
    shim.chmod(0o755)
    r = clean.rich("run", "--runtime", str(shim), "--memory", "256m", nopy_rootfs, "--", "/bin/sh", "-c",
                   "tr '\\0' ' ' </proc/1/cmdline; echo; head -1 /proc/meminfo; exit 4")
    assert r.returncode == 4, r.stderr
    first, mem = r.stdout.splitlines()[:2]
    assert "richinit" in first and mem.split()[1] == str(256 * 1024), r.stdout


def test_runtime_build_and_quota_ls_commands(clean, tmp_path):
    out = tmp_path / "rt"
    r = clean.rich("runtime", "build", "--output", out, timeout=120)
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout and "MB" in r.stdout and (out / "runtime.json").exists()
    assert clean.rich("quota", "ls").returncode == 0


def test_no_leftover_processes_of_runc(clean):
    """Nothing of ours keeps running but the view server and watcher (stopped at session end)."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert clean.vars["RICHINIT_RUN_ROOT"] not in out


def test_a_failing_start_still_releases_everything(clean, nopy_rootfs, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    r = clean.rich("run", "--quota", "/data=10M", "-v", "%s:/data" % vol, nopy_rootfs, "--", "/no/such/app")
    assert r.returncode != 0
    clean.settle()  # the teardown finishes after rich run's exit
    assert mountinfo.at(mountinfo.read(), str(vol)) is None  # `clean` checks records and registrations


def test_a_name_is_free_again_as_soon_as_rich_run_returns(clean, nopy_rootfs):
    """The teardown finishes after rich run's exit; a run reusing the name waits for it (pipeline.claim)."""
    for _ in range(3):
        r = clean.rich("run", "--name", "again", nopy_rootfs, "--", "/bin/true")
        assert r.returncode == 0, r.stderr
