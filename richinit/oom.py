"""The OOM killer's count for PID 1's memory cgroup: a SIGKILL from it told apart from any other.

Inside a container /sys/fs/cgroup is the container's own group: cgroup v2's memory.events (also
under /sys/fs/cgroup/unified on a hybrid host) or v1's memory.oom_control, each with `oom_kill N`.
"""

PATHS = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control",
         "/sys/fs/cgroup/unified/memory.events")


def read_count(path):
    """The oom_kill count in `path`, or None (absent, unreadable, a kernel without it)."""
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(b"oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class OomCounter:
    def __init__(self, paths=PATHS):
        self.path, self.seen = None, 0
        for p in paths:
            n = read_count(p)
            if n is not None:
                self.path, self.seen = p, n
                break

    def new_kills(self):
        if self.path is None:
            return 0
        n = read_count(self.path)
        if n is None:
            return 0
        new, self.seen = n - self.seen, n
        return max(new, 0)
