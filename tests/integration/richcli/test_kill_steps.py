"""SIGKILL of the host process at each step of the pipeline, then `rich ps` and `rich gc`: the
killed work is reported and undone, and nothing is left (mounts, loop devices, view
registrations, quota IDs and records, cgroups, plans, bundles).

The kill comes from tests/support/killstep.py, which wraps the pipeline's steps in the killed
process itself: production code has no switch for it.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from runtime_hooks import pipeline
from runtime_hooks.quota import mountinfo
from tests.support.containers import REPO, make_bundle
from tests.support.wait import wait_until


def killed(env, step, when, program, *args):
    return subprocess.run([sys.executable, "-m", "tests.support.killstep", step, when, program] + list(args),
                          env=dict(env.env, PYTHONPATH=REPO), cwd=REPO, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def _loops_backed_under(path):
    out = []
    for dev in os.listdir("/sys/block"):
        try:
            with open("/sys/block/%s/loop/backing_file" % dev) as f:
                backing = f.read().strip()
        except OSError:
            continue
        if backing.startswith(path + "/"):
            out.append((dev, backing))
    return out


def _files_under(path):
    out = []
    for top, _dirs, files in os.walk(path):
        out += [os.path.relpath(os.path.join(top, f), path) for f in files]
    return sorted(out)


def assert_nothing_left(env, name, *dirs):
    state = os.path.realpath(env.vars["RICHINIT_STATE_DIR"])
    assert env.containers() == [], "bundles left"
    assert env.registered() == [], "view registrations left"
    watched = [os.path.realpath(d) for d in (env.vars["RICHINIT_CONTAINERS_DIR"], state) + dirs]
    mounts = [m.mount_point for m in mountinfo.read()
              if any(m.mount_point == w or m.mount_point.startswith(w + "/") for w in watched)]
    assert mounts == [], "mounts left"
    # An autoclear loop device is detached by the kernel's rundown work once unmounted: wait for it.
    assert wait_until(lambda: _loops_backed_under(state) == [], timeout=10), _loops_backed_under(state)
    # Of the state directory only the ID allocator's lock and its (empty) table may remain.
    left = [f for f in _files_under(state) if f not in ("quota/ids.lock", "quota/ids.json")]
    assert left == [], "files left under the state directory"
    ids = os.path.join(state, "quota", "ids.json")
    if os.path.exists(ids):
        with open(ids) as f:
            assert json.load(f) == {}, "quota IDs left"
    assert not [d for d in os.listdir("/sys/fs/cgroup") if name in d], "cgroups left"


RUN_STEPS = [(s, w) for s in pipeline.STEPS["run"] for w in ("before", "after")] + [("quota", "during")]


@pytest.mark.parametrize("step,when", RUN_STEPS, ids=["%s-%s" % sw for sw in RUN_STEPS])
def test_rich_run_killed_at_each_step_then_gc(clean, nopy_rootfs, tmp_path, step, when):
    vol = tmp_path / "vol"
    vol.mkdir()
    name = "kill-%s-%s-%d" % (step, when, os.getpid())
    r = killed(clean, step, when, "rich", "run", "--name", name, "--quota", "/data=10M", "-v", "%s:/data" % vol,
               nopy_rootfs, "--", "/bin/true")
    assert r.returncode == -signal.SIGKILL, r.stderr
    # The next rich command says what it found and undoes it; ps lists no phantom.
    ps = clean.rich("ps")
    assert ps.returncode == 0, ps.stderr
    # (named by the last step with something to undo: config and record ride on the next save)
    assert "%s: interrupted at " % name in ps.stderr and "; undone" in ps.stderr, ps.stderr
    assert name not in ps.stdout
    gc = clean.rich("gc")
    assert gc.returncode == 0 and "nothing to collect" in gc.stdout, gc.stderr
    assert_nothing_left(clean, name, str(vol))


def test_rich_run_killed_while_the_app_runs(clean, nopy_rootfs, tmp_path):
    """`rich run` SIGKILLed after the runtime started: ps shows the container running (the runtime
    knows it), then, once the app is done, the next command undoes the rest."""
    vol = tmp_path / "vol"
    vol.mkdir()
    stop = tmp_path / "vol" / "stop"
    name = "kill-app-%d" % os.getpid()
    p = subprocess.Popen([sys.executable, "-m", "tests.support.killstep", "none", "never", "rich", "run", "--name",
                          name, "--quota", "/data=10M", "-v", "%s:/data" % vol, nopy_rootfs, "--", "/bin/sh", "-c",
                          "touch /data/up; while [ ! -e /data/stop ]; do sleep 0.05; done"],
                         env=dict(clean.env, PYTHONPATH=REPO), cwd=REPO, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # /data is the loop image once the app runs: `up` is inside it.
        assert wait_until(lambda: os.path.exists(os.path.join(clean.vars["RICHINIT_STATE_DIR"], "plans"))
                          and "running" in clean.rich("ps").stdout, timeout=60)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        ps = clean.rich("ps")
        row = [line for line in ps.stdout.splitlines() if line.startswith(name)]
        assert row and " running " in row[0], ps.stdout
        assert clean.registered() == [name + ".json"], "the running container keeps its views"
        with open(stop, "w"):
            pass  # into the loop image mounted over vol: the app's /data/stop
        # runc run (orphaned, still in the foreground) deletes the container when the app ends
        assert wait_until(lambda: not os.path.exists(os.path.join(clean.vars["RICHINIT_RUN_ROOT"], name)),
                          timeout=60)
        ps = clean.rich("ps")
        assert "%s: gone; undone" % name in ps.stderr, ps.stderr
        assert_nothing_left(clean, name, str(vol))
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        subprocess.run(["runc", "--root", clean.vars["RICHINIT_RUN_ROOT"], "delete", "--force", name],
                       capture_output=True)
        clean.rich("gc")


@pytest.mark.parametrize("step", ["views", "quota", "rootfs", "bundle"])
def test_rich_rm_killed_at_each_undo_step(clean, nopy_rootfs, tmp_path, step):
    vol = tmp_path / "vol"
    vol.mkdir()
    name = "kill-rm-%s-%d" % (step, os.getpid())
    r = clean.rich("run", "-d", "--name", name, "--quota", "/data=10M", "-v", "%s:/data" % vol, nopy_rootfs, "--",
                   "/bin/sleep", "60")
    assert r.returncode == 0, r.stderr
    r = killed(clean, step, "undone", "rich", "rm", "-f", name)
    assert r.returncode == -signal.SIGKILL, r.stderr
    ps = clean.rich("ps")
    assert "%s: gone; undone" % name in ps.stderr and name not in ps.stdout, (ps.stdout, ps.stderr)
    assert_nothing_left(clean, name, str(vol))


WRAPPER_STEPS = [(s, w) for s in pipeline.STEPS["wrapper"] for w in ("before", "after")]


@pytest.mark.parametrize("step,when", WRAPPER_STEPS, ids=["%s-%s" % sw for sw in WRAPPER_STEPS])
def test_rich_runtime_create_killed_at_each_step_then_gc(clean, nopy_rootfs, tmp_path, step, when):
    vol = tmp_path / "vol"
    vol.mkdir()
    b = str(tmp_path / "bundle")
    make_bundle(b, nopy_rootfs, ["/bin/true"],
                mounts=[{"destination": "/data", "type": "bind", "source": str(vol), "options": ["rbind"]}],
                annotations={"io.richinit.rich": "true", "io.richinit.quota": "/data=10M"})
    name = "kill-rt-%s-%s-%d" % (step, when, os.getpid())
    root = str(tmp_path / "root")  # the runtime's state: never created, so the container is gone
    r = killed(clean, step, when, "rich-runtime", "--root", root, "create", "--bundle", b, name)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert os.path.exists(os.path.join(clean.vars["RICHINIT_STATE_DIR"], "plans", name + ".json"))
    gc = clean.rich("gc")
    assert gc.returncode == 0 and "%s: interrupted at " % name in gc.stderr, gc.stderr
    assert_nothing_left(clean, name, str(vol))


@pytest.mark.parametrize("when", ["before", "after"])
def test_create_runtime_hook_killed_at_views_then_gc(clean, nopy_rootfs, tmp_path, when):
    """The hooks.d path (no wrapper): createRuntime plans and registers the views itself."""
    b = str(tmp_path / "bundle")
    make_bundle(b, nopy_rootfs, ["/bin/true"], annotations={"io.richinit.rich": "true"})
    name = "kill-hook-%s-%d" % (when, os.getpid())
    init = subprocess.Popen(["sleep", "60"])
    try:
        state = json.dumps({"ociVersion": "1.0.2", "id": name, "pid": init.pid, "bundle": b, "status": "creating"})
        r = subprocess.run([sys.executable, "-m", "tests.support.killstep", "views", when, "rich-hook",
                            "createRuntime"],
                           env=dict(clean.env, PYTHONPATH=REPO, RICHINIT_HOOK_RUNTIME="runc"), cwd=REPO, input=state,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == -signal.SIGKILL, r.stderr
        gc = clean.rich("gc")
        assert "%s: interrupted at views; undone" % name in gc.stderr, gc.stderr
        assert_nothing_left(clean, name)
    finally:
        init.kill()
        init.wait()


def test_gc_leaves_live_plans_alone(clean, nopy_rootfs, tmp_path):
    """A plan whose applying process lives is `creating` in ps and untouched by gc."""
    name = "kill-live-%d" % os.getpid()
    p = subprocess.Popen([sys.executable, "-c", "import signal, sys; sys.stdout.write('ok\\n'); sys.stdout.flush(); "
                          "signal.pause()"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ok\n"
        from runtime_hooks.hostprep import HostPaths
        paths = HostPaths(state_dir=clean.vars["RICHINIT_STATE_DIR"])
        plan = pipeline.new_plan(name, "run", os.path.join(clean.vars["RICHINIT_CONTAINERS_DIR"], name), "runc",
                                 paths, run={"overlay": True, "source": nopy_rootfs, "detached": False})
        plan["owner"] = pipeline._proc_id(p.pid)
        pipeline.claim(plan, paths)
        ps = clean.rich("ps")
        assert [line for line in ps.stdout.splitlines() if line.startswith(name) and " creating " in line], ps.stdout
        assert "nothing to collect" in clean.rich("gc").stdout
        rm = clean.rich("rm", name)
        assert rm.returncode == 125 and "being created" in rm.stderr
        p.kill()
        p.wait()
        assert clean.rich("rm", name).returncode == 0
        assert pipeline.load(paths, name) is None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("step", ["views", "quota"])
def test_poststop_killed_while_undoing_then_gc(clean, nopy_rootfs, tmp_path, step):
    """rich-runtime create, createRuntime with the init, the init gone, then poststop SIGKILLed
    half-way through its undo: the next rich command finishes it."""
    vol = tmp_path / "vol"
    vol.mkdir()
    b = str(tmp_path / "bundle")
    make_bundle(b, nopy_rootfs, ["/bin/true"],
                mounts=[{"destination": "/data", "type": "bind", "source": str(vol), "options": ["rbind"]}],
                annotations={"io.richinit.rich": "true", "io.richinit.quota": "/data=10M"})
    name = "kill-poststop-%s-%d" % (step, os.getpid())
    env = dict(clean.env, RICHINIT_RUNTIME="/bin/true", PYTHONPATH=REPO)
    r = subprocess.run([os.path.join(clean.bin, "rich-runtime"), "--root", str(tmp_path / "root"), "create",
                        "--bundle", b, name], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    init = subprocess.Popen(["sleep", "60"])
    try:
        state = json.dumps({"ociVersion": "1.0.2", "id": name, "pid": init.pid, "bundle": b})
        r = subprocess.run([os.path.join(clean.bin, "rich-hook"), "createRuntime"], env=env, input=state,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "nothing to collect" in clean.rich("gc").stdout, "a live init keeps its plan"
    finally:
        init.kill()
        init.wait()
    state = json.dumps({"ociVersion": "1.0.2", "id": name, "bundle": b})
    r = subprocess.run([sys.executable, "-m", "tests.support.killstep", step, "undone", "rich-hook", "poststop"],
                       env=env, cwd=REPO, input=state, capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL, r.stderr
    gc = clean.rich("gc")
    assert "%s: gone; undone" % name in gc.stderr, gc.stderr
    assert_nothing_left(clean, name, str(vol))
