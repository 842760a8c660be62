"""Issue 10's "Must show" as one table, checked against every box: richinit (through `rich run` and
through rich-runtime) and real systemd (podman --systemd=always). An expectation passes under
systemd, so what richinit must do is systemd's own behaviour; `only` restricts the few that
cannot apply to both (no systemd-* process is about richinit).

Each check gets a Box (conftest.py): box.exec(argv), box.sh(script), box.shared_file(name).
Checks that change state (stop, restart, kill, enable, dpkg -i) come after those that only look.
"""

from tests.support.wait import wait_until


class Expectation:
    def __init__(self, id, what, check, only=None):
        self.id, self.what, self.check, self.only = id, what, check, only

    def __repr__(self):
        return self.id


def out(box, *argv):
    r = box.exec(list(argv))
    return r.stdout.strip()


def ok(box, *argv):
    r = box.exec(list(argv))
    assert r.returncode == 0, "%s: exit %d: %s %s" % (" ".join(argv), r.returncode, r.stdout[-800:], r.stderr[-800:])
    return r.stdout


def main_pid(box, unit):
    v = out(box, "systemctl", "show", "-p", "MainPID", "--value", unit)
    return int(v) if v.isdigit() else 0


def missing(box, path):
    return box.exec(["test", "-e", path]).returncode != 0


def content(box, path):
    return box.exec(["cat", path]).stdout.strip()


# ---------------------------------------------------------------- every enabled service runs and answers

def nginx(box):
    assert wait_until(lambda: "nginx" in box.exec(["curl", "-s", "-I", "http://127.0.0.1/"]).stdout, 10)


def redis(box):
    assert ok(box, "redis-cli", "ping").strip() == "PONG"
    assert out(box, "systemctl", "is-active", "redis-server") == "active"  # Type=notify: ready told


def memcached(box):
    assert "VERSION" in box.sh("printf 'version\\r\\nquit\\r\\n' | nc -q 2 127.0.0.1 11211").stdout


def sshd(box):
    assert wait_until(lambda: box.sh("nc -w 2 127.0.0.1 22 </dev/null").stdout.startswith("SSH-2.0"), 10)


def cron(box):
    ok(box, "pgrep", "-x", "cron")


def rsyslog(box):
    ok(box, "logger", "-t", "vmtest", "syslog-reaches-the-file")
    assert wait_until(lambda: "syslog-reaches-the-file" in box.exec(["cat", "/var/log/syslog"]).stdout, 10)


def postgresql(box):
    def answers():
        r = box.exec(["runuser", "-u", "postgres", "--", "psql", "-tAc", "select 40 + 2"])
        return r.stdout.strip() == "42"
    assert wait_until(answers, 20, step=0.2), box.exec(["systemctl", "status", "postgresql@15-main"]).stdout


def user_envfile_runtimedir(box):
    assert wait_until(lambda: content(box, "/run/envuser/out") == "hello-env vmapp", 10)
    assert out(box, "stat", "-c", "%U %a", "/run/envuser") == "vmapp 755"


def template_instances(box):
    assert content(box, "/run/tpl-one") == "one" and content(box, "/run/tpl-two") == "two"
    assert out(box, "systemctl", "is-active", "tpl@one", "tpl@two").split() == ["active", "active"]


def dropin(box):
    assert content(box, "/run/dropper") == "from-dropin"


def sysv_script(box):
    assert not missing(box, "/run/legacy-started")
    ok(box, "/etc/init.d/legacy", "status")


def oneshot_remain(box):
    assert not missing(box, "/run/setup-done")
    r = box.exec(["systemctl", "is-active", "setup"])
    assert (r.returncode, r.stdout) == (0, "active\n")
    assert "Active: active (exited)" in box.exec(["systemctl", "status", "setup"]).stdout


def requires_failure(box):
    assert missing(box, "/run/needs-base-ran")
    assert out(box, "systemctl", "is-active", "needs-base") != "active"
    r = box.exec(["systemctl", "is-failed", "base-fail"])
    assert (r.returncode, r.stdout) == (0, "failed\n")


def masked_disabled(box):
    assert missing(box, "/run/masked-ran") and missing(box, "/run/disabled-ran")
    r = box.exec(["systemctl", "is-enabled", "masked"])
    assert (r.returncode, r.stdout) == (1, "masked\n")
    r = box.exec(["systemctl", "is-enabled", "disabled"])
    assert (r.returncode, r.stdout) == (1, "disabled\n")
    assert out(box, "systemctl", "is-active", "masked", "disabled").split() == ["inactive", "inactive"]


