"""rich import's pure parsers: image formats, MBR/GPT (bounds and checksums), fstab, volume names."""

import struct
import uuid
import zlib

import pytest

from runtime_hooks.vmimport import parse, plan
from runtime_hooks.vmimport.parse import SECTOR, DiskError

MIB = 1 << 20


def _mbr(entries, sig=0x1234ABCD):
    b = bytearray(SECTOR)
    b[440:444] = struct.pack("<I", sig)
    for i, (boot, ptype, lba, count) in enumerate(entries):
        b[446 + 16 * i:462 + 16 * i] = struct.pack("<B3sB3sII", boot, b"\0" * 3, ptype, b"\0" * 3, lba, count)
    b[510:512] = b"\x55\xaa"
    return bytes(b)


def _reader(blobs):
    def read(offset, length):
        out = bytearray(length)
        for at, data in blobs.items():
            lo, hi = max(at, offset), min(at + len(data), offset + length)
            if lo < hi:
                out[lo - offset:hi - offset] = data[lo - at:hi - at]
        return bytes(out)
    return read


def test_formats_by_magic():
    assert parse.detect_format(b"QFI\xfb\0\0\0\3" + b"\0" * 100, b"") == "qcow2"
    assert parse.detect_format(b"QFI\xfb\0\0\0\1" + b"\0" * 100, b"") == "qcow"
    assert parse.detect_format(b"KDMV" + b"\0" * 100, b"") == "vmdk"
    assert parse.detect_format(b"# Disk DescriptorFile\n", b"") == "vmdk"
    assert parse.detect_format(b"\0" * 0x40 + struct.pack("<I", 0xBEDA107F), b"") == "vdi"
    assert parse.detect_format(b"vhdxfile" + b"\0" * 100, b"") == "vhdx"
    assert parse.detect_format(b"\0" * 512, b"conectix" + b"\0" * 100) == "vpc"
    assert parse.detect_format(b"conectix" + b"\0" * 100, b"") == "vpc"
    assert parse.detect_format(_mbr([]), b"\0" * 512) == "raw"


