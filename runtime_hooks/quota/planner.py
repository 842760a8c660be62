"""plan(): which host directory each rule limits, and with which backend. Changes nothing.

For each rule target:
- "/"           -> the writable layer: the overlay's upperdir when the rootfs is an overlay mount,
                   else the rootfs directory itself;
- a destination -> the bind source of the mount with that destination (or, below one, the
                   directory resolved inside that source), else a directory of the image resolved
                   inside the rootfs with osbase.safepath (symlinks cannot leave it);
- a regex       -> every bind-mount destination it matches in full, each with its own limit.

Everything in config.json and the annotations is hostile: each problem is one line naming the
rule, and planning stops before anything is touched.
"""

import errno
import os
import re
from dataclasses import dataclass, field

from osbase import fsquota, safepath
from runtime_hooks.quota import mountinfo, rules
from runtime_hooks.quota.errors import QuotaError
from runtime_hooks.quota.ids import IdAllocator

DEFAULT_STATE_DIR = "/var/lib/richinit"
_CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass
class Dir:
    dest: str          # inside the container
    host: str          # the real host path
    kind: str          # rootfs | upper | volume | image
    dev: int
    ino: int
    fs: str


@dataclass
class Group:
    rule: str          # Rule.where(): used in every message about this group
    limit: int
    dirs: list
    backend: str       # project | loop
    key: str           # stable name of the group for IDs and images
    persistent: bool   # every directory is a volume: may outlive the container


@dataclass
class Plan:
    container: str
    state_dir: str
    groups: list = field(default_factory=list)
    quota_id: int | None = None


def _is_bind(m):
    opts = m.get("options") or []
    return m.get("type") == "bind" or "bind" in opts or "rbind" in opts


def _norm(dest):
    return "/" + "/".join(c for c in str(dest).split("/") if c and c != ".")


