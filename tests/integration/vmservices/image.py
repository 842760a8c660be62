"""What the VM services test adds to the cached Debian 12 VM image (tests.support.debian_image.vm_image):
a user, units of its own covering issue 10's list, a SysV-only script, a PostgreSQL cluster, and a
.deb built with dpkg-deb whose postinst is debhelper's (deb-systemd-helper, deb-systemd-invoke).

Everything is written as files into a layer above the cached image (never into the cache), the
way an image's author would have them; nothing of richinit is in it.
"""

import os
import subprocess

USER = ("vmapp", 1500)
VENDOR = "/lib/systemd/system/"
PACKAGED = ("masked.service",)  # as a package ships it, in /lib; the admin's mask is in /etc

UNITS = {
    # User= with EnvironmentFile= and RuntimeDirectory=
    "envuser.service": """[Unit]
Description=Runs as vmapp with an environment file
[Service]
User=vmapp
EnvironmentFile=/etc/default/envuser
RuntimeDirectory=envuser
ExecStart=/bin/sh -c 'echo "$GREETING $(id -un)" > /run/envuser/out; exec sleep infinity'
[Install]
WantedBy=multi-user.target
""",
    # Restart=on-failure: a kill -9 brings it back after RestartSec
    "crashy.service": """[Unit]
Description=Restarted on failure
[Service]
ExecStart=/bin/sleep infinity
Restart=on-failure
RestartSec=1
[Install]
WantedBy=multi-user.target
""",
    # A template with two enabled instances
    "tpl@.service": """[Unit]
Description=Template instance %i
[Service]
ExecStart=/bin/sh -c 'echo %i > /run/tpl-%i; exec sleep infinity'
[Install]
WantedBy=multi-user.target
""",
    # A timer and the oneshot it fires
    "tick.timer": """[Unit]
Description=Ticks every 2 s
[Timer]
OnBootSec=1
OnUnitActiveSec=2
AccuracySec=100ms
[Install]
WantedBy=timers.target
""",
    "tick.service": """[Unit]
Description=One tick
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'date +%%s.%%N >> /run/tick.log'
""",
    # Socket activation, Accept=no: the service gets the listening fd at the first connection
    "pong.socket": """[Unit]
Description=Pong socket
[Socket]
ListenStream=127.0.0.1:7001
[Install]
WantedBy=sockets.target
""",
    "pong.service": """[Unit]
Description=Pong, socket-activated
[Service]
ExecStart=/usr/bin/python3 -c 'import os, socket; assert os.environ["LISTEN_FDS"] == "1"; \
s = socket.socket(fileno=3); c, _ = s.accept(); c.sendall(b"pong-from-fd3"); c.close(); \
import time; time.sleep(100000)'
""",
    # Socket activation, Accept=yes: an instance per connection, the connection on stdin/stdout
    "greet.socket": """[Unit]
Description=Greeting socket
[Socket]
ListenStream=127.0.0.1:7002
Accept=yes
[Install]
WantedBy=sockets.target
""",
    "greet@.service": """[Unit]
Description=Greeting for one connection
[Service]
ExecStart=/bin/echo hello-accept
StandardInput=socket
StandardOutput=socket
""",
    # RemoveOnStop=: the socket file goes with the unit's stop; a FIFO of a unit without it stays
    "rmsock.socket": """[Unit]
Description=Removed on stop
[Socket]
ListenStream=/run/rmsock.sock
RemoveOnStop=yes
[Install]
WantedBy=sockets.target
""",
    "rmsock.service": """[Unit]
Description=Never started (nothing connects)
[Service]
ExecStart=/bin/sleep infinity
""",
    "keepfifo.socket": """[Unit]
Description=Left on stop
[Socket]
ListenFIFO=/run/keepfifo
[Install]
WantedBy=sockets.target
""",
    "keepfifo.service": """[Unit]
Description=Never started (nothing writes)
[Service]
ExecStart=/bin/sleep infinity
""",
    # Neither enabled: `systemctl start needsock` starts the socket it Requires= first, whose fd it gets
    "needsock.socket": """[Unit]
Description=Pulled by needsock.service
[Socket]
ListenStream=/run/needsock.sock
""",
    "needsock.service": """[Unit]
Description=Requires its socket
Requires=needsock.socket
After=needsock.socket
[Service]
ExecStart=/bin/sh -c 'echo "$LISTEN_FDS $LISTEN_FDNAMES" > /run/needsock.fds; exec sleep infinity'
""",
    # Type=idle waits for the other jobs, 5 s at most: slowready's start job lasts 20 s
    "slowready.service": """[Unit]
Description=Ready 20 s after its start
[Service]
Type=notify
TimeoutStartSec=60
ExecStart=/usr/bin/python3 -c 'import os, socket, time; \
print(time.time(), file=open("/run/slowready-start", "w"), flush=True); time.sleep(20); \
print(time.time(), file=open("/run/slowready-ready", "w"), flush=True); \
a = os.environ["NOTIFY_SOCKET"]; a = chr(0) + a[1:] if a.startswith("@") else a; \
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b"READY=1", a); time.sleep(100000)'
""",
    "idler.service": """[Unit]
Description=Type=idle
[Service]
Type=idle
ExecStart=/bin/sh -c 'date +%%s.%%N > /run/idler-ran; exec sleep infinity'
""",
    # A drop-in replacing ExecStart=
    "dropper.service": """[Unit]
Description=Changed by a drop-in
[Service]
ExecStart=/bin/sh -c 'echo from-fragment > /run/dropper; exec sleep infinity'
[Install]
WantedBy=multi-user.target
""",
    # Masked (though linked from multi-user.target.wants) and disabled: neither runs
    "masked.service": """[Unit]
Description=Masked
[Service]
ExecStart=/bin/sh -c 'touch /run/masked-ran; exec sleep infinity'
[Install]
WantedBy=multi-user.target
""",
    "disabled.service": """[Unit]
Description=Disabled
[Service]
ExecStart=/bin/sh -c 'touch /run/disabled-ran; exec sleep infinity'
[Install]
WantedBy=multi-user.target
""",
    # A oneshot with RemainAfterExit: active (exited) after it ran
    "setup.service": """[Unit]
Description=One-time setup
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/touch /run/setup-done
[Install]
WantedBy=multi-user.target
""",
    # A Requires= chain whose failure propagates: base-fail fails, needs-base never starts
    "base-fail.service": """[Unit]
Description=Fails
[Service]
Type=oneshot
ExecStart=/bin/false
""",
    "needs-base.service": """[Unit]
Description=Requires the failing one
Requires=base-fail.service
After=base-fail.service
[Service]
ExecStart=/bin/sh -c 'touch /run/needs-base-ran; exec sleep infinity'
[Install]
WantedBy=multi-user.target
""",
    # WatchdogSec= and a service that is ready, then never pings: killed and restarted
    "dog.service": """[Unit]
Description=Silent watchdog
[Service]
Type=notify
WatchdogSec=2
Restart=on-failure
RestartSec=500ms
ExecStart=/usr/bin/python3 -c 'import os, socket, time; \
print("start", file=open("/run/dog.starts", "a"), flush=True); \
a = os.environ["NOTIFY_SOCKET"]; a = chr(0) + a[1:] if a.startswith("@") else a; \
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b"READY=1", a); time.sleep(100000)'
[Install]
WantedBy=multi-user.target
""",
    # Shutdown order: late stops before early (After=); slow's ExecStop is cut at TimeoutStopSec
    "early.service": """[Unit]
Description=Starts first, stops last
[Service]
ExecStart=/bin/sleep infinity
ExecStop=/bin/sh -c 'echo early >> /var/log/vmtest/stop.log'
[Install]
WantedBy=multi-user.target
""",
    "late.service": """[Unit]
Description=Starts after early, stops before it
After=early.service
Requires=early.service
[Service]
ExecStart=/bin/sleep infinity
ExecStop=/bin/sh -c 'echo late >> /var/log/vmtest/stop.log'
[Install]
WantedBy=multi-user.target
""",
    "slow.service": """[Unit]
Description=Its stop outlasts TimeoutStopSec
[Service]
ExecStart=/bin/sleep infinity
ExecStop=/bin/sh -c 'L=/var/log/vmtest/stop.log; echo slow-stopping >> $L; sleep 30; echo slow-finished >> $L'
TimeoutStopSec=2
[Install]
WantedBy=multi-user.target
""",
}
DROPINS = {"dropper.service.d/override.conf": """[Service]
ExecStart=
ExecStart=/bin/sh -c 'echo from-dropin > /run/dropper; exec sleep infinity'
"""}
ENABLED = {"multi-user.target.wants": ["envuser.service", "crashy.service", "tpl@one.service", "tpl@two.service",
                                       "dropper.service", "masked.service", "setup.service", "needs-base.service",
                                       "dog.service", "early.service", "late.service", "slow.service",
                                       # what postgresql-generator links at boot, for its one cluster
                                       "postgresql@15-main.service"],
           "timers.target.wants": ["tick.timer"],
           "sockets.target.wants": ["pong.socket", "greet.socket", "rmsock.socket", "keepfifo.socket"]}
