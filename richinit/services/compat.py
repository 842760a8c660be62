"""The peers' layouts, run as they are: s6-overlay, runit/my_init service dirs, and init-script dirs.

Service directories (`/etc/services.d/NAME/` of s6-overlay, `/etc/service/NAME/` of runit, which
phusion's my_init uses):
  run              the command (required); started in the service directory, restarted always
  finish           run after each exit, with the exit code and signal (s6 convention; 125 = stay down)
  down             present = disabled at boot (`richctl start NAME` still works)
  notification-fd  s6: a number N; the service is ready when it writes a line to fd N
  down-signal      s6: the stop signal's name (default SIGTERM)
  timeout-kill     s6: milliseconds between the stop signal and SIGKILL (default 3000, s6-overlay's
                   S6_SERVICES_GRACETIME)
  log/run, check   not supported: a warning says so; output goes to the container's stdout
A richinit YAML definition of the same name wins, with a warning. s6's directory wins over runit's.

Scripts whose interpreter is s6-overlay's `with-contenv` (`#!/usr/bin/with-contenv bash`) are run by
the interpreter named after it when the image no longer has with-contenv: richinit already passes the
container's environment to every service, which is all with-contenv does.

Init scripts, run once, one after the other, before any service (in this order):
  /etc/cont-init.d/*     s6-overlay: a failure is logged and the boot goes on (s6-overlay's default);
                         with S6_BEHAVIOUR_IF_STAGE2_FAILS=2 in the environment a failure stops the boot
  /etc/my_init.d/*       my_init: a failure stops the boot
  /etc/richinit/init.d/* richinit: a failure stops the boot, unless the script is optional: its name
                         has `.optional` before its extension or at its end (`50-seed.optional.sh`,
                         `50-seed.optional`)
  /etc/rc.local          if executable (my_init and systemd's rc-local do the same): a failure stops the boot
Within a directory the order is the byte order of the names. Names starting with `.` or ending with
`~`, `.dpkg-*`, `.rpmsave`, `.rpmnew` or `.swp`, directories and non-executable files are skipped;
a non-executable file gets a warning (my_init skips them silently, which confuses people).
`/etc/cont-finish.d/*` are returned as finish scripts, for the supervisor to run at shutdown.
"""


from richinit.bootpaths import INIT_DIRS, RC_LOCAL
from richinit.services import spec as S

S6_DIR = "/etc/services.d"
RUNIT_DIR = "/etc/service"
S6_GRACE = 3.0
FINISH_DIRS = (("/etc/cont-finish.d", "s6-overlay"),)

_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")


def is_optional_name(name):
    """NAME.optional or NAME.optional.EXT (checked by hand: no `re` on the boot path)."""
    if name.endswith(".optional"):
        return True
    head, dot, ext = name.rpartition(".")
    return bool(dot and ext) and head.endswith(".optional")


def _skipped_name(name):
    """Hidden files and package-manager or editor leftovers: .x, x~, x.dpkg-old, x.rpmnew, x.swp."""
    if name.startswith(".") or name.endswith(("~", ".rpmsave", ".rpmnew", ".rpmorig", ".swp")):
        return True
    i = name.rfind(".dpkg-")
    return i >= 0 and len(name) > i + 6 and all(c in _LOWER for c in name[i + 6:])


def script_command(root, path, warn):
    """argv that runs a script as the peer would, rewriting a with-contenv shebang the image lacks."""
    head = root.head(path)
    if not head.startswith(b"#!"):
        return (path,)
    line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    words = line.split()
    if not words:
        return (path,)
    interp = words[0]
    if interp.rsplit("/", 1)[-1] == "with-contenv" and not root.is_executable(interp):
        rest = words[1:] or ["/bin/sh"]
        found = root.which(rest[0])
        if not found:
            warn(path, 1, "interpreter %s not found in the image" % rest[0])
        return (found or rest[0],) + tuple(rest[1:]) + (path,)
    if interp.startswith("/") and not root.is_executable(interp):
        warn(path, 1, "interpreter %s not found in the image" % interp)
    return (path,)


def _read_small(root, path):
    try:
        return root.read(path, 4096).decode("utf-8", "replace").strip()
    except OSError:
        return None


