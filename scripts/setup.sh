#!/usr/bin/env bash
# Install what richinit's demo and tests need on Debian 12 (as root), then a venv in .venv.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(python3 python3-venv ca-certificates
      runc crun runsc podman containerd lxc lxcfs busybox-static debootstrap
      tini dumb-init catatonit s6 supervisor
      fuse3 libfuse3-3 xfsprogs e2fsprogs iproute2 openssh-client procps util-linux
      qemu-system-x86 kmod quota
      qemu-utils lvm2 btrfs-progs cryptsetup-bin fdisk extlinux syslinux-common
      containernetworking-plugins iptables)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian's own interpreter: the one the portable runtime is built from and the
# one a fresh Debian 12 machine has.
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c 'import richinit, yaml, setproctitle, pytest' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e '.[test]' 2>&1 | grep -v "is ignored: it is neither" || true
  touch .venv/.installed
fi
# pip's generated entry scripts `import re` (and with it enum, collections, functools: ~1 MB and
# ~10 ms) before calling us; PID 1 lives with whatever it imports, so richinit gets its own launcher.
printf '#!%s -I\nfrom richinit.main import entry\nentry()\n' "$PWD/.venv/bin/python3" > .venv/bin/richinit
chmod 755 .venv/bin/richinit
# rich, rich-runtime and rich-hook are on every container's start-up path: -S as well (site and the
# venv's .pth files cost ~3 ms), with the paths site would have added spelled out.
SITE=$(.venv/bin/python3 -I -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for prog in rich:runtime_hooks.cli:entry rich-runtime:runtime_hooks.wrapper:entry rich-hook:runtime_hooks.hook:entry; do
  IFS=: read -r name module fn <<< "$prog"
  printf '#!%s -IS\nimport sys\nsys.path[1:1] = [%s, %s]\nfrom %s import %s\nsys.exit(%s())\n' \
    "$PWD/.venv/bin/python3" "'$PWD'" "'$SITE'" "$module" "$fn" "$fn" > ".venv/bin/$name"
  chmod 755 ".venv/bin/$name"
done
.venv/bin/python -c 'import richinit, yaml, setproctitle'