SYSV_SCRIPT = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          legacy
# Required-Start:    $remote_fs $syslog
# Required-Stop:     $remote_fs $syslog
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: A SysV-only daemon
### END INIT INFO
PIDFILE=/run/legacy.pid
case "$1" in
  start) setsid sh -c 'echo $$ > /run/legacy.pid; exec sleep 100000' </dev/null >/dev/null 2>&1 &
         sleep 0.2; touch /run/legacy-started ;;
  stop) [ -f $PIDFILE ] && kill $(cat $PIDFILE); rm -f $PIDFILE ;;
  status) [ -f $PIDFILE ] && kill -0 $(cat $PIDFILE) 2>/dev/null ;;
  restart|force-reload) $0 stop; $0 start ;;
  *) echo "Usage: $0 {start|stop|status|restart}"; exit 2 ;;
esac
"""

DEB_UNIT = """[Unit]
Description=Installed by dpkg -i
[Service]
ExecStart=/bin/sh -c 'touch /run/hello-pkg-ran; exec sleep infinity'
[Install]
WantedBy=multi-user.target
"""
# debhelper's postinst snippets (dh_installsystemd), as packages ship them
DEB_POSTINST = """#!/bin/sh
set -e
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || \
   [ "$1" = "abort-remove" ] ; then
	# This will only remove masks created by d-s-h on package removal.
	deb-systemd-helper unmask 'hello-pkg.service' >/dev/null || true
	# was-enabled defaults to true, so new installations run enable.
	if deb-systemd-helper --quiet was-enabled 'hello-pkg.service'; then
		deb-systemd-helper enable 'hello-pkg.service' >/dev/null || true
	else
		deb-systemd-helper update-state 'hello-pkg.service' >/dev/null || true
	fi
