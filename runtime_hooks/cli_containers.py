"""rich run / ps / exec / stop / rm: containers kept under RICHINIT_CONTAINERS_DIR/NAME.

Each container is a bundle directory: config.json, rootfs/ (an overlay over the given directory,
with upper/ and work/ beside it, or an unpacked tarball), rich.json (what `rich` needs to find it
again) and, for -d, console.log. The runtime's own state is under RICHINIT_RUN_ROOT.

`rich run` is an engine of its own, on rich-runtime's code: the config.json rewrite, the views and
the quotas are exactly those of the wrapper (runtime_hooks.wrapper.rich_config), done in this
process before the real runtime runs, and undone here when it returns. So no hook program is
registered: the views find the container's init by its rootfs (lxcfs.locate), and nothing but
the runtime itself stands between `rich run` and the app. A foreground container is removed when
it exits (unless --keep); a detached one stays until `rich rm`.

The run path imports no json, re, shutil, subprocess or argparse (each several ms here, and a
container's start waits for them): osbase.standin, safepath.remove_tree and fork/exec instead.
"""

import os
import sys
import time

from osbase import standin
from osbase.standin import signal
from runtime_hooks import bundle as bundle_mod
from runtime_hooks.cli import EXIT_RICH, CliError

DEFAULT_CONTAINERS_DIR = "/var/lib/richinit/containers"
DEFAULT_RUN_ROOT = "/run/richinit/rich"
RECORD = "rich.json"


def _dir_from_env(var, default):
    v = os.environ.get(var) or default
    if not v.startswith("/"):
        raise CliError("rich: %s: must be an absolute path, not %r" % (var, v))
    return v


def containers_dir():
    return _dir_from_env("RICHINIT_CONTAINERS_DIR", DEFAULT_CONTAINERS_DIR)


def run_root():
    return _dir_from_env("RICHINIT_RUN_ROOT", DEFAULT_RUN_ROOT)


# ---------------------------------------------------------------- records

def _cdir(name):
    try:
        bundle_mod.check_name(name)
    except bundle_mod.BundleError as e:
        raise CliError("rich: %s" % e)
    return os.path.join(containers_dir(), name)


def load_record(name):
    path = os.path.join(_cdir(name), RECORD)
    try:
        with open(path, "rb") as f:
            rec = standin.json_loads(f.read())
    except FileNotFoundError:
        raise CliError("rich: no container named %s" % name)
    except (OSError, ValueError) as e:
        raise CliError("rich: %s: unreadable: %s" % (path, e))
    if not isinstance(rec, dict) or rec.get("name") != name:
        raise CliError("rich: %s: not a rich container record" % path)
    return rec


def _real_runtime(rec):
    from runtime_hooks import settings
    try:
        return settings.resolve_runtime(rec.get("runtime") or "runc")
    except settings.SettingsError as e:
        raise CliError("rich: %s" % e)


def _rt(rec, *args):
    return [_real_runtime(rec), "--root", rec["run_root"]] + list(args)


