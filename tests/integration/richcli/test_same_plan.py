"""Every entry point plans the same host side for the same config (runtime_hooks.pipeline).

The config is the one `rich run` builds from its command line; the same config.json then goes
through rich-runtime create, rich-runtime run, and podman's precreate + createRuntime hooks.
Each entry point runs in this process up to the moment its plan is applied; there the plan is
taken and the apply refused, so each adapter undoes what it did (checked at the end).
"""

import copy
import json
import os

import pytest

from runtime_hooks import pipeline


class Taken(Exception):
    pass


@pytest.fixture
def take(monkeypatch, richenv):
    """Patch pipeline.apply: the first apply of host steps records (plan, rewritten config) and refuses."""
    for k, v in richenv.vars.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("RICHINIT_RUNTIME", raising=False)
    seen = {}
    real_apply, real_plan_host, real_rewrite = pipeline.apply, pipeline.plan_host, pipeline.rewrite

    def rewrite(cfg, *a, **kw):
        seen.setdefault("config", copy.deepcopy(cfg))  # what rich run built, before the rewrite
        return real_rewrite(cfg, *a, **kw)

    def plan_host(plan, cfg, *a, **kw):
        out = real_plan_host(plan, cfg, *a, **kw)
        seen["rewritten"] = copy.deepcopy(cfg)
        return out

    def apply(plan, paths, steps, env):
        if "quota" in steps:
            seen["plan"] = copy.deepcopy(plan)
            raise Taken()
        return real_apply(plan, paths, steps, env)
    monkeypatch.setattr(pipeline, "apply", apply)
    monkeypatch.setattr(pipeline, "plan_host", plan_host)
    monkeypatch.setattr(pipeline, "rewrite", rewrite)
    return seen


def _rich_run(seen, name, rootfs, extra):
    from runtime_hooks import cli
    with pytest.raises(Taken):
        cli.dispatch(cli.parse(["run", "--name", name] + extra + [rootfs, "--", "/bin/app", "arg"]))
    return seen.pop("plan"), seen.pop("rewritten")


def _bundle(tmp_path, cfg, rootfs, sub):
    b = tmp_path / sub
    b.mkdir()
    cfg = copy.deepcopy(cfg)
    cfg["root"]["path"] = rootfs
    (b / "config.json").write_text(json.dumps(cfg))
    return str(b)


def _wrapper(seen, command, bundle, name):
    from runtime_hooks import wrapper
    with pytest.raises(Taken):
        wrapper.main(["rich-runtime", command, "--bundle", bundle, name])
    return seen.pop("plan"), seen.pop("rewritten")


def _podman(seen, bundle, name, richenv):
    import io

    from runtime_hooks import hook, hostprep
    out = io.StringIO()
    with open(os.path.join(bundle, "config.json"), "rb") as f:
        assert hook.precreate(f.read(), out)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write(out.getvalue())
    state = hook.State(name, os.getpid(), bundle, {})
    paths = hostprep.HostPaths.from_env()
    with pytest.raises(Taken):
        hook.create_runtime(state, paths, "runc", lambda msg: None)
    return seen.pop("plan"), json.loads(out.getvalue())


def _is_view(m, plan):
    v = plan["views"]
    return v is not None and m["source"].startswith(v["source"] + "/")


def _same(a, b, rewritten_a, rewritten_b):
    pa, pb = pipeline.what(a), pipeline.what(b)
    pa.pop("rootfs"), pb.pop("rootfs")  # where each engine keeps the rootfs
    assert pa == pb
    assert rewritten_a["process"]["args"] == rewritten_b["process"]["args"]
    strip = lambda cfg, plan: [m for m in cfg["mounts"] if not _is_view(m, plan)]
    assert strip(rewritten_a, a) == strip(rewritten_b, b)


# (what the table row is, rich run options, entry points that must plan the same)
CASES = [
    ("views", [], ("create", "run", "podman")),
    ("views off, services named", ["--annotation", "io.richinit.lxcfs=off", "--service", "cron"],
     ("create", "run", "podman")),
    # The podman path refuses a loop quota (a loop mounted at createRuntime is not seen inside).
    ("views and a loop quota", ["--quota", "/data=10M", "-v", "{vol}:/data"], ("create", "run")),
]


@pytest.mark.parametrize("what,opts,entries", CASES, ids=[c[0] for c in CASES])
def test_every_entry_point_plans_the_same(take, richenv, nopy_rootfs, tmp_path, what, opts, entries):
    vol = tmp_path / "vol"
    vol.mkdir()
    name = "same-%d" % os.getpid()
    opts = [o.format(vol=vol) for o in opts]
    ref, ref_cfg = _rich_run(take, name, nopy_rootfs, opts)
    original = take.pop("config")
    assert ref["engine"] == "run" and (ref["views"] is not None) == ("views off" not in what)
    assert (ref["quota"] is not None) == ("quota" in what)
    for entry in entries:
        b = _bundle(tmp_path, original, nopy_rootfs, entry)
        if entry == "podman":
            plan, cfg = _podman(take, b, name, richenv)
            assert plan["engine"] == "hooks" and (plan["views"] or {}).get("via", "bind") == "bind"
        else:
            plan, cfg = _wrapper(take, entry, b, name)
            assert plan["engine"] == "wrapper" and (plan["views"] or {}).get("via", "mounts") == "mounts"
        take.pop("config", None)
        _same(ref, plan, ref_cfg, cfg)
    # every adapter undid its claim when its apply was refused
    from runtime_hooks.hostprep import HostPaths
    assert pipeline.load_all(HostPaths.from_env()) == []
    assert richenv.containers() == [] and richenv.registered() == []


def test_podman_refuses_a_loop_quota_with_the_rule(take, richenv, nopy_rootfs, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    name = "same-loop-%d" % os.getpid()
    _rich_run(take, name, nopy_rootfs, ["--quota", "/data=10M", "-v", "%s:/data" % vol])
    b = _bundle(tmp_path, take.pop("config"), nopy_rootfs, "podman")
    with pytest.raises(pipeline.PipelineError, match="/data=10M.*the loop backend must be applied before create"):
        _podman(take, b, name, richenv)
