"""The wheel as a developer installs it: built from the checkout, pip-installed into a fresh venv
(nothing of the checkout on its path), then `rich runtime build` and `rich run` of the demo image."""

import os
import subprocess
import uuid

import pytest

from tests.support.containers import REPO, have


def _run(argv, **kw):
    kw.setdefault("timeout", 300)
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    if os.geteuid() != 0 or not have("runc"):
        pytest.skip("needs root and runc")
    if not os.access("/usr/bin/python3.11", os.X_OK):
        pytest.skip("Debian's /usr/bin/python3.11 is not installed")
    base = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "RICHINIT_"))}
    r = _run(["/usr/bin/python3", "-m", "pip", "--version"])
    pip = ["/usr/bin/python3", "-m", "pip"] if r.returncode == 0 else [os.path.join(REPO, ".venv/bin/pip")]
    r = _run(pip + ["wheel", "-q", "--no-deps", "-w", str(base / "dist"), REPO], env=env, cwd=str(base))
    if r.returncode != 0:
        pytest.skip("cannot build the wheel here (no setuptools from the package index?): %s"
                    % r.stderr.strip().splitlines()[-1:])
    wheels = os.listdir(base / "dist")
    assert len(wheels) == 1 and wheels[0].endswith("-py3-none-any.whl"), wheels
    v = base / "venv"
    assert _run(["/usr/bin/python3", "-m", "venv", str(v)]).returncode == 0
    r = _run([str(v / "bin/pip"), "install", "-q", "--disable-pip-version-check", str(base / "dist" / wheels[0])],
             env=env, cwd=str(base))
    if r.returncode != 0:
        pytest.skip("cannot install the wheel's dependencies (no package index?): %s" % r.stderr[-300:])
    return base, v, env


def test_wheel_in_a_fresh_venv_builds_the_runtime_and_runs_the_demo(venv):
    base, v, env = venv
    # Everything comes from the venv: the packages, the default services, the hook bundle, the demo app.
    r = _run([str(v / "bin/python"), "-I", "-c", "import runtime_hooks, richinit; from runtime_hooks import datafiles;"
              "print(runtime_hooks.__file__, datafiles.data_dir('services.d'), datafiles.data_dir('hooks'))"],
             cwd="/")
    assert r.returncode == 0, r.stderr
    assert all(p.startswith(str(v) + "/") for p in r.stdout.split()), r.stdout
    # the fast launchers, from the package itself
    r = _run([str(v / "bin/rich"), "install-launchers"], env=env, cwd="/")
    assert r.returncode == 0, r.stderr
    for prog in ("rich", "rich-hook"):
        head = (v / "bin" / prog).read_text().splitlines()[0]
        assert head.startswith("#!%s/bin/python" % v) and head.endswith(" -IS"), head
    text = (v / "bin/rich-runtime").read_text()  # the sh launcher, create/run to the venv's python
    assert text.startswith("#!/bin/sh\n") and "exec %s/bin/python" % v in text
    rich = str(v / "bin/rich")
    rt = base / "runtime"
    r = _run([rich, "runtime", "build", "--output", str(rt)], env=env, cwd="/")
    assert r.returncode == 0, r.stderr
    assert (rt / "lib/site-packages/services.d/sshd.yaml").is_file()
    assert (rt / "lib/site-packages/services.d/.compiled.marshal").is_file()
    rootfs = base / "demo"
    r = _run([str(v / "bin/python"), "-I", "-m", "runtime_hooks.demo_image", str(rootfs)], cwd="/")
    assert r.returncode == 0 and (rootfs / "app/legacy-app.sh").is_file(), r.stderr
    (base / "runtime.yaml").write_text("runtime: runc\nruntime_dir: %s\n" % rt)
    renv = dict(env, RICHINIT_RUNTIME_CONFIG=str(base / "runtime.yaml"), RICHINIT_CONTAINERS_DIR=str(base / "c"),
                RICHINIT_RUN_ROOT=str(base / "run"), RICHINIT_STATE_DIR=str(base / "state"),
                RICHINIT_LOG_DIR=str(base / "log"))
    name = "wheel-%s" % uuid.uuid4().hex[:8]
    # The app starts beside the services (it waits for none it did not name): the built-in syslogd
    # is looked for until it shows, 10 s at most.
    probe = ("readlink /proc/1/exe; i=0; while [ $i -lt 200 ]; do"
             " ps -o args | grep -q '^richinit-syslogd' && { echo syslog; break; }; sleep 0.05; i=$((i+1)); done;"
             " test -x /app/legacy-app.sh && exit 7")
    try:
        r = _run([rich, "run", "--name", name, "--annotation", "io.richinit.lxcfs=off", str(rootfs), "--",
                  "/bin/sh", "-c", probe], env=renv, cwd="/", timeout=120)
        assert r.returncode == 7, (r.stdout, r.stderr)
        assert r.stdout.split() == ["/.richinit/lib/ld-linux-x86-64.so.2", "syslog"], r.stdout
    finally:
        _run([rich, "rm", "-f", name], env=renv)
    assert not (base / "c").exists() or os.listdir(base / "c") == []