def _open_dir(path):
    return os.open(path, safepath.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _describe(fd, dest, kind):
    st = os.fstat(fd)
    return Dir(dest, safepath.where(fd), kind, st.st_dev, st.st_ino, fsquota.fs_name(fd))


class _Resolver:
    def __init__(self, config, bundle, proc):
        root = (config.get("root") or {}).get("path")
        if not isinstance(root, str) or not root:
            raise QuotaError("config.json: root.path is missing")
        self.rootfs = os.path.realpath(os.path.join(bundle, root))
        self.mounts = [m for m in (config.get("mounts") or []) if isinstance(m, dict) and "destination" in m]
        self.host_mounts = mountinfo.read(proc)

    def binds(self):
        return [m for m in self.mounts if _is_bind(m) and isinstance(m.get("source"), str)]

    def resolve(self, dest, where):
        if dest == "/":
            return self._writable_layer()
        for m in reversed(self.mounts):  # the last mount on a destination wins, as in runc
            mdest = _norm(m["destination"])
            if mdest == dest and not _is_bind(m):
                raise QuotaError("%s: %s is a %s mount, not a directory on disk"
                                 % (where, dest, m.get("type") or "non-bind"))
            if dest == mdest or dest.startswith(mdest.rstrip("/") + "/"):
                if not _is_bind(m):
                    break
                return self._in_volume(m, dest[len(mdest):] or "/", dest, where)
        return self._in_image(dest, where)

    def _writable_layer(self):
        top = mountinfo.at(self.host_mounts, self.rootfs)
        if top is not None and top.fstype == "overlay":
            upper = top.option("upperdir")
            if not upper:
                raise QuotaError("rootfs %s is a read-only overlay (no upperdir): '/' cannot be limited"
                                 % self.rootfs)
            fd = _open_dir(upper)
            try:
                return _describe(fd, "/", "upper")
            finally:
                os.close(fd)
        fd = _open_dir(self.rootfs)
        try:
            return _describe(fd, "/", "rootfs")
        finally:
            os.close(fd)

    def _in_volume(self, m, rest, dest, where):
        try:
            src = _open_dir(m["source"])
        except OSError as e:
            raise QuotaError("%s: mount %s: source %s: %s" % (where, dest, m["source"], e.strerror))
        try:
            if rest == "/":
                return _describe(src, dest, "volume")
            fd = safepath.open_in_root(src, rest, safepath.O_PATH | os.O_DIRECTORY, mode=0)
            try:
                return _describe(fd, dest, "volume")
            finally:
                os.close(fd)
        except OSError as e:
            raise QuotaError("%s: %s inside volume %s: %s" % (where, rest, m["source"], e.strerror))
        finally:
            os.close(src)

    def _in_image(self, dest, where):
        rootfd = safepath.open_root(self.rootfs)
        try:
            fd = safepath.open_in_root(rootfd, dest, safepath.O_PATH | os.O_DIRECTORY, mode=0)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise QuotaError("%s: unknown destination %s: no mount in config.json and no directory "
                                 "of the image" % (where, dest))
            raise QuotaError("%s: %s in the image: %s" % (where, dest, e.strerror))
        finally:
            os.close(rootfd)
        try:
            return _describe(fd, dest, "image")
        finally:
            os.close(fd)


def _expand(rule_list, resolver):
    """[(rule, [dest, ...])] with regex targets replaced by each matching destination."""
    explicit = {t.path for r in rule_list for t in r.targets if t.path is not None}
    out = []
    for r in rule_list:
        if r.targets[0].regex is None:
            out.append((r, [t.path for t in r.targets]))
            continue
        pat = r.targets[0].regex
        hits = sorted({_norm(m["destination"]) for m in resolver.binds()
                       if pat.fullmatch(_norm(m["destination"])) and _norm(m["destination"]) not in explicit})
        if not hits:
            raise QuotaError("%s: the regex matches no mount destination" % r.where())
        out.extend((r, [h]) for h in hits)
    return out


# ---- backend choice ----

def project_support(d, host_mounts):
    """None when the project backend can limit this directory, else the reason it cannot."""
    if d.fs not in ("xfs", "ext4"):
        return "%s is on %s; the project backend needs xfs or ext4" % (d.host, d.fs)
    fd = _open_dir(d.host)
    try:
        probe = fsquota.get_quota if d.fs == "ext4" else fsquota.xfs_get_quota
        probe(fd, 0)
    except OSError as e:
        if e.errno == errno.ENOSYS:
            return ("this kernel cannot enforce project quotas (quotactl: ENOSYS, built without "
                    "CONFIG_QUOTA); use %s=loop" % rules.BACKEND_ANNOTATION)
        if e.errno not in (errno.ESRCH, errno.ENOENT):
            return "quotactl on %s: %s" % (d.host, e.strerror)
    finally:
        os.close(fd)
    m = mountinfo.for_dev(host_mounts, d.dev)
    if not mountinfo.has_project_quota(m):
        return "%s (%s) is mounted without prjquota" % (d.host, d.fs)
    return None


def _choose(group, wanted, host_mounts):
    if wanted == "loop":
        return "loop"
    reasons = [r for r in (project_support(d, host_mounts) for d in group.dirs) if r]
    if len({d.dev for d in group.dirs}) > 1:
        reasons.append("a shared limit needs all its directories on one filesystem")
    if not reasons:
        return "project"
    if wanted == "project":
        raise QuotaError("%s: %s" % (group.rule, reasons[0]))
    return "loop"


def _check_loop(group, host_mounts):
    for d in group.dirs:
        if d.kind == "upper":
            raise QuotaError("%s: the writable layer is an overlay upperdir; the loop backend cannot limit "
                             "it once the overlay is mounted (use project quotas)" % group.rule)
        if d.kind == "rootfs" and len(group.dirs) > 1:
            raise QuotaError("%s: the loop backend cannot share one limit between / and other directories"
                             % group.rule)


def usage(host, dev):
    """Bytes allocated below host (st_blocks), not crossing into other filesystems."""
    total = 0
    for top, dirs, files in os.walk(host):
        keep = []
        for name in dirs:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            total += st.st_blocks * 512
            if st.st_dev == dev:
                keep.append(name)
        dirs[:] = keep
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_blocks * 512
            except OSError:
                pass
    return total


def plan(container_id, config, bundle_dir, cli_rules=(), state_dir=DEFAULT_STATE_DIR, proc="/proc"):
    """The Plan for a container (no groups when it has no quota rules). Raises QuotaError."""
    if not isinstance(container_id, str) or not _CONTAINER_ID.fullmatch(container_id):
        raise QuotaError("container id %r: not a valid id" % (container_id,))
    ann = config.get("annotations") or {}
    if not isinstance(ann, dict):
        raise QuotaError("config.json: annotations is not an object")
    try:
        rule_list = rules.parse_rules(ann.get(rules.ANNOTATION), cli_rules)
        problems = rules.validate(rule_list)
        if problems:
            raise rules.RuleError(problems[0])
        wanted = rules.parse_backend(ann.get(rules.BACKEND_ANNOTATION))
        quota_id = rules.parse_quota_id(ann.get(rules.ID_ANNOTATION))
    except rules.RuleError as e:
        raise QuotaError(str(e))
    if quota_id is not None:
        owner = IdAllocator(state_dir).owned().get(quota_id)
        if owner and owner["container"] != container_id:
            raise QuotaError("annotation %s: project ID %d is taken by container %s"
                             % (rules.ID_ANNOTATION, quota_id, owner["container"]))
    result = Plan(container_id, state_dir, quota_id=quota_id)
    if not rule_list:
        return result
    resolver = _Resolver(config, bundle_dir, proc)
    seen = {}
    for r, dests in _expand(rule_list, resolver):
        dirs = [resolver.resolve(d, r.where()) for d in dests]
        for d in dirs:
            other = seen.get((d.dev, d.ino))
            if other is not None:
                raise QuotaError("%s: %s is the same directory as %s of %s" % (r.where(), d.dest, *other))
            seen[(d.dev, d.ino)] = (d.dest, r.where())
        key = "&".join(d.dest for d in dirs)
        g = Group(r.where(), r.limit, dirs, "", key, all(d.kind == "volume" for d in dirs))
        g.backend = _choose(g, wanted, resolver.host_mounts)
        if g.backend == "loop":
            _check_loop(g, resolver.host_mounts)
        used = sum(usage(d.host, d.dev) for d in dirs)
        if used > g.limit:
            raise QuotaError("%s: limit %s is below current usage %s" % (g.rule, human(g.limit), human(used)))
        result.groups.append(g)
    if quota_id is not None and len(result.groups) != 1:
        raise QuotaError("annotation %s: an explicit ID needs exactly one quota rule (there are %d)"
                         % (rules.ID_ANNOTATION, len(result.groups)))
    return result


def human(n):
    for unit, size in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return ("%.1f%s" % (n / size, unit)).replace(".0" + unit, unit)
    return "%dB" % n


def plan_to_data(p):
    """The Plan as JSON data (the host pipeline saves it before anything is applied)."""
    return {"quota_id": p.quota_id, "groups": [
        {"rule": g.rule, "limit": g.limit, "backend": g.backend, "key": g.key, "persistent": g.persistent,
         "dirs": [{"dest": d.dest, "host": d.host, "kind": d.kind, "dev": d.dev, "ino": d.ino, "fs": d.fs}
                  for d in g.dirs]} for g in p.groups]}


def plan_from_data(data, container_id, state_dir=DEFAULT_STATE_DIR):
    """plan_to_data's inverse (the directories are checked again by dev/ino when applied)."""
    groups = [Group(g["rule"], g["limit"], [Dir(**d) for d in g["dirs"]], g["backend"], g["key"], g["persistent"])
              for g in data["groups"]]
    return Plan(container_id, state_dir, groups, data.get("quota_id"))
