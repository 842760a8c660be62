"""Which of the image's own tools rich mode binds the runtime's over (runtime_hooks.pipeline.image_tools):
regular files only, each once, found inside the rootfs (a symlink escaping it is not followed out)."""

import os

from runtime_hooks.pipeline import image_tools
from runtime_hooks.portable_manifest import TOOL_PATHS, TOOLS


def test_debian_layout_merged_usr_and_links_to_systemctl(tmp_path):
    root = tmp_path / "rootfs"
    for d in ("usr/bin", "usr/sbin"):
        (root / d).mkdir(parents=True)
    os.symlink("usr/bin", str(root / "bin"))
    os.symlink("usr/sbin", str(root / "sbin"))
    (root / "usr/bin/systemctl").write_text("elf")
    (root / "usr/sbin/service").write_text("#!/bin/sh\n")
    for name in ("shutdown", "reboot", "halt", "poweroff"):
        os.symlink("/bin/systemctl", str(root / "usr/sbin" / name))  # Debian's systemd-sysv
    os.symlink("/bin/busybox", str(root / "usr/bin/journalctl"))  # a link elsewhere: left alone
    assert image_tools(str(root)) == [("systemctl", "/usr/bin/systemctl"), ("service", "/usr/sbin/service")]


def test_links_leading_outside_stay_inside_and_missing_tools_are_skipped(tmp_path):
    root = tmp_path / "rootfs"
    (root / "sbin").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "halt").write_text("host file")
    os.symlink(str(tmp_path / "outside"), str(root / "usr"))  # /usr -> a host path: resolved in the root
    (root / "sbin" / "halt").write_text("sysvinit's halt")
    assert image_tools(str(root)) == [("halt", "/sbin/halt")]
    assert image_tools(str(tmp_path / "nothing")) == []


def test_the_runtime_ships_every_tool_richinit_has():
    from richinit.tools import PROGRAMS
    assert TOOLS == PROGRAMS
    assert {name for name, _ in TOOL_PATHS} == set(TOOLS) - {"richctl"}
