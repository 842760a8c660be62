"""Pure parsers for what a VM disk holds: its image format, partition table, fstab and os-release.

Everything here reads bytes or text given to it and raises DiskError with one line on anything
malformed; nothing touches the kernel. Partition tables are bounds-checked against the size of the
disk as the image presents it (its virtual size): an entry pointing past the end is an error, as is
a GPT whose header or entry array fails its CRC32.
"""

import struct
import tarfile
import uuid
import zlib
from dataclasses import dataclass, field

SECTOR = 512


class DiskError(Exception):
    """One line for the user: what is wrong with the disk."""


# ---------------------------------------------------------------- image format

def detect_format(head, tail):
    """qemu's driver name for an image from its first 4 KiB (head) and last 512 bytes (tail).

    qcow/qcow2, vmdk (sparse extent or descriptor), vdi, vhdx and vpc (vhd, dynamic or fixed) by
    their magic; anything else is raw. qemu is always told the format: probing is its own risk.
    """
    if head[:4] == b"QFI\xfb":
        version = struct.unpack(">I", head[4:8])[0]
        return "qcow" if version == 1 else "qcow2"
    if head[:4] == b"KDMV" or head.startswith(b"# Disk DescriptorFile"):
        return "vmdk"
    if len(head) >= 0x44 and struct.unpack("<I", head[0x40:0x44])[0] == 0xBEDA107F:
        return "vdi"
    if head[:8] == b"vhdxfile":
        return "vhdx"
    if head[:8] == b"conectix" or tail[:8] == b"conectix":
        return "vpc"
    return "raw"


@dataclass(frozen=True)
class OvaDisk:
    member: str
    offset: int
    size: int


def ova_disk(path):
    """The first .vmdk in an .ova (a tar): its name, and where its bytes lie in the tar file."""
    try:
        with tarfile.open(path, "r:") as t:
            for m in t:
                if m.name.lower().endswith(".vmdk"):
                    if not m.isreg() or m.sparse:
                        raise DiskError("%s: %s is not a plain file in the archive" % (path, m.name))
                    return OvaDisk(m.name, m.offset_data, m.size)
    except (tarfile.TarError, EOFError) as e:
        raise DiskError("%s: not a readable .ova (tar): %s" % (path, e)) from None
    raise DiskError("%s: the .ova holds no .vmdk disk" % path)


# ---------------------------------------------------------------- partition tables

@dataclass(frozen=True)
class Partition:
    number: int          # 1-based, as Linux names it (sda1; logical MBR partitions from 5)
    start: int           # bytes
    size: int            # bytes
    type: str            # MBR: two hex digits; GPT: the type GUID
    uuid: str = ""       # GPT partition GUID, or MBR disk-signature-NN (blkid's PARTUUID)
    label: str = ""      # GPT partition name
    bootable: bool = False


@dataclass
class Table:
    scheme: str          # "dos", "gpt" or "none" (a filesystem on the whole disk)
    partitions: list = field(default_factory=list)


GPT_TYPES = {
    "0fc63daf-8483-4772-8e79-3d69d8477de4": "linux",
    "e6d6d379-f507-44c2-a23c-238f2a3df928": "lvm",
    "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "swap",
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b": "efi",
    "21686148-6449-6e6f-744e-656564454649": "bios-boot",
    "4f68bce3-e8cd-4db1-96e7-fbcaf984b709": "linux-root-x86-64",
    "933ac7e1-2eb4-4f13-b844-0e14e2aef915": "linux-home",
    "ca7d7ccb-63ed-4c53-861c-1742536059cc": "luks",
}
MBR_EXTENDED = {0x05, 0x0F, 0x85}
MAX_LOGICAL = 128
MAX_GPT_ENTRIES = 4096


def _check_bounds(disk, what, start, size, disk_size):
    if size <= 0:
        return False
    if start + size > disk_size:
        raise DiskError("%s: %s ends at byte %d, past the end of the disk (%d bytes)"
                        % (disk, what, start + size, disk_size))
    return True


def read_table(read, disk_size, disk="disk"):
    """The partition table of a disk: read(offset, length) -> bytes; disk names it in errors."""
    if disk_size < 2 * SECTOR:
        raise DiskError("%s: %d bytes is too small for a disk" % (disk, disk_size))
    mbr = read(0, SECTOR)
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        return Table("none", [Partition(0, 0, disk_size, "none")])
    entries = [struct.unpack("<B3sB3sII", mbr[446 + 16 * i:462 + 16 * i]) for i in range(4)]
    if any(e[2] == 0xEE for e in entries):
        return _read_gpt(read, disk_size, disk)
    if _looks_like_boot_sector(mbr, entries):
        return Table("none", [Partition(0, 0, disk_size, "none")])
    sig = struct.unpack("<I", mbr[440:444])[0]
    parts = []
    for i, (status, _c1, ptype, _c2, lba, count) in enumerate(entries):
        if ptype == 0 or count == 0:
            continue
        start, size = lba * SECTOR, count * SECTOR
        _check_bounds(disk, "partition %d" % (i + 1), start, size, disk_size)
        if ptype in MBR_EXTENDED:
            parts.extend(_read_logical(read, lba, count, disk_size, disk, sig))
            continue
        parts.append(Partition(i + 1, start, size, "%02x" % ptype, "%08x-%02d" % (sig, i + 1),
                               bootable=status == 0x80))
    return Table("dos", parts)