def service_dir(root, base, name, origin, warn):
    """One s6/runit service directory -> (ServiceSpec or None, [Problem])."""
    d = "%s/%s" % (base, name)
    run = d + "/run"
    if not S.valid_name(name):
        return None, [S.Problem(service=None, file=d, message="not a valid service name: %r" % name)]
    if name in S.RESERVED_NAMES:
        return None, [S.Problem(service=None, file=d, message="the name %r is reserved" % name)]
    fields = {"name": name, "origin": origin, "source": run, "command": script_command(root, run, warn),
              "workdir": d, "restart": "always", "stop_timeout": S6_GRACE,
              "enabled": not root.exists(d + "/down")}
    problems = []

    def bad(fname, message):
        problems.append(S.Problem(service=name, file="%s/%s" % (d, fname), line=1, message=message))

    if root.exists(d + "/finish"):
        fields["finish"] = script_command(root, d + "/finish", warn)
    text = _read_small(root, d + "/notification-fd")
    if text is not None:
        if text.isdigit() and 3 <= int(text) <= 1023:
            fields["ready"] = S.Ready(kind="fd", fd=int(text))
        else:
            bad("notification-fd", "expected a file descriptor number from 3 to 1023, got %r" % text[:40])
    text = _read_small(root, d + "/down-signal")
    if text is not None:
        try:
            fields["stop_signal"] = S._signal(int(text) if text.isdigit() else text, ())
        except S.Bad as e:
            bad("down-signal", e.message)
    text = _read_small(root, d + "/timeout-kill")
    if text is not None:
        if text.isdigit():
            fields["stop_timeout"] = int(text) / 1000.0
        else:
            bad("timeout-kill", "expected milliseconds, got %r" % text[:40])
    if root.exists(d + "/log/run"):
        warn(d + "/log/run", None, "s6/runit loggers are not supported; %s's output goes to the container's "
             "stdout (or set log: in a richinit definition)" % name)
    if root.exists(d + "/check"):
        warn(d + "/check", None, "runit check scripts are not supported; use ready: in a richinit definition")
    if problems:
        return None, problems
    return S.ServiceSpec(**fields), []


def service_dirs(root, warn):
    """All s6 and runit services: [(name, ServiceSpec or None, [Problem])], s6 first, names unique."""
    out, seen = [], {}
    for base, origin in ((S6_DIR, "s6-overlay"), (RUNIT_DIR, "runit")):
        for name in root.listdir(base) or ():
            d = "%s/%s" % (base, name)
            if name.startswith(".") or not root.is_dir(d):
                continue
            if not root.exists(d + "/run"):
                warn(d, None, "no run file; not a service")
                continue
            if name in seen:
                warn(d, None, "service %r is already defined by %s; ignored" % (name, seen[name]))
                continue
            seen[name] = d
            spec, problems = service_dir(root, base, name, origin, warn)
            out.append((name, spec, problems))
    return out


def _scripts(root, directory, origin, optional, warn):
    out = []
    for name in root.listdir(directory) or ():
        if _skipped_name(name):
            continue
        path = "%s/%s" % (directory, name)
        if root.is_dir(path):
            continue
        if not root.is_executable(path):
            warn(path, None, "not executable; skipped (chmod +x to run it at boot)")
            continue
        opt = optional(name)
        out.append(S.InitScript(path=path, command=script_command(root, path, warn), origin=origin, optional=opt))
    return out


def init_scripts(root, environ, warn):
    """The boot scripts in the order they run."""
    s6_required = environ.get("S6_BEHAVIOUR_IF_STAGE2_FAILS", "").strip() == "2"
    rules = {"s6-overlay": lambda n: not s6_required, "my_init": lambda n: False, "richinit": is_optional_name}
    out = []
    for directory, origin in INIT_DIRS:
        out.extend(_scripts(root, directory, origin, rules[origin], warn))
    if root.is_executable(RC_LOCAL):
        out.append(S.InitScript(path=RC_LOCAL, command=script_command(root, RC_LOCAL, warn), origin="rc.local"))
    return out


def finish_scripts(root, warn):
    out = []
    for directory, origin in FINISH_DIRS:
        out.extend(_scripts(root, directory, origin, lambda n: True, warn))
    return out
