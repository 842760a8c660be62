"""The main job: demo/legacy-app.sh in a rich container, through `rich run`, then a clean stop.

The image is busybox-static with a shell script in it: no Python, no init, no syslog, no cron.
`rich run` injects richinit (from the portable runtime bound read-only at /.richinit), the
/proc views (memory 256 MiB, 1.5 CPUs) and the built-in syslog and cron.
"""

import os
import subprocess
import sys
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from runtime_hooks.demo_image import demo_rootfs  # noqa: E402

BIN = os.path.dirname(sys.executable)
RICH = os.path.join(BIN, "rich")
STATE = "/var/lib/richinit/demo"


def step(msg):
    print("\n=== demo: %s" % msg, flush=True)


def show(name, *cmd):
    r = subprocess.run([RICH, "exec", name, "--", *cmd], capture_output=True, text=True)
    print("$ %s\n%s" % (" ".join(cmd), (r.stdout + r.stderr).rstrip()), flush=True)


def main():
    rootfs = demo_rootfs(os.path.join(STATE, "rootfs"))
    step("building the portable richinit runtime (interpreter, stdlib, richinit; shared by all containers)")
    subprocess.run([RICH, "runtime", "build"], check=True)
    name = "demo-" + uuid.uuid4().hex[:6]
    cmd = [RICH, "run", "--name", name, "--memory", "256m", "--cpus", "1.5", rootfs, "--", "/app/legacy-app.sh"]
    step(" ".join(cmd[1:]))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        time.sleep(5)
        step("inside the container")
        show(name, "ps", "-o", "pid,ppid,stat,args")
        show(name, "head", "-3", "/proc/meminfo")
        show(name, "grep", "-c", "^processor", "/proc/cpuinfo")
        show(name, "tail", "-3", "/var/log/messages")
        step("rich stop %s  (SIGTERM: the app closes, services stop in order)" % name)
        subprocess.run([RICH, "stop", name], check=False)
        rc = proc.wait(timeout=60)
        step("container exited with %d (the app's exit code)" % rc)
        return rc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run([RICH, "rm", name], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
