"""shutdown, poweroff, halt, reboot (and systemctl poweroff/halt/reboot) inside the container:
poweroff and halt end the container in order (PID 1 stops every service, then exits); reboot
restarts every service in order without ending it. Only an immediate time ("now", "+0") is
accepted: there is no scheduler to keep a delayed one."""

import sys

from richinit.tools import client

_IGNORED = ("-f", "--force", "-w", "--wtmp-only", "-d", "--no-wtmp", "-n", "--no-sync", "--no-wall", "-k",
            "-q", "-i", "-t")


def main(prog, argv):
    action = {"reboot": "reboot", "halt": "poweroff", "poweroff": "poweroff"}.get(prog, "poweroff")
    rest = []
    for a in argv:
        if a in ("-r", "--reboot"):
            action = "reboot"
        elif a in ("-h", "-P", "-H", "--poweroff", "--halt", "-p"):
            action = "poweroff"
        elif a in ("-c",):
            sys.stderr.write("%s: no scheduled shutdown to cancel\n" % prog)
            return 1
        elif a == "--help":
            print("%s [OPTIONS...]%s" % (prog, " [TIME] [WALL...]" if prog == "shutdown" else ""))
            return 0
        elif a in _IGNORED:
            continue
        elif a.startswith("-"):
            sys.stderr.write("%s: invalid option -- '%s'\n" % (prog, a.lstrip("-")))
            return 1
        else:
            rest.append(a)
    if prog == "shutdown" and rest and rest[0] not in ("now", "+0", "0"):
        sys.stderr.write("shutdown: only an immediate shutdown (now) is supported in a richinit container\n")
        return 1
    if action == "poweroff":
        # The stop it asks for ends with SIGTERM to every process left, this one too if it has not
        # exited yet: its answer (and exit code) must not depend on that race.
        import _signal
        _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    try:
        reply = client.request([action])
    except client.Unreachable as e:
        return client.fail_unreachable(prog, e)
    if not reply.get("ok"):
        sys.stderr.write("%s: %s\n" % (prog, reply.get("error")))
        return 1
    return 0