def no_systemd_process(box):
    comms = box.exec(["ps", "-eo", "comm="]).stdout.split()
    assert comms and not [c for c in comms if c.startswith("systemd")], comms


def socket_accept_no(box):
    assert out(box, "systemctl", "is-active", "pong.socket") == "active"
    assert out(box, "systemctl", "is-active", "pong.service") == "inactive", "started before any connection"
    assert box.exec(["nc", "-w", "5", "127.0.0.1", "7001"]).stdout == "pong-from-fd3"
    assert out(box, "systemctl", "is-active", "pong.service") == "active"


def socket_accept_yes(box):
    for _ in range(2):
        assert box.exec(["nc", "-w", "5", "127.0.0.1", "7002"]).stdout.strip() == "hello-accept"


def timer(box):
    assert wait_until(lambda: len(content(box, "/run/tick.log").split()) >= 2, 15, step=0.2)
    assert "tick.timer" in box.exec(["systemctl", "list-timers", "--all", "--no-pager"]).stdout


def watchdog(box):
    assert wait_until(lambda: len(content(box, "/run/dog.starts").split()) >= 2, 20, step=0.2), \
        box.exec(["systemctl", "status", "dog"]).stdout


# ---------------------------------------------------------------- systemctl and service

def status_output(box):
    r = box.exec(["systemctl", "status", "nginx", "--no-pager"])
    assert r.returncode == 0
    assert "Loaded: loaded (/lib/systemd/system/nginx.service; enabled; preset: enabled)" in r.stdout
    assert "Active: active (running) since " in r.stdout
    r = box.exec(["systemctl", "status", "no-such-unit"])
    assert (r.returncode, r.stderr) == (4, "Unit no-such-unit.service could not be found.\n")


def is_active(box):
    r = box.exec(["systemctl", "is-active", "redis-server", "memcached.service"])
    assert (r.returncode, r.stdout) == (0, "active\nactive\n")
    r = box.exec(["systemctl", "is-active", "no-such-unit"])
    assert r.returncode == 3 and r.stdout == "inactive\n"
    assert box.exec(["systemctl", "-q", "is-enabled", "ssh"]).returncode == 0


def service_status(box):
    r = box.exec(["service", "cron", "status"])
    assert r.returncode == 0 and "Active: active (running)" in r.stdout


def stop_start_restart(box):
    ok(box, "systemctl", "stop", "memcached")
    r = box.exec(["systemctl", "is-active", "memcached"])
    assert (r.returncode, r.stdout) == (3, "inactive\n")
    ok(box, "systemctl", "start", "memcached")
    first = main_pid(box, "memcached")
    assert first and out(box, "systemctl", "is-active", "memcached") == "active"
    ok(box, "systemctl", "restart", "memcached")
    assert main_pid(box, "memcached") not in (0, first)
    memcached(box)


def daemon_reload(box):
    before = main_pid(box, "nginx")
    ok(box, "systemctl", "daemon-reload")
    assert main_pid(box, "nginx") == before, "a reload restarts nothing that did not change"
    nginx(box)


def restart_on_failure(box):
    pid = main_pid(box, "crashy")
    assert pid
    box.exec(["kill", "-9", str(pid)])
    assert wait_until(lambda: main_pid(box, "crashy") not in (0, pid), 5), "not back after RestartSec=1"
    assert out(box, "systemctl", "show", "-p", "NRestarts", "--value", "crashy") == "1"


def enable_disable(box):
    ok(box, "systemctl", "disable", "crashy")
    r = box.exec(["systemctl", "is-enabled", "crashy"])
    assert (r.returncode, r.stdout) == (1, "disabled\n")
    assert missing(box, "/etc/systemd/system/multi-user.target.wants/crashy.service")
    assert out(box, "systemctl", "is-active", "crashy") == "active", "disable does not stop"
    ok(box, "systemctl", "enable", "crashy")
    assert out(box, "readlink", "/etc/systemd/system/multi-user.target.wants/crashy.service") == \
        "/etc/systemd/system/crashy.service"


