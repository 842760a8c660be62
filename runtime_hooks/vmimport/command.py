"""`rich import DISK [--name NAME] [--output DIR | --oci-archive FILE] [--json]`.

The steps (each kernel object undone by the UndoStack, newest first, on success, failure, Ctrl-C
or SIGTERM; all mounts live in a private mount namespace as well, so none outlives the process):
1. the image's format from its magic; qemu-img check where the format has one; a read-only FUSE
   export by qemu-storage-daemon (no conversion of the whole disk);
2. the partition table (parse.read_table), a read-only loop device per partition, blkid;
   LVM physical volumes: their linear logical volumes as loop devices over their extents;
3. the root: a filesystem with /etc/fstab and /etc/os-release (btrfs: at the top or in a
   top-level subvolume); the other fstab filesystems mounted in place (plan.plan_mounts);
4. a tar stream of the mounted tree (owners, modes, xattrs, ACLs, file capabilities, hard links,
   sparse files, device nodes) into DIR.partial, renamed to DIR when complete;
5. container.disable() on the copy, the report written to /var/lib/richinit/import-report.json
   in it; with --oci-archive, an OCI image layout tarball (with Docker's manifest.json beside).

Without --output or --oci-archive the rootfs goes to $RICHINIT_STATE_DIR/images/NAME.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

from osbase import safepath
from runtime_hooks.vmimport import container, ops, parse, plan, report
from runtime_hooks.vmimport.parse import DiskError

EXIT_BAD = 125
TAR_FLAGS = ["--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner"]
CHUNK = 1 << 20


class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def add_arguments(p):
    """`rich import`'s arguments, on its own parser or on rich's subparser."""
    p.add_argument("disk", metavar="DISK")
    p.add_argument("--name", help="the image's name (default: the disk's file name)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output", metavar="DIR", help="the rootfs directory to make")
    out.add_argument("--oci-archive", metavar="FILE", help="an OCI archive (podman load, docker load, ctr import)")
    p.add_argument("--json", action="store_true", help="the report as JSON")


def build_parser():
    import argparse

    class _P(argparse.ArgumentParser):
        def error(self, message):
            raise DiskError("rich import: %s" % message)
    p = _P(prog="rich import", description=HELP)
    add_arguments(p)
    return p


HELP = "a VM's disk (qcow2, vmdk, .ova, vdi, vhd, vhdx, raw) to a rootfs or an OCI archive"


def default_name(disk):
    name = os.path.basename(disk)
    for ext in (".qcow2", ".qcow", ".img", ".raw", ".vmdk", ".ova", ".vdi", ".vhdx", ".vhd"):
        if name.lower().endswith(ext):
            name = name[:-len(ext)]
            break
    return name or "disk"


def main(argv):
    """python -m runtime_hooks.vmimport ARGS."""
    try:
        args = build_parser().parse_args(argv)
    except DiskError as e:
        sys.stderr.write("%s\n" % e)
        return EXIT_BAD
    return run(args)


def run(args):
    """`rich import` with parsed ARGS: the report on stdout, 0; one line on stderr and 125 (bad
    disk) or 130 (interrupted)."""
    name = args.name or default_name(args.disk)
    output = args.output
    if not output and not args.oci_archive:
        output = os.path.join(os.environ.get("RICHINIT_STATE_DIR", "/var/lib/richinit"), "images", name)
    tty = sys.stderr.isatty()
    old = signal.signal(signal.SIGTERM, _on_signal)
    try:
        ops.private_mount_namespace()
        rep = import_disk(args.disk, output=output, oci_archive=args.oci_archive, name=name,
                          progress=_progress_printer() if tty else None)
    except DiskError as e:
        sys.stderr.write("rich import: %s\n" % e)
        return EXIT_BAD
    except (KeyboardInterrupt, Interrupted):
        sys.stderr.write("rich import: %s: interrupted; nothing left mounted or attached\n" % args.disk)
        return 130
    except OSError as e:
        sys.stderr.write("rich import: %s: %s\n" % (args.disk, e.strerror or e))
        return EXIT_BAD
    finally:
        signal.signal(signal.SIGTERM, old)
    sys.stdout.write(report.render_json(rep) if args.json else report.render_text(rep))
    return 0


TARBALL_MAGIC = (b"\x1f\x8b", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"BZh")


def is_disk(path):
    """Is PATH (a regular file) a VM disk rather than a rootfs tarball?"""
    if path.lower().endswith(".ova"):
        return True
    with open(path, "rb") as f:
        head = f.read(512)
    return not (head.startswith(TARBALL_MAGIC) or head[257:262] == b"ustar")


def cached_import(disk, images_dir):
    """The rootfs of DISK, imported once into IMAGES_DIR/sha256-HASH (HASH of the disk's content)
    under a lock. The import runs in a forked child (it unshares its mount namespace; the caller
    must keep the host's). DiskError when the disk cannot be imported."""
    import fcntl
    h = hashlib.sha256()
    with open(disk, "rb") as f:
        for chunk in iter(lambda: f.read(4 << 20), b""):
            h.update(chunk)
    out = os.path.join(images_dir, "sha256-" + h.hexdigest()[:32])
    os.makedirs(images_dir, mode=0o700, exist_ok=True)
    with open(os.path.join(images_dir, ".import.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(os.path.join(out, container.REPORT_PATH.lstrip("/"))):
            return out
        sys.stdout.flush()
        sys.stderr.flush()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's status is the result
            os.close(r)
            code = 1
            try:
                signal.signal(signal.SIGTERM, _on_signal)
                ops.private_mount_namespace()
                import_disk(disk, output=out, name=default_name(disk),
                            progress=_progress_printer() if sys.stderr.isatty() else None)
                code = 0
            except BaseException as e:  # noqa: BLE001 - one line back to the parent, whatever it was
                os.write(w, str(e).encode()[:4000] or type(e).__name__.encode())
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            err = f.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise DiskError(err or "%s: import failed" % disk)
    return out


def _progress_printer():
    state = {"last": 0.0}

    def show(msg, final=False):
        now = time.monotonic()
        if final or now - state["last"] >= 0.2:
            state["last"] = now
            sys.stderr.write("\r\033[Krich import: %s%s" % (msg, "\n" if final else ""))
            sys.stderr.flush()
    return show


def import_disk(disk, output=None, oci_archive=None, name=None, progress=None):
    """Import DISK to OUTPUT (a directory) and/or OCI_ARCHIVE; the report. DiskError on bad input."""
    say = progress or (lambda msg, final=False: None)
    t0 = time.monotonic()
    rep = report.new(disk)
    name = name or default_name(disk)
    _validate(disk, output, oci_archive)
    dest = output or (oci_archive + ".rootfs")
    partial = "%s.partial-%d" % (dest.rstrip("/"), os.getpid())
    os.makedirs(os.path.dirname(os.path.abspath(partial)), exist_ok=True)
    os.mkdir(partial, 0o755)
    done = False
    try:
        with ops.UndoStack() as undo:
            work = ops.scratch_dir()
            undo.push("remove %s" % work, _rmtree, work)
            root = _assemble(disk, rep, undo, work, say)
            rep["bytes"] = _copy(root, partial, _used_bytes(rep["mounts"], root), say)
        if undo.errors:
            raise DiskError("%s: cleanup failed: %s" % (disk, "; ".join(undo.errors)))
        rep["changes"] = container.disable(partial, {m["mountpoint"] for m in rep["mounts"]})
        rep["seconds"] = round(time.monotonic() - t0, 2)
        rep["output"] = output or oci_archive
        _write_report(partial, rep)
        if oci_archive:
            say("writing %s" % oci_archive)
            write_oci_archive(partial, oci_archive, name)
        if output:
            os.rename(partial, output.rstrip("/"))
        done = True
        return rep
    finally:
        if not done or not output:
            _rmtree(partial)


def _validate(disk, output, oci_archive):
    try:
        st = os.stat(disk)
    except OSError as e:
        raise DiskError("%s: %s" % (disk, e.strerror)) from None
    import stat
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise DiskError("%s: not a disk image file or block device" % disk)
    if output and os.path.lexists(output) and (not os.path.isdir(output) or os.listdir(output)):
        raise DiskError("%s: --output %s exists and is not an empty directory" % (disk, output))
    if output and os.path.isdir(output):
        os.rmdir(output)
    if oci_archive and os.path.lexists(oci_archive):
        raise DiskError("%s: --oci-archive %s exists" % (disk, oci_archive))


def _rmtree(path):
    if os.path.lexists(path):
        safepath.remove_tree(path)


def _assemble(disk, rep, undo, work, say):
    """Steps 1-3: the disk's filesystems mounted read-only at WORK/root; returns that path."""
    with open(disk, "rb") as f:
        head = f.read(4096)
        f.seek(max(0, os.fstat(f.fileno()).st_size - 512))
        tail = f.read(512)
    window = None
    fmt = parse.detect_format(head, tail)
    if fmt == "raw" and (disk.lower().endswith(".ova") or head[257:262] == b"ustar"):
        ova = parse.ova_disk(disk)
        window = (ova.offset, ova.size)
        with open(disk, "rb") as f:
            f.seek(ova.offset)
            fmt = parse.detect_format(f.read(4096), b"")
        rep["ova_member"] = ova.member
    rep["format"] = fmt
    say("checking %s (%s)" % (disk, fmt))
    ops.check_image(disk, fmt if window is None else "ova", disk)
    raw, vsize = ops.export(disk, fmt, undo, work, window)
    rep["virtual_size"] = vsize
    table = parse.read_table(ops.read_at(raw), vsize, disk)
    rep["table"] = table.scheme
    rep["partitions"] = [{"number": p.number, "start": p.start, "size": p.size, "type": p.type,
                          "uuid": p.uuid, "label": p.label, "bootable": p.bootable} for p in table.partitions]
    say("reading %d partition(s)" % len(table.partitions))
    volumes = []
    for p in table.partitions:
        v = plan.Volume("p%d" % p.number if p.number else "disk", p.start, p.size, number=p.number)
        v.dev = ops.attach(raw, p.start, p.size, undo, disk)
        v.info = ops.probe(v.dev)
        if p.uuid and table.scheme != "none":
            v.info.setdefault("PARTUUID", p.uuid)
        if p.label:
            v.info.setdefault("PARTLABEL", p.label)
        volumes.append(v)
    volumes += _logical_volumes(raw, volumes, rep, undo, disk)
    rep["volumes"] = [v.as_dict() for v in volumes]

    candidates = []
    for v in volumes:
        if v.fstype in plan.FILESYSTEMS:
            candidates += _root_candidates(v, work, undo, disk)
    vol, subvol, fstab, _ = plan.choose_root(candidates, volumes, disk)
    mounts, skipped = plan.plan_mounts(fstab, vol, subvol, volumes, disk)
    rep["skipped"] = skipped
    root = os.path.join(work, "root")
    os.mkdir(root)
    say("mounting %d filesystem(s)" % len(mounts))
    rootfd = safepath.open_root(root)
    try:
        for m in mounts:
            extra = ["subvol=%s" % m.subvol] if m.subvol else []
            if m.mountpoint == "/":
                ops.mount(m.volume.dev, m.fstype, rootfd, undo, extra, disk)
                os.close(rootfd)
                rootfd = safepath.open_root(root)
                continue
            try:
                target = safepath.open_in_root(rootfd, m.mountpoint, safepath.O_PATH | os.O_DIRECTORY)
            except OSError:
                rep["skipped"].append({"mountpoint": m.mountpoint, "device": m.spec,
                                       "reason": "no such directory in the root filesystem"})
                continue
            try:
                ops.mount(m.volume.dev, m.fstype, target, undo, extra, disk)
            finally:
                os.close(target)
            rep["mounts"].append(m.as_dict())
        rep["mounts"].insert(0, mounts[0].as_dict())
        fs = container.Rootfs(root)
        try:
            for path in ("/etc/os-release", "/usr/lib/os-release"):
                try:
                    osr = parse.parse_os_release(fs.read(path, 65536))
                    break
                except OSError:
                    osr = {}
        finally:
            fs.close()
    finally:
        os.close(rootfd)
    rep["os"] = {k.lower(): osr[k] for k in ("ID", "VERSION_ID", "PRETTY_NAME") if k in osr}
    return root


def _logical_volumes(raw, volumes, rep, undo, disk):
    pvs = {v.dev: v for v in volumes if v.fstype == "LVM2_member"}
    if not pvs:
        return []
    say_skip = rep.setdefault("skipped", [])
    lvs, pe_start = ops.lvm_segments(sorted(pvs), disk)
    out = []
    for (vg, lv), segs in sorted(lvs.items()):
        name = "%s/%s" % (vg, lv)
        if len(segs) != 1 or segs[0][1] != "linear" or len(segs[0][2]) != 1:
            kinds = ",".join(sorted({s[1] for s in segs}))
            say_skip.append({"mountpoint": "", "device": name,
                             "reason": "%s LV in %d segment(s): only single linear LVs are read" % (kinds, len(segs))})
            continue
        _start, _type, [(pvdev, first, last)], extent = segs[0]
        pv = pvs.get(pvdev)
        if pv is None or pvdev not in pe_start:
            continue
        offset = pv.offset + pe_start[pvdev] + first * extent
        size = (last - first + 1) * extent
        if pe_start[pvdev] + (last + 1) * extent > pv.size:
            raise DiskError("%s: logical volume %s lies past the end of its physical volume" % (disk, name))
        v = plan.Volume(name, offset, size, vg=vg, lv=lv)
        v.dev = ops.attach(raw, offset, size, undo, disk)
        v.info = ops.probe(v.dev)
        out.append(v)
    return out


def _root_candidates(vol, work, undo, disk):
    """(vol, subvol, fstab, os_release) for each root-like tree on VOL (top level, btrfs subvolumes)."""
    mnt = os.path.join(work, "probe-%s" % vol.name.replace("/", "-"))
    os.mkdir(mnt)
    fd = safepath.open_root(mnt)
    try:
        extra = ["subvolid=5"] if vol.fstype == "btrfs" else []
        try:
            ops.mount(vol.dev, vol.fstype, fd, undo, extra, disk)
        except DiskError:
            return []  # an unmountable filesystem is no root; the report lists the volume
    finally:
        os.close(fd)
    out = []
    tops = [""]
    if vol.fstype == "btrfs":
        tops += [n for n in sorted(os.listdir(mnt)) if _is_subvolume(os.path.join(mnt, n))]
    for top in tops:
        fs = container.Rootfs(os.path.join(mnt, top) if top else mnt)
        try:
            if not fs.exists("/etc/fstab") or not fs.exists("/etc/os-release"):
                continue
            out.append((vol, top, parse.parse_fstab(fs.read("/etc/fstab")), None))
        finally:
            fs.close()
    return out


def _is_subvolume(path):
    st = os.lstat(path)
    return st.st_ino == 256 and (st.st_mode & 0o170000) == 0o040000


def _used_bytes(mounts, root):
    total = 0
    for m in mounts:
        try:
            s = os.statvfs(os.path.join(root, m["mountpoint"].lstrip("/")))
            total += (s.f_blocks - s.f_bfree) * s.f_frsize
        except OSError:
            pass
    return total


def _copy(src, dst, total, say):
    """tar SRC | tar -x into DST, the stream counted for progress; the bytes streamed."""
    cmd_out = ["tar", "-C", src, "-cf", "-", "--sparse"] + TAR_FLAGS + ["."]
    cmd_in = ["tar", "-C", dst, "-xf", "-", "--same-owner", "--same-permissions"] + TAR_FLAGS
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    reader = subprocess.Popen(cmd_out, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=env)
    writer = subprocess.Popen(cmd_in, stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              env=env)
    n = 0
    try:
        rfd, wfd = reader.stdout.fileno(), writer.stdin.fileno()
        while True:
            try:
                k = os.splice(rfd, wfd, CHUNK)
            except BrokenPipeError:
                break  # the writer is gone: its status and stderr say why
            if k == 0:
                break
            n += k
            say("copying %.2f GiB of ~%.2f GiB" % (n / 2**30, total / 2**30))
        writer.stdin.close()
        rerr, werr = reader.stderr.read(), writer.stderr.read()
        rc_r, rc_w = reader.wait(), writer.wait()
    except BaseException:
        for p in (reader, writer):
            p.kill()
            p.wait()
        raise
    if rc_r != 0 or rc_w != 0:
        err = (rerr if rc_r else werr).decode(errors="replace").strip().splitlines()
        raise DiskError("copying the tree: tar: %s" % (err[-1] if err else "failed"))
    say("copied %.2f GiB" % (n / 2**30), final=True)
    return n


def _write_report(root, rep):
    fs = container.Rootfs(root)
    try:
        os.close(safepath.open_dirs_nofollow(fs.fd, os.path.dirname(container.REPORT_PATH)))
        fs.write(container.REPORT_PATH, report.render_json(rep))
    finally:
        fs.close()


def write_oci_archive(rootfs, path, name):
    """An OCI image layout tarball with one layer (the rootfs), plus Docker's manifest.json."""
    tmp = "%s.partial-%d" % (path, os.getpid())
    layer = tmp + ".layer"
    try:
        h = hashlib.sha256()
        size = 0
        tar = subprocess.Popen(["tar", "-C", rootfs, "-cf", "-", "--sparse"] + TAR_FLAGS + ["."],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})
        with open(layer, "wb") as f:
            while True:
                chunk = tar.stdout.read(CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                f.write(chunk)
                size += len(chunk)
        err = tar.stderr.read()
        if tar.wait() != 0:
            raise DiskError("%s: tar: %s" % (path, err.decode(errors="replace").strip()))
        layer_digest = "sha256:" + h.hexdigest()
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        config = {"architecture": "amd64", "os": "linux", "created": created,
                  "config": {"Cmd": ["/sbin/init"],
                             "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                             "Labels": {"io.richinit.imported-from": os.path.basename(name)}},
                  "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
                  "history": [{"created": created, "created_by": "rich import"}]}
        config_b = json.dumps(config, sort_keys=True).encode()
        config_d = "sha256:" + hashlib.sha256(config_b).hexdigest()
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d,
                               "size": len(config_b)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                                "size": size}]}
        manifest_b = json.dumps(manifest, sort_keys=True).encode()
        manifest_d = "sha256:" + hashlib.sha256(manifest_b).hexdigest()
        ref = name if ":" in name else name + ":latest"
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_d, "size": len(manifest_b),
            "annotations": {"org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
                            "io.containerd.image.name": ref}}]}
        blob = (lambda d: "blobs/sha256/" + d.split(":", 1)[1])
        docker = [{"Config": blob(config_d), "RepoTags": [ref], "Layers": [blob(layer_digest)]}]
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
            for d in ("blobs", "blobs/sha256"):
                info = tarfile.TarInfo(d)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
                t.addfile(info)
            for member, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                                 ("index.json", json.dumps(index).encode()),
                                 ("manifest.json", json.dumps(docker).encode()),
                                 (blob(config_d), config_b), (blob(manifest_d), manifest_b)):
                _add_bytes(t, member, data)
            info = tarfile.TarInfo(blob(layer_digest))
            info.size, info.mode, info.mtime = size, 0o644, int(time.time())
            with open(layer, "rb") as f:
                t.addfile(info, f)
        os.rename(tmp, path)
    finally:
        for p in (tmp, layer):
            if os.path.lexists(p):
                os.unlink(p)


def _add_bytes(t, member, data):
    import io
    info = tarfile.TarInfo(member)
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    t.addfile(info, io.BytesIO(data))
