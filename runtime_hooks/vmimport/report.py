"""The import report: a plain dict (JSON-ready) and its text rendering.

    {"disk", "format", "virtual_size", "table", "partitions": [...], "volumes": [...],
     "os": {"id", "version_id", "pretty_name"}, "mounts": [...], "skipped": [...],
     "changes": [{"action", "path", "reason", "undo", ...}], "output", "bytes", "seconds"}
"""

import json


def new(disk):
    return {"disk": disk, "format": "", "virtual_size": 0, "table": "", "partitions": [], "volumes": [],
            "os": {}, "mounts": [], "skipped": [], "changes": [], "output": "", "bytes": 0, "seconds": 0.0}


def render_json(report):
    return json.dumps(report, indent=2, sort_keys=True) + "\n"


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return ("%d %s" % (n, unit)) if unit == "B" else "%.1f %s" % (n, unit)
        n /= 1024.0


def render_text(report):
    r = report
    out = ["disk      %s (%s, %s, %s partition table)" % (r["disk"], r["format"], _size(r["virtual_size"]), r["table"])]
    osr = r["os"]
    if osr:
        name = osr.get("pretty_name") or "%s %s" % (osr.get("id", "?"), osr.get("version_id", ""))
        out.append("system    %s" % name)
    for v in r["volumes"]:
        out.append("volume    %-14s %-12s %10s  %s" % (v["name"], v["fstype"] or "-", _size(v["size"]),
                                                       v["label"] or v["uuid"]))
    for m in r["mounts"]:
        sub = " subvol=%s" % m["subvol"] if m["subvol"] else ""
        out.append("mounted   %-14s %s (%s%s)" % (m["mountpoint"], m["volume"], m["fstype"], sub))
    for s in r["skipped"]:
        out.append("skipped   %-14s %s: %s" % (s["mountpoint"], s["device"], s["reason"]))
    if r["changes"]:
        out.append("switched off (undo: sh /var/lib/richinit/import-disabled/undo.sh in the container):")
        for c in r["changes"]:
            what = c.get("unit") or c.get("entry") or c["path"]
            out.append("  %-7s %-40s %s" % (c["action"], what, c["reason"]))
    if r["output"]:
        out.append("output    %s (%s in %.1f s)" % (r["output"], _size(r["bytes"]), r["seconds"]))
    return "\n".join(out) + "\n"
