"""Quota directories: per-directory size limits for containers.

    plan = quota.plan(container_id, config, bundle_dir)   # resolve rules, choose backends; changes nothing
    quota.apply(plan)                                     # all or nothing
    quota.release(container_id, keep_persistent=False)

Backends: project quotas (xfs or ext4 mounted with prjquota, set through ctypes ioctls and
quotactl) when the kernel and filesystem have them, else a size-limited loop filesystem mounted
over the directory. Rules use PouchContainer's syntax (see rules.py). Every failure is a
QuotaError whose message is one line naming the rule.
"""

from runtime_hooks.quota.api import apply, format_table, list_quotas, release
from runtime_hooks.quota.errors import QuotaError
from runtime_hooks.quota.planner import DEFAULT_STATE_DIR, plan, plan_from_data, plan_to_data

__all__ = ["plan", "plan_to_data", "plan_from_data", "apply", "release", "list_quotas", "format_table", "QuotaError",
           "DEFAULT_STATE_DIR"]
