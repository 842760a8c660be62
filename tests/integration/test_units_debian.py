"""The services loader on a real Debian 12 image with systemd and packaged daemons (the VM variant of
tests.support.debian_image), compared with what the image itself says systemd would do: its
multi-user.target.wants links and `systemctl list-unit-files` run in the image (chroot; systemctl
works offline there). Nothing of the image is run by the loader; the test runs the image's systemctl.
"""

import os
import shutil
import subprocess

import pytest

from richinit.services import load as L
from tests.support import debian_image

TEAM = """[Unit]
Description=The team's app
After=network.target postgresql.service
Wants=postgresql.service

[Service]
User=www-data
EnvironmentFile=/etc/default/myapp
RuntimeDirectory=myapp
ExecStart=/usr/bin/python3 -m http.server --directory /run/myapp 8088
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
"""

SYSV = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          legacyd
# Required-Start:    $syslog $remote_fs
# Default-Start:     2 3 4 5
# Short-Description: a SysV-only daemon
### END INIT INFO
PIDFILE=/run/legacyd.pid
case "$1" in start|stop) ;; esac
"""


@pytest.fixture(scope="module")
def vm_rootfs(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root for the overlay over the cached image")
    try:
        base = debian_image.vm_image()
    except debian_image.ImageUnavailable as e:
        pytest.skip(str(e))
    work = str(tmp_path_factory.mktemp("units-debian"))
    with debian_image.image_copy(base, work) as rootfs:
        def put(rel, text, mode=0o644):
            path = os.path.join(rootfs, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, mode)

        # A cluster as pg_createcluster leaves it (the debootstrap chroot made none).
        put("etc/postgresql/15/main/postgresql.conf", "port = 5432\n")
        put("etc/postgresql/15/main/start.conf", "# auto|manual|disabled\nauto\n")
        put("etc/default/myapp", "GREETING=hello\n")
        put("etc/systemd/system/myapp.service", TEAM)
        os.symlink("/etc/systemd/system/myapp.service",
                   os.path.join(rootfs, "etc/systemd/system/multi-user.target.wants/myapp.service"))
        os.symlink("/dev/null", os.path.join(rootfs, "etc/systemd/system/memcached.service"))
        put("etc/systemd/system/nginx.service.d/override.conf", "[Service]\nEnvironment=FROM_DROPIN=1\n")
        put("etc/init.d/legacyd", SYSV, 0o755)
        os.symlink("../init.d/legacyd", os.path.join(rootfs, "etc/rc2.d/S02legacyd"))
        yield rootfs


def test_what_systemd_would_enable(vm_rootfs):
    root = vm_rootfs
    res = L.load(root, L.DEFAULTS_DIR, environ={}, units=True)
    enabled = {s.name for s in res.services if s.enabled and s.name not in res.skipped and s.name not in res.failed}
    # The image's own links, minus what a container skips (e2scrub_reap) and what this test masked.
    wants = os.listdir(os.path.join(root, "etc/systemd/system/multi-user.target.wants"))
    linked = {n[:-len(".service")] for n in wants if n.endswith(".service")} - {"e2scrub_reap", "memcached"}
    assert linked == {"cron", "nginx", "postgresql", "redis-server", "rsyslog", "ssh", "myapp"}
    assert enabled == linked | {"postgresql@15-main", "legacyd"}
    assert [n for n in ("sshd", "cron", "syslog") if res.spec(n) and res.spec(n).origin == "default"] == []
    assert res.skipped["memcached"] == "masked" and res.unit_files["memcached.service"] == "masked"
    assert res.skipped["e2scrub_reap"].startswith("file system maintenance")
    assert all(not n.startswith("systemd-") for w in res.order for n in w)
    assert res.errors == []
    pg = res.spec("postgresql@15-main")
    assert pg.type == "forking" and pg.pidfile == "/run/postgresql/15-main.pid" and pg.command_flags == "-"
    assert pg.command == ("/usr/bin/pg_ctlcluster", "--skip-systemctl-redirect", "15-main", "start")
    assert pg.part_of == ("postgresql",) and "postgresql@15-main" in res.deps["postgresql"]
    assert "postgresql" in res.deps["myapp"]
    ssh = res.spec("ssh")
    assert ssh.type == "notify" and ssh.restart == "on-failure" and ssh.restart_prevent == (255,)
    assert ssh.env_files == ("-/etc/default/ssh",) and ssh.command == ("/usr/sbin/sshd", "-D", "$SSHD_OPTS")
    redis = res.spec("redis-server")
    assert redis.user == "redis" and redis.umask == 0o7 and redis.limits["NOFILE"] == [65535, 65535]
    assert redis.stop_timeout == 0 and redis.private_tmp and redis.directories[0].mode == 0o2755
    assert any("ProtectSystem= ignored" in w for w in redis.warnings)
    assert res.spec("nginx").environment == {"FROM_DROPIN": "1"}
    rsyslog = res.spec("rsyslog")
    assert rsyslog.sockets == ("syslog",) and rsyslog.log.kind == "none"
    legacy = res.spec("legacyd")
    assert legacy.origin == "sysv" and legacy.pidfile == "/run/legacyd.pid" and legacy.after == ("rsyslog",)
    myapp = res.spec("myapp")
    assert myapp.user == "www-data" and myapp.backoff.first == 1 and myapp.restart == "on-failure"
    assert "postgresql" in myapp.after and "postgresql" in myapp.wants
    assert {t.name for t in res.timers if t.enabled} == {"dpkg-db-backup"}
    assert {s.name for s in res.sockets if s.enabled} == {"syslog"}


def test_unit_file_states_match_systemctl(vm_rootfs):
    root = vm_rootfs
    chroot = shutil.which("chroot")
    if chroot is None:
        pytest.skip("chroot is not installed")
    r = subprocess.run([chroot, root, "systemctl", "list-unit-files", "--no-pager", "--no-legend"],
                       capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})
    assert r.returncode == 0, r.stderr
    real = dict(line.split()[:2] for line in r.stdout.splitlines() if line.strip())
    assert len(real) > 150
    res = L.load(root, None, environ={}, units=True)
    # Offline, systemctl runs no generator: the SysV script's unit is ours alone.
    assert res.unit_files.pop("legacyd.service") == "generated"
    assert res.unit_files == real