def state_of(rec):
    """The runtime's state dict, or {} when it does not know the container."""
    import subprocess
    r = subprocess.run(_rt(rec, "state", rec["name"]), capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        return {}
    try:
        return standin.json_loads(r.stdout)
    except ValueError:
        return {}


# ---------------------------------------------------------------- run

def _validate_run(args):
    """Every option checked before anything is created; returns what make_config needs."""
    B = bundle_mod
    try:
        name = B.check_name(args.name) if args.name else "rich-%s" % os.urandom(4).hex()
        memory = B.parse_size(args.memory) if args.memory else None
        cpus = B.parse_cpus(args.cpus) if args.cpus else None
        volumes = [B.parse_volume(v) for v in args.volume]
        ann = dict(B.parse_annotation(a) for a in args.annotation)
    except B.BundleError as e:
        raise CliError("rich run: %s" % e)
    for e in args.env:
        if "=" not in e or e.startswith("="):
            raise CliError("rich run: -e %s: expected KEY=VALUE" % e)
    if not args.cmd:
        raise CliError("rich run: CMD is missing (rich run ROOTFS -- CMD...)")
    if args.tty and args.detach:
        raise CliError("rich run: -t needs the foreground (not with -d)")
    if args.service and args.no_services:
        raise CliError("rich run: --service and --no-services contradict each other")
    for q in args.quota:
        if "," in q:
            raise CliError("rich run: --quota %s: one rule per --quota (no ',')" % q)
    src = os.path.abspath(args.rootfs)
    try:
        fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        os.close(fd)
    except OSError as e:
        raise CliError("rich run: %s: %s" % (args.rootfs, e.strerror))
    if not (os.path.isdir(src) or os.path.isfile(src)):
        raise CliError("rich run: %s: neither a directory nor a tarball" % args.rootfs)
    ann["io.richinit.rich"] = "true"
    if args.no_services:
        ann["io.richinit.services"] = "none"
    elif args.service:
        ann["io.richinit.services"] = ",".join(args.service)
    if args.vm:
        ann["io.richinit.vm"] = "true"
    if args.quota:
        rules = [r for r in (ann.get("io.richinit.quota") or "").split(",") if r] + list(args.quota)
        ann["io.richinit.quota"] = ",".join(rules)
    network = args.network or ("bridge" if args.vm else "none")
    net = None
    if args.hostname is not None and not _hostname_ok(args.hostname):
        raise CliError("rich run: --hostname %r: letters, digits, '-' and '.', at most 63 characters" % args.hostname)
    if network == "bridge":
        from runtime_hooks import hostprep
        from runtime_hooks import network as netmod
        try:
            net = netmod.plan(name, args.publish, args.ip, args.hostname,
                              state_dir=hostprep.HostPaths.from_env().state_dir)
        except (netmod.NetworkError, hostprep.PrepError) as e:
            raise CliError("rich run: %s" % e)
    elif args.publish or args.ip:
        raise CliError("rich run: %s needs --network bridge" % ("-p" if args.publish else "--ip"))
    runtime = args.runtime or os.environ.get("RICHINIT_RUNTIME") or "runc"
    if runtime not in ("runc", "crun") and not runtime.startswith("/"):
        raise CliError("rich run: --runtime: runc, crun or an absolute path, not %r" % runtime)
    return {"name": name, "memory": memory, "cpus": cpus, "volumes": volumes, "annotations": ann,
            "source": src, "runtime": runtime, "network": network, "net": net}


def _vm_disk_rootfs(src):
    """--vm with a VM's disk: its rootfs, imported once (keyed by the disk's content) under
    STATE/images; a tarball is left to the rootfs step."""
    from runtime_hooks.vmimport import command
    from runtime_hooks.vmimport.parse import DiskError
    try:
        if not command.is_disk(src):
            return src
        return command.cached_import(src, os.path.join(_paths().state_dir, "images"))
    except DiskError as e:
        raise CliError("rich run: %s" % str(e).removeprefix("rich import: "))
    except OSError as e:
        raise CliError("rich run: %s: %s" % (src, e.strerror or e))


def _hostname_ok(h):
    return 0 < len(h) <= 63 and all(c.isalnum() or c in "-." for c in h) and h[0] not in "-." and h.isascii()


def _hostname_ok(h):
    return 0 < len(h) <= 63 and all(c.isalnum() or c in "-." for c in h) and h[0] not in "-." and h.isascii()


def _settings():
    """runtime.yaml, and the portable runtime it names built (rich mode depends on it)."""
    from runtime_hooks import settings
    from runtime_hooks.portable_manifest import BuildError, load_manifest
    try:
        conf = settings.load(os.environ.get("RICHINIT_RUNTIME_CONFIG") or settings.DEFAULT_PATH)
        load_manifest(os.path.realpath(conf.runtime_dir))
    except (settings.SettingsError, BuildError) as e:
        raise CliError("rich run: %s" % e)
    return conf


def _progress(label):
    if not sys.stderr.isatty():
        return None

    def say(n, _name):
        sys.stderr.write("\rrich: %s: %d files" % (label, n))
        sys.stderr.flush()
    return say


def _paths():
    from runtime_hooks import hostprep
    try:
        return hostprep.HostPaths.from_env()
    except hostprep.PrepError as e:
        raise CliError("rich: %s" % e)


def _log(stage, name, paths=None):
    """hook.log, where rich-hook writes what it does for the other engines."""
    from runtime_hooks import hostprep
    try:
        return hostprep.Log((paths or hostprep.HostPaths.from_env()).log_dir, stage, name, prog="rich")
    except hostprep.PrepError:
        return lambda msg: None


def _collect(paths, only=None):
    """Finish the work of `rich` processes that were killed: undo every dead plan (pipeline.collect)."""
    from runtime_hooks import pipeline
    return pipeline.collect(paths, lambda line: sys.stderr.write("rich: %s\n" % line), only=only)


def create_bundle(args):
    """The pipeline's `rich run` adapter: plan, then apply bundle and rootfs; with the rootfs there,
    the rich config and the host side are planned and applied (quota, views, config, record).
    Returns (record, bundle directory, plan, paths)."""
    from runtime_hooks import hostprep, pipeline
    v = _validate_run(args)
    paths = _paths()
    name = v["name"]
    cdir = _cdir(name)
    # The whole config is built and checked before anything is created.
    cfg_path = os.path.join(cdir, "config.json")
    net = v["net"]
    cfg = bundle_mod.make_config(os.path.join(cdir, "rootfs"), args.cmd, hostname=args.hostname or name[:63],
                                 env=args.env, cwd=args.workdir, memory=v["memory"], cpus=v["cpus"],
                                 volumes=v["volumes"], annotations=v["annotations"], terminal=args.tty,
                                 network=v["network"], netns=net and net["path"])
    cfg = _optin(cfg, cfg_path)  # -e RICHINIT_* as options, over rich run's defaults
    try:
        opts = pipeline.validate(cfg, cfg_path)  # rich run's configs ask for rich mode
    except pipeline.PipelineError as e:
        raise CliError("rich run: %s" % e)
    v["conf"] = _settings()
    rich = pipeline.wants(cfg, v["conf"].rich, cfg_path)
    if args.vm and os.path.isfile(v["source"]):
        v["source"] = _vm_disk_rootfs(v["source"])  # a VM's disk: imported once, then an overlay over it
    rec = {"name": name, "runtime": v["runtime"], "run_root": run_root(), "overlay": os.path.isdir(v["source"]),
           "source": v["source"], "created": time.time(), "args": list(args.cmd), "detached": args.detach,
           "network": v["network"]}
    plan = pipeline.new_plan(name, "run", cdir, _real_runtime(rec), paths, runtime_root=rec["run_root"],
                             run={"source": v["source"], "overlay": rec["overlay"], "detached": args.detach,
                                  "volatile": not (args.detach or args.keep)}, network=net)
    try:
        pipeline.claim(plan, paths)
    except pipeline.Busy:
        raise CliError("rich run: a container named %s exists (rich rm %s)" % (name, name))
    except OSError as e:
        raise CliError("rich run: %s: %s" % (pipeline.plans_dir(paths), e.strerror))
    if os.path.lexists(cdir):
        pipeline.forget(plan, paths)
        raise CliError("rich run: %s exists and is no container of ours: not touching it" % cdir)
    log = _log("run", name, paths)
    progress = None if rec["overlay"] else _progress("unpacking %s" % os.path.basename(v["source"]))
    env = {"log": log, "progress": progress}
    try:
        pipeline.apply(plan, paths, ("bundle", "rootfs") + (("network",) if net else ()), env)
        if env["progress"]:
            sys.stderr.write("\n")
        if net:
            from runtime_hooks import network as netmod
            rec["address"], rec["ports"] = netmod.address(plan["network"]), plan["network"]["ports"]
        if rich:
            cfg = pipeline.rewrite(cfg, v["conf"], cfg_path, None, host_side=True, opts=opts,
                                   rootfs=os.path.join(cdir, cfg["root"]["path"]))
            from runtime_hooks import reach
            reach.add_richctl(cfg, cdir, v["conf"].runtime_dir)  # richctl on the image's PATH
            pipeline.plan_host(plan, cfg, paths)
        env["write_config"] = lambda: bundle_mod.write_config(cdir, cfg)
        env["write_record"] = lambda: _write_record(cdir, rec)
        pipeline.apply(plan, paths, ("quota", "views", "config", "record"), env)
        pipeline.mark(plan, paths, "applied")
    except BaseException as e:
        pipeline.abort(plan, paths)
        if isinstance(e, (bundle_mod.BundleError, pipeline.PipelineError, hostprep.PrepError, OSError)):
            raise CliError("rich run: %s" % e)
        raise
    views = plan.get("views")
    log("views: %s%s; quotas: %s" % (views["backend"] if views else "off", " (registered by rootfs)" if views else "",
                                     cfg.get("annotations", {}).get("io.richinit.quota") or "none"))
    return rec, cdir, plan, paths


def _write_record(cdir, rec):
    with open(os.path.join(cdir, RECORD), "w") as f:
        f.write(standin.json_dumps(rec))


def _spawn_runtime(rec, cdir, detach):
    """fork + exec the real runtime's `run` on the bundle (already rewritten); returns its pid."""
    real = _real_runtime(rec)
    argv = [real, "--root", rec["run_root"]]
    if os.path.basename(rec["runtime"]) == "runsc" and rec.get("network", "none") == "none":
        argv.append("--network=none")  # gVisor: no network stack rather than the sandbox's own
    argv.append("run")
    if detach:
        argv.append("--detach")
    argv += ["--bundle", cdir, rec["name"]]
    os.makedirs(rec["run_root"], mode=0o700, exist_ok=True)
    log = os.path.join(cdir, "console.log")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs
        try:
            if detach:
                # The container keeps runc's stdio: a log file, never our terminal or pipes.
                null = os.open(os.devnull, os.O_RDONLY)
                out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
                os.dup2(null, 0)
                os.dup2(out, 1)
                os.dup2(out, 2)
                os.close(null)
                os.close(out)
            os.execv(real, argv)
        except BaseException as e:  # noqa: B036 - the forked child must never return into our caller
            try:
                os.write(2, ("rich run: %s: %s\n" % (real, getattr(e, "strerror", None) or e)).encode())
            except OSError:
                pass
        finally:
            os._exit(EXIT_RICH)
    return pid


def _wait(pid):
    """Wait for the runtime; SIGTERM/SIGHUP to us go to it (runc forwards them into the container)."""
    forward = lambda sig, _frame: os.kill(pid, sig)
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    # Ctrl-C reaches the runtime through the terminal's process group: do not die before it does.
    old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _optin(cfg, where):
    """-e RICHINIT_* options as annotations, so the user's win over rich run's defaults (runtime_hooks.optin;
    rich run's config carries io.richinit.rich, and runtime.yaml's `rich: off` is pipeline.wants' to apply)."""
    from runtime_hooks import optin
    try:
        d = optin.decide(cfg)
    except optin.OptinError as e:
        raise CliError("rich run: %s: %s" % (where, e))
    return d.config if d.rich else cfg


def run(args):
    paths = _paths()
    _collect(paths)
    rec, cdir, plan, paths = create_bundle(args)
    pid = _spawn_runtime(rec, cdir, args.detach)
    rc = _wait(pid)
    if args.detach:
        if rc != 0:
            _teardown(rec, cdir)
            try:
                with open(os.path.join(cdir, "console.log")) as f:
                    tail = f.read().strip().splitlines()[-1:]
            except OSError:
                tail = []
            raise CliError("rich run: %s did not start%s" % (rec["name"], (": " + tail[0]) if tail else ""))
        print(rec["name"])
        return 0
    if args.keep:
        from runtime_hooks import pipeline
        pipeline.mark(plan, paths, "kept")
    else:
        _teardown_after_exit(rec, cdir, plan, paths)
    return rc


def _teardown_after_exit(rec, cdir, plan, paths):
    """Undo the plan in a child of our own, so that the app's exit code is ours at once and does not
    wait for unmounts and removals. The saved plan names the child as its owner while it works:
    `rich ps` says `removing`, a `rich run` reusing the name waits for it (pipeline.claim), and
    if the child is killed, the next command undoes the rest."""
    from osbase.quickexit import flush_stdio
    from runtime_hooks import pipeline
    flush_stdio()
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - exits
        try:
            os.close(go_w)
            os.setsid()  # the terminal's ^C is not for it
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)  # a reader of our stdout sees EOF when we exit, not when it does
            os.read(go_r, 1)  # the plan names it first (EOF if we were killed: go on all the same)
            _teardown(rec, cdir, plan, paths)
        finally:
            os._exit(0)
    os.close(go_r)
    try:
        plan["phase"], plan["owner"] = "removing", pipeline._proc_id(pid)
        pipeline.save(plan, paths)
    finally:
        os.close(go_w)


