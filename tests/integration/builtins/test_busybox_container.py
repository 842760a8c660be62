"""The built-in syslog and cron inside a real runc busybox container (host Python bound read-only)."""

import os
import re
import shlex
import sys

import pytest

from richinit import builtin
from tests.support import containers

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="runc needs root"),
    pytest.mark.skipif(not containers.have("runc"), reason="runc not installed"),
]

SCRIPT = r"""
set -e
PY={py}
mkdir -p /etc/cron.d /var/log
printf '%s\n' '* * * * * root echo "root-job app=$APP_MODE"' \
              '* * * * * nobody echo "nobody-job uid=$(id -u) app=$APP_MODE"' > /etc/cron.d/demo
chmod 644 /etc/cron.d/demo
# What richinit does at boot: save the environment for cron and logins.
$PY -I -c 'from richinit import environ; environ.boot()'
mkfifo /tmp/ready
{syslogd} --notify-fd 3 3>/tmp/ready &
SYSLOGD=$!
read -r _ < /tmp/ready
logger -t busybox-logger "hello from busybox"
{cron} --once-at "$(date '+%Y-%m-%d %H:%M')"
kill -TERM $SYSLOGD
wait $SYSLOGD
echo "syslogd exit $?"
echo ---- messages
cat /var/log/messages
"""


def test_builtin_syslog_and_cron_in_busybox(tmp_path):
    rootfs = containers.busybox_rootfs(str(tmp_path / "rootfs"))
    script = SCRIPT.format(py=shlex.quote(sys.executable),
                           syslogd=shlex.join(builtin.argv("syslogd", sys.executable)),  # as the supervisor runs them
                           cron=shlex.join(builtin.argv("cron", sys.executable)))
    bundle = str(tmp_path / "bundle")
    containers.make_bundle(bundle, rootfs, ["/bin/sh", "-c", script], env=["APP_MODE=container-value"],
                           python=True)
    r = containers.run(bundle, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "syslogd exit 0" in out, out + r.stderr
    messages = out.split("---- messages\n", 1)[1]
    assert re.search(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d rich busybox-logger: hello from busybox$", messages, re.M), \
        messages
    assert re.search(r" CRON\[\d+\]: \(root\) OUT \(root-job app=container-value\)$", messages, re.M), messages
    # nobody may not read the saved environment (0640 root:root here): the job runs without it.
    assert re.search(r" CRON\[\d+\]: \(nobody\) OUT \(nobody-job uid=65534 app=\)$", messages, re.M), messages
    assert len(re.findall(r"\) END \(.*\) exit 0$", messages, re.M)) == 2, messages
    # And the files richinit leaves for logins exist in the container's layout.
    with open(os.path.join(rootfs, "run/richinit/environment")) as f:
        saved = f.read()
    assert "export APP_MODE=container-value\n" in saved and "LC_CTYPE" not in saved
    assert os.path.isdir(os.path.join(rootfs, "etc/container_environment"))
