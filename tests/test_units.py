"""The image's systemd units and SysV scripts as the services loader reads them (fixture trees)."""

import json
import os
import subprocess
import sys
import tarfile

import pytest

from richinit import svc as S
from richinit.services import load as L
from richinit.services import model as M
from richinit.services import unitfile as U
from richinit.services.rootfs import Root
from richinit.services.units import SkipRules, load_units

LIB = "lib/systemd/system"
ETC = "etc/systemd/system"
WANTS = ETC + "/multi-user.target.wants"


def put(root, rel, text="", mode=0o644):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def link(root, rel, target):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


def exe(root, rel):
    put(root, rel, "#!/bin/sh\n", 0o755)


@pytest.fixture
def image(tmp_path):
    """A small image: /bin/true and friends, multi-user.target, default.target -> multi-user.target."""
    root = str(tmp_path / "root")
    for b in ("bin/true", "bin/sleep", "usr/sbin/daemon", "usr/bin/app", "bin/kill"):
        exe(root, b)
    put(root, LIB + "/multi-user.target", "[Unit]\nDescription=Multi-User\nRequires=basic.target\n")
    put(root, LIB + "/basic.target", "[Unit]\nWants=sockets.target timers.target\n")
    put(root, LIB + "/sockets.target", "[Unit]\n")
    put(root, LIB + "/timers.target", "[Unit]\n")
    link(root, LIB + "/default.target", "multi-user.target")
    put(root, "etc/debian_version", "12.0\n")
    return root


def enable(root, unit, target="multi-user.target"):
    prefix, instance, utype = U.split_name(unit)
    file = "%s@.%s" % (prefix, utype) if instance else unit
    link(root, "%s/%s.wants/%s" % (ETC, target, unit), "/%s/%s" % (LIB, file))


def loaded(root, environ=None):
    warnings = []
    with Root(root) as r:
        out = load_units(r, lambda *a, **k: warnings.append(a), environ or {})
    out.loose = warnings
    return out


def spec(out, name):
    for s, problems, skip, _lines, stem, _unit in out.services:
        if stem == name:
            return s, problems, skip
    raise KeyError(name)


def full(root, defaults=None, **kw):
    return L.load(root, defaults, environ={}, units=True, **kw)


def line_of(text, needle):
    return next(n for n, line in enumerate(text.split("\n"), 1) if line.startswith(needle))


# --- syntax ----------------------------------------------------------------------------------

def test_parse_sections_continuations_comments_and_problems():
    text = ("# comment\n; comment\n[Unit]\nDescription=a \\\n# skipped inside\n  b\n"
            "After = x.service\nnonsense\n[Service]\nExecStart=\n")
    entries, problems = U.parse(text)
    assert [(s, k, v) for s, k, v, n in entries] == [
        ("Unit", "Description", "a  b"), ("Unit", "After", "x.service"), ("Service", "ExecStart", "")]
    assert [n for s, k, v, n in entries] == [4, 7, 10]
    assert problems == [(8, "missing '=': 'nonsense'")]
    _, problems = U.parse("Key=value\n")
    assert problems and problems[0][0] == 1 and "outside" in problems[0][1]


def test_exec_lines_quoting_prefixes_and_separators():
    assert U.exec_lines("/usr/sbin/nginx -g 'daemon on; master_process on;'") == [
        ("", ["/usr/sbin/nginx", "-g", "daemon on; master_process on;"])]
    assert U.exec_lines('-@/bin/sh sh -c "echo \\"hi\\"\\tthere" ; :/bin/echo $X \\; end') == [
        ("-@", ["/bin/sh", "sh", "-c", 'echo "hi"\tthere']), (":", ["/bin/echo", "$X", ";", "end"])]
    assert U.exec_lines("!!/bin/x") == [("!!", ["/bin/x"])]
    assert U.exec_lines("+/bin/x a\"b c\"d") == [("+", ["/bin/x", "ab cd"])]
    for bad in ("/bin/x 'open", "-", "@/bin/x"):
        with pytest.raises(ValueError):
            U.exec_lines(bad)