def create(args):
    """`rich create`: the container as `rich run -d` makes it (bundle, overlay, network, views, config,
    record), not started; it stays (phase kept) until `rich rm`."""
    from runtime_hooks import pipeline
    args.detach = True
    paths = _paths()
    _collect(paths)
    rec, cdir, plan, paths = create_bundle(args)
    pipeline.mark(plan, paths, "kept")
    print(rec["name"])
    return 0


def start(args):
    """Start a created or stopped container: the runtime's stopped container is deleted and run again
    on the same bundle, so the overlay's upper directory (everything changed inside) is kept, and
    so are its network namespace, address and published ports."""
    from runtime_hooks import pipeline
    rec = load_record(args.name)
    status = state_of(rec).get("status")
    if status in ("running", "created", "paused"):
        if status == "running":
            return 0
        raise CliError("rich start: %s is %s" % (args.name, status))
    paths = _paths()
    plan = pipeline.load(paths, rec["name"])
    if plan is not None and plan.get("phase") != "kept":
        pipeline.mark(plan, paths, "kept")
    cdir = _cdir(args.name)
    if status == "stopped":
        import subprocess
        subprocess.run(_rt(rec, "delete", rec["name"]), capture_output=True, stdin=subprocess.DEVNULL)
    rc = _wait(_spawn_runtime(rec, cdir, True))
    if rc != 0:
        try:
            with open(os.path.join(cdir, "console.log")) as f:
                tail = f.read().strip().splitlines()[-1:]
        except OSError:
            tail = []
        raise CliError("rich start: %s did not start%s" % (rec["name"], (": " + tail[0]) if tail else ""))
    print(rec["name"])
    return 0


