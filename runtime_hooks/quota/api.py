"""apply() and release(): act on a Plan, all or nothing; list_quotas() for `rich quota ls`.

apply() pushes an undo step after every step that succeeded (a tag, a limit, a mount, an image);
any failure runs them backwards and releases the IDs it handed out, then raises one QuotaError
line. What was applied is recorded in STATE/quota/containers/<id>.json for release() and ls.

When to call it: the project backend only changes host directories, so a createRuntime hook is
fine. The loop backend mounts over the directory, which a container sees only if the mount exists
before the runtime binds it: call apply() before `runc create` (the rich-runtime wrapper), not from
a hook that runs after the container's mounts were made.
"""

import errno
import json
import os

from runtime_hooks.quota import loopfs, project
from runtime_hooks.quota.errors import QuotaError
from runtime_hooks.quota.ids import IdAllocator, IdError
from runtime_hooks.quota.planner import DEFAULT_STATE_DIR, human


def _record_path(state_dir, container):
    return os.path.join(state_dir, "quota", "containers", container + ".json")


def _load_record(state_dir, container):
    try:
        with open(_record_path(state_dir, container)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _save_record(state_dir, container, groups):
    path = _record_path(state_dir, container)
    if not groups:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"container": container, "groups": groups}, f, indent=1)
    os.rename(tmp, path)


def _rollback(undo):
    problems = []
    while undo:
        step = undo.pop()
        try:
            step()
        except (OSError, QuotaError) as e:
            problems.append(str(e))
    return problems


def apply(plan):
    """Apply every group of the plan or none of them. Returns the record (list of groups).

    The record names each group (its project ID, its image) before the group is acted on, so a
    process killed half-way leaves a record from which release() undoes what it did."""
    if not plan.groups:
        return []
    ids = IdAllocator(plan.state_dir)
    before = (_load_record(plan.state_dir, plan.container) or {}).get("groups", [])
    undo, new_ids, records = [], [], []
    group = None
    try:
        for group in plan.groups:
            rec = {"rule": group.rule, "limit": group.limit, "backend": group.backend, "key": group.key,
                   "persistent": group.persistent, "fs": group.dirs[0].fs,
                   "dests": [d.dest for d in group.dirs], "hosts": [d.host for d in group.dirs]}
            if group.backend == "project":
                qid, new = ids.allocate_new(plan.container, group.key, group.persistent, plan.quota_id)
                if new:
                    new_ids.append(qid)
                rec["id"] = qid
            else:
                rec.update(loopfs.paths(group, plan.container, plan.state_dir))
            records.append(rec)
            _save_record(plan.state_dir, plan.container, records)
            if group.backend == "project":
                project.apply_group(group, rec["id"], undo)
            else:
                loopfs.apply_group(group, plan.container, plan.state_dir, undo)
        return records
    except BaseException as e:
        _rollback(undo)
        _save_record(plan.state_dir, plan.container, before)
        if new_ids:
            ids.release(plan.container, ids=new_ids)
        if isinstance(e, QuotaError):
            raise
        if isinstance(e, (IdError, OSError)):
            raise QuotaError("%s: %s" % (group.rule if group else "quota", e))
        raise


def release(container_id, keep_persistent=False, state_dir=DEFAULT_STATE_DIR):
    """Undo a container's quotas; returns problem lines (empty when all went well).

    keep_persistent keeps what belongs to volumes that outlive the container: their project IDs
    and tags, or their loop images (unmounted, remounted by the next apply for this container).
    """
    rec = _load_record(state_dir, container_id)
    problems, kept = [], []
    ids = IdAllocator(state_dir)
    for g in (rec or {}).get("groups", []):
        keep = keep_persistent and g.get("persistent")
        if g["backend"] == "project":
            if keep:
                kept.append(g)
                continue
            problems += project.release_group(g)
        else:
            problems += loopfs.release_group(g, keep)
            if keep:
                kept.append(g)
    _save_record(state_dir, container_id, kept)
    # Also catches IDs handed out by an apply that died before it wrote its record.
    ids.release(container_id, keep_persistent=keep_persistent)
    return problems


def list_quotas(state_dir=DEFAULT_STATE_DIR):
    """One dict per quota directory group of every container: backend, ID, limit, usage."""
    rows = []
    base = os.path.join(state_dir, "quota", "containers")
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return rows
    for name in names:
        if not name.endswith(".json"):
            continue
        rec = _load_record(state_dir, name[:-5]) or {}
        for g in rec.get("groups", []):
            rows.append({"container": rec.get("container"), "dirs": ",".join(g["dests"]),
                         "backend": g["backend"], "id": g.get("id"), "limit": g["limit"],
                         "used": _used(g), "hosts": g["hosts"]})
    return rows


def _used(g):
    try:
        if g["backend"] == "loop":
            return loopfs.usage(g["hosts"][0])[1]
        fd = os.open(g["hosts"][0], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return project.get_quota(fd, g["fs"], g["id"])[1]
        finally:
            os.close(fd)
    except OSError as e:
        return "n/a (%s)" % ("no kernel quota" if e.errno == errno.ENOSYS else e.strerror)


def format_table(rows):
    out = ["%-24s %-20s %-8s %-10s %8s %8s" % ("CONTAINER", "DIRS", "BACKEND", "ID", "LIMIT", "USED")]
    for r in rows:
        used = human(r["used"]) if isinstance(r["used"], int) else r["used"]
        out.append("%-24s %-20s %-8s %-10s %8s %8s" % (r["container"], r["dirs"], r["backend"],
                                                      r["id"] if r["id"] is not None else "-",
                                                      human(r["limit"]), used))
    return "\n".join(out)