def test_words_timespans_sizes_specifiers():
    assert U.split_words(r"""A="x y" 'B=\x41' C=\\""") == ["A=x y", "B=A", "C=\\"]
    assert U.timespan("1min 30s") == U.timespan("1min30s") == 90
    assert U.timespan("500ms") == 0.5 and U.timespan("2h") == 7200 and U.timespan("5") == 5
    assert U.timespan("infinity") is None
    for bad in ("", "5 parsecs", "1min 5"):
        with pytest.raises(ValueError):
            U.timespan(bad)
    assert U.size("64K") == 65536 and U.size("1G") == 1 << 30
    table = U.name_specifiers("postgresql@15-main.service")
    assert U.expand("%p %i %I %n %N %f %%", table) == \
        "postgresql 15-main 15/main postgresql@15-main.service postgresql@15-main /15/main %"
    assert U.expand("%i-%p", table, keep=U.INSTANCE_SPECIFIERS) == "%i-postgresql"
    with pytest.raises(ValueError):
        U.expand("%Z", table)
    t = {"name": "foo@", "unit": "foo@.service", "command": ["/bin/x", "%i", "%%i"], "environment": {"A": "%I"}}
    inst = U.instantiate(t, "a-b")
    assert inst["name"] == "foo@a-b" and inst["command"] == ["/bin/x", "a-b", "%i"]
    assert inst["environment"] == {"A": "a/b"}


# --- finding and enabling --------------------------------------------------------------------

def test_search_order_dropins_aliases_templates_masking_enablement(image):
    root = image
    put(root, LIB + "/web.service", "[Unit]\nWants=helper.service\n[Service]\nExecStart=/usr/sbin/daemon lib\n"
        "[Install]\nWantedBy=multi-user.target\nAlias=www.service\n")
    put(root, ETC + "/web.service", "[Unit]\nWants=helper.service\n[Service]\nExecStart=/usr/sbin/daemon etc\n"
        "[Install]\nWantedBy=multi-user.target\n")
    put(root, LIB + "/web.service.d/10-env.conf", "[Service]\nEnvironment=A=lib B=lib\n")
    put(root, ETC + "/web.service.d/10-env.conf", "[Service]\nEnvironment=A=etc\n")
    put(root, ETC + "/service.d/50-all.conf", "[Service]\nEnvironment=ALL=1\n")
    put(root, LIB + "/web.service.d/20-masked.conf", "[Service]\nEnvironment=NO=1\n")
    link(root, ETC + "/web.service.d/20-masked.conf", "/dev/null")
    link(root, ETC + "/web.service.d/40-loop.conf", "40-loop.conf")
    link(root, ETC + "/www.service", "/" + LIB + "/web.service")
    enable(root, "web.service")
    put(root, LIB + "/helper.service", "[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n")
    put(root, LIB + "/work@.service", "[Unit]\nDescription=worker %i\n[Service]\nExecStart=/usr/bin/app %i %I\n"
        "[Install]\nWantedBy=multi-user.target\n")
    put(root, LIB + "/work@.service.d/x.conf", "[Service]\nEnvironment=W=%i\n")
    enable(root, "work@one.service")
    enable(root, "work@two-b.service")
    put(root, LIB + "/off.service", "[Service]\nExecStart=/bin/sleep 1\n[Install]\nWantedBy=multi-user.target\n")
    put(root, LIB + "/gone.service", "[Service]\nExecStart=/bin/sleep 1\n[Install]\nWantedBy=multi-user.target\n")
    enable(root, "gone.service")
    link(root, ETC + "/gone.service", "/dev/null")
    out = loaded(root)
    web, problems, skip = spec(out, "web")
    assert web.command == ("/usr/sbin/daemon", "etc") and not problems and skip is None and web.enabled
    assert web.environment == {"A": "etc", "ALL": "1"} and web.unit == "web.service"
    assert web.source == "/" + ETC + "/web.service" and web.wants == ("helper",)
    (loop,) = web.warnings
    assert loop.startswith("/%s/web.service.d/40-loop.conf: cannot read (drop-in ignored): " % ETC)
    assert loop.endswith("Too many levels of symbolic links")
    helper, _, skip = spec(out, "helper")
    assert helper.enabled and skip is None and helper.remain_after_exit and helper.type == "oneshot"
    one, _, _ = spec(out, "work@one")
    two, _, _ = spec(out, "work@two-b")
    assert one.command == ("/usr/bin/app", "one", "one") and two.command == ("/usr/bin/app", "two-b", "two/b")
    assert two.environment == {"W": "two-b", "ALL": "1"} and two.description == "worker two-b"
    assert out.templates["work@"].command == ("/usr/bin/app", "%i", "%I")
    off, _, skip = spec(out, "off")
    assert not off.enabled and skip == "not enabled (disabled)"
    assert out.skipped.get("gone") == "masked"
    assert out.unit_files["gone.service"] == "masked" and out.unit_files["www.service"] == "alias"
    assert out.unit_files["web.service"] == "enabled" and out.unit_files["off.service"] == "disabled"
    assert out.unit_files["helper.service"] == "static" and out.unit_files["work@.service"] == "enabled"
    assert "www" in out.names["web"]
    assert out.aliases == {"www.service": "web.service"}, "PID 1 answers to the linked name too"
    assert full(root).to_dict()["aliases"] == {"www.service": "web.service"}


