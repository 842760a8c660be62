"""mountinfo parsing for the quota planner (pure, fixture text)."""

import os

from runtime_hooks.quota import mountinfo

TEXT = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
426 22 7:0 / /tmp/qx rw,relatime - xfs /dev/loop0 rw,inode64,logbufs=8,logbsize=32k,prjquota
427 22 7:1 / /srv/my\\040vol rw - ext4 /dev/loop1 rw,prjquota
500 22 0:77 / /run/c/rootfs rw,relatime - overlay overlay rw,lowerdir=/l1:/l2,upperdir=/var/up\\040dir,workdir=/w
501 500 0:78 / /run/c/rootfs rw - tmpfs tmpfs rw
bad line
"""


def test_parse_and_lookups():
    ms = mountinfo.parse(TEXT)
    assert len(ms) == 5
    xfs = mountinfo.for_dev(ms, os.makedev(7, 0))
    assert xfs.fstype == "xfs" and xfs.source == "/dev/loop0" and mountinfo.has_project_quota(xfs)
    assert not mountinfo.has_project_quota(mountinfo.for_dev(ms, os.makedev(254, 0)))
    assert mountinfo.at(ms, "/srv/my vol").dev == (7, 1)  # \\040 unescaped
    assert mountinfo.at(ms, "/run/c/rootfs").fstype == "tmpfs"  # the topmost mount wins
    over = [m for m in ms if m.fstype == "overlay"][0]
    assert over.option("upperdir") == "/var/up dir" and over.option("rw") == "" and over.option("nope") is None
    assert mountinfo.at(ms, "/nowhere") is None and not mountinfo.has_project_quota(None)