fi
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || \
   [ "$1" = "abort-remove" ] ; then
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then
			_dh_action=restart
		else
			_dh_action=start
		fi
		deb-systemd-invoke $_dh_action 'hello-pkg.service' >/dev/null || true
	fi
fi
"""


def _write(root, rel, text, mode=0o644):
    p = os.path.join(root, rel.lstrip("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)


def _append(root, rel, line):
    with open(os.path.join(root, rel.lstrip("/")), "a") as f:
        f.write(line + "\n")


def customize(root):
    """Write the test's additions into `root` (the writable layer's view of the image)."""
    name, uid = USER
    _append(root, "/etc/passwd", "%s:x:%d:%d::/nonexistent:/usr/sbin/nologin" % (name, uid, uid))
    _append(root, "/etc/group", "%s:x:%d:" % (name, uid))
    _write(root, "/etc/default/envuser", "GREETING=hello-env\n")
    for unit, text in UNITS.items():
        _write(root, (VENDOR if unit in PACKAGED else "/etc/systemd/system/") + unit, text)
    for rel, text in DROPINS.items():
        _write(root, "/etc/systemd/system/" + rel, text)
    for wants, units in ENABLED.items():
        d = os.path.join(root, "etc/systemd/system", wants)
        os.makedirs(d, exist_ok=True)
        for u in units:
            file = u.split("@")[0] + "@.service" if "@" in u else u
            vendor = file in PACKAGED or u.startswith("postgresql@")
            os.symlink((VENDOR if vendor else "/etc/systemd/system/") + file, os.path.join(d, u))
    os.symlink("/dev/null", os.path.join(root, "etc/systemd/system/masked.service"))
    _write(root, "/etc/init.d/legacy", SYSV_SCRIPT, 0o755)
    for n in (2, 3, 4, 5):
        os.symlink("../init.d/legacy", os.path.join(root, "etc/rc%d.d/S01legacy" % n))


def build_deb(workdir):
    """hello-pkg_1.0_all.deb: a unit and debhelper's postinst. Returns its path."""
    pkg = os.path.join(workdir, "hello-pkg")
    _write(pkg, "/lib/systemd/system/hello-pkg.service", DEB_UNIT)
    _write(pkg, "/DEBIAN/control", "Package: hello-pkg\nVersion: 1.0\nArchitecture: all\n"
                                   "Maintainer: richinit tests <tests@example.invalid>\n"
                                   "Description: a service installed by dpkg -i\n")
    _write(pkg, "/DEBIAN/postinst", DEB_POSTINST, 0o755)
    out = os.path.join(workdir, "hello-pkg_1.0_all.deb")
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", pkg, out], check=True, capture_output=True)
    return out
