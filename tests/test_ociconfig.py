"""The pure config rewrite of rich mode: decisions, annotation parsing, the rewritten dict."""

import copy
import json

import pytest

from runtime_hooks import ociconfig as oc
from runtime_hooks.portable_manifest import richinit_argv

PREFIX = richinit_argv()


def cfg(args=("/bin/sh", "-c", "exit 3"), annotations=None, mounts=None, **extra):
    c = {"ociVersion": "1.0.2", "process": {"args": list(args), "env": ["PATH=/bin"], "cwd": "/"},
         "root": {"path": "rootfs"},
         "mounts": mounts if mounts is not None else [{"destination": "/proc", "type": "proc", "source": "proc"}]}
    if annotations is not None:
        c["annotations"] = annotations
    c.update(extra)
    return c


@pytest.mark.parametrize("mode,ann,want", [
    ("annotation", None, False),
    ("annotation", {"io.richinit.rich": "true"}, True),
    ("annotation", {"io.richinit.rich": "TRUE"}, True),
    ("annotation", {"io.richinit.rich": "false"}, False),
    ("all", None, True),
    ("all", {"io.richinit.rich": "false"}, False),  # a container can opt out
    ("off", {"io.richinit.rich": "true"}, False),
])
def test_wants_rich(mode, ann, want):
    assert oc.wants_rich(cfg(annotations=ann), mode) is want


@pytest.mark.parametrize("value", ["maybe", "", 1, True, None])
def test_bad_rich_annotation_names_the_field(value):
    if value == "":
        assert oc.wants_rich(cfg(annotations={"io.richinit.rich": value})) is False
        return
    with pytest.raises(oc.ConfigError, match=r"^annotations\.io\.richinit\.rich: must be true or false"):
        oc.wants_rich(cfg(annotations={"io.richinit.rich": value}))


def test_annotations_not_an_object():
    with pytest.raises(oc.ConfigError, match="^annotations: must be an object"):
        oc.wants_rich({"annotations": ["x"]})


def test_rich_options_from_annotations():
    o = oc.rich_options(cfg(annotations={"io.richinit.services": "sshd, cron,syslog,sshd",
                                         "io.richinit.vm": "true", "io.richinit.grace": "2.5"}))
    assert o == oc.RichOptions(services=["sshd", "cron", "syslog"], vm=True, grace=2.5)
    assert o.richinit_args() == ["--grace", "2.5", "--vm", "--services", "sshd,cron,syslog"]
    assert oc.RichOptions(grace=30.0).richinit_args() == ["--grace", "30"]
    assert oc.RichOptions().richinit_args() == []
    assert oc.RichOptions(services=[]).richinit_args() == ["--services", ""]


@pytest.mark.parametrize("key,value,msg", [
    ("io.richinit.grace", "abc", "must be seconds"),
    ("io.richinit.grace", "-1", "must be seconds"),
    ("io.richinit.grace", "nan", "must be seconds"),
    ("io.richinit.grace", "1e9", "must be seconds"),
    ("io.richinit.grace", 5, "must be seconds"),
    ("io.richinit.vm", "sure", "must be true or false"),
    ("io.richinit.services", "sshd;rm -rf /", "bad service name"),
    ("io.richinit.services", "../etc", "bad service name"),
    ("io.richinit.services", ["sshd"], "comma-separated"),
])
def test_bad_option_annotations(key, value, msg):
    with pytest.raises(oc.ConfigError) as e:
        oc.rich_options(cfg(annotations={key: value}))
    assert str(e.value).startswith("annotations.%s: " % key)
    assert msg in str(e.value)


def test_rewrite_wraps_args_and_mounts_runtime_read_only():
    before = cfg(annotations={"io.richinit.rich": "true", "io.richinit.grace": "3"})
    snapshot = copy.deepcopy(before)
    new = oc.rewrite(before, "/var/lib/richinit/runtime", PREFIX)
    assert before == snapshot, "the input dict must not be modified"
    assert new["process"]["args"] == PREFIX + ["--grace", "3", "--", "/bin/sh", "-c", "exit 3"]
    assert new["process"]["env"] == ["PATH=/bin"], "nothing of ours may leak into the app's environment"
    rt = [m for m in new["mounts"] if m["destination"] == "/.richinit"]
    assert rt == [{"destination": "/.richinit", "type": "bind", "source": "/var/lib/richinit/runtime",
                   "options": ["rbind", "ro", "nosuid", "nodev", "rprivate"]}]
    assert [m for m in new["mounts"] if m["destination"] == "/run"][0]["type"] == "tmpfs"
    assert new["annotations"][oc.ANNOT_REWRITTEN] == oc.REWRITE_VERSION
    assert oc.is_rewritten(new) and not oc.is_rewritten(before)
    json.dumps(new)  # still serialisable