def _looks_like_boot_sector(mbr, entries):
    """A filesystem's boot sector (FAT, NTFS) also ends in 55 AA: its 'entries' are garbage."""
    return any(e[0] not in (0, 0x80) for e in entries)


def _read_logical(read, ext_lba, ext_count, disk_size, disk, sig):
    """The chain of extended boot records in an extended partition (logical partitions 5, 6, ...)."""
    parts, seen, rel = [], set(), 0
    while len(parts) < MAX_LOGICAL:
        ebr_lba = ext_lba + rel
        if ebr_lba in seen or rel >= ext_count:
            raise DiskError("%s: the extended partition's chain loops or leaves it" % disk)
        seen.add(ebr_lba)
        _check_bounds(disk, "an extended boot record", ebr_lba * SECTOR, SECTOR, disk_size)
        ebr = read(ebr_lba * SECTOR, SECTOR)
        if ebr[510:512] != b"\x55\xaa":
            raise DiskError("%s: extended boot record at sector %d has no signature" % (disk, ebr_lba))
        first = struct.unpack("<B3sB3sII", ebr[446:462])
        nxt = struct.unpack("<B3sB3sII", ebr[462:478])
        if first[2] and first[5]:
            number = 5 + len(parts)
            start, size = (ebr_lba + first[4]) * SECTOR, first[5] * SECTOR
            _check_bounds(disk, "partition %d" % number, start, size, disk_size)
            if start + size > (ext_lba + ext_count) * SECTOR:
                raise DiskError("%s: partition %d lies outside its extended partition" % (disk, number))
            parts.append(Partition(number, start, size, "%02x" % first[2], "%08x-%02d" % (sig, number),
                                   bootable=first[0] == 0x80))
        if not nxt[2] or not nxt[4]:
            return parts
        rel = nxt[4]
    raise DiskError("%s: more than %d logical partitions" % (disk, MAX_LOGICAL))


def _read_gpt(read, disk_size, disk):
    hdr = read(SECTOR, SECTOR)
    if hdr[:8] != b"EFI PART":
        raise DiskError("%s: protective MBR but no GPT header at sector 1" % disk)
    (hsize, hcrc) = struct.unpack("<II", hdr[12:20])
    if not 92 <= hsize <= SECTOR:
        raise DiskError("%s: GPT header size %d is invalid" % (disk, hsize))
    if zlib.crc32(hdr[:16] + b"\0\0\0\0" + hdr[20:hsize]) != hcrc:
        raise DiskError("%s: GPT header checksum mismatch" % disk)
    (_my, _alt, first_usable, last_usable) = struct.unpack("<QQQQ", hdr[24:56])
    (entries_lba, count, esize, ecrc) = struct.unpack("<QIII", hdr[72:92])
    if count > MAX_GPT_ENTRIES or esize < 128 or esize % 8 or esize > 4096:
        raise DiskError("%s: GPT entry array (%d x %d bytes) is invalid" % (disk, count, esize))
    _check_bounds(disk, "the GPT entry array", entries_lba * SECTOR, count * esize, disk_size)
    if last_usable * SECTOR >= disk_size or first_usable > last_usable + 1:
        raise DiskError("%s: GPT usable area (sectors %d-%d) lies past the end of the disk"
                        % (disk, first_usable, last_usable))
    array = read(entries_lba * SECTOR, count * esize)
    if len(array) < count * esize or zlib.crc32(array) != ecrc:
        raise DiskError("%s: GPT partition entries checksum mismatch" % disk)
    parts = []
    for i in range(count):
        e = array[i * esize:(i + 1) * esize]
        if e[:16] == b"\0" * 16:
            continue
        first, last = struct.unpack("<QQ", e[32:48])
        if last < first:
            raise DiskError("%s: GPT partition %d ends before it starts" % (disk, i + 1))
        _check_bounds(disk, "partition %d" % (i + 1), first * SECTOR, (last - first + 1) * SECTOR, disk_size)
        name = e[56:128].decode("utf-16-le", "replace").split("\0", 1)[0]
        parts.append(Partition(i + 1, first * SECTOR, (last - first + 1) * SECTOR,
                               str(uuid.UUID(bytes_le=e[:16])), str(uuid.UUID(bytes_le=e[16:32])), name))
    return Table("gpt", parts)


# ---------------------------------------------------------------- fstab, os-release

@dataclass(frozen=True)
class FstabEntry:
    spec: str
    file: str
    vfstype: str
    options: tuple
    passno: int
    line: int

    def option(self, name):
        """The value of NAME=value in the options, or None."""
        for o in self.options:
            if o.startswith(name + "="):
                return o[len(name) + 1:]
        return None


def _unescape(field):
    """fstab's octal escapes (\\040 for a space)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and all(c in "01234567" for c in field[i + 1:i + 4]):
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_fstab(text):
    """fstab(5) as FstabEntry list; lines with fewer than three fields are skipped (mount does too)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split() if not line.lstrip().startswith("#") else []
        if len(fields) < 3:
            continue
        opts = tuple(_unescape(fields[3]).split(",")) if len(fields) > 3 else ("defaults",)
        try:
            passno = int(fields[5]) if len(fields) > 5 else 0
        except ValueError:
            passno = 0
        out.append(FstabEntry(_unescape(fields[0]), _unescape(fields[1]), fields[2], opts, passno, n))
    return out


def parse_os_release(text):
    """os-release(5): KEY=value lines, values optionally quoted."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[k.strip()] = v
    return out
