"""richinit's entry point: set the process up as PID 1 (or a subreaper), start CMD, run the loop."""

import os
import sys

from richinit import log

OOM_SCORE_ADJ = -999  # PID 1's, where allowed: the OOM killer's last choice, never exempt


def _listen_fds():
    """Socket-activation fds meant for us (LISTEN_PID is ours): 3 .. 3+LISTEN_FDS-1."""
    try:
        n = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return ()
    owner = os.environ.get("LISTEN_PID")
    if n <= 0 or (owner is not None and owner != str(os.getpid())):
        return ()
    return tuple(range(3, 3 + n))


def _close_inherited_fds(keep):
    """Close every fd >= 3 our caller left open, except socket-activation ones.

    Nothing of ours is open yet. The kept fds stay close-on-exec here; spawn
    makes them inheritable for the main child only.
    """
    first = 3 + len(keep)
    os.closerange(first, os.sysconf("SC_OPEN_MAX"))
    for fd in keep:
        try:
            os.set_inheritable(fd, False)
        except OSError:
            pass


def _become_reaper():
    """PID 1 reaps by nature; otherwise ask to be a child subreaper."""
    if os.getpid() == 1:
        return True
    try:
        from osbase import libc
        libc.set_child_subreaper(True)
        log.info("not PID 1: running as a child subreaper")
    except (OSError, AttributeError) as e:
        log.warning("not PID 1 and cannot become a subreaper (%s): orphans will not be reaped", e)
    return False


def _protect_from_oom():
    """PID 1 lowers its oom_score_adj where it may (CAP_SYS_RESOURCE): the OOM killer then takes a
    leaking app, not the init everything rests on. Children get the value back (spawn)."""
    try:
        with open("/proc/self/oom_score_adj") as f:
            old = f.read().strip()
        if int(old) > OOM_SCORE_ADJ:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(OOM_SCORE_ADJ))
    except (OSError, ValueError):
        return  # not allowed (the usual case without CAP_SYS_RESOURCE): small as it is, PID 1 is rarely the pick
    from richinit import spawn
    spawn.OOM_SCORE_ADJ = old


def _child_env(listen):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RICHINIT_")}
    if not listen:
        for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
            env.pop(k, None)
    return env


def _set_title(text):
    from richinit.title import set_title
    set_title(text)


def _save_env(pid):
    from richinit.environ import save_for  # in the child: PID 1 never imports it
    return save_for(pid)


def _skip_root_only(doc, uid):
    """Running as a user (docker run --user): the services that need root are skipped, with the
    reason in the log and in richctl status. richinit's defaults need it (sshd's privilege
    separation, cron's jobs of other users, syslog's /dev/log), and so does any service that
    asks for another user."""
    skipped = doc.setdefault("skipped", {})
    names = []
    for d in doc.get("services", []):
        if d["name"] in skipped:
            continue
        if d.get("origin") == "default" or d.get("user") not in (None, uid, str(uid)):
            skipped[d["name"]] = "needs root (running as uid %d)" % uid
            names.append(d["name"])
    if names:
        log.warning("running as uid %d: skipped %s (they need root); the app, reaping and signals as usual",
                    uid, ", ".join(names))


def _init_scripts_present():
    """Whether the image has an init script the app must wait for (what the loader would run)."""
    from richinit.bootpaths import INIT_DIRS, RC_LOCAL
    for directory, _ in INIT_DIRS:
        try:
            with os.scandir(directory) as it:
                if any(True for _ in it):
                    return True
        except OSError:
            pass
    return os.access(RC_LOCAL, os.X_OK)


