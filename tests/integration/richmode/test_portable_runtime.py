"""The portable runtime runs richinit as PID 1 in an image with no Python, under runc and crun."""

import json
import os
import subprocess

import pytest

from runtime_hooks import portable
from tests.support import containers as c

from .conftest import need_root_and

# Started orphan (reparented to PID 1, exits after 0.2 s), then the state of every process.
SCRIPT = r"""
readlink /proc/1/exe | tr '\n' ' '; tr '\0' ' ' < /proc/1/cmdline; echo
sh -c 'sleep 0.2 &'
sleep 0.8
echo "stats: $(ps -o stat= | tr -d ' ' | tr '\n' ' ')"
env | grep -E '^(PYTHON|RICHINIT_|LD_)' | sed 's/^/leak: /'
exit 7
"""


def runtime_mount(src):
    return {"destination": "/.richinit", "type": "bind", "source": src, "options": ["rbind", "rprivate", "ro"]}


def test_layout_and_size(portable_runtime):
    m = portable.load_manifest(portable_runtime)
    assert m["argv"] == portable.richinit_argv(loader=m["loader"])
    assert m["python"] == "3.11"
    assert m["size"] <= 40 * 1024 * 1024, "the runtime directory must stay within 40 MB"
    assert os.path.isfile(os.path.join(portable_runtime, "lib", m["loader"]))
    assert "libc.so.6" in m["libraries"]
    # .pyc only: no sources and no __pycache__ that would be written to at run time
    for dirpath, dirs, files in os.walk(portable_runtime):
        assert "__pycache__" not in dirs
        assert not [f for f in files if f.endswith(".py")], dirpath
    # both C extensions richinit depends on are there
    exts = " ".join(m["extensions"])
    assert "setproctitle/_setproctitle" in exts


def test_runs_with_an_empty_environment_from_any_directory(portable_runtime):
    m = portable.load_manifest(portable_runtime)
    lib = os.path.join(portable_runtime, "lib")
    r = subprocess.run([os.path.join(lib, m["loader"]), "--library-path", lib,
                        os.path.join(portable_runtime, "bin", "python3"), "-c",
                        "import sys, yaml, setproctitle, richinit; print(sys.flags.isolated, sys.flags.no_site);"
                        "print(yaml.__with_libyaml__); print(sys.path)"],
                       env={"PYTHONPATH": "/nonexistent", "PYTHONHOME": "/nonexistent"}, cwd="/tmp",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    flags, libyaml, path = r.stdout.splitlines()
    assert flags == "1 1", "the _pth file must isolate the interpreter from PYTHON* variables"
    assert libyaml == "True"
    assert "/nonexistent" not in path and "/usr/lib/python3" not in path


def test_rebuild_replaces_atomically(tmp_path):
    need_root_and("ldd")
    out = str(tmp_path / "rt")
    portable.build(out)
    with open(os.path.join(out, "marker"), "w"):
        pass
    portable.build(out)
    assert not os.path.exists(os.path.join(out, "marker"))
    assert sorted(os.listdir(tmp_path)) == ["rt"], "no temporary directory left behind"


def test_failed_build_leaves_the_old_runtime(tmp_path):
    need_root_and("ldd")
    out = str(tmp_path / "rt")
    portable.build(out)
    before = json.load(open(os.path.join(out, "runtime.json")))
    with pytest.raises(portable.BuildError, match="interpreter not found"):
        portable.build(out, python="/nonexistent/python3.11")
    assert json.load(open(os.path.join(out, "runtime.json"))) == before
    assert sorted(os.listdir(tmp_path)) == ["rt"]


@pytest.mark.parametrize("runtime", ["runc", "crun"])
def test_richinit_is_pid1_in_an_image_without_python(tmp_path, portable_runtime, nopy_rootfs, runtime):
    need_root_and(runtime, "unshare")
    m = portable.load_manifest(portable_runtime)
    b = str(tmp_path / "bundle")
    c.make_bundle(b, nopy_rootfs, m["argv"] + ["--", "/bin/sh", "-c", SCRIPT], python=False,
                  mounts=[runtime_mount(portable_runtime)], readonly=True)
    r = c.run(b, runtime=runtime)
    assert r.returncode == 7, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    # PID 1's executable (the runtime's loader), then the argv the wrapper wrote or richinit's title
    assert "/.richinit/" in lines[0] and "richinit" in lines[0] and "-- /bin/sh -c" in lines[0], lines[0]
    stats = [s for s in lines if s.startswith("stats: ")][0].split()[1:]
    assert stats and not [s for s in stats if s.startswith("Z")], "orphans are reaped: %s" % stats
    assert not [s for s in lines if s.startswith("leak: ")], "no variable of ours reaches the app"


def test_a_module_that_does_not_compile_is_one_clear_error(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "bad.py").write_text("def broken(:\n")
    with pytest.raises(portable.BuildError, match=r"bad\.py: cannot be compiled"):
        portable._static_imports(str(tmp_path / "pkg"))
