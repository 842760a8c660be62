"""The host side of rich mode, one pipeline for every entry point: parse -> validate -> plan -> apply.

    entry point                          parse               plan (engine)          apply / undo
    rich-runtime create|run              wrapper.parse_argv  wrapper                quota, views, config
    rich-hook precreate (podman)         stdin config.json   (rewrite only: no id)  -
    rich-hook createRuntime              OCI state           the saved plan: init; none saved: hooks
    rich-hook poststop                   OCI state           the saved plan         undo
    rich run                             cli.parse_run       run                    bundle, rootfs, quota, views,
                                                                                    config, record

Each entry point is an adapter over the same four functions: validate() (the one place a config
is checked), rewrite() (the config richinit runs under), plan_host() (what the host does for the
container, as data) and apply()/undo().

The plan is a JSON document, STATE/plans/<id>.json (RICHINIT_STATE_DIR): which container, which
engine, its bundle and runtime, the views (backend, source, files, bound through config.json
mounts or into the running namespace) and the quota groups (rule, backend, directories), plus
the steps started so far, the phase (applying | applied | kept | removing) and the processes
whose life is the container's (the applying process, the init). It is created with O_EXCL (so it
claims the container id) and saved (temp file, rename) before each step that leaves something to
undo is started. Later stages and removal read it back instead of inferring anything: poststop and
`rich rm` undo what it lists (rich-runtime registers no createRuntime hook; the init of its containers
is found by the rootfs, and the runtime's state says whether the container is still there).

Every undo is safe whether its step ran fully, half or not at all; the steps of a plan are undone
in reverse order, then the plan is removed. So a host process killed at any point leaves a plan
from which collect() (`rich gc`, and every `rich` command before its own work) finishes the job:
a plan whose processes are dead and whose container the runtime no longer knows is undone.
"""

import os

from osbase import standin

VERSION = 1
PLANS = "plans"
ENGINES = ("wrapper", "hooks", "run")
# The steps an engine applies, in order (`rich run` plans its host part once the rootfs exists).
STEPS = {"wrapper": ("quota", "views", "config"), "hooks": ("quota", "views", "bind"),
         "run": ("bundle", "rootfs", "quota", "views", "config", "record")}
# `rich run --network bridge` adds "network" (runtime_hooks.network: CNI ADD; undo: DEL) after "rootfs".
# Where runc and crun keep a container's state when no --root is given (run as root).
DEFAULT_ROOTS = {"runc": "/run/runc", "crun": "/run/crun"}


class PipelineError(Exception):
    """One line: 'FILE: FIELD: reason' or what could not be done."""


class Busy(PipelineError):
    """The container id is claimed by a live plan."""


# ---------------------------------------------------------------- validate and rewrite (pure)

def wants(cfg, mode, where):
    """Is rich mode asked for (and the config not rewritten yet)? A non-rich config is not ours to check."""
    from runtime_hooks import ociconfig
    try:
        if not isinstance(cfg, dict):
            raise ociconfig.ConfigError("(top level): must be a JSON object")
        return ociconfig.wants_rich(cfg, mode) and not ociconfig.is_rewritten(cfg)
    except ociconfig.ConfigError as e:
        raise PipelineError("%s: %s" % (where, e))