def _load_services(opts, sup):
    """Load services.d (and, with --units, the image's units) through the loader child into `sup`."""
    env_pid = None
    if opts.save_env and os.geteuid() == 0:  # for ssh logins and cron jobs: root's services
        # Saved by a child forked from us, while the loader (another one) runs.
        from richinit.spawn import spawn_call
        try:
            env_pid = spawn_call(_save_env, (os.getpid(),), env=sup.env, brief=True)
        except Exception as e:
            log.warning("cannot save the environment for logins and cron: %s", e)
    log.debug("loading services")
    doc = sup.load(None if opts.services == "all" else opts.services)
    if doc is not None:
        if os.geteuid() != 0:
            _skip_root_only(doc, os.geteuid())
        sup.apply(doc)
        log.debug("services loaded: %d", len(sup.services))
    else:
        from richinit.sockets import release
        release(sup.prebound)  # no syslog daemon will read /dev/log: writers get an error, not a full queue
        sup.prebound = {}
    if env_pid is not None:
        sup._wait_for(env_pid)  # saved before any service (cron, sshd) starts


def main(argv=None):
    from richinit import cli
    opts = cli.parse(argv)
    log.level = min(log.WARNING + opts.verbose, log.DEBUG)

    listen = _listen_fds()
    _close_inherited_fds(listen)
    is_pid1 = _become_reaper()  # its one line (not PID 1 only) goes to fd 2 directly: no Outlet yet

    from richinit.loop import Loop
    from richinit.pid1 import Init
    from richinit.spawn import spawn
    from richinit.sysops import SysOps

    loop = Loop()  # handlers first: a signal that arrives from now on is not lost
    from richinit.sinks import Outlet
    log.use(Outlet(2, loop))  # a stderr nobody reads never blocks PID 1
    if is_pid1:
        _protect_from_oom()
    ops = SysOps(is_pid1)
    del cli  # not needed any more; let the module (and its help text) go
    sys.modules.pop("richinit.cli", None)

    prebound = {}
    if opts.services is not None:
        from richinit.sockets import bind_dev_log
        prebound = bind_dev_log()  # before anything that may log starts
    app_env = _child_env(listen)

    def start_app():
        pid = spawn(opts.cmd, env=app_env, listen_fds=listen)
        _set_title("richinit -- %s (pid %d)" % (" ".join(opts.cmd)[:200], pid))
        log.info("started %s as pid %d", opts.cmd[0], pid)
        return pid

    init = Init(ops, grace=opts.grace, kill_grace=opts.kill_grace, rewrite=opts.rewrite,
                forward=opts.forward, vm=opts.vm, start_app=start_app if opts.cmd else None)
    control = sup = None
    if opts.services is not None:
        if opts.cmd and not opts.app_after and not _init_scripts_present():
            init.start_app_early()  # it waits for nothing: not for the loader, not even for our imports
        from richinit.supervisor import Supervisor
        sup = Supervisor(loop, ops, control_dir=opts.control_dir, units=opts.units)
        sup.app_after, sup.prebound = opts.app_after, prebound
        if opts.image_init:
            log.say("VM mode: %s given as the command; richinit takes its place and runs the image's units"
                    % opts.image_init)
        init.use_services(sup)
        if init.app_gone():  # e.g. `-- /bin/true`: it ended while we imported; the container ends now
            log.debug("the app has already exited: no service is loaded")
            from richinit.sockets import release
            release(sup.prebound)
            sup.prebound = {}
        else:
            _load_services(opts, sup)
            from richinit.control import ControlServer
            try:
                control = ControlServer(loop, init, sup, opts.control_dir)
            except OSError as e:
                log.warning("no control socket in %s: %s", opts.control_dir, e)
        _set_title("richinit --vm" if not opts.cmd else "richinit -- %s" % " ".join(opts.cmd)[:200])
    init.boot()
    code = loop.run(init, ops)
    if control is not None:
        control.close()
    log.info("exiting with %d", code)
    log.out.close()  # a last try, without waiting
    return code


def entry():
    code = main()
    # Skip interpreter finalization (module teardown, GC): nothing of ours needs it,
    # and it is most of the time between the last child's death and our exit.
    from osbase.quickexit import exit_now
    exit_now(code)
