"""Run the real richinit as PID 1 of a fresh PID namespace and watch it from the host."""

import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHILD = os.path.join(REPO, "tests", "support", "child.py")
RICHINIT = [sys.executable, "-m", "richinit"]


def child_argv(report, mode, *args):
    return [sys.executable, CHILD, report, mode, *map(str, args)]


class Pid1:
    """`unshare --fork --pid --mount-proc --kill-child richinit OPTS -- CMD`.

    .pid is richinit's host pid (PID 1 inside). The report file collects the
    test child's lines. Always use as a context manager: it kills by PID on exit.
    """

    def __init__(self, tmp, cmd, opts=(), env=None, pidns=True, cwd=None, launcher=RICHINIT):
        self.report = os.path.join(str(tmp), "report")
        open(self.report, "w").close()
        argv = list(launcher) + list(opts) + ["--"] + list(cmd)
        if pidns:
            argv = ["unshare", "--fork", "--pid", "--mount-proc", "--kill-child"] + argv
        full_env = dict(os.environ if env is None else env)
        full_env.setdefault("PYTHONPATH", REPO)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=full_env, cwd=cwd)
        self.pid = self._find_init() if pidns else self.proc.pid
        self.out = self.err = None

    def _find_init(self, timeout=10):
        deadline = time.monotonic() + timeout
        path = "/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    kids = f.read().split()
                if kids:
                    return int(kids[0])
            except FileNotFoundError:
                break
            time.sleep(0.005)
        raise RuntimeError("richinit did not start under unshare")

    def lines(self):
        with open(self.report) as f:
            return f.read().splitlines()

    def wait_line(self, prefix, timeout=10, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [line for line in self.lines() if line.startswith(prefix)]
            if len(got) >= count:
                return got
            time.sleep(0.01)
        raise AssertionError("no %r line in report within %ss: %r" % (prefix, timeout, self.lines()))

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self, timeout=30):
        self.out, self.err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode

    def status(self, pid=None):
        with open("/proc/%d/status" % (pid or self.pid)) as f:
            return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, 9)  # PID 1 dies -> the kernel kills its namespace
            except ProcessLookupError:
                pass
            self.proc.kill()
            self.proc.communicate()
