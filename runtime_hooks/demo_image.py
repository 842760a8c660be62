"""The embedded demo image: busybox-static, a legacy-style app, nothing else (no Python).

Also the busybox rootfs the tests build: one builder for both.
"""

import os
import shutil
import subprocess

BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def busybox_rootfs(dest, busybox=BUSYBOX):
    """A minimal rootfs: busybox-static and its applet links, /etc/passwd and /etc/group, the usual dirs."""
    os.makedirs(os.path.join(dest, "bin"), exist_ok=True)
    shutil.copy2(busybox, os.path.join(dest, "bin", "busybox"))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        if a == "busybox":
            continue  # a self-link would overwrite the binary
        link = os.path.join(dest, "bin", a)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    for d in ("proc", "sys", "dev", "tmp", "etc", "run", "var/log", "root", "usr", "lib", "lib64"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    with open(os.path.join(dest, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(dest, "etc/group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    return dest


def demo_rootfs(dest):
    """busybox + /app/legacy-app.sh, rebuilt in place (cheap: about a second)."""
    if not os.path.exists(os.path.join(dest, "bin", "busybox")):
        busybox_rootfs(dest)
    os.makedirs(os.path.join(dest, "app"), exist_ok=True)
    from runtime_hooks import datafiles  # the checkout's demo/, or the wheel's or .deb's share/richinit/demo
    shutil.copy2(os.path.join(datafiles.data_dir("demo"), "legacy-app.sh"), os.path.join(dest, "app", "legacy-app.sh"))
    return dest


if __name__ == "__main__":
    import sys
    print(demo_rootfs(sys.argv[1]))