def restart(args):
    stop(args)
    return start(args)


def _teardown(rec, cdir, plan=None, paths=None):
    """Delete the runtime's container, then undo the saved plan (views, quotas, rootfs, files):
    what poststop does for the other engines."""
    from runtime_hooks import pipeline
    if os.path.exists(os.path.join(rec["run_root"], rec["name"])) or os.path.basename(rec["runtime"]) == "runsc":
        # (`runc run` in the foreground has deleted it already: then its state directory is gone)
        import subprocess
        subprocess.run(_rt(rec, "delete", "--force", rec["name"]), capture_output=True, stdin=subprocess.DEVNULL)
    paths = paths or _paths()
    plan = plan or pipeline.load(paths, rec["name"])
    log = _log("rm", rec["name"], paths)
    if plan is None:  # made before plans were saved: its bundle is all there is
        plan = pipeline.new_plan(rec["name"], "run", cdir, None, paths,
                                 run={"overlay": bool(rec.get("overlay")), "source": rec.get("source")})
        plan["steps"] = ["bundle", "rootfs"]
    problems = pipeline.undo(plan, paths)
    for p in problems:
        log("undo: %s" % p)
        sys.stderr.write("rich: %s: %s\n" % (rec["name"], p))  # /dev/null after `rich run`: hook.log has it
    log("plan undone (%s)%s" % (", ".join(reversed(plan["steps"])), " with problems" if problems else ""))