def test_mbr_primary_and_logical():
    size = 100 * MIB
    mbr = _mbr([(0x80, 0x83, 2048, 4096), (0, 0x05, 8192, 16384)])
    ebr1 = _mbr([(0, 0x83, 2048, 2048), (0, 0x05, 8192, 4096)], sig=0)
    ebr2 = _mbr([(0, 0x82, 2048, 1024)], sig=0)
    t = parse.read_table(_reader({0: mbr, 8192 * SECTOR: ebr1, (8192 + 8192) * SECTOR: ebr2}), size)
    assert t.scheme == "dos"
    assert [(p.number, p.start // SECTOR, p.size // SECTOR, p.type) for p in t.partitions] == [
        (1, 2048, 4096, "83"), (5, 8192 + 2048, 2048, "83"), (6, 16384 + 2048, 1024, "82")]
    assert t.partitions[0].bootable and t.partitions[0].uuid == "1234abcd-01"


def test_mbr_partition_past_the_end_is_an_error():
    mbr = _mbr([(0, 0x83, 2048, 400000)])
    with pytest.raises(DiskError, match="disk.img: partition 1 ends at byte .* past the end"):
        parse.read_table(_reader({0: mbr}), 100 * MIB, "disk.img")


def test_mbr_logical_chain_loop_is_an_error():
    mbr = _mbr([(0, 0x05, 2048, 8192)])
    ebr1 = _mbr([(0, 0x83, 16, 16), (0, 0x05, 100, 50)], sig=0)
    ebr2 = _mbr([(0, 0x83, 16, 16), (0, 0x05, 100, 50)], sig=0)  # "next" is itself again
    with pytest.raises(DiskError, match="loops"):
        parse.read_table(_reader({0: mbr, 2048 * SECTOR: ebr1, 2148 * SECTOR: ebr2}), 100 * MIB)


def test_no_table_is_a_whole_disk_filesystem():
    t = parse.read_table(_reader({}), 10 * MIB)
    assert t.scheme == "none" and t.partitions[0].size == 10 * MIB


def _gpt(parts, disk_sectors, count=128, esize=128, corrupt_entries=False, last_usable=None):
    entries = bytearray(count * esize)
    for i, (ptype, first, last, name) in enumerate(parts):
        e = uuid.UUID(ptype).bytes_le + uuid.uuid4().bytes_le + struct.pack("<QQQ", first, last, 0)
        e += name.encode("utf-16-le").ljust(72, b"\0")
        entries[i * esize:i * esize + 128] = e
    ecrc = zlib.crc32(bytes(entries))
    if corrupt_entries:
        entries[40] ^= 1
    hdr = bytearray(92)
    hdr[:8] = b"EFI PART"
    struct.pack_into("<IIII", hdr, 8, 0x10000, 92, 0, 0)
    struct.pack_into("<QQQQ", hdr, 24, 1, disk_sectors - 1, 34,
                     last_usable if last_usable is not None else disk_sectors - 34)
    hdr[56:72] = uuid.uuid4().bytes_le
    struct.pack_into("<QIII", hdr, 72, 2, count, esize, ecrc)
    struct.pack_into("<I", hdr, 16, zlib.crc32(bytes(hdr)))
    return {0: _mbr([(0, 0xEE, 1, disk_sectors - 1)]), SECTOR: bytes(hdr), 2 * SECTOR: bytes(entries)}


LINUX = "0fc63daf-8483-4772-8e79-3d69d8477de4"


def test_gpt():
    n = 100 * MIB // SECTOR
    t = parse.read_table(_reader(_gpt([(LINUX, 2048, 4095, "root"), (LINUX, 4096, 8191, "var")], n)), n * SECTOR)
    assert t.scheme == "gpt"
    assert [(p.number, p.start, p.size, p.label) for p in t.partitions] == [
        (1, 2048 * SECTOR, 2048 * SECTOR, "root"), (2, 4096 * SECTOR, 4096 * SECTOR, "var")]
    assert t.partitions[0].type == LINUX


def test_gpt_bad_checksums_and_bounds():
    n = 100 * MIB // SECTOR
    with pytest.raises(DiskError, match="entries checksum"):
        parse.read_table(_reader(_gpt([(LINUX, 2048, 4095, "r")], n, corrupt_entries=True)), n * SECTOR)
    blobs = _gpt([(LINUX, 2048, 4095, "r")], n)
    blobs[SECTOR] = blobs[SECTOR][:30] + b"\xff" + blobs[SECTOR][31:]
    with pytest.raises(DiskError, match="header checksum"):
        parse.read_table(_reader(blobs), n * SECTOR)
    with pytest.raises(DiskError, match="partition 1 ends at byte .* past the end"):
        parse.read_table(_reader(_gpt([(LINUX, 2048, n + 10, "r")], n, last_usable=n - 34)), n * SECTOR)
    with pytest.raises(DiskError, match="usable area"):
        parse.read_table(_reader(_gpt([], n, last_usable=2 * n)), n * SECTOR)
    with pytest.raises(DiskError, match="entry array"):
        parse.read_table(_reader(_gpt([], n, count=100000)), n * SECTOR)


def test_fstab_and_os_release():
    text = ("# comment\nUUID=abc / ext4 errors=remount-ro 0 1\n/dev/vg/var /var xfs defaults 0 2\n"
            "LABEL=my\\040disk /srv\\040data btrfs subvol=@srv,compress=zstd 0 0\nbroken\n"
            "tmpfs /tmp tmpfs\n")
    es = parse.parse_fstab(text)
    assert [(e.spec, e.file, e.vfstype, e.line) for e in es] == [
        ("UUID=abc", "/", "ext4", 2), ("/dev/vg/var", "/var", "xfs", 3),
        ("LABEL=my disk", "/srv data", "btrfs", 4), ("tmpfs", "/tmp", "tmpfs", 6)]
    assert es[2].option("subvol") == "@srv" and es[3].options == ("defaults",)
    osr = parse.parse_os_release('ID=debian\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n# x\nVERSION_ID=\'12\'\n')
    assert osr == {"ID": "debian", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "VERSION_ID": "12"}


def _vols():
    return [plan.Volume("p1", 0, 1, {"TYPE": "ext4", "UUID": "AAAA-1", "LABEL": "root", "PARTUUID": "1234abcd-01"},
                        number=1),
            plan.Volume("p2", 0, 1, {"TYPE": "LVM2_member"}, number=2),
            plan.Volume("my-vg/var", 0, 1, {"TYPE": "xfs", "UUID": "bbbb"}, vg="my-vg", lv="var"),
            plan.Volume("p3", 0, 1, {"TYPE": "crypto_LUKS", "UUID": "cccc"}, number=3)]


def test_resolve_names_among_the_disks_own_volumes():
    v = _vols()
    assert plan.resolve("UUID=aaaa-1", v) is v[0]
    assert plan.resolve("LABEL=root", v) is v[0]
    assert plan.resolve("PARTUUID=1234ABCD-01", v) is v[0]
    assert plan.resolve("/dev/disk/by-uuid/bbbb", v) is v[2]
    assert plan.resolve("/dev/my-vg/var", v) is v[2]
    assert plan.resolve("/dev/mapper/my--vg-var", v) is v[2]
    assert plan.resolve("/dev/sda1", v) is v[0] and plan.resolve("/dev/nvme0n1p1", v) is v[0]
    for other in ("/dev/sdb1", "UUID=nope", "LABEL=nope", "/dev/mapper/other-var", "server:/export", "/dev/sda"):
        assert plan.resolve(other, v) is None


def test_plan_mounts():
    v = _vols()
    fstab = parse.parse_fstab("UUID=aaaa-1 / ext4 defaults 0 1\n/dev/my-vg/var /var xfs defaults 0 2\n"
                              "/dev/sda9 none swap sw 0 0\nproc /proc proc defaults 0 0\n"
                              "server:/x /mnt/nfs nfs defaults 0 0\n/dev/my-vg/var /var/lib/x xfs defaults 0 0\n")
    mounts, skipped = plan.plan_mounts(fstab, v[0], "", v, "d")
    assert [(m.mountpoint, m.volume.name) for m in mounts] == [("/", "p1"), ("/var", "my-vg/var"),
                                                               ("/var/lib/x", "my-vg/var")]
    assert [s["mountpoint"] for s in skipped] == ["none", "/proc", "/mnt/nfs"]
    with pytest.raises(DiskError, match="d: /srv .* LUKS"):
        plan.plan_mounts(parse.parse_fstab("UUID=cccc /srv ext4 defaults 0 0\n"), v[0], "", v, "d")
    with pytest.raises(DiskError, match="not an absolute path"):
        plan.plan_mounts(parse.parse_fstab("UUID=bbbb var xfs defaults 0 0\n"), v[0], "", v, "d")


def test_choose_root_reasons():
    v = _vols()
    with pytest.raises(DiskError, match="d: the root filesystem is LUKS-encrypted \\(p3\\)"):
        plan.choose_root([], v, "d")
    with pytest.raises(DiskError, match="d: no Linux root filesystem"):
        plan.choose_root([], v[:3], "d")
    fs = parse.parse_fstab("UUID=aaaa-1 / ext4 defaults 0 1\n")
    other = (v[2], "", [], None)
    assert plan.choose_root([other, (v[0], "", fs, None)], v, "d")[0] is v[0]
