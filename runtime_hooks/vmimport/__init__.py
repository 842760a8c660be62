"""`rich import DISK`: a VM's disk (qcow2, vmdk/.ova, vdi, vhd, vhdx, raw) to a rootfs or OCI archive.

parse -> plan -> act, as everywhere on the host side:
- parse.py: the disk's format by its magic, MBR/GPT partition tables, fstab and os-release (pure,
  bounds-checked: the disk is hostile input);
- ops.py: the only module touching the kernel and host tools: a read-only FUSE export of the image
  by qemu-storage-daemon, read-only loop devices (LOOP_CONFIGURE, autoclear), blkid, lvm reports,
  read-only mounts through /proc/self/fd/N; each step pushes its undo on an UndoStack;
- plan.py: which volume is root, where the other fstab filesystems go, what is skipped and why;
- container.py: what a container must not take from a VM, switched off reversibly;
- report.py: the import report (a plain dict) and its text/JSON renderers;
- command.py: the `rich import` command: the steps above, the copy (a tar stream, with progress),
  the OCI archive, signals.
"""