def test_default_target_chain_requires_dirs_and_targets_without_files(tmp_path):
    root = str(tmp_path)
    exe(root, "bin/true")
    # No systemd in the image: no target files, yet packages left their links.
    put(root, LIB + "/a.service", "[Unit]\nRequires=b.service\n[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/b.service", "[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/c.service", "[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/t.timer", "[Timer]\nOnCalendar=*-*-* 04:00:00\nOnBootSec=5min\nPersistent=yes\n")
    link(root, ETC + "/multi-user.target.wants/a.service", "/" + LIB + "/a.service")
    link(root, ETC + "/multi-user.target.requires/c.service", "/" + LIB + "/c.service")
    link(root, ETC + "/timers.target.wants/t.timer", "/" + LIB + "/t.timer")
    out = loaded(root)
    assert {s.name for s, *_ in out.services if s.enabled} == {"a", "b", "c"}
    (t,) = out.timers
    assert t.enabled and t.service == "t" and t.calendar == ("*-*-* 04:00:00",) and t.on_boot == 300
    assert t.persistent and t.accuracy == 60


def test_skip_list_keep_and_image_skip(image):
    root = image
    for name in ("systemd-journald.service", "getty@.service", "mine.service", "networking.service"):
        put(root, LIB + "/" + name, "[Service]\nExecStart=/bin/true\n")
    for name in ("systemd-journald.service", "mine.service", "networking.service"):
        enable(root, name)
    enable(root, "getty@tty1.service")
    put(root, "etc/richinit/units.keep", "# networking is ours\nnetworking\n")
    put(root, "etc/richinit/units.skip", "mine* not in containers, says the team\n")
    out = loaded(root)
    assert "systemd's own" in out.skipped["systemd-journald"]
    assert "terminals" in out.skipped["getty@tty1"]
    assert out.skipped["mine"] == "not in containers, says the team"
    assert spec(out, "networking")[0].enabled
    with Root(root) as r:
        rules = SkipRules(r)
    assert rules.reason("tmp.mount") and rules.reason("apt-daily.timer") and rules.reason("foo.service") is None