def validate(cfg, where, bundle=None):
    """Every check of a rich config in one place: the OCI fields rich mode uses, the io.richinit.*
    annotations (views and quota rules included), and the rootfs (with a bundle). Returns the
    RichOptions for rewrite(); PipelineError names the file and field."""
    from runtime_hooks import ociconfig
    try:
        opts = ociconfig.validate(cfg, rewritten=ociconfig.is_rewritten(cfg))
        ann = ociconfig.annotations_of(cfg)
        if ann.get("io.richinit.lxcfs") is not None:
            from lxcfs import detect
            try:
                detect.requested_mode(ann)
            except detect.BadAnnotation as e:
                raise ociconfig.ConfigError(str(e))
        if has_quota_rules(cfg):
            from runtime_hooks.quota import rules
            try:
                problems = rules.validate(rules.parse_rules(ann.get(rules.ANNOTATION)))
                if problems:
                    raise rules.RuleError(problems[0])
                rules.parse_backend(ann.get(rules.BACKEND_ANNOTATION))
                rules.parse_quota_id(ann.get(rules.ID_ANNOTATION))
            except rules.RuleError as e:
                raise ociconfig.ConfigError("annotations: %s" % e)
    except ociconfig.ConfigError as e:
        raise PipelineError("%s: %s" % (where, e))
    if bundle is not None:
        root = os.path.join(bundle, cfg["root"]["path"])
        try:
            os.close(os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError as e:
            raise PipelineError("%s: root.path: %s: %s" % (where, root, e.strerror))
    return opts


def has_quota_rules(cfg):
    """Any io.richinit.quota* annotation: only then is the quota machinery loaded."""
    ann = cfg.get("annotations") if isinstance(cfg, dict) else None
    return isinstance(ann, dict) and any(k.startswith("io.richinit.quota") for k in ann)


def rewrite(cfg, conf, where, hooks=None, host_side=False, opts=None, rootfs=None):
    """The config richinit runs under (ociconfig.rewrite with the built runtime); cfg is validated
    and opts is what validate() returned (no second pass over the config). With the `rootfs`
    directory, the runtime's tools are bound over the image's own copies (image_tools)."""
    from runtime_hooks import ociconfig
    from runtime_hooks.portable_manifest import BuildError, load_manifest, richinit_argv
    runtime_dir = os.path.realpath(conf.runtime_dir)
    try:
        manifest = load_manifest(runtime_dir)
        return ociconfig.rewrite(cfg, runtime_dir, richinit_argv(loader=manifest["loader"]), hooks,
                                 default_services="all" if host_side else None, opts=opts,
                                 tools=image_tools(rootfs) if rootfs else ())
    except BuildError as e:
        raise PipelineError(str(e))
    except ociconfig.ConfigError as e:
        raise PipelineError("%s: %s" % (where, e))


def image_tools(rootfs):
    """[(tool, path)] of the image's own copies of the runtime's tools to bind ours over: regular
    files only (a link to systemctl runs ours through it; a link elsewhere, busybox, is left
    alone), each file once, looked up inside the rootfs through osbase.safepath."""
    from osbase import safepath
    from runtime_hooks.portable_manifest import TOOL_PATHS
    out, seen = [], set()
    try:
        rootfd = safepath.open_root(rootfs)
    except OSError:
        return out
    try:
        for name, path in TOOL_PATHS:
            parent, base = path.rsplit("/", 1)
            try:
                pfd = safepath.open_in_root(rootfd, parent, safepath.O_PATH | os.O_DIRECTORY, mode=0)
            except OSError:
                continue
            try:
                st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            except OSError:
                continue
            finally:
                os.close(pfd)
            if st.st_mode & 0o170000 == 0o100000 and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                out.append((name, path))
    finally:
        os.close(rootfd)
    return out


# ---------------------------------------------------------------- plan (reads the host, changes nothing)

def new_plan(cid, engine, bundle, runtime, paths, runtime_root=None, **extra):
    """The plan's frame: nothing planned yet, owned by this process."""
    plan = {"version": VERSION, "id": cid, "engine": engine, "bundle": bundle, "runtime": runtime,
            "runtime_root": runtime_root, "views": None, "quota": None, "steps": [], "phase": "applying",
            "owner": _me(), "procs": {}, "state_dir": paths.state_dir}
    plan.update(extra)
    return plan


def plan_host(plan, cfg, paths, pid=None):
    """Fill in what the host does for the container: the views (backend, source, files and how
    they reach it) and the quota groups. cfg: the rewritten config; when the views go through
    config.json mounts they are added to it here (with the annotation io.richinit.views)."""
    from runtime_hooks import hostprep
    cid, engine = plan["id"], plan["engine"]
    ann = cfg.setdefault("annotations", {})
    try:
        backend, lx = hostprep.choose_views(plan["runtime"], ann, paths, pid)
    except hostprep.PrepError as e:
        raise PipelineError(str(e))
    plan["rootfs"] = os.path.realpath(os.path.join(plan["bundle"], cfg["root"]["path"]))
    if backend is None:
        plan["views"] = None
        if engine != "hooks":
            ann[hostprep.ANNOT_VIEWS] = "off"
    else:
        from lxcfs import bind
        source = lx if backend == "lxcfs" else os.path.join(os.path.abspath(paths.views_mount), cid)
        # Our server serves every view file; asking it (a FUSE round trip each) is for lxcfs.
        files = list(bind.available(source) if backend == "lxcfs" else bind.VIEW_FILES)
        if not files:
            raise PipelineError("views (%s): no view files under %s" % (backend, source))
        via = "bind" if engine == "hooks" else "mounts"
        plan["views"] = {"backend": backend, "lxcfs": lx, "source": source, "files": files, "via": via}
        if via == "mounts":
            # After everything else: they go on top of /proc and /sys.
            cfg.setdefault("mounts", []).extend(bind.oci_mounts(source, files, check=False))
            ann[hostprep.ANNOT_VIEWS] = backend
    plan["quota"] = None
    if has_quota_rules(cfg):
        from runtime_hooks import quota
        try:
            qplan = quota.plan(cid, cfg, plan["bundle"], state_dir=paths.state_dir)
        except quota.QuotaError as e:
            raise PipelineError(str(e))
        if qplan.groups:
            loops = [g.rule for g in qplan.groups if g.backend == "loop"]
            if loops and engine == "hooks":
                # A loop filesystem mounted now is not seen through the binds the runtime already made.
                raise PipelineError("%s: the loop backend must be applied before create: run the container "
                                    "through rich-runtime" % loops[0])
            plan["quota"] = quota.plan_to_data(qplan)
    return plan


def what(plan):
    """The engine-independent part of a plan: what is set up for the container (tests compare it)."""
    v = plan.get("views")
    return {"id": plan["id"], "rootfs": plan.get("rootfs"),
            "views": v and {k: v[k] for k in ("backend", "lxcfs", "source", "files")},
            "quota": plan.get("quota")}


# ---------------------------------------------------------------- the plan on disk

def plans_dir(paths):
    return os.path.join(paths.state_dir, PLANS)


def _path(paths, cid):
    from lxcfs import registry
    if not registry.valid_id(cid):
        raise PipelineError("container id %r: not a valid id" % (cid,))
    return os.path.join(plans_dir(paths), cid + ".json")


def _write(path, plan, excl=False):
    data = standin.json_dumps(plan).encode()
    if excl:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(tmp, path)  # readers (and a later gc) see the old plan or the new one, never half


def save(plan, paths):
    """Replace the saved plan. (No fsync: the threat is the process being killed; a host that loses
    power loses the mounts and /run with it, and gc undoes the rest from either version.)"""
    _write(_path(paths, plan["id"]), plan)


def claim(plan, paths):
    """Save a new plan, claiming its id: a live plan for the id is Busy; a dead one is undone first."""
    path = _path(paths, plan["id"])
    os.makedirs(plans_dir(paths), mode=0o700, exist_ok=True)
    for _ in range(3):
        try:
            _write(path, plan, excl=True)
            return plan
        except FileExistsError:
            old = load(paths, plan["id"])
            if old is not None and old.get("phase") == "removing" and proc_alive(old.get("owner")):
                wait_gone(old["owner"], 10.0)  # a `rich run` finishing its teardown after its exit
                continue
            if old is not None and alive(old):
                raise Busy("container %s: in use (%s, %s)" % (plan["id"], old.get("engine"), old.get("phase")))
            if old is not None:
                undo(old, paths)
            else:
                _unlink(path)
    raise Busy("container %s: its plan keeps coming back" % plan["id"])


def load(paths, cid):
    """The saved plan of cid, or None. An unreadable plan is returned as a bare frame so that it
    can still be reported and removed."""
    path = _path(paths, cid)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    try:
        plan = standin.json_loads(data)
    except ValueError:
        plan = None
    if not isinstance(plan, dict) or plan.get("id") != cid or plan.get("engine") not in ENGINES:
        return {"version": VERSION, "id": cid, "engine": "run", "steps": [], "phase": "broken", "owner": None,
                "procs": {}, "bundle": None, "runtime": None}
    return plan


def load_all(paths):
    try:
        names = sorted(os.listdir(plans_dir(paths)))
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        if n.endswith(".json"):
            try:
                p = load(paths, n[:-5])
            except PipelineError:
                continue
            if p is not None:
                out.append(p)
    return out


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def forget(plan, paths):
    _unlink(_path(paths, plan["id"]))


# ---------------------------------------------------------------- apply and undo

def apply(plan, paths, steps, env):
    """Run `steps` (names of the engine's STEPS) in order; the plan is saved with each step listed
    before it starts. On failure everything this plan started is undone, the plan removed, and the
    error raised (nothing half-applied)."""
    try:
        for name in steps:
            plan["steps"].append(name)
            if _leaves_something(name, plan):
                save(plan, paths)  # (a step with nothing to undo rides on the next save)
            run_step(name, plan, paths, env)
    except BaseException:
        undo(plan, paths)
        raise


def _leaves_something(name, plan):
    """Does the step make something its undo must find (so the plan must list it before it starts)?"""
    if name in ("bundle", "rootfs"):
        return True
    return bool(plan.get(name)) if name in ("quota", "views") else False


def run_step(name, plan, paths, env):
    """One apply step (a separate function so that a test can wrap it: tests/support/killstep.py)."""
    _DO[name](plan, paths, env)


def mark(plan, paths, phase=None, **procs):
    """Record a phase (applied | kept) or a process whose life is the container's, and save."""
    if phase:
        plan["phase"] = phase
    for k, pid in procs.items():
        plan["procs"][k] = _proc_id(pid)
    save(plan, paths)


def abort(plan, paths):
    """undo() unless done already (for an adapter's failure between two apply() calls)."""
    return [] if plan.get("phase") == "undone" else undo(plan, paths)


def undo(plan, paths):
    """Undo every step the plan started, last first, then remove the plan. Returns problem lines."""
    plan["phase"] = "undone"
    problems = []
    for name in reversed(plan.get("steps") or []):
        try:
            problems += _UNDO[name](plan, paths) or []
        except Exception as e:  # noqa: BLE001 - the other steps are still undone; reported as a line
            problems.append("%s: %s" % (name, e))
    forget(plan, paths)
    return problems


# Step bodies. `env` carries what is not data: the rewritten config, the settings, a log.

def _do_bundle(plan, paths, env):
    os.makedirs(os.path.dirname(plan["bundle"]), mode=0o711, exist_ok=True)
    os.mkdir(plan["bundle"], 0o711)


def _undo_bundle(plan, paths):
    cdir = plan["bundle"]
    if not os.path.isdir(cdir):
        return []
    if "rootfs" not in plan["steps"]:
        try:
            os.rmdir(cdir)  # only what mkdir made: an empty directory
        except OSError:
            pass
        return []
    rootfs = os.path.join(cdir, "rootfs")
    try:
        if os.path.isdir(rootfs) and os.stat(rootfs).st_dev != os.stat(cdir).st_dev:
            return ["%s is still mounted: not removing %s" % (rootfs, cdir)]
    except FileNotFoundError:
        pass
    from osbase import safepath
    try:
        safepath.remove_tree(cdir)
    except OSError as e:
        return ["%s: not removed: %s" % (cdir, e.strerror or e)]
    return []


def _do_rootfs(plan, paths, env):
    from runtime_hooks import bundle as bundle_mod
    run = plan["run"]
    if run["overlay"]:
        bundle_mod.overlay_rootfs(os.path.realpath(run["source"]), plan["bundle"], volatile=run.get("volatile", False))
    else:
        bundle_mod.unpack(run["source"], os.path.join(plan["bundle"], "rootfs"), env.get("progress"))


def _undo_rootfs(plan, paths):
    if plan["run"]["overlay"]:
        from runtime_hooks import bundle as bundle_mod
        bundle_mod.unmount_rootfs(plan["bundle"])
    return []


def _do_quota(plan, paths, env):
    if not plan.get("quota"):
        return
    from runtime_hooks import quota
    try:
        quota.apply(quota.plan_from_data(plan["quota"], plan["id"], paths.state_dir))
    except quota.QuotaError as e:
        raise PipelineError(str(e))
    for g in plan["quota"]["groups"]:
        env["log"]("quota %s: %s backend, limit %d bytes" % (g["rule"], g["backend"], g["limit"]))


def _undo_quota(plan, paths):
    if not plan.get("quota"):
        return []
    from runtime_hooks import quota
    try:
        return quota.release(plan["id"], state_dir=paths.state_dir)
    except (quota.QuotaError, OSError, ValueError) as e:
        return [str(e)]


def _do_views(plan, paths, env):
    v = plan.get("views")
    if not v:
        return
    from runtime_hooks import hostprep
    pid = env.get("pid")
    root = None if plan["engine"] == "hooks" else plan["rootfs"]
    hostprep.register_views(plan["id"], v["backend"], v["lxcfs"], paths, pid=pid, root=root)


def _undo_views(plan, paths):
    if plan.get("views"):
        from lxcfs import registry
        try:
            registry.remove(plan["id"], paths.views_registry)
        except (OSError, ValueError) as e:
            return ["views: %s" % e]
    return []


def _do_bind(plan, paths, env):
    v = plan.get("views")
    if not v:
        return
    from lxcfs import bind
    pid = env["pid"]
    try:
        bound = bind.bind_into(pid, v["source"], root=plan["rootfs"], pid_start=bind.start_ticks(pid),
                               files=tuple(v["files"]))
    except OSError as e:
        raise PipelineError("views (%s): %s" % (v["backend"], e))
    env["log"]("views: %s bound into pid %d: %s" % (v["backend"], pid, " ".join(bound)))


def _do_network(plan, paths, env):
    net = plan.get("network")
    if not net:
        return
    from runtime_hooks import network
    try:
        network.apply(net)
    except network.NetworkError as e:
        raise PipelineError("--network bridge: %s" % e)
    finally:
        save(plan, paths)  # the plugins' results, which DEL needs
    env["log"]("network: %s on %s, %s" % (network.address(net), net["conflist"]["plugins"][0]["bridge"],
                                          ", ".join("%s:%d->%d/%s" % (p.get("hostIP", ""), p["hostPort"],
                                                                      p["containerPort"], p["protocol"])
                                                    for p in net["ports"]) or "no ports"))


def _undo_network(plan, paths):
    if not plan.get("network"):
        return []
    from runtime_hooks import network
    return network.undo(plan["network"])


def _do_config(plan, paths, env):
    env["write_config"]()


def _do_record(plan, paths, env):
    env["write_record"]()


def _nothing(plan, paths):
    return []


_DO = {"bundle": _do_bundle, "rootfs": _do_rootfs, "network": _do_network, "quota": _do_quota,
       "views": _do_views, "bind": _do_bind, "config": _do_config, "record": _do_record}
# config.json and the record live in the bundle (removed with it) or belong to the engine; binds
# live in the container's mount namespace and die with it.
_UNDO = {"bundle": _undo_bundle, "rootfs": _undo_rootfs, "network": _undo_network, "quota": _undo_quota,
         "views": _undo_views, "bind": _nothing, "config": _nothing, "record": _nothing}


# ---------------------------------------------------------------- liveness and collection

def _me():
    return _proc_id(os.getpid())


def _proc_id(pid):
    """[pid, start time in ticks]: a reused pid is not the process recorded."""
    from osbase import procfs
    f = procfs.stat_fields(pid)
    return [pid, int(f[1][19]) if f else None]


def wait_gone(ident, timeout):
    """Wait (on its pidfd, no polling loop) until the process `ident` names has exited."""
    import select

    from osbase import libc
    try:
        fd = libc.pidfd_open(ident[0])
    except OSError:
        return
    try:
        if proc_alive(ident):
            select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def proc_alive(ident):
    if not ident or not ident[0]:
        return False
    from osbase import procfs
    f = procfs.stat_fields(ident[0])
    return f is not None and f[1][0] not in ("Z", "X") and int(f[1][19]) == ident[1]


def runtime_knows(plan):
    """Does the runtime still have the container (created, running or stopped, not deleted)?"""
    rt = plan.get("runtime")
    if not rt:
        return False
    root = plan.get("runtime_root") or DEFAULT_ROOTS.get(os.path.basename(rt))
    if root:
        return os.path.isdir(os.path.join(root, plan["id"]))
    import subprocess
    argv = [rt] + (["--root", plan["runtime_root"]] if plan.get("runtime_root") else []) + ["state", plan["id"]]
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return True  # cannot tell: keep it


def alive(plan):
    """Is the container (or the process applying its plan) still there? Only dead plans are undone."""
    if proc_alive(plan.get("owner")):
        return True
    phase = plan.get("phase")
    if phase in ("applying", "broken"):
        return False  # killed while applying
    if phase == "kept":
        return True  # `rich run --keep`: until `rich rm`
    procs = plan.get("procs") or {}
    if any(proc_alive(p) for p in procs.values()):
        return True
    if plan["engine"] != "run" and procs.get("init"):
        return False  # its init is gone: nothing in the container uses the views or the quotas
    return runtime_knows(plan)


def status(plan):
    """What `rich ps` says of a container from its plan, when the runtime does not know it."""
    if proc_alive(plan.get("owner")):
        return "removing" if plan.get("phase") == "removing" else "creating"
    phase = plan.get("phase")
    return {"applying": "interrupted", "broken": "interrupted", "kept": "exited"}.get(phase, phase or "?")


def collect(paths, report=None, only=None):
    """Undo every dead plan (or only the one named); report(line) for each. Returns the ids undone.

    Held under an exclusive lock on the plans directory so that two collectors never undo one plan
    twice at once."""
    import fcntl
    d = plans_dir(paths)
    try:
        lock = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    done = []
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for plan in load_all(paths):
            if only is not None and plan["id"] != only:
                continue
            if alive(plan):
                continue
            started, phase = list(plan.get("steps") or []), plan.get("phase")
            problems = undo(plan, paths)
            done.append(plan["id"])
            if report:
                what = "interrupted at %s" % started[-1] if phase in ("applying", "broken") and started else "gone"
                report("%s: %s%s; undone%s" % (plan["id"], what, " (unreadable plan)" if phase == "broken" else "",
                                               " with problems: " + "; ".join(problems) if problems else ""))
    finally:
        os.close(lock)
    return done
