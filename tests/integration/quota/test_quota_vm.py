"""Project quotas enforced for real, in ONE boot of a throwaway VM running Debian's kernel.

This machine's kernel has no quota support; Debian's has. The VM shares the host root read-only,
so the same code (runtime_hooks.quota, osbase.fsquota) runs there against a loop-mounted xfs with
prjquota and an ext4 with the project feature. vm_checks.py records one result per check; each
test below asserts one of them.
"""

import json
import os
import shutil

import pytest

from tests.support import qemu_vm

pytestmark = pytest.mark.slow
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def vm_results(tmp_path_factory):
    reason = qemu_vm.unavailable()
    if reason:
        pytest.skip("no throwaway VM here: " + reason)
    kernel = qemu_vm.Kernel.ensure()
    work = tmp_path_factory.mktemp("quota-vm")
    job, out = work / "job.sh", work / "results.json"
    # The guest sees the host root read-only but with fresh tmpfs on /tmp and /run, where a CI clone
    # may live: run a copy of the code from the work share (mounted at the same path in the guest).
    repo = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
    src = work / "src"
    for pkg in ("osbase", "runtime_hooks"):
        shutil.copytree(os.path.join(repo, pkg), src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(repo, "tests"), src / "tests",
                    ignore=shutil.ignore_patterns("__pycache__", "fixtures", "integration"))
    shutil.copytree(HERE, src / "tests" / "integration" / "quota", ignore=shutil.ignore_patterns("__pycache__"))
    job.write_text("cd %s && PYTHONDONTWRITEBYTECODE=1 exec /usr/bin/python3 %s %s\n"
                   % (src, src / "tests" / "integration" / "quota" / "vm_checks.py", out))
    res = kernel.run_job(str(job), str(work), modules=["loop", "xfs", "ext4", "quota_v2"], timeout=240)
    assert out.exists(), "the VM job wrote no results (exit %s):\n%s" % (res.exit_code, res.console[-3000:])
    results = json.loads(out.read_text())
    results["_boot"] = {"exit_code": res.exit_code, "seconds": res.seconds}
    print("VM boot: %.1f s, exit %s" % (res.seconds, res.exit_code))
    return results


def _check(results, name):
    r = results.get(name)
    assert r is not None, "check %s did not run: %s" % (name, sorted(results))
    assert r["ok"], json.dumps(r, indent=1)
    return r


def test_xfs_prjquota_stops_writes_with_enospc(vm_results):
    r = _check(vm_results, "xfs_enforce")
    assert r["backend"] == "project" and r["errno"] == "ENOSPC"
    assert r["limit"] == 10 << 20 and r["df_size"] == 10 << 20  # df on the directory shows the limit


def test_ext4_project_feature_stops_unprivileged_writes_with_edquot(vm_results):
    r = _check(vm_results, "ext4_enforce")
    assert r["backend"] == "project" and r["errno"] == "EDQUOT"
    assert r["df_size"] == 10 << 20  # ext4 also reports the project limit to statfs on a PROJINHERIT dir
    assert r["root_errno"] == 0  # root keeps CAP_SYS_RESOURCE and writes past ext4's limit


def test_hundred_parallel_containers_get_distinct_ids_all_released(vm_results):
    r = _check(vm_results, "hundred_parallel")
    assert r["distinct"] == 100 and r["left"] == 0 and r["tags_after"] == [0]


def test_vm_cleaned_up_and_exited_zero(vm_results):
    leftovers = {k: v for k, v in vm_results.items() if k.startswith("umount") or k == "setup"}
    assert leftovers == {}
    assert vm_results["_boot"]["exit_code"] == 0