def test_rewrite_keeps_an_existing_run_mount_and_orders_run_before_its_submounts():
    own_run = {"destination": "/run/", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
    new = oc.rewrite(cfg(mounts=[own_run]), "/rt", PREFIX)
    assert [m["destination"] for m in new["mounts"]] == ["/run/", "/.richinit"]
    secret = {"destination": "/run/secrets", "type": "bind", "source": "/s", "options": ["rbind"]}
    new = oc.rewrite(cfg(mounts=[{"destination": "/proc", "type": "proc"}, secret]), "/rt", PREFIX)
    assert [m["destination"] for m in new["mounts"]] == ["/proc", "/run", "/run/secrets", "/.richinit"]


def test_rewrite_without_mounts_or_annotations_key():
    c = cfg()
    del c["mounts"]
    new = oc.rewrite(c, "/rt", PREFIX)
    assert [m["destination"] for m in new["mounts"]] == ["/.richinit", "/run"]
    assert new["annotations"] == {oc.ANNOT_REWRITTEN: "1"}


def test_hooks_have_explicit_env_and_are_appended():
    existing = {"poststop": [{"path": "/bin/true"}]}
    hooks = oc.rich_hooks("/usr/local/bin/rich-hook", timeout=7)
    new = oc.rewrite(cfg(hooks=existing), "/rt", PREFIX, hooks=hooks)
    assert set(new["hooks"]) == {"createRuntime", "createContainer", "poststart", "poststop"}
    assert new["hooks"]["poststop"][0] == {"path": "/bin/true"}
    h = new["hooks"]["poststop"][1]
    assert h == {"path": "/usr/local/bin/rich-hook", "args": ["/usr/local/bin/rich-hook", "poststop"],
                 "env": list(oc.HOOK_ENV), "timeout": 7}
    assert existing == {"poststop": [{"path": "/bin/true"}]}


@pytest.mark.parametrize("mutate,field", [
    (lambda c: c.pop("process"), "process"),
    (lambda c: c.update(process="x"), "process"),
    (lambda c: c["process"].update(args=[]), "process.args"),
    (lambda c: c["process"].update(args=["/bin/sh", 3]), "process.args"),
    (lambda c: c["process"].update(commandLine="cmd.exe"), "process.commandLine"),
    (lambda c: c.update(mounts={"a": 1}), "mounts"),
    (lambda c: c["mounts"].append({"type": "tmpfs"}), "mounts[1].destination"),
    (lambda c: c["mounts"].append({"destination": "/.richinit/x"}), "mounts[1].destination"),
    (lambda c: c["mounts"].append({"destination": "//.richinit/"}), "mounts[1].destination"),
    (lambda c: c.update(hooks=[]), "hooks"),
    (lambda c: c.pop("root"), "root.path"),
])
def test_validate_names_the_field(mutate, field):
    c = cfg()
    mutate(c)
    with pytest.raises(oc.ConfigError) as e:
        oc.rewrite(c, "/rt", PREFIX)
    assert str(e.value).startswith(field + ":")


def test_validate_top_level():
    with pytest.raises(oc.ConfigError, match=r"^\(top level\)"):
        oc.validate([1, 2])


def test_rewrite_binds_the_tools_over_the_images_own_and_vm_mode_looks_like_systemd():
    tools = [("systemctl", "/usr/bin/systemctl"), ("service", "/usr/sbin/service")]
    app = oc.rewrite(cfg(annotations={"io.richinit.rich": "true"}), "/rt", PREFIX, tools=tools)
    binds = [m for m in app["mounts"] if m["destination"] in ("/usr/bin/systemctl", "/usr/sbin/service")]
    assert binds == [{"destination": "/usr/bin/systemctl", "type": "bind", "source": "/rt/tools/systemctl",
                      "options": ["bind", "ro", "nosuid", "nodev", "rprivate"]},
                     {"destination": "/usr/sbin/service", "type": "bind", "source": "/rt/tools/service",
                      "options": ["bind", "ro", "nosuid", "nodev", "rprivate"]}]
    assert app["process"]["env"] == ["PATH=/bin"], "an app container's environment is left alone"
    assert not [m for m in app["mounts"] if m["destination"] == "/run/systemd/system"]

    vm = oc.rewrite(cfg(annotations={"io.richinit.rich": "true", "io.richinit.vm": "true"}), "/rt", PREFIX,
                    tools=tools)
    assert vm["process"]["env"] == ["PATH=/bin:/.richinit/tools"]
    dests = [m["destination"] for m in vm["mounts"]]
    assert dests.index("/run") < dests.index("/run/systemd/system")
    sd = [m for m in vm["mounts"] if m["destination"] == "/run/systemd/system"][0]
    assert sd["type"] == "tmpfs" and "ro" in sd["options"]
    no_path = cfg(annotations={"io.richinit.vm": "true"})
    no_path["process"]["env"] = ["HOME=/root"]
    again = oc.rewrite(no_path, "/rt", PREFIX)
    assert again["process"]["env"] == ["HOME=/root", "PATH=%s:/.richinit/tools" % oc.DEFAULT_PATH]