def alias(box):
    """sshd.service is Debian's alias of ssh.service (a link in /etc/systemd/system)."""
    r = box.exec(["systemctl", "status", "sshd", "--no-pager"])
    assert r.returncode == 0 and r.stdout.startswith("● ssh.service - OpenBSD Secure Shell server\n"), r.stdout
    assert out(box, "systemctl", "is-active", "sshd") == "active"
    assert out(box, "systemctl", "show", "-p", "Id", "--value", "sshd") == "ssh.service"
    r = box.exec(["systemctl", "is-enabled", "sshd"])
    assert (r.returncode, r.stdout) == (0, "alias\n"), (r.returncode, r.stdout)
    r = box.exec(["service", "sshd", "status"])
    assert r.returncode == 0 and "ssh.service" in r.stdout and "Active: active (running)" in r.stdout, r.stdout
    before = main_pid(box, "ssh")
    ok(box, "systemctl", "restart", "sshd")
    assert main_pid(box, "ssh") not in (0, before)
    ok(box, "systemctl", "stop", "sshd")
    r = box.exec(["systemctl", "is-active", "ssh"])
    assert (r.returncode, r.stdout) == (3, "inactive\n")
    ok(box, "systemctl", "start", "sshd.service")
    sshd(box)


def status_loaded_lines(box):
    r = box.exec(["systemctl", "status", "dropper", "--no-pager"])
    lines = r.stdout.splitlines()
    assert lines[1:4] == ["     Loaded: loaded (/etc/systemd/system/dropper.service; enabled; preset: enabled)",
                          "    Drop-In: /etc/systemd/system/dropper.service.d",
                          "             └─override.conf"], r.stdout
    r = box.exec(["systemctl", "status", "tick.service", "--no-pager"])
    assert r.stdout.splitlines()[1] == "     Loaded: loaded (/etc/systemd/system/tick.service; static)", r.stdout
    r = box.exec(["systemctl", "status", "masked", "--no-pager"])
    assert r.returncode == 3 and r.stdout.splitlines()[:3] == [
        "○ masked.service", "     Loaded: masked (Reason: Unit masked.service is masked.)",
        "     Active: inactive (dead)"], r.stdout


def timer_stop_start(box):
    ok(box, "systemctl", "stop", "tick.timer")
    r = box.exec(["systemctl", "is-active", "tick.timer"])
    assert (r.returncode, r.stdout) == (3, "inactive\n")
    assert "tick.timer" not in out(box, "systemctl", "list-timers", "--no-pager")
    assert "tick.timer" in out(box, "systemctl", "list-timers", "--all", "--no-pager"), "inactive: with --all"
    r = box.exec(["systemctl", "status", "tick.timer", "--no-pager"])
    assert r.returncode == 3 and "Active: inactive (dead)" in r.stdout, r.stdout
    ok(box, "systemctl", "start", "tick.timer")
    assert out(box, "systemctl", "is-active", "tick.timer") == "active"
    assert "tick.timer" in out(box, "systemctl", "list-timers", "--no-pager")


def socket_stop_start(box):
    ok(box, "systemctl", "stop", "greet.socket")
    r = box.exec(["systemctl", "is-active", "greet.socket"])
    assert (r.returncode, r.stdout) == (3, "inactive\n")
    assert box.exec(["nc", "-w", "2", "127.0.0.1", "7002"]).returncode != 0, "nobody listens"
    ok(box, "systemctl", "start", "greet.socket")
    assert out(box, "systemctl", "is-active", "greet.socket") == "active"
    socket_accept_yes(box)


def socket_not_enabled(box):
    """Debian 12's ssh.socket is not enabled: inactive, sshd binds port 22 itself."""
    r = box.exec(["systemctl", "is-active", "ssh.socket"])
    assert (r.returncode, r.stdout) == (3, "inactive\n")
    sshd(box)
    assert out(box, "systemctl", "is-active", "needsock.socket") == "inactive"
    ok(box, "systemctl", "start", "needsock")
    assert out(box, "systemctl", "is-active", "needsock.socket", "needsock").split() == ["active", "active"]
    assert wait_until(lambda: content(box, "/run/needsock.fds") == "1 needsock.socket", 10), \
        content(box, "/run/needsock.fds")


def remove_on_stop(box):
    assert not missing(box, "/run/rmsock.sock") and not missing(box, "/run/keepfifo")
    ok(box, "systemctl", "stop", "rmsock.socket", "keepfifo.socket")
    assert missing(box, "/run/rmsock.sock"), "RemoveOnStop=yes"
    assert not missing(box, "/run/keepfifo"), "RemoveOnStop=no (the default) leaves it"
    ok(box, "systemctl", "start", "rmsock.socket", "keepfifo.socket")
    assert not missing(box, "/run/rmsock.sock")