def test_service_directives(image):
    root = image
    put(root, "etc/default/app", "X=1\n")
    app = """[Unit]
Description=The app
After=network.target db.service
Requires=db.service
Before=late.service
PartOf=db.service
OnFailure=alert.service
StartLimitIntervalSec=60
StartLimitBurst=3
ConditionPathExists=/etc/app.conf
ConditionVirtualization=container
AssertPathIsDirectory=/var/lib/app
[Service]
Type=dbus
BusName=org.example.App
User=app
Group=app
SupplementaryGroups=adm  disk
Environment="GREETING=hello world" PLAIN=1
Environment=EMPTY=
EnvironmentFile=-/etc/default/app
PassEnvironment=TERM LANG
UnsetEnvironment=TMPDIR
WorkingDirectory=-~
UMask=0027
Nice=5
LimitNOFILE=1024:65536
LimitCORE=infinity
LimitMEMLOCK=64M
RuntimeDirectory=app app/sub
RuntimeDirectoryMode=0750
StateDirectory=app
RuntimeDirectoryPreserve=restart
ExecStartPre=-/usr/bin/app --check
ExecStart=/usr/bin/app --serve $OPTS
ExecStartPost=/bin/true
ExecReload=/bin/kill -HUP $MAINPID
ExecStop=/usr/bin/app --stop
ExecStopPost=/bin/true
Restart=no
Restart=on-abnormal
RestartSec=2s
RestartPreventExitStatus=255 SIGKILL
SuccessExitStatus=3 SIGUSR1
TimeoutStartSec=1min 30s
TimeoutStopSec=infinity
KillMode=mixed
KillSignal=SIGINT
SendSIGHUP=yes
SendSIGKILL=no
NotifyAccess=all
WatchdogSec=10
StandardOutput=journal
StandardError=append:/var/log/app.err
SyslogIdentifier=myapp
PrivateTmp=yes
ProtectSystem=strict
MemoryMax=1G
Frobnicate=yes
"""
    put(root, LIB + "/app.service", app)
    for name in ("db", "late", "alert"):
        put(root, LIB + "/%s.service" % name, "[Service]\nExecStart=/bin/true\n")
    enable(root, "app.service")
    out = loaded(root)
    s, problems, skip = spec(out, "app")
    assert not problems and skip is None
    assert s.type == "simple" and s.user == "app" and s.group == "app" and s.supplementary_groups == ("adm", "disk")
    assert s.environment == {"GREETING": "hello world", "PLAIN": "1", "EMPTY": ""}
    assert s.env_files == ("-/etc/default/app",) and s.pass_env == ("TERM", "LANG") and s.unset_env == ("TMPDIR",)
    assert s.workdir == "~" and s.workdir_optional and s.umask == 0o27 and s.nice == 5
    assert s.limits == {"NOFILE": [1024, 65536], "CORE": [None, None], "MEMLOCK": [64 << 20, 64 << 20]}
    assert s.directories == (M.Directory(kind="runtime", path="app", mode=0o750),
                             M.Directory(kind="runtime", path="app/sub", mode=0o750),
                             M.Directory(kind="state", path="app", mode=0o755))
    assert s.runtime_preserve == "restart"
    assert s.pre == (M.Command(argv=("/usr/bin/app", "--check"), flags="-"),)
    assert s.command == ("/usr/bin/app", "--serve", "$OPTS") and s.command_flags == ""
    assert s.post == (M.Command(argv=("/bin/true",), flags=""),)
    assert s.reload == (M.Command(argv=("/bin/kill", "-HUP", "$MAINPID"), flags=""),)
    assert s.stop_commands[0].argv == ("/usr/bin/app", "--stop") and len(s.stop_post) == 1
    assert s.restart == "on-abnormal" and s.backoff.first == 2 and s.backoff.delay(3) == 2
    assert s.restart_prevent == (255, "SIGKILL") and s.success_status == (3, "SIGUSR1")
    assert s.ready_timeout == 90 and s.stop_timeout == 0 and s.crash_loop == M.CrashLoop(starts=3, within=60)
    assert s.kill_mode == "mixed" and s.stop_signal == "SIGINT" and s.send_sighup and not s.send_sigkill
    assert s.notify_access == "all" and s.watchdog == 10 and s.private_tmp
    assert s.log == M.Log(kind="syslog", identifier="myapp")
    assert s.stderr_log == M.Log(kind="file", path="/var/log/app.err", mode="append")
    assert s.after == ("db",) and s.requires == ("db",) and s.part_of == ("db",) and s.on_failure == ("alert",)
    late, _, _ = spec(out, "late")
    assert late.after == ("app",)
    assert [(c.name, c.value, c.assert_) for c in s.conditions] == [
        ("PathExists", "/etc/app.conf", False), ("PathIsDirectory", "/var/lib/app", True)]
    text = "\n".join(s.warnings)
    src = "/" + LIB + "/app.service"
    assert "%s:%d: Type=dbus runs as Type=simple" % (src, line_of(app, "Type=")) in text
    assert "%s:%d: ProtectSystem= ignored (sandboxing" % (src, line_of(app, "ProtectSystem")) in text
    assert "%s:%d: MemoryMax= ignored (resource control" % (src, line_of(app, "MemoryMax")) in text
    assert "%s:%d: unknown directive Frobnicate=" % (src, line_of(app, "Frobnicate")) in text
    assert "BusName" not in text
    assert all(w.startswith(src + ":") for w in s.warnings)


def test_static_conditions_skip_and_asserts_fail(image):
    root = image
    put(root, LIB + "/vm-only.service", "[Unit]\nConditionVirtualization=!container\n[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/trig.service", "[Unit]\nConditionPathExists=|/nope\nConditionUser=|root\n"
        "[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/asserted.service", "[Unit]\nAssertUser=nobody\n[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/needs.service", "[Unit]\nRequires=vm-only.service\nAfter=vm-only.service\n"
        "[Service]\nExecStart=/bin/true\n")
    for n in ("vm-only", "trig", "asserted", "needs"):
        enable(root, n + ".service")
    res = full(root)
    assert res.skipped["vm-only"].startswith("condition failed: ConditionVirtualization=!container (/lib")
    trig = res.spec("trig")
    assert trig.conditions == () and "trig" in res.order[0]
    assert "asserted" in res.failed
    assert any("assertion failed: AssertUser=nobody" in p.message for p in res.errors)
    assert "needs" in [n for w in res.order for n in w]  # a condition-skipped requirement does not fail it


