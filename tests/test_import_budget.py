"""Each entry point imports nothing outside its budget (tests/support/import_budget.py).

Every program here runs under `python -X importtime`, doing its real work; the modules it loads
beyond the interpreter's own start-up are held to the budget. The host-side entry points that
need root (rich run, rich-runtime create with views and quotas, hook stages with a saved plan)
are in tests/integration/richcli/test_import_budget_host.py.
"""

import json
import os
import select
import signal
import subprocess
import sys

import pytest

from tests.support.containers import REPO
from tests.support.import_budget import BUDGETS
from tests.support.imports import imported, over_budget

PY = [sys.executable, "-X", "importtime", "-I"]


def check(entry, mods, r):
    extra = over_budget(mods, BUDGETS[entry])
    assert not extra, "%s loads modules outside its budget (µs, cumulative): %s\n%s" % (
        entry, sorted(extra.items(), key=lambda kv: -kv[1]), r.stderr[-2000:])


def test_budget_notices_a_module_outside_it():
    r, mods = imported(PY + ["-c", "import json"])
    assert "json" in over_budget(mods, BUDGETS["rich-runtime pass-through"])
    assert over_budget({"yaml.scanner": 1, "re._parser": 1}, BUDGETS["loader"]) == {}


def test_pid1_steady_state():
    r, mods = imported(PY + ["-c", "from richinit.main import entry; entry()", "--", "/bin/true"], cwd="/",
                       timeout=60)
    assert r.returncode == 0, r.stderr
    check("pid1", mods, r)


