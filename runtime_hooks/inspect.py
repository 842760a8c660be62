"""`rich inspect ROOTFS_DIR|ROOTFS_TARBALL [--json]`: the pre-flight report of an image's services.

The report is the services loader's (`richinit.services.inspect`), run by this interpreter in a
process of its own with an explicit environment: the host side does not import the PID 1 side, and
nothing from the image is executed (the loader only reads it, every path resolved inside it). A
tarball is unpacked first into a private temporary directory by `bundle.unpack` (member by member,
never through the archive's own links), removed afterwards.
"""

import os
import sys
import tempfile


class InspectError(Exception):
    """One line for stderr."""


def inspect(rootfs, as_json=False):
    """Print the report on stdout; returns the loader's exit status. InspectError for bad input."""
    if os.path.isdir(rootfs):
        return _run(os.path.abspath(rootfs), as_json)
    if not os.path.isfile(rootfs):
        raise InspectError("%s: no such directory or tarball" % rootfs)
    from osbase import safepath
    from runtime_hooks import bundle
    tmp = tempfile.mkdtemp(prefix="rich-inspect-")
    try:
        dest = os.path.join(tmp, "rootfs")
        try:
            bundle.unpack(rootfs, dest)
        except bundle.BundleError as e:
            raise InspectError(str(e)) from None
        return _run(dest, as_json)
    finally:
        safepath.remove_tree(tmp)


def _run(root, as_json):
    import subprocess
    argv = [sys.executable, "-I", "-m", "richinit.services.inspect", root] + (["--json"] if as_json else [])
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
    return subprocess.run(argv, env=env, stdin=subprocess.DEVNULL).returncode
