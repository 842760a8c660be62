"""A pre-flight report of an image's services: what would run at boot, in start order, what is
skipped and why, and every directive ignored or approximated, with FILE:LINE. Nothing is started,
nothing from the image is executed: the loader reads the files under ROOT (every path resolved
inside it).

    python -m richinit.services.inspect ROOT [--json]

`rich inspect ROOTFS_DIR|ROOTFS_TARBALL` runs this in a process of its own (the host side does not
import the PID 1 side). The JSON document:

    {"root": ROOT, "os": PRETTY_NAME,
     "start": [[service, ...], ...]          start waves, in order (stop: reversed)
     "services": [{"name", "unit", "origin", "source", "type", "command", "after", "requires"}]
                                             the services started at boot, in start order
     "sockets": [{"unit", "listen", "service", "accept"}], "timers": [{"unit", "calendar", "service", ...}]
                                             the enabled ones
     "skipped": {name: reason}, "errors": ["FILE:LINE: message"], "warnings": ["FILE:LINE: message"]}

Exit status 0 when the report was produced (even with errors: they are the report), 1 when ROOT
cannot be read, 2 for a usage error.
"""

import os
import sys

from richinit.services import load as L


def report(root, environ=None):
    """The report (a dict, see the module doc) of the image at `root`."""
    result = L.load(root, L.DEFAULTS_DIR, environ=environ if environ is not None else {}, units=True)
    from richinit.services.rootfs import Root
    from richinit.services.unitspec import os_release
    with Root(root) as r:
        osname = os_release(r).get("PRETTY_NAME", "")
    by_name = {s.name: s for s in result.services}
    services = []
    for wave in result.order:
        for name in wave:
            s = by_name[name]
            services.append({"name": name, "unit": s.unit, "origin": s.origin, "source": s.source, "type": s.type,
                             "command": list(s.command), "after": sorted(result.deps.get(name, ())),
                             "requires": list(s.requires)})
    return {
        "root": root, "os": osname,
        "start": [list(w) for w in result.order],
        "services": services,
        "sockets": [{"unit": s.unit or s.name, "listen": ["%s %s" % (x.kind, x.address) for x in s.listen],
                     "service": s.service, "accept": s.accept} for s in result.sockets if s.enabled],
        "timers": [{"unit": t.unit or t.name, "calendar": list(t.calendar), "on_boot": t.on_boot,
                    "on_unit_active": t.on_unit_active, "service": t.service} for t in result.timers if t.enabled],
        "skipped": dict(sorted(result.skipped.items())),
        "errors": [str(p) for p in result.errors],
        "warnings": [str(p) for p in result.warnings],
    }


def text(rep):
    out = ["%s%s" % (rep["root"], " (%s)" % rep["os"] if rep["os"] else "")]
    out.append("Start order (each step starts in parallel; stop runs it backwards):")
    by_name = {s["name"]: s for s in rep["services"]}
    for i, wave in enumerate(rep["start"], 1):
        for name in wave:
            s = by_name[name]
            what = s["unit"] or s["source"]
            out.append("  %2d  %-24s %-8s %s" % (i, name, s["origin"], what))
    if rep["sockets"]:
        out.append("Sockets (bound at boot, starting their service on the first connection):")
        out.extend("  %s: %s -> %s%s" % (s["unit"], ", ".join(s["listen"]), s["service"],
                                         " (one instance per connection)" if s["accept"] else "")
                   for s in rep["sockets"])
    if rep["timers"]:
        out.append("Timers:")
        for t in rep["timers"]:
            when = ", ".join(t["calendar"]) or ", ".join(
                "%s %ss" % (k, t[k]) for k in ("on_boot", "on_unit_active") if t[k] is not None)
            out.append("  %s: %s -> %s" % (t["unit"], when, t["service"]))
    if rep["skipped"]:
        out.append("Skipped:")
        out.extend("  %s: %s" % (n, why) for n, why in rep["skipped"].items())
    if rep["errors"]:
        out.append("Errors (these do not start; the rest does):")
        out.extend("  " + e for e in rep["errors"])
    if rep["warnings"]:
        out.append("Ignored or approximated:")
        out.extend("  " + w for w in rep["warnings"])
    return "\n".join(out) + "\n"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    args = [a for a in argv if a != "--json"]
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("usage: python -m richinit.services.inspect ROOT [--json]\n")
        return 2
    root = args[0]
    if not os.path.isdir(root):
        sys.stderr.write("inspect: %s: not a directory\n" % root)
        return 1
    try:
        rep = report(root)
    except OSError as e:
        sys.stderr.write("inspect: cannot read %s: %s\n" % (root, e.strerror or e))
        return 1
    if as_json:
        import json
        sys.stdout.write(json.dumps(rep, indent=1) + "\n")
    else:
        sys.stdout.write(text(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