# ---------------------------------------------------------------- ps / exec / stop / rm

CONTROL_SOCKET = "/run/richinit/control.sock"


def services_health(pid, timeout=2.0):
    """(up, failed) counts of a running container's services, asked over richinit's control socket
    (reached through /proc/PID/root, resolved inside the container's root), or None."""
    import json
    import socket

    from osbase import safepath
    try:
        root = os.open("/proc/%d/root" % pid, safepath.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fd = safepath.open_in_root(root, CONTROL_SOCKET, safepath.O_PATH)
    except OSError:
        os.close(root)
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(safepath.fd_path(fd))
        s.sendall(b"status\n")
        data = b""
        while b"\n" not in data and len(data) < 1 << 20:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        reply = json.loads(data.split(b"\n", 1)[0])
        states = [sv.get("state") for sv in reply.get("services", [])]
        return states.count("up"), states.count("failed")
    except (OSError, ValueError, AttributeError):
        return None
    finally:
        s.close()
        os.close(fd)
        os.close(root)


def ps(args):
    """Every container: the runtime's word on those it knows, the plan's on those being created
    (a killed `rich` process's leftovers are undone first, and said so on stderr); for a running
    one its services' health from richinit (up/failed), and its address on --network bridge."""
    from runtime_hooks import pipeline
    paths = _paths()
    _collect(paths)
    base = containers_dir()
    try:
        names = set(os.listdir(base))
    except FileNotFoundError:
        names = set()
    plans = {p["id"]: p for p in pipeline.load_all(paths) if p["engine"] == "run"}
    rows = [("NAME", "STATUS", "PID", "RUNTIME", "CREATED", "SERVICES", "ADDRESS", "COMMAND")]
    records = []
    for name in sorted(names | set(plans)):
        try:
            rec = load_record(name)
        except CliError:
            plan = plans.get(name)
            if plan is not None:
                rows.append((name, pipeline.status(plan), "-", os.path.basename(plan.get("runtime") or "-"), "-", "-",
                             "-", ""))
                records.append({"name": name, "status": rows[-1][1]})
            continue
        st = state_of(rec)
        status = st.get("status")
        if not status and name in plans and plans[name].get("phase") == "kept":
            # `rich create` (never started) or a foreground `run --keep` that exited
            status = "exited" if os.path.exists(os.path.join(_cdir(name), "console.log")) or not rec.get("detached") \
                else "created"
        elif not status:
            status = pipeline.status(plans[name]) if name in plans else "gone"
        health = services_health(st["pid"]) if status == "running" and st.get("pid") else None
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.get("created", 0)))
        rows.append((name, status, str(st.get("pid") or "-"), os.path.basename(rec["runtime"]), created,
                     "%d up, %d failed" % health if health else "-", rec.get("address") or "-",
                     " ".join(rec.get("args", []))[:60]))
        records.append({"name": name, "status": status, "pid": st.get("pid"), "runtime": rec["runtime"],
                        "created": rec.get("created"), "network": rec.get("network"), "address": rec.get("address"),
                        "ports": rec.get("ports", []), "services": {"up": health[0], "failed": health[1]}
                        if health else None, "command": rec.get("args", [])})
    if getattr(args, "json", False):
        sys.stdout.write(standin.json_dumps(records) + "\n")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(7)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:7], widths, strict=True)) + "  " + r[7])
    return 0


