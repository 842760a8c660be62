"""The host-side entry points that set things up (root): their imports held to the budget of
tests/support/import_budget.py while doing the real work (views registered, quotas mounted)."""

import json
import os
import sys

import pytest

from tests.integration.richcli.conftest import REPO
from tests.support.containers import make_bundle
from tests.support.import_budget import BUDGETS
from tests.support.imports import imported, over_budget


def check(entry, mods, r):
    extra = over_budget(mods, BUDGETS[entry])
    assert not extra, "%s loads modules outside its budget (µs, cumulative): %s" % (
        entry, sorted(extra.items(), key=lambda kv: -kv[1]))


def program(env, name):
    path = os.path.join(env.bin, name)
    if name == "rich-runtime":  # a sh launcher: its Python part, as the launcher runs it for a create
        import sysconfig

        from runtime_hooks import launchers
        code = launchers.runtime_code([REPO, sysconfig.get_paths()["purelib"]],
                                      os.path.join(os.path.abspath(env.bin), "rich-runtime.memo"))
        return [sys.executable, "-X", "importtime", "-IS", "-c", code, path]
    return [sys.executable, "-X", "importtime", "-IS", path]


@pytest.mark.parametrize("quota", [False, True], ids=["views", "views+quota"])
def test_rich_run(clean, nopy_rootfs, tmp_path, quota):
    vol = tmp_path / "vol"
    vol.mkdir()
    opts = ["--quota", "/data=10M", "-v", "%s:/data" % vol] if quota else []
    r, mods = imported(program(clean, "rich") + ["run"] + opts + [nopy_rootfs, "--", "/bin/true"], env=clean.env,
                       timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    check("rich run, quota" if quota else "rich run", mods, r)


def test_rich_runtime_create_and_the_hooks_it_registers(clean, nopy_rootfs, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    b = str(tmp_path / "bundle")
    make_bundle(b, nopy_rootfs, ["/bin/true"],
                mounts=[{"destination": "/data", "type": "bind", "source": str(vol), "options": ["rbind"]}],
                annotations={"io.richinit.rich": "true", "io.richinit.quota": "/data=10M"})
    cid = "budget-%d" % os.getpid()
    env = dict(clean.env, RICHINIT_RUNTIME="/bin/true")
    try:
        r, mods = imported(program(clean, "rich-runtime") + ["create", "--bundle", b, cid], env=env, timeout=60)
        assert r.returncode == 0, r.stderr[-2000:]
        check("rich-runtime create, quota", mods, r)
        state = json.dumps({"ociVersion": "1.0.2", "id": cid, "pid": os.getpid(), "bundle": b})
        r, mods = imported(program(clean, "rich-hook") + ["createRuntime"], env=env, input=state, timeout=60)
        assert r.returncode == 0, r.stderr[-2000:]
        check("rich-hook", mods, r)
    finally:
        state = json.dumps({"ociVersion": "1.0.2", "id": cid, "bundle": b})
        r, mods = imported(program(clean, "rich-hook") + ["poststop"], env=env, input=state, timeout=60)
    assert r.returncode == 0 and "plan undone" in clean.hook_log(), r.stderr[-2000:]
    # poststop releases a loop quota: the quota package is loaded (it is in the plan), nothing else
    check("rich-hook, quota", mods, r)
