"""PID 1 stays lean while it runs systemd units: the whole run-time path of a unit (conditions,
EnvironmentFile=, $VAR/${VAR} expansion, User= lookups, RuntimeDirectory=, the sd_notify socket
with READY=1/STATUS=/WATCHDOG=1, ExecStartPre=/ExecStop=/ExecStopPost=, the stop) runs in an
isolated interpreter through the real loop, supervisor and svc, which then reports its modules."""

import os
import shutil
import subprocess
import sys

from tests.support.containers import REPO

HEAVY = frozenset({"re", "enum", "socket", "selectors", "subprocess", "argparse", "datetime", "locale", "json",
                   "logging", "shlex", "signal", "collections", "typing", "threading", "gettext", "ctypes",
                   "glob", "fnmatch", "shutil", "resource", "yaml", "inspect"})

RUNNER = r"""
import os, sys
from richinit.loop import Loop
from richinit.pid1 import Init
from richinit.services.model import Command, Condition, Directory, Ready, ServiceSpec
from richinit.supervisor import Supervisor
from richinit.sysops import SysOps
tmp = sys.argv[1]
loop, ops = Loop(), SysOps(False)
from osbase import libc
libc.set_child_subreaper(True)
sys.modules.pop("ctypes", None)  # what set-up needed; the steady state is what is measured
sup = Supervisor(loop, ops, control_dir=tmp)
with open(tmp + "/env", "w") as f:
    f.write("GREETING=hello world\n")
script = ("import os, socket, time\n"
          "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
          "s.sendto(b'READY=1\\nSTATUS=up\\nWATCHDOG=1', os.environ['NOTIFY_SOCKET'])\n"
          "open(os.environ['OUT'] + '/ready', 'w').write(os.environ['GREETING'])\n"
          "time.sleep(60)\n")
spec = ServiceSpec(name="u", unit="u.service", type="notify", ready=Ready(kind="notify"), command_flags="",
                   command=(sys.executable, "-c", script), env_files=(tmp + "/env",),
                   environment={"OUT": tmp, "WORDS": "a b"}, watchdog=30.0, user="root",
                   pre=(Command(argv=("/bin/sh", "-c", 'echo "$#" > ${OUT}/words', "sh", "$WORDS"), flags=""),),
                   stop_commands=(Command(argv=("/bin/sh", "-c", "echo stop > $OUT/stop"), flags="-"),),
                   stop_post=(Command(argv=("/bin/sh", "-c", "echo $SERVICE_RESULT > $OUT/post"), flags=""),),
                   conditions=(Condition(name="PathExists", value=tmp),
                               Condition(name="PathExistsGlob", value=tmp + "/e*")),
                   directories=(Directory(kind="runtime", path=sys.argv[2]),))
sup.apply({"services": [spec.to_dict()], "deps": {"u": []}, "order": [["u"]]})
init = Init(ops, services=sup, vm=True, kill_grace=2)
def changed(orig=init.on_services_changed):
    orig()
    u = sup.services["u"]
    if u.state == "up" and u.status_text == "up" and not getattr(sup, "asked", False):
        sup.asked = True
        os.kill(os.getpid(), 15)
sup.on_change = changed
init.boot()
code = loop.run(init, ops)
sys.stdout.write("\nMODULES " + " ".join(sorted(sys.modules)) + "\n")
sys.exit(code)
"""


def test_running_a_unit_loads_nothing_heavy(tmp_path):
    rundir = "richinit-lean-%d" % os.getpid()  # RuntimeDirectory=, made under the host's /run
    try:
        r = subprocess.run([sys.executable, "-I", "-c", RUNNER, str(tmp_path), rundir], cwd=REPO,
                           capture_output=True, text=True, timeout=60,
                           env={"PYTHONPATH": REPO, "PATH": os.environ["PATH"]})
    finally:
        shutil.rmtree(os.path.join("/run", rundir), ignore_errors=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ready").read_text() == "hello world"
    assert (tmp_path / "words").read_text().strip() == "2"
    assert (tmp_path / "stop").read_text().strip() == "stop"
    assert (tmp_path / "post").read_text().strip() == "success"
    modules = set(r.stdout.rstrip("\n").rsplit("\n", 1)[-1].split()[1:])
    assert "richinit.unitexec" in modules and "richinit.supervisor" in modules
    assert sorted(modules & HEAVY) == []
