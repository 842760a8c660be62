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
      containernetworking-plugins iptables
      docker.io python3-yaml python3-setproctitle python3-tomlkit python3-daemon)

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
# pip's entry scripts `import re` before calling us, and site costs ~3 ms: rich, rich-runtime and
# rich-hook are on every container's start-up path, so they get -IS launchers (the package's own
# `rich install-launchers`, which the wheel's and the .deb's users have too).
.venv/bin/python -m runtime_hooks.cli install-launchers --bin-dir .venv/bin >/dev/null
# Byte-compile the tree the launchers run from: with PYTHONDONTWRITEBYTECODE set (CI shells often
# have it), every host command would otherwise compile its modules again on each start.
.venv/bin/python -m compileall -q -j 0 richinit runtime_hooks lxcfs osbase >/dev/null
.venv/bin/python -c 'import richinit, yaml, setproctitle'
