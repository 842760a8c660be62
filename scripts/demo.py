"""Run demo/legacy-app.sh under richinit as PID 1 of a runc container, then stop it.

The demo image is built from busybox-static under /var/lib/richinit/demo. Until
`rich run` and the portable runtime land, richinit runs from the host's Python,
bound into the container read-only.
"""

import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.support import containers as ct  # noqa: E402

STATE = "/var/lib/richinit/demo"


def main():
    rootfs = os.path.join(STATE, "rootfs")
    if not os.path.exists(os.path.join(rootfs, "bin", "busybox")):
        print("demo: building the demo image in %s" % rootfs, flush=True)
        ct.busybox_rootfs(rootfs)
    os.makedirs(os.path.join(rootfs, "app"), exist_ok=True)
    shutil.copy2(os.path.join(REPO, "demo", "legacy-app.sh"), os.path.join(rootfs, "app", "legacy-app.sh"))
    bundle = os.path.join(STATE, "bundle")
    ct.make_bundle(bundle, rootfs, ct.richinit_argv("-v", "--grace", "5", "--", "/app/legacy-app.sh"),
                   python=True, memory=256 << 20)
    cid = ct.new_id("demo")
    print("demo: starting container %s: richinit -- /app/legacy-app.sh" % cid, flush=True)
    proc = subprocess.Popen(["runc", "run", "--bundle", bundle, cid], stdin=subprocess.DEVNULL)
    try:
        time.sleep(4.5)
        ps = subprocess.run(["runc", "exec", cid, "ps", "-o", "pid,ppid,stat,args"], capture_output=True, text=True)
        print("demo: processes inside the container:\n" + ps.stdout, flush=True)
        print("demo: runc kill %s TERM" % cid, flush=True)
        subprocess.run(["runc", "kill", cid, "TERM"], check=False)
        rc = proc.wait(timeout=30)
        print("demo: container exited with %d (the app's exit code)" % rc)
        return rc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["runc", "delete", "--force", cid], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
