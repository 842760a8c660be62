"""Unit files for the PID-1 run-time tests: small systemd units in a busybox rootfs, enabled
through multi-user.target.wants as a package would enable them."""

import os
import sys

NOTIFY_CLIENT = r'''
import os, socket, sys, time
# A Type=notify daemon in a few lines: READY=1, then WATCHDOG=1 pings; after `pings` of them it
# goes silent (and keeps running), so only the watchdog can notice.
pings = int(sys.argv[1])
def notify(msg):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(msg.encode(), os.environ["NOTIFY_SOCKET"])
    s.close()
with open("/shared/dog.starts", "a") as f:
    f.write("%d %s %s\n" % (os.getpid(), os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID", "-")))
notify("READY=1\nSTATUS=barking")
interval = int(os.environ["WATCHDOG_USEC"]) / 4e6
for _ in range(pings):
    time.sleep(interval)
    notify("WATCHDOG=1")
while True:
    time.sleep(1000)
'''

UNITS = {
    # kill -9 -> back after RestartSec ("$$$$": systemd makes "$$" a literal "$")
    "crashy.service": """
[Unit]
Description=restarted on failure
[Service]
ExecStart=/bin/sh -c 'echo $$$$ >> /shared/crashy.pids; exec sleep 1000'
Restart=on-failure
RestartSec=300ms
[Install]
WantedBy=multi-user.target
""",
    # a watchdog service that stops pinging after a few pings (as a user: the socket is reachable)
    "dog.service": """
[Service]
Type=notify
User=nobody
ExecStart={python} /notify_client.py 3
WatchdogSec=1
Restart=on-watchdog
RestartSec=100ms
[Install]
WantedBy=multi-user.target
""",
    # Requires= chain: base fails, mid and top never start
    "base.service": """
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo base-ran >> /shared/chain; exit 3'
[Install]
WantedBy=multi-user.target
""",
    "mid.service": """
[Unit]
Requires=base.service
After=base.service
[Service]
ExecStart=/bin/sh -c 'echo mid-ran >> /shared/chain; exec sleep 1000'
[Install]
WantedBy=multi-user.target
""",
    "top.service": """
[Unit]
Requires=mid.service
After=mid.service
[Service]
ExecStart=/bin/sh -c 'echo top-ran >> /shared/chain; exec sleep 1000'
[Install]
WantedBy=multi-user.target
""",
    # oneshot with RemainAfterExit
    "setup.service": """
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo setup >> /shared/setup'
ExecStop=/bin/sh -c 'echo undo >> /shared/setup'
[Install]
WantedBy=multi-user.target
""",
    # ExecStop, then the kill signal, then ExecStopPost; a background child goes with the group
    "ordered.service": """
[Service]
ExecStart=/bin/sh -c 'sleep 1000 & echo $! > /shared/ordered.child; \
    trap "echo main-term >> /shared/order; exit 0" TERM; while true; do sleep 0.05; done'
ExecStop=/bin/sh -c 'echo exec-stop $MAINPID >> /shared/order'
ExecStopPost=/bin/sh -c 'echo stop-post $SERVICE_RESULT >> /shared/order'
[Install]
WantedBy=multi-user.target
""",
    # KillMode=process: the background child outlives the stop
    "km.service": """
[Service]
KillMode=process
ExecStart=/bin/sh -c 'sleep 1000 & echo $! > /shared/km.child; trap "exit 0" TERM; while true; do sleep 0.05; done'
[Install]
WantedBy=multi-user.target
""",
    # User= with EnvironmentFile=, RuntimeDirectory=, $VAR / ${VAR} expansion
    "usr.service": """
[Service]
User=nobody
EnvironmentFile=/etc/usr.env
EnvironmentFile=-/etc/missing.env
Environment="WORDS=one two"
RuntimeDirectory=usrd
RuntimeDirectoryMode=0750
ExecStartPre=/bin/sh -c 'echo "$#:$1" > /run/usrd/braces' sh ${GREETING}
ExecStartPre=/bin/sh -c 'echo "$#:$1" > /run/usrd/words' sh $WORDS
ExecStart=/bin/sh -c 'id -u > /run/usrd/id; echo "$GREETING" > /run/usrd/env; exec sleep 1000'
[Install]
WantedBy=multi-user.target
""",
    # Type=forking without PIDFile=: the daemon forks into a session of its own (the file gets the
    # starter's pid: the outer shell expands $$)
    "forky.service": """
[Service]
Type=forking
ExecStart=/bin/sh -c 'setsid sh -c "echo $$$$ > /shared/forky.pid; exec sleep 1000" & sleep 0.2'
[Install]
WantedBy=multi-user.target
""",
    # PrivateTmp=: its own empty /tmp where the container allows a mount namespace (else a warning)
    "ptmp.service": """
[Service]
PrivateTmp=yes
ExecStart=/bin/sh -c 'touch /tmp/inside; ls /tmp > /shared/ptmp.ls; exec sleep 1000'
[Install]
WantedBy=multi-user.target
""",
}


def write_units(rootfs):
    """Write the units, their enablement links, and what they need into `rootfs`."""
    etc = os.path.join(rootfs, "etc/systemd/system")
    wants = os.path.join(etc, "multi-user.target.wants")
    os.makedirs(wants, exist_ok=True)
    for name, text in UNITS.items():
        with open(os.path.join(etc, name), "w") as f:
            f.write(text.replace("{python}", sys.executable))
        os.symlink("../" + name, os.path.join(wants, name))
    with open(os.path.join(rootfs, "notify_client.py"), "w") as f:
        f.write(NOTIFY_CLIENT)
    os.makedirs(os.path.join(rootfs, "tmp"), exist_ok=True)
    with open(os.path.join(rootfs, "tmp/outside"), "w") as f:
        f.write("the container's own /tmp\n")
    with open(os.path.join(rootfs, "etc/usr.env"), "w") as f:
        f.write("# for usr.service\nGREETING=hello world\n")