def test_sockets_accept_and_templates(image):
    root = image
    put(root, LIB + "/echo.socket", "[Socket]\nListenStream=127.0.0.1:7777\nAccept=yes\nMaxConnections=8\n"
        "[Install]\nWantedBy=sockets.target\n")
    put(root, LIB + "/echo@.service", "[Service]\nExecStart=/usr/bin/app %i\nStandardInput=socket\n")
    put(root, LIB + "/api.socket", "[Socket]\nListenStream=/run/api.sock\nListenDatagram=@abstract\n"
        "SocketMode=0600\nFileDescriptorName=api\nService=apid.service\n[Install]\nWantedBy=sockets.target\n")
    put(root, LIB + "/apid.service", "[Service]\nExecStart=/usr/bin/app\n")
    link(root, ETC + "/sockets.target.wants/echo.socket", "/" + LIB + "/echo.socket")
    link(root, ETC + "/sockets.target.wants/api.socket", "/" + LIB + "/api.socket")
    put(root, LIB + "/gated.socket", "[Unit]\nConditionPathExists=/etc/gate\n[Socket]\nListenStream=9\n"
        "ExecStartPre=/bin/true\nUser=nobody\n")
    link(root, ETC + "/sockets.target.wants/gated.socket", "/" + LIB + "/gated.socket")
    res = full(root)
    assert res.skipped["gated.socket"] == "condition failed: ConditionPathExists=/etc/gate"
    gated = next(s for s in res.sockets if s.name == "gated")
    assert gated.user is None and gated.warnings == (
        "/%s/gated.socket:5: ExecStartPre= in a socket unit: richinit runs no command for sockets; ignored" % LIB,
        "/%s/gated.socket:6: User= in a socket unit: richinit runs no command for sockets; ignored" % LIB)
    socks = {s.name: s for s in res.sockets}
    assert socks["echo"].accept and socks["echo"].service == "echo@" and socks["echo"].max_connections == 8
    assert socks["echo"].listen == (M.Listen(kind="stream", address="127.0.0.1:7777"),)
    api = socks["api"]
    assert api.enabled and api.service == "apid" and api.mode == 0o600 and api.fd_name == "api"
    assert api.listen == (M.Listen(kind="stream", address="/run/api.sock"), M.Listen(kind="dgram", address="@abstract"))
    assert "echo@" in res.templates and res.spec("apid").sockets == ("api",)
    echo = res.templates["echo@"]  # StandardInput=socket: the connection is stdin, and stdout by inheritance
    assert echo.stdin_socket and echo.log == M.Log(kind="socket") and echo.stderr_log is None
    assert not res.spec("apid").stdin_socket and res.spec("apid").log.kind == "syslog"
    assert res.skipped["apid"] == "activated by api.socket"
    doc = res.to_dict()
    assert json.loads(json.dumps(doc))["templates"]["echo@"]["command"] == ["/usr/bin/app", "%i"]


# --- bad input -------------------------------------------------------------------------------

def test_bad_units_are_reported_and_the_rest_loads(image, tmp_path):
    root = image
    put(root, LIB + "/good.service", "[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/syntax.service", "[Service\nExecStart=/bin/true\n[Service]\nExecStart=/bin/true 'x\n")
    put(root, LIB + "/nobin.service", "[Service]\nExecStart=/usr/bin/missing --flag\n")
    put(root, LIB + "/noname.service", "[Service]\nExecStart=missing-daemon\n")
    put(root, LIB + "/cyc-a.service", "[Unit]\nAfter=cyc-b.service\n[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/cyc-b.service", "[Unit]\nAfter=cyc-a.service\n[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/tmpl@.service", "[Service]\nExecStart=/bin/true %i\n")
    link(root, ETC + "/loop-a.service", "loop-b.service")
    link(root, ETC + "/loop-b.service", "loop-a.service")
    outside = tmp_path / "outside.service"
    outside.write_text("[Service]\nExecStart=/bin/true\n")
    link(root, ETC + "/escape.service", "../../../../../../../../" + str(outside).lstrip("/"))
    for n in ("good", "syntax", "nobin", "noname", "cyc-a", "cyc-b", "loop-a", "escape"):
        link(root, "%s/%s.service" % (WANTS, n), "/%s/%s.service" % (ETC if n in ("loop-a", "escape") else LIB, n))
    link(root, WANTS + "/tmpl@.service", "/" + LIB + "/tmpl@.service")
    res = full(root)
    errors = [str(p) for p in res.errors]
    src = "/" + LIB
    assert "%s/syntax.service:1: syntax error: invalid section header '[Service'" % src in errors
    assert "%s/syntax.service:4: ExecStart=: unbalanced quoting" % src in errors
    assert "%s/nobin.service:2: ExecStart=: /usr/bin/missing is missing or not executable" % src in errors
    assert any(e.startswith("%s/noname.service:2: ExecStart=: executable 'missing-daemon' not found" % src)
               for e in errors)
    assert any(e.startswith("%s/cyc-a.service:2: cycle: cyc-a -> cyc-b -> cyc-a" % src) for e in errors)
    assert any("symlink loop" in e and "loop-a.service" in e for e in errors)
    assert any("points outside the root" in e and "escape.service" in e for e in errors)
    assert any("tmpl@.service is a template" in e for e in errors)
    assert {"syntax", "nobin", "noname", "cyc-a", "cyc-b", "loop-a", "escape"} <= set(res.failed)
    assert res.order == [["good"]]


