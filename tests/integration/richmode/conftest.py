"""Fixtures for rich mode on real runtimes: the portable runtime built once, the wrapper shim, crun.

Everything lives under pytest's tmp dirs: the built runtime, the wrapper's runtime.yaml (passed
via RICHINIT_RUNTIME_CONFIG, never /etc), and the shims. Containers are deleted by the tests.
"""

import os
import shutil
import sys

import pytest

from tests.support.containers import REPO, have

CRUN_SHIM = """#!/bin/sh
# crun refuses hybrid cgroups: a private mount namespace without the cgroup2 mount.
exec unshare -m --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"' crun "$@"
"""


def need_root_and(*tools):
    if os.geteuid() != 0:
        pytest.skip("needs root to run containers")
    for t in tools:
        if not have(t):
            pytest.skip("%s is not installed" % t)


@pytest.fixture(scope="session")
def portable_runtime(tmp_path_factory):
    """A freshly built portable runtime directory (built once per session, ~2 s)."""
    need_root_and("runc", "ldd")
    if not os.access("/usr/bin/python3.11", os.X_OK):
        pytest.skip("Debian's /usr/bin/python3.11 is not installed")
    from runtime_hooks import portable
    out = str(tmp_path_factory.mktemp("richinit-runtime") / "runtime")
    portable.build(out)
    return out


@pytest.fixture(scope="session")
def nopy_rootfs(busybox_rootfs):
    """The busybox rootfs, checked to hold no Python at all."""
    for _dirpath, _dirs, files in os.walk(busybox_rootfs):
        assert not any(f.startswith("python") for f in files), "the test image must not have Python"
    return busybox_rootfs


@pytest.fixture(scope="session")
def tools(tmp_path_factory, portable_runtime):
    """The wrapper shim (what the rich-runtime console script will be), a crun shim, runtime.yaml."""
    d = tmp_path_factory.mktemp("richmode-bin")
    shim = d / "rich-runtime"
    shim.write_text("#!%s -IS\nimport sys\nsys.path.insert(0, %r)\nfrom runtime_hooks.wrapper import main\n"
                    "sys.exit(main())\n" % (sys.executable, REPO))
    shim.chmod(0o755)
    crun = d / "crun"
    crun.write_text(CRUN_SHIM)
    crun.chmod(0o755)
    conf = d / "runtime.yaml"
    conf.write_text("runtime: runc\nruntime_dir: %s\n" % portable_runtime)
    # Engines (podman, containerd's shim) do not pass our environment on: this one has the config baked in.
    baked = d / "rich-runtime-baked"
    baked.write_text("#!%s -IS\nimport os, sys\nos.environ['RICHINIT_RUNTIME_CONFIG'] = %r\n"
                     "sys.path.insert(0, %r)\nfrom runtime_hooks.wrapper import main\nsys.exit(main())\n"
                     % (sys.executable, str(conf), REPO))
    baked.chmod(0o755)
    return {"wrapper": str(shim), "baked": str(baked), "crun": str(crun), "conf": str(conf), "dir": str(d)}


def wrapper_env(tools, runtime="runc"):
    real = tools["crun"] if runtime == "crun" else shutil.which(runtime)
    return dict(os.environ, RICHINIT_RUNTIME_CONFIG=tools["conf"], RICHINIT_RUNTIME=real)
