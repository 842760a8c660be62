"""ELF facts the portable runtime needs: the program interpreter and the shared-library closure.

Only host files we chose (Debian's python3.11, its lib-dynload, the venv's C extensions) go
through here, never anything from an image. The closure comes from `ldd` (the host's own
loader resolving the host's own libraries), cross-checked against each file's DT_NEEDED.
"""

import os
import struct
import subprocess

PT_INTERP = 3


class ElfError(Exception):
    pass


def interpreter(path):
    """The PT_INTERP path of an ELF executable (e.g. /lib64/ld-linux-x86-64.so.2), or None."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if ident[:4] != b"\x7fELF":
            raise ElfError("%s: not an ELF file" % path)
        if ident[4] != 2:
            raise ElfError("%s: only 64-bit ELF is supported" % path)
        end = "<" if ident[5] == 1 else ">"
        f.seek(0)
        hdr = f.read(64)
        phoff, = struct.unpack_from(end + "Q", hdr, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", hdr, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack(end + "IIQQQQ", f.read(40))
            if p_type == PT_INTERP:
                f.seek(p_offset)
                return f.read(p_filesz).rstrip(b"\0").decode()
    return None


def _ldd(path):
    """{soname: resolved host path} for one ELF file; raises ElfError on unresolved libraries."""
    r = subprocess.run(["ldd", path], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    out = r.stdout
    if r.returncode != 0 and "statically linked" not in out + r.stderr:
        raise ElfError("%s: ldd failed: %s" % (path, (r.stderr or out).strip()))
    libs = {}
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            name, _, rest = line.partition("=>")
            name, target = name.strip(), rest.strip().split(" (")[0].strip()
            if target == "not found":
                raise ElfError("%s: needs %s, which the host does not have" % (path, name))
            if target:  # linux-vdso has no file
                libs[name] = target
    return libs


def library_closure(paths):
    """{soname: host path} of every shared library the given ELF files need, transitively."""
    libs = {}
    todo = list(paths)
    done = set()
    while todo:
        p = os.path.realpath(todo.pop())
        if p in done:
            continue
        done.add(p)
        for name, target in _ldd(p).items():
            if name not in libs:
                libs[name] = target
                todo.append(target)
    return libs
