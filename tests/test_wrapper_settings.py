"""/etc/richinit/runtime.yaml (a flat YAML subset read without yaml) and RICHINIT_RUNTIME."""


import pytest
import yaml

from runtime_hooks import settings as st

GOOD = """\
# rich mode on this host
---
runtime: /usr/bin/crun   # the real one
rich: all
runtime_dir: "/opt/richinit/runtime"
hook: '/usr/local/bin/rich-hook'
hook_timeout: 15
"""


def test_parse_matches_yaml_on_the_subset():
    mine = st.parse(GOOD, "x.yaml")
    assert mine == {k: str(v) for k, v in yaml.safe_load(GOOD).items()}


def test_load_file_and_env_override(tmp_path):
    p = tmp_path / "runtime.yaml"
    p.write_text(GOOD)
    s = st.load(str(p), environ={})
    assert (s.runtime, s.rich, s.runtime_dir, s.hook, s.hook_timeout) == \
        ("/usr/bin/crun", "all", "/opt/richinit/runtime", "/usr/local/bin/rich-hook", 15)
    assert st.load(str(p), environ={"RICHINIT_RUNTIME": "runsc"}).runtime == "runsc"


def test_absent_file_means_defaults(tmp_path):
    s = st.load(str(tmp_path / "none.yaml"), environ={})
    assert (s.runtime, s.rich, s.runtime_dir, s.hook) == ("runc", "annotation", st.DEFAULT_RUNTIME_DIR, None)


@pytest.mark.parametrize("text,msg", [
    ("runtime:\n  path: /x\n", "x.yaml:1: expected 'key: value'"),
    ("runtime: [runc]\n", "x.yaml:1: expected 'key: value'"),
    ("  runtime: runc\n", "x.yaml:1: expected 'key: value'"),
    ("\nruntme: runc\n", "x.yaml:2: unknown key 'runtme'"),
    ("rich: sometimes\n", "x.yaml: rich: must be one of"),
    ("runtime: bin/runc\n", "x.yaml: runtime: a path must be absolute"),
    ("runtime_dir: rel\n", "x.yaml: runtime_dir: must be an absolute path"),
    ("hook_timeout: soon\n", "x.yaml: hook_timeout: must be whole seconds"),
])
def test_errors_name_file_and_line_or_key(text, msg):
    with pytest.raises(st.SettingsError) as e:
        st.validate(st.parse(text, "x.yaml"), "x.yaml")
    assert str(e.value).startswith(msg)


def test_unreadable_file(tmp_path):
    p = tmp_path / "runtime.yaml"
    p.write_bytes(b"runtime: \xff\n")
    with pytest.raises(st.SettingsError, match="cannot read"):
        st.load(str(p), environ={})


def test_resolve_runtime_skips_the_wrapper_itself(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for d in (a, b):
        f = d / "runc"
        f.write_text("#!/bin/sh\n")
        f.chmod(0o755)
    path = "%s:%s" % (a, b)
    assert st.resolve_runtime("runc", {"PATH": path}) == str(a / "runc")
    assert st.resolve_runtime("runc", {"PATH": path}, self_path=str(a / "runc")) == str(b / "runc")
    assert st.resolve_runtime("/abs/crun", {"PATH": path}) == "/abs/crun"
    with pytest.raises(st.SettingsError, match="not found on PATH"):
        st.resolve_runtime("crun", {"PATH": path})