# --- SysV scripts ----------------------------------------------------------------------------

LSB = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          %s
# Required-Start:    $remote_fs $syslog %s
# Required-Stop:
# Default-Start:     2 3 4 5
# Short-Description: the %s daemon
### END INIT INFO
%s
case "$1" in start|stop|reload) ;; esac
"""


def test_sysv_scripts(image):
    root = image
    put(root, "etc/init.d/legacy", LSB % ("legacy", "", "legacy", "PIDFILE=/run/legacy.pid"), 0o755)
    put(root, "etc/init.d/after", LSB % ("after", "legacy", "after", ""), 0o755)
    put(root, "etc/init.d/old", "#!/bin/sh\n# pidfile: /run/old.pid\n", 0o755)
    put(root, "etc/init.d/hwclock.sh", "#!/bin/sh\n", 0o755)
    put(root, "etc/init.d/both", "#!/bin/sh\n", 0o755)
    put(root, LIB + "/both.service", "[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/rsyslog.service", "[Service]\nExecStart=/bin/true\n[Install]\nAlias=syslog.service\n")
    link(root, ETC + "/syslog.service", "/" + LIB + "/rsyslog.service")
    enable(root, "rsyslog.service")
    put(root, ETC + "/legacy.service.d/override.conf", "[Service]\nEnvironment=FROM_DROPIN=1\nTimeoutStartSec=20\n")
    for entry, name in (("S01legacy", "legacy"), ("S02after", "after"), ("S03old", "old"),
                        ("S01hwclock.sh", "hwclock.sh"), ("S01both", "both")):
        link(root, "etc/rc2.d/" + entry, "../init.d/" + name)
    link(root, "etc/rc3.d/S01nope", "../init.d/legacy")
    put(root, "etc/init.d/idle", "#!/bin/sh\n", 0o755)
    put(root, "etc/init.d/README", "not a script\n")
    res = full(root)
    assert not res.spec("idle").enabled and res.skipped["idle"] == "not enabled (generated)"
    assert res.spec("README") is None
    legacy = res.spec("legacy")
    assert legacy.origin == "sysv" and legacy.type == "forking" and legacy.pidfile == "/run/legacy.pid"
    assert legacy.command == ("/etc/init.d/legacy", "start") and legacy.remain_after_exit
    assert legacy.stop_commands == (M.Command(argv=("/etc/init.d/legacy", "stop"), flags=""),)
    assert legacy.reload[0].argv == ("/etc/init.d/legacy", "reload")
    assert legacy.environment == {"FROM_DROPIN": "1"} and legacy.ready_timeout == 20
    assert legacy.after == ("rsyslog",) and legacy.kill_mode == "process"
    after, old = res.spec("after"), res.spec("old")
    assert after.after == ("legacy", "rsyslog") and after.type == "oneshot"
    assert old.pidfile == "/run/old.pid" and set(old.after) == {"legacy", "after"}
    assert res.skipped["hwclock.sh"].startswith("hardware")
    assert res.spec("both").origin == "systemd" and res.unit_files["legacy.service"] == "generated"
    assert res.order == [["rsyslog"], ["legacy"], ["after"], ["old"]] or \
        [sorted(w) for w in res.order] == [["rsyslog"], ["legacy"], ["after"], ["old"]]


# --- the document and the defaults -----------------------------------------------------------

def test_defaults_give_way_to_enabled_units(image):
    root = image
    exe(root, "usr/sbin/sshd")
    exe(root, "usr/sbin/cron")
    put(root, LIB + "/ssh.service", "[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nAlias=sshd.service\n")
    put(root, LIB + "/cron.service", "[Service]\nExecStart=/usr/sbin/cron -f\n")
    enable(root, "ssh.service")
    before = L.load(root, L.DEFAULTS_DIR, environ={})
    assert before.spec("sshd") is not None and before.unit_files == {}
    assert "ssh" not in [s.name for s in before.services]
    assert [s.unit for s in before.sockets] == [None], "no socket unit: only the syslog service's listen:"
    res = full(root, L.DEFAULTS_DIR)
    names = {s.name for s in res.services}
    assert "sshd" not in names and res.spec("ssh").enabled
    assert res.spec("cron").origin == "systemd" and not res.spec("cron").enabled  # same name: the unit wins
    assert res.skipped["cron"] == "not enabled (static)"
    assert any("default service 'sshd' replaced by unit ssh.service" in p.message for p in res.warnings)


def test_write_document_carries_the_units(image):
    import marshal
    put(image, LIB + "/web.service", "[Service]\nExecStart=/usr/sbin/daemon\n")
    enable(image, "web.service")
    r, w = os.pipe()
    assert L.write_document(w, image, units=True) == 0
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    doc = marshal.loads(data)
    assert any(s["name"] == "web" and s["unit"] == "web.service" for s in doc["services"])
    assert doc["unit_files"]["web.service"] == "enabled"


# --- rich inspect ----------------------------------------------------------------------------

def test_rich_inspect_directory_and_tarball(image, tmp_path):
    root = image
    put(root, LIB + "/web.service", "[Service]\nExecStart=/usr/sbin/daemon\nProtectHome=yes\n")
    put(root, LIB + "/bad.service", "[Service]\nExecStart=/usr/bin/none\n")
    enable(root, "web.service")
    enable(root, "bad.service")
    marker = tmp_path / "executed"
    put(root, "usr/sbin/daemon", "#!/bin/sh\ntouch %s\n" % marker, 0o755)
    rich = [sys.executable, "-m", "runtime_hooks.cli"]
    out = subprocess.run(rich + ["inspect", root], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "  web                      systemd  web.service" in out.stdout
    assert "/lib/systemd/system/web.service:3: ProtectHome= ignored" in out.stdout
    assert "/lib/systemd/system/bad.service:2: ExecStart=: /usr/bin/none is missing" in out.stdout
    tarball = str(tmp_path / "image.tar.gz")
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(root, arcname=".")
    out = subprocess.run(rich + ["inspect", tarball, "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert "web" in rep["start"][-1] and {"name": "web", "unit": "web.service"}.items() <= rep["services"][-1].items()
    assert any("bad.service:2" in e for e in rep["errors"])
    assert not marker.exists()
    out = subprocess.run(rich + ["inspect", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 125 and out.stderr.count("\n") == 1 and "no such directory or tarball" in out.stderr


def test_specifiers_expand_per_word_and_static_virtualization(image):
    root = image
    put(root, LIB + "/say@.service", "[Unit]\nConditionVirtualization=podman\n[Service]\n"
        "ExecStart=/usr/bin/app %I \"%i\" x%%y\nEnvironment=WHO=%I\n")
    link(root, WANTS + "/say@a\\x20b.service", "/" + LIB + "/say@.service")
    out = loaded(root, {"container": "podman"})
    s, problems, skip = spec(out, "say@a\\x20b")
    assert not problems and skip is None
    assert s.command == ("/usr/bin/app", "a b", "a\\x20b", "x%y") and s.environment == {"WHO": "a b"}
    out = loaded(root, {"container": "docker"})
    assert spec(out, "say@a\\x20b")[2].startswith("condition failed: ConditionVirtualization=podman")


def test_requires_does_not_order_and_crossed_aliases_end(image):
    root = image
    put(root, LIB + "/a.service", "[Unit]\nRequires=b.service\n[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/b.service", "[Unit]\nAfter=a.service\n[Service]\nExecStart=/bin/true\n")
    enable(root, "a.service")
    put(root, LIB + "/x.service", "[Service]\nExecStart=/bin/true\n")
    put(root, LIB + "/y.service", "[Service]\nExecStart=/bin/true\n")
    link(root, ETC + "/x.service", "/" + LIB + "/y.service")
    link(root, ETC + "/y.service", "/" + LIB + "/x.service")
    res = full(root)
    assert res.order == [["a"], ["b"]] and res.spec("a").requires == ("b",)
    assert res.unit_files["x.service"] == "alias" and res.unit_files["y.service"] == "alias"


def test_pid1_instantiates_a_template_from_the_document(image):
    """The document's template keeps %i; the supervisor fills it in for each instance it starts."""
    from richinit.supervisor import Supervisor
    from tests.test_svc_units import _Loop, _Ops
    put(image, LIB + "/say@.service", "[Service]\nExecStart=/usr/bin/app %i %I\nEnvironment=WHO=%i\n")
    doc = full(image).to_dict()
    assert doc["templates"]["say@"]["command"] == ["/usr/bin/app", "%i", "%I"]
    sup = Supervisor(_Loop(), _Ops(), control_dir="/nonexistent")
    sup.apply(doc)
    launched = []
    sup.launch = lambda s, command, main: launched.append((s.spec, list(command.argv))) or 7000
    sup.cleanup = lambda s, restarting: None
    assert sup.start_instance("say@", "say@a-b")
    spec, command = launched[0]
    assert spec.name == "say@a-b" and spec.unit == "say@a-b.service" and spec.environment == {"WHO": "a-b"}
    assert command[-2:] == ["a-b", "a/b"]


