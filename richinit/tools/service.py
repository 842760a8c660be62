"""service NAME VERB, as Debian's service(8) behaves on a systemd machine: the common verbs go to
systemctl (`service nginx status` is `systemctl status nginx.service`), any other verb runs the
SysV script itself (/etc/init.d/NAME VERB); `service --status-all` lists the init scripts with
[ + ] running, [ - ] not running, [ ? ] unknown to PID 1."""

import os
import sys

from richinit.tools import client
from richinit.tools import systemctl as sc

SYSTEMCTL_VERBS = ("start", "stop", "restart", "reload", "force-reload", "try-restart", "status")
USAGE = "Usage: service < option > | --status-all | [ service_name [ command | --full-restart ] ]"


def status_all():
    try:
        names = sorted(n for n in os.listdir("/etc/init.d")
                       if not n.startswith(".") and n not in ("README", "skeleton", "rc", "rcS")
                       and os.access(os.path.join("/etc/init.d", n), os.X_OK))
    except OSError:
        names = []
    loaded = sc._units([n + ".service" for n in names]) if names else {}
    for n in names:
        u = loaded.get(n + ".service")
        active = u.get("ActiveState") if sc._loaded(u) else None
        mark = "?" if active is None else "+" if active == "active" else "-"
        print(" [ %s ]  %s" % (mark, n))
    return 0


def main(argv):
    args = list(argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stderr.write(USAGE + "\n")
        return 1 if not args else 0
    if args[0] == "--version":
        print("service ver. 1.65.2 (richinit)")
        return 0
    try:
        if args[0] == "--status-all":
            return status_all()
        name, rest = args[0], args[1:]
        if name.endswith(".sh"):
            name = name[:-3]
        if not rest:
            sys.stderr.write(USAGE + "\n")
            return 1
        verb = rest[0]
        if verb == "--full-restart":
            verb = "restart"
        if verb in SYSTEMCTL_VERBS:
            return sc.main([verb, name + ".service"])
        script = os.path.join("/etc/init.d", name)
        if not os.access(script, os.X_OK):
            sys.stderr.write("%s: unrecognized service\n" % name)
            return 1
        os.execve(script, [script] + rest, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                            "TERM": os.environ.get("TERM", "dumb")})
    except client.Unreachable as e:
        return client.fail_unreachable("service", e)
    return 1
