"""`rich install` / `rich uninstall` into a temporary root: what lands where, idempotence, daemon.json merging."""

import json
import os

import pytest

from runtime_hooks import cli, install


@pytest.fixture
def bins(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    for n in ("rich-hook", "rich-runtime"):
        (d / n).write_text("#!/bin/sh\n")
        (d / n).chmod(0o755)
    return str(d)


def rich(capsys, *args):
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def files_under(root):
    out = []
    for d, _dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


def test_install_everything_then_uninstall(tmp_path, bins, capsys):
    root = tmp_path / "root"
    rc, out, err = rich(capsys, "install", "--root", root, "--bin-dir", bins)
    assert rc == 0, err
    assert files_under(root) == sorted([
        "etc/containerd/config.toml", "etc/docker/daemon.json", "etc/richinit/runtime.yaml",
        "etc/crio/crio.conf.d/99-richinit.conf", "usr/share/containers/oci/hooks.d/richinit-createruntime.json",
        "usr/share/containers/oci/hooks.d/richinit-poststop.json",
        "usr/share/containers/oci/hooks.d/richinit-precreate.json",
        "usr/share/richinit/kubernetes/runtimeclass.yaml", "usr/share/richinit/lxc/richinit.conf",
        "var/lib/richinit/install.json"])
    hooks = root / "usr/share/containers/oci/hooks.d"
    stages = {}
    for f in os.listdir(hooks):
        h = json.loads((hooks / f).read_text())
        assert h["version"] == "1.0.0" and h["hook"]["path"] == bins + "/rich-hook"
        assert h["hook"]["env"] and h["hook"]["timeout"] <= 10
        assert h["when"] == {"annotations": {"^io\\.richinit\\.rich$": "^(true|1|yes|on)$"}}
        stages[h["stages"][0]] = h["hook"]["args"][1]
    assert stages == {"precreate": "precreate", "createRuntime": "createRuntime", "poststop": "poststop"}
    # The engines call the Python wrapper in BIN_DIR.
    front = bins + "/rich-runtime"
    import tomlkit
    toml = tomlkit.parse((root / "etc/containerd/config.toml").read_text()).unwrap()
    assert toml["version"] == 2
    assert toml["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"] == {"rich": {
        "runtime_type": "io.containerd.runc.v2", "pod_annotations": ["io.richinit.*"],
        "container_annotations": ["io.richinit.*"], "options": {"BinaryName": front}}}
    assert json.loads((root / "etc/docker/daemon.json").read_text()) == {"runtimes": {
        "rich": {"path": front}, "rich-all": {"path": front, "runtimeArgs": ["--richinit-rich=true"]}}}
    assert 'runtime_path = "%s"' % front in (root / "etc/crio/crio.conf.d/99-richinit.conf").read_text()
    assert "hook: %s/rich-hook" % bins in (root / "etc/richinit/runtime.yaml").read_text()
    assert "handler: rich" in (root / "usr/share/richinit/kubernetes/runtimeclass.yaml").read_text()
    # again: same files, nothing duplicated
    snapshot = {f: (root / f).read_text() for f in files_under(root)}
    assert rich(capsys, "install", "--root", root, "--bin-dir", bins)[0] == 0
    assert {f: (root / f).read_text() for f in files_under(root)} == snapshot
    rc, out, err = rich(capsys, "uninstall", "--root", root)
    assert rc == 0, err
    assert files_under(root) == []
    assert rich(capsys, "uninstall", "--root", root)[0] == 0  # idempotent


def test_docker_daemon_json_keeps_other_settings(tmp_path, bins, capsys):
    root = tmp_path / "root"
    dj = root / "etc/docker/daemon.json"
    dj.parent.mkdir(parents=True)
    dj.write_text(json.dumps({"log-driver": "journald", "runtimes": {"nvidia": {"path": "/usr/bin/nvidia"}}}))
    assert rich(capsys, "install", "--docker", "--root", root, "--bin-dir", bins)[0] == 0
    d = json.loads(dj.read_text())
    assert d["log-driver"] == "journald" and set(d["runtimes"]) == {"nvidia", "rich", "rich-all"}
    assert not (root / "usr/share/containers").exists(), "only docker was asked for"
    assert rich(capsys, "uninstall", "--root", root)[0] == 0
    assert json.loads(dj.read_text()) == {"log-driver": "journald", "runtimes": {"nvidia": {"path": "/usr/bin/nvidia"}}}


def test_existing_runtime_yaml_is_left_alone(tmp_path, bins, capsys):
    root = tmp_path / "root"
    conf = root / "etc/richinit/runtime.yaml"
    conf.parent.mkdir(parents=True)
    conf.write_text("runtime: crun\n")
    assert rich(capsys, "install", "--podman", "--root", root, "--bin-dir", bins)[0] == 0
    assert rich(capsys, "uninstall", "--root", root)[0] == 0
    assert conf.read_text() == "runtime: crun\n"


def test_broken_daemon_json_is_not_touched_and_nothing_is_installed(tmp_path, bins, capsys):
    root = tmp_path / "root"
    dj = root / "etc/docker/daemon.json"
    dj.parent.mkdir(parents=True)
    dj.write_text("{broken")
    rc, out, err = rich(capsys, "install", "--root", root, "--bin-dir", bins)
    assert rc == cli.EXIT_RICH and "daemon.json: not JSON" in err and err.count("\n") == 1
    assert dj.read_text() == "{broken"
    assert files_under(root) == ["etc/docker/daemon.json"]


def test_missing_programs(tmp_path, capsys):
    rc, out, err = rich(capsys, "install", "--root", tmp_path / "root", "--bin-dir", tmp_path)
    assert rc == cli.EXIT_RICH and "rich-hook: not found" in err
    assert not (tmp_path / "root").exists()


def test_templates_exist_for_everything_installed():
    for src, _dst in install.PODMAN + install.CONTAINERD + install.CRIO + install.ALWAYS + [
            install.RUNTIME_YAML, install.DAEMON_JSON, install.CONTAINERD_TOML]:
        assert os.path.isfile(os.path.join(install._hooks_src(), src)), src


DEFAULT_TOML = """# my containerd
version = 2
root = "/var/lib/containerd"   # kept

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.6"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"

[metrics]
  address = ""
"""


def test_containerd_config_merged_with_a_dry_run_diff_and_taken_out_exactly(tmp_path, bins, capsys):
    root = tmp_path / "root"
    ct = root / "etc/containerd/config.toml"
    ct.parent.mkdir(parents=True)
    ct.write_text(DEFAULT_TOML)
    rc, out, err = rich(capsys, "install", "--containerd", "--dry-run", "--root", root, "--bin-dir", bins)
    assert rc == 0, err
    assert ct.read_text() == DEFAULT_TOML and files_under(root) == ["etc/containerd/config.toml"], "a dry run"
    assert "--- %s\n+++ %s\n" % (ct, ct) in out
    assert '+[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.rich.options]' in out.replace("      ", "")
    assert "+++ %s" % (root / "usr/share/richinit/kubernetes/runtimeclass.yaml") in out
    assert rich(capsys, "install", "--containerd", "--root", root, "--bin-dir", bins)[0] == 0
    text = ct.read_text()
    assert text.startswith(DEFAULT_TOML.split("[metrics]")[0]) and text.endswith("[metrics]\n  address = \"\"\n")
    assert "# my containerd" in text and "# kept" in text
    assert rich(capsys, "install", "--containerd", "--root", root, "--bin-dir", bins)[0] == 0
    assert ct.read_text() == text, "idempotent"
    assert rich(capsys, "uninstall", "--root", root)[0] == 0
    assert ct.read_text() == DEFAULT_TOML, "byte for byte"
    assert files_under(root) == ["etc/containerd/config.toml"]


def test_containerd_config_made_from_nothing_and_removed(tmp_path, bins, capsys):
    root = tmp_path / "root"
    assert rich(capsys, "install", "--containerd", "--root", root, "--bin-dir", bins)[0] == 0
    assert (root / "etc/containerd/config.toml").read_text().startswith("version = 2\n")
    assert rich(capsys, "uninstall", "--root", root)[0] == 0
    assert files_under(root) == []


def test_a_foreign_rich_handler_is_not_touched(tmp_path, bins, capsys):
    root = tmp_path / "root"
    ct = root / "etc/containerd/config.toml"
    ct.parent.mkdir(parents=True)
    text = 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.rich]\n  runtime_type = "x"\n'
    ct.write_text(text)
    rc, out, err = rich(capsys, "install", "--containerd", "--root", root, "--bin-dir", bins)
    assert rc == cli.EXIT_RICH and "a runtime handler of that name is there already" in err
    assert ct.read_text() == text and files_under(root) == ["etc/containerd/config.toml"]
