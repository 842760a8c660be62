"""richctl: talk to a running richinit over its control socket.

    richctl status [--json]
    richctl start|stop|restart NAME
    richctl logs NAME [-f]
    richctl reload
    richctl shutdown

The socket is /run/richinit/control.sock (RICHINIT_CONTROL_DIR or --socket to change it).
"""

import argparse
import json
import sys

from richinit.tools import client


def _fmt_uptime(v):
    if v is None:
        return "-"
    v = int(v)
    return "%dd%02dh" % (v // 86400, v % 86400 // 3600) if v >= 86400 else \
        "%d:%02d:%02d" % (v // 3600, v % 3600 // 60, v % 60)


def _print_status(reply):
    rows = [("NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "READY", "INFO")]
    for s in reply["services"]:
        rows.append((s["name"], s["state"], str(s["pid"] or "-"), _fmt_uptime(s["uptime"]), str(s["restarts"]),
                     "-" if s["last_exit"] is None else str(s["last_exit"]), "yes" if s["ready"] else "no",
                     s.get("reason") or ""))
    app = reply.get("app")
    if app:
        rows.append(("app", app["state"], str(app["pid"] or "-"), _fmt_uptime(app.get("uptime")), "0",
                     "-" if app["last_exit"] is None else str(app["last_exit"]), "-", " ".join(app.get("cmd", []))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1])
    for e in reply.get("errors", []):
        where = e.get("file", "") + (":%s" % e["line"] if e.get("line") else "")
        print("error: %s: %s" % (where, e.get("message")))


def main(argv=None):
    p = argparse.ArgumentParser(prog="richctl", description="Control a running richinit.")
    p.add_argument("--socket", help="control socket (default /run/richinit/control.sock)")
    sub = p.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("status", help="services: state, pid, uptime, restarts, last exit, ready")
    st.add_argument("--json", action="store_true")
    for c in ("start", "stop", "restart"):
        sub.add_parser(c, help="%s a service" % c).add_argument("name")
    lg = sub.add_parser("logs", help="a service's recent output")
    lg.add_argument("name")
    lg.add_argument("-f", "--follow", action="store_true")
    sub.add_parser("reload", help="re-read services.d (SIGHUP does the same)")
    sub.add_parser("shutdown", help="stop the container in order")
    a = p.parse_args(argv)

    req = [a.cmd]
    if a.cmd in ("start", "stop", "restart", "logs"):
        if not a.name or any(c.isspace() for c in a.name):
            p.error("NAME must be one word")
        req.append(a.name)
    if a.cmd == "logs" and a.follow:
        req.append("follow")
    try:
        for reply in client.replies(req, a.socket):
            if "line" in reply:
                print(reply["line"], flush=True)
                continue
            if not reply.get("ok"):
                sys.stderr.write("richctl: %s\n" % reply.get("error", "failed"))
                return 1
            if a.cmd == "status":
                if a.json:
                    print(json.dumps(reply, indent=2))
                else:
                    _print_status(reply)
            elif a.cmd == "logs":
                for line in reply.get("lines", []):
                    print(line, flush=True)
                if not a.follow or reply.get("end"):
                    return 0
                continue
            elif a.cmd == "reload":
                for k in ("added", "removed", "changed"):
                    if reply.get(k):
                        print("%s: %s" % (k, ", ".join(reply[k])))
            if not reply.get("following"):
                return 0
    except client.Unreachable as e:
        sys.stderr.write("richctl: cannot reach richinit at %s\n" % e)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def entry():
    sys.exit(main())


if __name__ == "__main__":
    entry()