def test_pid1_survives_an_instance_that_cannot_start(image):
    from richinit.supervisor import Supervisor
    from tests.test_svc_units import _Loop, _Ops
    put(image, LIB + "/say@.service", "[Service]\nExecStart=/usr/bin/app %i\n")
    sup = Supervisor(_Loop(), _Ops(), control_dir="/nonexistent")
    sup.apply(full(image).to_dict())

    def launch(s, command, main):
        raise OSError(2, "No such file or directory")
    sup.launch = launch
    sup.cleanup = lambda s, restarting: None
    sup.start_instance("say@", "say@x")
    assert "say@x" not in sup.services or sup.services["say@x"].state == S.FAILED


SVC = "[Unit]\n%s\n[Service]\nExecStart=/bin/sleep 1\n"


def test_default_dependencies_order_services_after_the_early_targets_members(image):
    """DefaultDependencies=yes: after sysinit.target and basic.target, so after what those are
    ordered after (early services that say Before=sysinit.target); a target is ordered after what
    it pulls unless that unit has DefaultDependencies=no or is after the target itself."""
    put(image, LIB + "/basic.target", "[Unit]\nRequires=sysinit.target\nWants=sockets.target timers.target\n"
        "After=sysinit.target sockets.target timers.target\n")
    put(image, LIB + "/sysinit.target", "[Unit]\n")
    put(image, LIB + "/early.service", SVC % "DefaultDependencies=no\nBefore=sysinit.target")
    put(image, LIB + "/loose.service", SVC % "DefaultDependencies=no")
    put(image, LIB + "/setup.service", SVC % "Description=in basic.target, default dependencies")
    put(image, LIB + "/prep.service", SVC % "Before=setup.service")
    put(image, LIB + "/web.service", SVC % "After=db.service")
    put(image, LIB + "/db.service", SVC % "")
    put(image, LIB + "/raw.service", SVC % "DefaultDependencies=no")
    enable(image, "early.service", "sysinit.target")
    enable(image, "loose.service", "sysinit.target")
    enable(image, "setup.service", "basic.target")
    for name in ("prep.service", "web.service", "db.service", "raw.service"):
        enable(image, name)
    out = loaded(image)
    names = ("early", "loose", "setup", "prep", "web", "db", "raw")
    after = {n: spec(out, n)[0].after for n in names}
    assert after == {"early": (), "loose": (), "setup": ("early", "prep"), "prep": ("early",),
                     "web": ("db", "early"), "db": ("early",), "raw": ()}
    res = full(image)
    assert sorted(res.order[0]) == ["early", "loose", "raw"]