def test_services_loader(tmp_path):
    d = tmp_path / "etc/richinit/services.d"
    d.mkdir(parents=True)
    (d / "app.yaml").write_text("command: /bin/true\nready: {tcp: 127.0.0.1:80}\n")
    code = ("import os, sys; from richinit.services.load import write_document; "
            "sys.exit(write_document(os.open(os.devnull, os.O_WRONLY), sys.argv[1]))")
    r, mods = imported(PY + ["-c", code, str(tmp_path)], cwd="/", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "yaml" in mods  # the image's own YAML was read
    check("loader", mods, r)


def _builtin(tmp_path, module, *args):
    """Run a built-in's main() until ready, then TERM it; its imports (ready, serving, stopped)."""
    rfd, wfd = os.pipe()
    p = subprocess.Popen(PY + ["-c", "import sys; m = __import__(sys.argv[1], fromlist=['main']); "
                                     "sys.exit(m.main(sys.argv[2:]))", module, *args, "--notify-fd", str(wfd)],
                         cwd="/", pass_fds=(wfd,), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(wfd)
    try:
        assert select.select([rfd], [], [], 30)[0] and os.read(rfd, 1) == b"\n", "%s never became ready" % module
    finally:
        os.close(rfd)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    from tests.support.imports import baseline, parse
    return subprocess.CompletedProcess(p.args, p.returncode, out, err), {
        m: us for m, us in parse(err).items() if m not in baseline(("-I",))}


def test_builtin_syslogd(tmp_path):
    r, mods = _builtin(tmp_path, "richinit.builtin.syslogd", "--socket", str(tmp_path / "log"), "--file",
                       str(tmp_path / "messages"))
    assert r.returncode == 0, r.stderr[-2000:]
    check("syslogd", mods, r)


def test_builtin_cron(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/crontab").write_text("* * * * * root true\n")
    os.chmod(root / "etc/crontab", 0o644)
    r, mods = _builtin(tmp_path, "richinit.builtin.cron", "--root", str(root), "--syslog", str(tmp_path / "none"))
    assert r.returncode == 0, r.stderr[-2000:]
    check("cron", mods, r)


# ---- host side, without root: the wrapper and the hook stages that do not set anything up

def _runtime_dir(tmp_path):
    rt = tmp_path / "rt"
    for rel in ("lib/ld-linux-x86-64.so.2", "bin/python3", "bin/python3._pth"):
        (rt / rel).parent.mkdir(parents=True, exist_ok=True)
        (rt / rel).write_text("")
    (rt / "runtime.json").write_text(json.dumps({"format": 1, "loader": "ld-linux-x86-64.so.2"}))
    conf = tmp_path / "runtime.yaml"
    conf.write_text("runtime: /bin/true\nruntime_dir: %s\n" % rt)
    return {"PATH": "/usr/bin:/bin", "RICHINIT_RUNTIME_CONFIG": str(conf), "PYTHONPATH": REPO,
            "RICHINIT_STATE_DIR": str(tmp_path / "state"), "RICHINIT_LOG_DIR": str(tmp_path / "log"),
            "RICHINIT_VIEWS_REGISTRY": str(tmp_path / "views.d")}


def _script(module, fn="entry"):
    return ["-S", "-c", "import sys; sys.path[1:1] = [%r]; from %s import %s; sys.argv[0] = 'x'; %s()"
            % (REPO, module, fn, fn)]


def test_rich_runtime_pass_through(tmp_path):
    env = _runtime_dir(tmp_path)
    r, mods = imported(PY + _script("runtime_hooks.wrapper") + ["--root", "/r", "state", "c1"], env=env)
    assert r.returncode == 0, r.stderr
    check("rich-runtime pass-through", mods, r)


def test_rich_runtime_create_rewrite_only(tmp_path):
    env = _runtime_dir(tmp_path)
    b = tmp_path / "b"
    (b / "rootfs").mkdir(parents=True)
    (b / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "process": {"args": ["/bin/sh"], "cwd": "/"},
                                               "root": {"path": "rootfs"},
                                               "annotations": {"io.richinit.rich": "true"}}))
    r, mods = imported(PY + _script("runtime_hooks.wrapper") + ["create", "--bundle", str(b), "c1"], env=env)
    assert r.returncode == 0, r.stderr
    assert "io.richinit.rewritten" in (b / "config.json").read_text()
    check("rich-runtime create", mods, r)


def test_rich_runtime_create_of_a_pods_sandbox(tmp_path):
    env = _runtime_dir(tmp_path)
    b = tmp_path / "b"
    (b / "rootfs").mkdir(parents=True)
    cfg = {"ociVersion": "1.0.2", "process": {"args": ["/pause"], "cwd": "/"}, "root": {"path": "rootfs"},
           "annotations": {"io.kubernetes.cri.container-type": "sandbox", "io.richinit.rich": "true"}}
    (b / "config.json").write_text(json.dumps(cfg))
    r, mods = imported(PY + _script("runtime_hooks.wrapper") + ["create", "--bundle", str(b), "c1"], env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads((b / "config.json").read_text()) == cfg
    check("rich-runtime create, not rich", mods, r)


@pytest.mark.parametrize("stage,state", [
    ("precreate", {"ociVersion": "1.0.2", "process": {"args": ["/bin/sh"]}, "root": {"path": "/r"},
                   "annotations": {"io.richinit.rich": "true"}}),
    ("createRuntime", {"id": "c1", "pid": 1, "bundle": "{b}"}),  # not a rich container
    ("poststart", {"id": "c1", "pid": 1, "bundle": "/b"}),
    ("poststop", {"id": "c1", "bundle": "/b"}),  # no plan saved
])
def test_rich_hook_stages(tmp_path, stage, state):
    env = _runtime_dir(tmp_path)
    b = tmp_path / "b"
    (b / "rootfs").mkdir(parents=True)
    (b / "config.json").write_text(json.dumps({"process": {"args": ["/bin/sh"]}, "root": {"path": "rootfs"}}))
    data = json.dumps(state).replace("{b}", str(b))
    r, mods = imported(PY + _script("runtime_hooks.hook") + [stage], env=env, input=data)
    assert r.returncode == 0, r.stderr
    check("rich-hook", mods, r)
