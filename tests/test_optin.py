"""runtime_hooks.optin: which source wins, sandboxes, engine inits, runtime arguments, errors."""

import pytest

from runtime_hooks import optin


def cfg(ann=None, env=None, args=("/app",)):
    c = {"process": {"args": list(args), "env": list(env or [])}, "root": {"path": "rootfs"}}
    if ann is not None:
        c["annotations"] = dict(ann)
    return c


def test_env_name():
    assert optin.env_name("grace") == "RICHINIT_GRACE"
    assert optin.env_name("quota-backend") == "RICHINIT_QUOTA_BACKEND"
    assert optin.env_name("kill-grace") == "RICHINIT_KILL_GRACE"


@pytest.mark.parametrize("c, mode, runtime_args, rich", [
    (cfg(), "annotation", None, False),
    (cfg(), "all", None, True),
    (cfg({"io.richinit.rich": "true"}), "annotation", None, True),
    (cfg(env=["RICHINIT_RICH=true"]), "annotation", None, True),
    (cfg(env=["RICHINIT_RICH=1"]), "annotation", None, True),
    (cfg(), "annotation", {"rich": "true"}, True),  # rich-all's runtimeArgs
    # order: annotation, then environment, then runtime arguments, then runtime.yaml
    (cfg({"io.richinit.rich": "false"}, env=["RICHINIT_RICH=true"]), "annotation", None, False),
    (cfg(env=["RICHINIT_RICH=false"]), "annotation", {"rich": "true"}, False),
    (cfg(env=["RICHINIT_RICH=false"]), "all", None, False),
    (cfg({"io.richinit.rich": "true"}), "off", None, False),
    (cfg(env=["RICHINIT_RICH=false", "RICHINIT_RICH=true"]), "annotation", None, False),  # getenv: the first
])
def test_whether_rich(c, mode, runtime_args, rich):
    assert optin.decide(c, mode, runtime_args).rich is rich


@pytest.mark.parametrize("ann", [{"io.kubernetes.cri.container-type": "sandbox"},
                                 {"io.kubernetes.cri-o.ContainerType": "sandbox"}])
def test_sandbox_is_never_rich(ann):
    d = optin.decide(cfg(dict(ann, **{"io.richinit.rich": "true"})), "all", {"rich": "true"})
    assert not d.rich and "sandbox" in d.why
    assert optin.decide(cfg({"io.kubernetes.cri.container-type": "container", "io.richinit.rich": "true"})).rich


def test_options_from_env_and_args_become_annotations_and_explicit_ones_win():
    c = cfg({"io.richinit.grace": "3"}, env=["RICHINIT_SERVICES=none", "RICHINIT_GRACE=9", "PATH=/bin"])
    d = optin.decide(c, "annotation", {"rich": "true", "services": "all", "vm": "true"})
    assert d.rich
    ann = d.config["annotations"]
    assert ann["io.richinit.grace"] == "3"  # the annotation beats the environment
    assert ann["io.richinit.services"] == "none"  # the user's environment beats the runtime's arguments
    assert ann["io.richinit.vm"] == "true" and ann["io.richinit.rich"] == "true"
    assert d.options["services"] == ("none", "process.env.RICHINIT_SERVICES")
    assert "annotations" not in c or c["annotations"] == {"io.richinit.grace": "3"}  # input untouched


@pytest.mark.parametrize("c, runtime_args, field", [
    (cfg(env=["RICHINIT_RICH=maybe"]), None, "process.env.RICHINIT_RICH"),
    (cfg(env=["RICHINIT_RICH=1", "RICHINIT_GRACE=soon"]), None, "process.env.RICHINIT_GRACE"),
    (cfg(env=["RICHINIT_RICH=1", "RICHINIT_SERVICES=bad name"]), None, "process.env.RICHINIT_SERVICES"),
    (cfg(), {"rich": "true", "kill-grace": "-1"}, "runtime argument --richinit-kill-grace"),
    (cfg({"io.richinit.rich": "yes", "io.richinit.vm": "perhaps"}), None, "annotations.io.richinit.vm"),
])
def test_bad_values_name_where_they_came_from(c, runtime_args, field):
    with pytest.raises(optin.OptinError) as e:
        optin.decide(c, "annotation", runtime_args)
    assert str(e.value).startswith(field + ": "), str(e.value)


def test_bad_env_shape():
    c = cfg()
    c["process"]["env"] = "RICHINIT_RICH=true"
    with pytest.raises(optin.OptinError, match="process.env: must be a list of strings"):
        optin.decide(c)


@pytest.mark.parametrize("args, want", [
    (["/sbin/docker-init", "--", "/app", "-x"], ["/app", "-x"]),
    (["tini", "-s", "-g", "--", "sh", "-c", "x"], ["sh", "-c", "x"]),
    (["/sbin/docker-init", "--"], None),
    (["/sbin/docker-init", "/app"], None),
    (["/usr/bin/tini", "-p", "SIGKILL", "--", "/app"], None),  # a flag's value: not ours to interpret
    (["/app", "--", "/sbin/docker-init"], None),
])
def test_engine_init_taken_out(args, want):
    assert optin.strip_engine_init(args) == want
    d = optin.decide(cfg({"io.richinit.rich": "true"}, args=args))
    assert d.config["process"]["args"] == (want or args)
    assert bool(d.notes) == (want is not None)


def test_split_runtime_args():
    assert optin.split_runtime_args(["--richinit-rich=true", "--richinit-grace=5", "--root", "/r", "create"]) == (
        {"rich": "true", "grace": "5"}, ["--root", "/r", "create"])
    assert optin.split_runtime_args(["--root", "/r", "--richinit-rich=true"]) == ({}, ["--root", "/r",
                                                                                   "--richinit-rich=true"])
    for bad in (["--richinit-rich"], ["--richinit-colour=red"]):
        with pytest.raises(optin.OptinError, match="runtime argument"):
            optin.split_runtime_args(bad)
