"""What the hooks call: start our server (and the re-binding watcher), register and unregister.

    view_dir = ensure_server_running() ; register(cid, pid=init_pid) -> MOUNT/<cid>
    mounts = bind.oci_mounts(view_dir)          # wrapper: add to config.json before create
    bind.bind_into(pid, view_dir, root=...)      # hook without wrapper: into the running namespace
    ensure_watcher_running()                     # re-binds everything after a backend restart
    unregister(cid)                              # poststop

A container may be registered before its init exists (the wrapper adds config.json mounts
before `runc create`): with its rootfs recorded, the server finds the init from the first
reader inside the container (lxcfs.locate); without, its files show the host's values until
register() is called again with the pid (a createRuntime hook: podman's hooks.d).
"""

import errno
import os
import sys
import time

from lxcfs import bind, detect, pidlock, registry
from lxcfs.registry import DEFAULT_MOUNT, DEFAULT_PIDFILE

DEFAULT_WATCH_PIDFILE = "/run/richinit/views-watch.pid"


class ViewsError(OSError):
    pass


def server_running(mount=DEFAULT_MOUNT, pidfile=DEFAULT_PIDFILE):
    """Our server holds its pid-file lock and its mount is up. (stat() of the mount is no test:
    the kernel answers it from the attribute cache even after the server died.)"""
    mount = os.path.abspath(mount)
    return pidlock.running(pidfile) and detect.mount_id(mount, detect.SERVER_FSTYPE) is not None


def _spawn(argv, log_file, timeout):
    """Start a daemon (its launcher detaches it) and wait until it says it is ready: a newline on
    the --notify-fd pipe (EOF: it died first). fork/exec, so that a hook or `rich run` starting the
    server does not import subprocess (~7 ms) for it. False when it did not say so in time."""
    import select
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "FUSE_LIBRARY_NAME": "fuse3", "LANG": "C.UTF-8",
           # Our package must be importable by the child exactly as it is by us (editable install or repo).
           "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    from osbase.quickexit import flush_stdio
    flush_stdio()
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs
        try:
            null = os.open(os.devnull, os.O_RDWR)
            err = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640) if log_file else null
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(err, 2)
            os.dup2(wfd, 3)
            os.execve(argv[0], argv + ["--notify-fd", "3"], env)
        finally:
            os._exit(127)
    os.close(wfd)
    try:
        while True:
            try:
                status = os.waitpid(pid, 0)[1]
                break
            except InterruptedError:
                continue
        if os.waitstatus_to_exitcode(status) != 0:
            raise ViewsError(errno.EIO, "%s exited with %d" % (" ".join(argv[:3]), os.waitstatus_to_exitcode(status)))
        return bool(select.select([rfd], [], [], timeout)[0]) and os.read(rfd, 1) == b"\n"
    finally:
        os.close(rfd)


def _wait_mounted(mount, pidfile, timeout):
    """Wait for a server (someone else's start) to be up: woken by mount-table changes (POLLPRI on
    /proc/self/mountinfo), not by a timer."""
    import select
    deadline = time.monotonic() + timeout
    fd = os.open("/proc/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLPRI | select.POLLERR)
        while True:
            os.lseek(fd, 0, os.SEEK_SET)
            while os.read(fd, 65536):  # reading to the end re-arms the notification
                pass
            if server_running(mount, pidfile) and _read_pid(pidfile):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            poller.poll(left * 1000)
    finally:
        os.close(fd)


def _read_pid(pidfile):
    try:
        with open(pidfile) as f:
            return int(f.read().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def ensure_server_running(mount=DEFAULT_MOUNT, registry_dir=registry.DEFAULT_DIR,
                          pidfile=DEFAULT_PIDFILE, log_file=None, timeout=10.0):
    """Start our view server (daemonized) unless it already serves `mount`; returns its pid."""
    mount = os.path.abspath(mount)
    if not server_running(mount, pidfile):
        os.makedirs(os.path.dirname(pidfile), exist_ok=True)
        ready = _spawn([sys.executable, "-m", "lxcfs.server", "--daemon", "--mount", mount, "--registry",
                        registry_dir, "--pidfile", pidfile] + (["--log", log_file] if log_file else []), log_file,
                       timeout)
        # Ready: mounted (it says so from libfuse's init), its pid written before. Not ready: another
        # server won the race for the lock (ours exits at once, saying nothing): wait for its mount.
        if not ready and not _wait_mounted(mount, pidfile, timeout):
            raise ViewsError(errno.ETIMEDOUT, "view server did not mount %s within %.0f s" % (mount, timeout))
    return _read_pid(pidfile)


def ensure_watcher_running(registry_dir=registry.DEFAULT_DIR, mount=DEFAULT_MOUNT,
                           pidfile=DEFAULT_WATCH_PIDFILE, log_file=None, timeout=10.0):
    """Start the re-binding watcher (daemonized) unless one holds its pid file; returns its pid."""
    if not pidlock.running(pidfile):
        os.makedirs(os.path.dirname(pidfile), exist_ok=True)
        ready = _spawn([sys.executable, "-m", "lxcfs.watch", "--daemon", "--registry", registry_dir, "--mount",
                        mount, "--pidfile", pidfile] + (["--log", log_file] if log_file else []), log_file, timeout)
        if not ready and not pidlock.running(pidfile):
            raise ViewsError(errno.ETIMEDOUT, "view watcher did not start within %.0f s" % timeout)
    return _read_pid(pidfile)


def view_dir(cid, mount=DEFAULT_MOUNT):
    if not registry.valid_id(cid):
        raise registry.BadEntry("container id %r is not a valid view directory name" % cid)
    return os.path.join(os.path.abspath(mount), cid)


def register(cid, pid=None, cgroups=None, *, backend="builtin", lxcfs_mount=None,
             mount=DEFAULT_MOUNT, registry_dir=registry.DEFAULT_DIR, proc="/proc", root=None):
    """Record a container (its init pid and cgroups) and return the directory its views live in.

    cgroups default to the init's /proc/PID/cgroup (the kernel's word, nothing guessed). For
    backend 'lxcfs' the views are lxcfs's own files (lxcfs_mount, or the detected lxcfs).
    root: the rootfs directory, recorded by identity so that an entry without a pid can find
    its init later (lxcfs.locate).
    """
    if backend == "lxcfs":
        source = lxcfs_mount or detect.find_lxcfs(proc)
        if not source:
            raise ViewsError(errno.ENOENT, "no lxcfs is running")
        fstype, src_mount = "fuse.lxcfs", source
    else:
        source = view_dir(cid, mount)
        fstype, src_mount = detect.SERVER_FSTYPE, os.path.abspath(mount)
    entry = {"id": cid, "pid": pid, "cgroups": {}, "backend": backend, "source": source,
             "mount": src_mount, "fstype": fstype, "since": time.time()}
    if root is not None:
        from lxcfs import locate
        entry["root"] = list(locate.root_id(root))
    if pid is not None:
        entry["pid_start"] = bind.start_ticks(pid, proc)
        if entry["pid_start"] is None:
            raise ViewsError(errno.ESRCH, "container %s: init pid %d does not exist" % (cid, pid))
        if cgroups is None:
            from osbase import procfs
            cgroups = procfs.cgroup_paths(pid, proc)
        entry["cgroups"] = dict(cgroups)
    entry["mnt_id"] = detect.generation(src_mount, fstype, proc)
    registry.write(entry, registry_dir)
    return source


def unregister(cid, registry_dir=registry.DEFAULT_DIR):
    registry.remove(cid, registry_dir)