def test_default_dependencies_without_target_files(tmp_path):
    """An image whose packages installed units but not systemd: the targets systemd would have
    still order (basic.target after sysinit.target)."""
    root = str(tmp_path / "root")
    exe(root, "bin/sleep")
    put(root, LIB + "/early.service", SVC % "DefaultDependencies=no\nBefore=sysinit.target")
    put(root, LIB + "/web.service", SVC % "")
    enable(root, "early.service", "sysinit.target")
    enable(root, "web.service")
    out = loaded(root)
    assert spec(out, "web")[0].after == ("early",) and spec(out, "early")[0].after == ()


def test_socket_units_a_service_requires_or_wants_start_with_it(image):
    put(image, LIB + "/app.service", "[Unit]\nRequires=app.socket\nWants=admin.socket other.service\n"
        "After=app.socket\n[Service]\nExecStart=/usr/bin/app\n")
    put(image, LIB + "/app.socket", "[Socket]\nListenStream=/run/app.sock\n")
    put(image, LIB + "/admin.socket", "[Socket]\nListenStream=/run/admin.sock\nService=app.service\n")
    put(image, LIB + "/other.service", "[Service]\nExecStart=/usr/bin/app\n")
    out = loaded(image)
    app, problems, skip = spec(out, "app")
    assert app.socket_deps == ("app", "admin") and not app.enabled and not problems
    assert app.requires == () and app.wants == ("other",), "socket units are no service dependencies"
    assert {s.name: s.enabled for s in out.sockets} == {"app": False, "admin": False}