def idle_cap(box):
    """Type=idle: delayed while another start job runs, 5 s at most (systemd's IDLE_TIMEOUT_USEC)."""
    ok(box, "systemctl", "start", "--no-block", "slowready.service", "idler.service")
    assert wait_until(lambda: content(box, "/run/idler-ran") != "", 30, step=0.2)
    assert missing(box, "/run/slowready-ready"), "idle did not wait for the 20 s start job to end"
    waited = float(content(box, "/run/idler-ran")) - float(content(box, "/run/slowready-start"))
    assert waited >= 4.0, "idle started %.1f s after the other start began, not ~5 s" % waited
    assert out(box, "systemctl", "is-active", "slowready") == "activating"


def dpkg_install(box):
    r = box.exec(["dpkg", "-i", "/var/log/vmtest/hello-pkg.deb"], timeout=120)
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-1500:])
    assert wait_until(lambda: not missing(box, "/run/hello-pkg-ran"), 10)
    assert out(box, "systemctl", "is-active", "hello-pkg") == "active"
    assert out(box, "systemctl", "is-enabled", "hello-pkg") == "enabled"


EXPECTATIONS = [
    Expectation("nginx-answers", "nginx serves http on 127.0.0.1:80", nginx),
    Expectation("redis-answers", "redis-server (Type=notify) answers PING", redis),
    Expectation("memcached-answers", "memcached answers version", memcached),
    Expectation("sshd-answers", "sshd greets on port 22", sshd),
    Expectation("cron-runs", "cron runs", cron),
    Expectation("rsyslog-logs", "rsyslog writes logger's line to /var/log/syslog", rsyslog),
    Expectation("psql-reaches-postgresql", "psql reaches postgresql@15-main", postgresql),
    Expectation("user-envfile-runtimedir", "User=, EnvironmentFile=, RuntimeDirectory=", user_envfile_runtimedir),
    Expectation("template-two-instances", "tpl@one and tpl@two run", template_instances),
    Expectation("dropin-applies", "a drop-in's ExecStart= replaces the fragment's", dropin),
    Expectation("sysv-script-runs", "a SysV-only script linked from rc2.d runs", sysv_script),
    Expectation("oneshot-remain-after-exit", "a oneshot with RemainAfterExit is active (exited)", oneshot_remain),
    Expectation("requires-failure-propagates", "a failed Requires= keeps its dependent down", requires_failure),
    Expectation("masked-disabled-not-run", "masked and disabled units do not run", masked_disabled),
    Expectation("no-systemd-process", "no systemd-* process in the container", no_systemd_process,
                only="richinit"),
    Expectation("socket-accept-no", "Accept=no: the service starts at the first connection with fd 3",
                socket_accept_no),
    Expectation("socket-accept-yes", "Accept=yes: an instance per connection on stdin/stdout", socket_accept_yes),
    Expectation("timer-fires", "tick.timer fires its service on schedule", timer),
    Expectation("watchdog-restarts", "a silent WatchdogSec= service is killed and restarted", watchdog),
    Expectation("systemctl-status", "status output and exit codes", status_output),
    Expectation("systemctl-is-active", "is-active / is-enabled answers and exit codes", is_active),
    Expectation("service-status", "service cron status", service_status),
    Expectation("systemctl-stop-start-restart", "stop, start, restart memcached", stop_start_restart),
    Expectation("systemctl-daemon-reload", "daemon-reload restarts nothing unchanged", daemon_reload),
    Expectation("restart-on-failure-kill-9", "kill -9 of a Restart=on-failure service: back", restart_on_failure),
    Expectation("systemctl-enable-disable", "disable/enable edit the wants links", enable_disable),
    Expectation("systemctl-alias", "sshd (an alias) reaches ssh.service in every verb and service(8)", alias),
    Expectation("systemctl-status-loaded", "the Loaded: and Drop-In: lines, masked", status_loaded_lines),
    Expectation("systemctl-timer-stop-start", "stop disarms a timer, start arms it", timer_stop_start),
    Expectation("systemctl-socket-stop-start", "stop closes a socket, start listens again", socket_stop_start),
    Expectation("socket-not-enabled", "a socket unit not enabled is inactive until a service requiring it starts",
                socket_not_enabled),
    Expectation("socket-remove-on-stop", "RemoveOnStop=yes takes the socket file, the default leaves it",
                remove_on_stop),
    Expectation("type-idle-5s-cap", "Type=idle waits for a running start job 5 s at most", idle_cap),
    Expectation("dpkg-i-starts-service", "dpkg -i of a package with a unit starts it", dpkg_install),
]