def gc(args):
    """Undo what killed `rich`, rich-runtime or rich-hook processes left: every plan whose
    processes are dead and whose container the runtime no longer knows."""
    paths = _paths()
    done = _collect(paths)
    if not done:
        print("nothing to collect")
    return 0


def exec_(args):
    rec = load_record(args.name)
    if not args.cmd:
        raise CliError("rich exec: CMD is missing (rich exec NAME -- CMD...)")
    if state_of(rec).get("status") != "running":
        raise CliError("rich exec: %s is not running" % args.name)
    argv = _rt(rec, "exec") + (["--tty"] if args.tty else []) + [rec["name"]] + list(args.cmd)
    sys.stdout.flush()
    os.execv(argv[0], argv)


def _wait_stopped(rec, timeout):
    deadline = time.monotonic() + timeout
    while True:
        st = state_of(rec).get("status")
        if st in (None, "stopped"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _kill(rec, sig):
    import subprocess
    return subprocess.run(_rt(rec, "kill", rec["name"], sig), capture_output=True, stdin=subprocess.DEVNULL)


def stop(args):
    rec = load_record(args.name)
    if args.time < 0:
        raise CliError("rich stop: --time must not be negative")
    if state_of(rec).get("status") in (None, "stopped"):
        return 0
    _kill(rec, "TERM")  # richinit stops services and CMD in order
    if not _wait_stopped(rec, args.time):
        _kill(rec, "KILL")
        if not _wait_stopped(rec, 10):
            raise CliError("rich stop: %s did not stop" % args.name)
    return 0


def rm(args):
    from runtime_hooks import pipeline
    paths = _paths()
    cdir = _cdir(args.name)
    if not os.path.exists(os.path.join(cdir, RECORD)):
        # No record: a `rich run` that never finished creating it. Its plan says what to undo.
        plan = pipeline.load(paths, args.name)
        if plan is None or plan["engine"] != "run":
            raise CliError("rich: no container named %s" % args.name)
        if pipeline.alive(plan):
            raise CliError("rich rm: %s is being created (by pid %s)" % (args.name, (plan.get("owner") or "?")[0]))
        _collect(paths, only=args.name)
        return 0
    rec = load_record(args.name)
    status = state_of(rec).get("status")
    if status not in (None, "stopped"):
        if not args.force:
            raise CliError("rich rm: %s is %s (rich stop %s, or rm -f)" % (args.name, status, args.name))
        _kill(rec, "KILL")
        _wait_stopped(rec, 10)
    _teardown(rec, cdir, paths=paths)
    return 0


def logs(args):
    load_record(args.name)
    try:
        with open(os.path.join(_cdir(args.name), "console.log"), "rb") as f:
            while True:
                b = f.read(65536)
                if not b:
                    break
                sys.stdout.buffer.write(b)
    except FileNotFoundError:
        pass  # a foreground container's output went to the terminal
    sys.stdout.flush()
    return 0
