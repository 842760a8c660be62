"""Which of a disk's volumes is the root, and where the other fstab filesystems go.

A Volume is a partition or a logical volume of the disk, with what blkid found on it. The root's
/etc/fstab names the other filesystems by UUID=, LABEL=, PARTUUID=, PARTLABEL=, /dev/disk/by-*/,
/dev/VG/LV, /dev/mapper/VG-LV or a first disk's partition name (/dev/sda2, /dev/vda2, /dev/xvda2,
/dev/nvme0n1p2, /dev/mmcblk0p2); each is resolved among this disk's own volumes only. Entries for
/ and swap, pseudo and network filesystems and other disks are not mounted (each with its reason).
"""

from dataclasses import dataclass, field

from runtime_hooks.vmimport.parse import DiskError

FILESYSTEMS = ("ext2", "ext3", "ext4", "xfs", "btrfs")
PSEUDO = ("proc", "sysfs", "tmpfs", "devpts", "devtmpfs", "cgroup", "cgroup2", "securityfs", "debugfs",
          "mqueue", "hugetlbfs", "efivarfs", "pstore", "bpf", "tracefs", "configfs", "fusectl", "binfmt_misc")
FIRST_DISK = ("/dev/sda", "/dev/vda", "/dev/hda", "/dev/xvda")
FIRST_DISK_P = ("/dev/nvme0n1p", "/dev/mmcblk0p")


@dataclass
class Volume:
    name: str                    # "p1", or "VG/LV"
    offset: int                  # bytes into the disk
    size: int
    info: dict = field(default_factory=dict)   # blkid: TYPE, UUID, LABEL, PARTUUID, PARTLABEL
    number: int = 0              # partition number (0 for an LV or a whole-disk filesystem)
    vg: str = ""
    lv: str = ""
    dev: str = ""                # our loop device, once attached

    @property
    def fstype(self):
        return self.info.get("TYPE", "")

    def as_dict(self):
        return {"name": self.name, "offset": self.offset, "size": self.size, "fstype": self.fstype,
                "uuid": self.info.get("UUID", ""), "label": self.info.get("LABEL", "")}


def _mapper_name(vg, lv):
    return "%s-%s" % (vg.replace("-", "--"), lv.replace("-", "--"))


def resolve(spec, volumes):
    """The Volume an fstab spec names, or None when it is not on this disk."""
    tag, sep, value = spec.partition("=")
    keys = {"UUID": "UUID", "LABEL": "LABEL", "PARTUUID": "PARTUUID", "PARTLABEL": "PARTLABEL"}
    if sep and tag in keys:
        return _by(volumes, keys[tag], value)
    for prefix, key in (("/dev/disk/by-uuid/", "UUID"), ("/dev/disk/by-label/", "LABEL"),
                        ("/dev/disk/by-partuuid/", "PARTUUID"), ("/dev/disk/by-partlabel/", "PARTLABEL")):
        if spec.startswith(prefix):
            return _by(volumes, key, spec[len(prefix):])
    for v in volumes:
        if v.lv and spec in ("/dev/%s/%s" % (v.vg, v.lv), "/dev/mapper/" + _mapper_name(v.vg, v.lv)):
            return v
    for prefix in FIRST_DISK + FIRST_DISK_P:
        rest = spec[len(prefix):] if spec.startswith(prefix) else ""
        if rest.isdigit():
            return next((v for v in volumes if v.number == int(rest) and not v.lv), None)
    return None


def _by(volumes, key, value):
    if key in ("UUID", "PARTUUID"):
        value = value.lower()
        found = [v for v in volumes if v.info.get(key, "").lower() == value]
    else:
        found = [v for v in volumes if v.info.get(key, "") == value]
    return found[0] if len(found) == 1 else None


@dataclass
class Mount:
    mountpoint: str
    volume: Volume
    fstype: str
    spec: str
    subvol: str = ""

    def as_dict(self):
        return {"mountpoint": self.mountpoint, "volume": self.volume.name, "fstype": self.fstype,
                "device": self.spec, "subvol": self.subvol}


def plan_mounts(fstab, root, root_subvol, volumes, disk):
    """(mounts, skipped): the root first, then the fstab filesystems on this disk, parents first."""
    mounts = [Mount("/", root, root.fstype, "(root)", root_subvol)]
    skipped = []
    seen = {"/"}
    for e in fstab:
        if e.vfstype == "swap" or e.file in ("none", "swap"):
            skipped.append({"mountpoint": e.file, "device": e.spec, "reason": "swap: not used in a container"})
            continue
        if e.file == "/":
            continue
        if e.vfstype in PSEUDO:
            skipped.append({"mountpoint": e.file, "device": e.spec, "reason": "%s: the engine provides it" % e.vfstype})
            continue
        if not e.file.startswith("/") or ".." in e.file.split("/"):
            raise DiskError("%s: /etc/fstab line %d: mount point %r is not an absolute path" % (disk, e.line, e.file))
        vol = resolve(e.spec, volumes)
        if vol is None:
            skipped.append({"mountpoint": e.file, "device": e.spec,
                            "reason": "not on this disk (%s)" % e.vfstype})
            continue
        fstype = vol.fstype if e.vfstype == "auto" else e.vfstype
        if fstype == "crypto_LUKS" or vol.fstype == "crypto_LUKS":
            raise DiskError("%s: %s (%s) is LUKS-encrypted" % (disk, e.file, vol.name))
        if fstype not in FILESYSTEMS or vol.fstype not in FILESYSTEMS:
            skipped.append({"mountpoint": e.file, "device": e.spec,
                            "reason": "unsupported filesystem %s" % (vol.fstype or fstype)})
            continue
        if e.file in seen:
            raise DiskError("%s: /etc/fstab line %d: %s is mounted twice" % (disk, e.line, e.file))
        seen.add(e.file)
        subvol = (e.option("subvol") or "") if vol.fstype == "btrfs" else ""
        mounts.append(Mount(e.file.rstrip("/") or "/", vol, vol.fstype, e.spec, subvol))
    mounts[1:] = sorted(mounts[1:], key=lambda m: m.mountpoint.count("/"))
    return mounts, skipped


def choose_root(candidates, volumes, disk):
    """The root among (volume, subvol, fstab, os_release) candidates: the one its own fstab names as
    /, else the only one. No candidate: the disk's reason (LUKS, no Linux root)."""
    if not candidates:
        luks = [v.name for v in volumes if v.fstype == "crypto_LUKS"]
        if luks:
            raise DiskError("%s: the root filesystem is LUKS-encrypted (%s): unlock it first" % (disk, ", ".join(luks)))
        kinds = ", ".join(sorted({v.fstype or "unknown" for v in volumes})) or "nothing"
        raise DiskError("%s: no Linux root filesystem (no /etc/os-release with /etc/fstab) on %s" % (disk, kinds))
    for c in candidates:
        vol, _subvol, fstab, _osr = c
        for e in fstab:
            if e.file == "/" and resolve(e.spec, volumes) is vol:
                return c
    if len(candidates) == 1:
        return candidates[0]
    raise DiskError("%s: %d root filesystems (%s): none is named / by its own fstab"
                    % (disk, len(candidates), ", ".join(c[0].name for c in candidates)))
