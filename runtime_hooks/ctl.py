"""rich ctl NAME VERB... / rich status NAME: richctl for a rich container of any engine, from the host.

The container is found by its PID 1 on the host, tried in this order:
  1. NAME is a number: that pid;
  2. a `rich run` container of that name (its runtime's state);
  3. an OCI runtime's state directory holding NAME, or one id starting with NAME (Docker's short ids):
     runc/crun roots of Docker, containerd (CRI included), podman and plain runc/crun
     (RICHINIT_RUNTIME_ROOTS, colon-separated, adds others);
  4. `docker inspect` / `podman inspect` when that CLI is there (container names; DOCKER_HOST is honoured).
That pid must be richinit. Its control socket is resolved inside the container's root
(/proc/PID/root, osbase.safepath: a symlink planted by the image cannot send us to a host socket), held
as an O_PATH fd, and richctl (richinit.ctl, run by this Python in a process of its own) connects
through /proc/self/fd/N.
"""

import os
import stat
import sys

from osbase import safepath, standin

ROOTS = ("/run/runc", "/run/crun", "/run/docker/runtime-runc/moby", "/run/containerd/runc/k8s.io",
         "/run/containerd/runc/default", "/run/containerd/runc/moby")
SOCKETS = ("run/richinit/control.sock",)


class CtlError(Exception):
    """One line."""


def _pid_from_state(path):
    try:
        with open(path, "rb") as f:
            st = standin.json_loads(f.read())
    except (OSError, ValueError):
        return None
    pid = st.get("init_process_pid") or st.get("pid") if isinstance(st, dict) else None
    return pid if type(pid) is int and pid > 0 else None


def runtime_roots(environ=None):
    environ = os.environ if environ is None else environ
    extra = [r for r in (environ.get("RICHINIT_RUNTIME_ROOTS") or "").split(":") if r]
    return extra + list(ROOTS)


def from_state_dirs(name, roots):
    """The init pid of container NAME (or of the one id starting with NAME) in the runtime roots."""
    if not name or "/" in name or name.startswith("."):
        return None
    hits = []
    for root in roots:
        try:
            ids = os.listdir(root)
        except OSError:
            continue
        for cid in ids:
            if cid == name or cid.startswith(name):
                pid = _pid_from_state(os.path.join(root, cid, "state.json"))
                if pid:
                    if cid == name:
                        return pid
                    hits.append(pid)
    if len(set(hits)) > 1:
        raise CtlError("%s: more than one container id starts with it" % name)
    return hits[0] if hits else None


def from_cli(name):
    import shutil
    import subprocess
    for cli in ("docker", "podman"):
        exe = shutil.which(cli)
        if not exe:
            continue
        try:
            r = subprocess.run([exe, "inspect", "--type", "container", "-f", "{{.State.Pid}}", name],
                               capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0 and r.stdout.strip().isdigit() and int(r.stdout) > 0:
            return int(r.stdout)
    return None


def from_rich_run(name):
    from runtime_hooks import cli_containers
    try:
        rec = cli_containers.load_record(name)
    except Exception:  # noqa: BLE001 - not a rich run container (or no such directory): try the others
        return None
    pid = cli_containers.state_of(rec).get("pid")
    return pid if type(pid) is int and pid > 0 else None


def find_pid(name):
    if name.isdigit():
        return int(name)
    for how in (from_rich_run, lambda n: from_state_dirs(n, runtime_roots()), from_cli):
        pid = how(name)
        if pid:
            return pid
    raise CtlError("%s: no running container of that name or id (rich run, docker, podman, containerd/CRI; "
                   "or give its PID 1's host pid)" % name)


def is_richinit(pid):
    """Does host pid `pid` run richinit (its title, or the portable runtime's loader as its exe)?"""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return cmd.startswith(b"richinit") or b"from richinit.main import" in cmd


def socket_fd(pid):
    """O_PATH fd of richinit's control socket, resolved inside the container's root."""
    try:
        rootfd = os.open("/proc/%d/root" % pid, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CtlError("pid %d: cannot open its root: %s" % (pid, e.strerror))
    try:
        for rel in SOCKETS:
            try:
                fd = safepath.open_in_root(rootfd, rel, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                return fd
            os.close(fd)
    finally:
        os.close(rootfd)
    raise CtlError("pid %d: no control socket at /%s inside (richinit started without services?)"
                   % (pid, SOCKETS[0]))


def run(name, verb):
    """Find the container, then become richctl talking to its socket (an exec: its output and
    exit status are richctl's)."""
    if not verb:
        raise CtlError("give a richctl command: status | start NAME | stop NAME | restart NAME | logs NAME | "
                       "reload | shutdown")
    pid = find_pid(name)
    if not is_richinit(pid):
        raise CtlError("%s: pid %d is not richinit (not a rich container?)" % (name, pid))
    fd = socket_fd(pid)
    os.set_inheritable(fd, True)
    code = ("import sys; sys.path[:0] = %r; from richinit.ctl import main; sys.exit(main(sys.argv[1:]))"
            % [p for p in sys.path if p])
    sys.stdout.flush()
    try:
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", code, "--socket", safepath.fd_path(fd)]
                 + list(verb))
    except OSError as e:
        raise CtlError("%s: cannot run richctl: %s" % (sys.executable, e.strerror))
