"""svc.Service with what systemd units ask (spec.unit set), against a fake host: systemd.service(5)'s
Restart= table row by row, the ExecXxx= phases, KillMode, sd_notify, the watchdog, reload; and the
supervisor's run-time dependencies (Requires, BindsTo, PartOf, Requisite, Conflicts, OnFailure)
with its OS side faked."""

import pytest

from richinit import svc as S
from richinit.services.model import Command, Condition, Directory, Log
from richinit.services.spec import Backoff, CrashLoop, Ready, ServiceSpec
from tests.test_svc import FakeHost

TERM, KILL, HUP, ABRT, CONT = 15, 9, 1, 6, 18


def unit(**kw):
    kw.setdefault("name", "web")
    kw.setdefault("unit", kw["name"] + ".service")
    kw.setdefault("command", ("/usr/sbin/web", "-f"))
    kw.setdefault("command_flags", "")
    kw.setdefault("restart", "never")
    kw.setdefault("backoff", Backoff(initial=0.1, max=0.1, factor=1, first=0.1))  # RestartSec=100ms
    kw.setdefault("crash_loop", CrashLoop(starts=5, within=10))  # StartLimitBurst/IntervalSec
    kw.setdefault("ready_timeout", 90)
    kw.setdefault("stop_timeout", 90)
    return ServiceSpec(**kw)


def up(host=None, **kw):
    host = host or FakeHost()
    s = S.Service(unit(**kw), host)
    s.start()
    s.deps_ready()
    return s, host


def cmd(*argv, flags=""):
    return Command(argv=argv, flags=flags)


# ---- systemd.service(5): "Exit causes and the effect of the Restart= settings" ------------------

RESTARTS = ("no", "always", "on-success", "on-failure", "on-abnormal", "on-abort", "on-watchdog")
TABLE = {  # exit cause -> the Restart= values marked X in the table
    "clean exit code or signal": {"always", "on-success"},
    "unclean exit code": {"always", "on-failure"},
    "unclean signal": {"always", "on-failure", "on-abnormal", "on-abort"},
    "timeout": {"always", "on-failure", "on-abnormal"},
    "watchdog": {"always", "on-failure", "on-abnormal", "on-watchdog"},
}


def _cause(s, h, cause, variant):
    if cause == "clean exit code or signal":
        s.on_exit(s.pid, 0 if variant == 0 else 128 + TERM)
    elif cause == "unclean exit code":
        s.on_exit(s.pid, 3)
    elif cause == "unclean signal":
        s.on_exit(s.pid, 128 + (KILL if variant == 0 else 11))
    elif cause == "timeout":
        h.advance(s, 91)  # TimeoutStopSec... no: the start timeout of a notify service never ready
        s.on_exit(s.pid, 128 + TERM)
    elif cause == "watchdog":
        h.advance(s, 2)
        assert s.state == S.STOPPING and (s.pid, ABRT) in h.signals
        s.on_exit(s.pid, 128 + ABRT)


@pytest.mark.parametrize("cause", list(TABLE))
@pytest.mark.parametrize("restart", RESTARTS)
@pytest.mark.parametrize("variant", [0, 1])
def test_restart_table(cause, restart, variant):
    kw = {"restart": "never" if restart == "no" else restart}
    if cause == "timeout":
        kw.update(type="notify", ready=Ready(kind="notify"))
    if cause == "watchdog":
        kw.update(watchdog=1.0)
    s, h = up(**kw)
    first = len(h.launched)
    _cause(s, h, cause, variant)
    assert s.result == {"clean exit code or signal": "success", "unclean exit code": "exit-code",
                        "unclean signal": "signal", "timeout": "timeout", "watchdog": "watchdog"}[cause]
    expect = restart in TABLE[cause]
    if expect:
        assert s.state == S.BACKOFF and s.active_state() == "activating" and s.sub_state() == "auto-restart"
        h.advance(s, 0.1)
        assert len(h.launched) == first + 1 and s.restarts == 1
    else:
        assert s.state in (S.DOWN, S.FAILED) and len(h.launched) == first
        clean = cause == "clean exit code or signal"
        assert s.active_state() == ("inactive" if clean else "failed")


def test_a_requested_stop_never_restarts():
    s, h = up(restart="always")
    s.stop()
    s.on_exit(s.pid, 1)
    assert s.state == S.FAILED and s.result == "exit-code", "exit 1 after SIGTERM is a failure for systemd"
    assert len(h.launched) == 1


def test_success_exit_status_codes_and_signal_names():
    s, h = up(success_status=(42, "SIGUSR1"), restart="on-failure")
    s.on_exit(s.pid, 42)
    assert s.state == S.DOWN and s.result == "success"
    s, h = up(success_status=(42, "SIGUSR1"), restart="on-failure")
    s.on_exit(s.pid, 128 + 10)
    assert s.state == S.DOWN and s.result == "success"


def test_restart_prevent_and_force_exit_status():
    s, h = up(restart="always", restart_prevent=(7, "SIGKILL"))
    s.on_exit(s.pid, 7)
    assert s.state == S.FAILED
    s, h = up(restart="always", restart_prevent=(7, "SIGKILL"))
    s.on_exit(s.pid, 128 + KILL)
    assert s.state == S.FAILED
    s, h = up(restart="never", restart_force=(0,))
    s.on_exit(s.pid, 0)
    assert s.state == S.BACKOFF


def test_restart_sec_is_waited_before_every_restart():
    s, h = up(restart="always", crash_loop=None)
    for n in range(1, 5):
        s.on_exit(s.pid, 1)
        assert s.state == S.BACKOFF and s.deadline - h.t == pytest.approx(0.1)
        h.advance(s, 0.1)
        assert s.state == S.UP and s.restarts == n


def test_start_limit_hit_fails_the_unit():
    s, h = up(restart="always", crash_loop=CrashLoop(starts=3, within=10))
    for _ in range(5):
        s.on_exit(s.pid, 1)
        h.advance(s, 0.1)
    assert s.state == S.FAILED and s.result == "start-limit-hit" and len(h.launched) == 3
    s.start()
    s.deps_ready()
    assert s.state == S.FAILED, "a manual start within the interval is refused too"
    s.reset_failed()
    assert s.state == S.DOWN and s.result == "success"
    s.start()
    s.deps_ready()
    assert s.state == S.UP


# ---- ExecCondition, conditions, ExecStartPre/Post ---------------------------------------------

@pytest.mark.parametrize("code,state,active", [(1, S.DOWN, "inactive"), (254, S.DOWN, "inactive"),
                                                (255, S.FAILED, "failed"), (128 + KILL, S.FAILED, "failed")])
def test_exec_condition(code, state, active):
    s, h = up(exec_condition=(cmd("/bin/check"),))
    assert s.state == S.CONDITION and s.sub_state() == "condition" and h.launched[-1][0] == ["/bin/check"]
    s.on_exit(h.last_pid, code)
    assert s.state == state and s.active_state() == active and len(h.launched) == 1


def test_exec_condition_0_goes_on():
    s, h = up(exec_condition=(cmd("/bin/check"),))
    s.on_exit(h.last_pid, 0)
    assert s.state == S.UP and h.launched[-1][1] is True


def test_condition_false_skips_and_assert_fails():
    h = FakeHost()
    h.conditions = ("ConditionPathExists=/etc/web.conf", False)
    s, _ = up(h, conditions=(Condition(name="PathExists", value="/etc/web.conf"),))
    assert s.state == S.DOWN and "ConditionPathExists" in s.reason and not h.launched
    h.conditions = ("AssertPathExists=/etc/web.conf", True)
    s, _ = up(h, conditions=(Condition(name="PathExists", value="/etc/web.conf", assert_=True),))
    assert s.state == S.FAILED and s.result == "assert"


def test_pre_with_dash_ignores_failure_and_flags_reach_the_host():
    s, h = up(pre=(cmd("/bin/false", flags="-"), cmd("/bin/prep", flags="+")))
    s.on_exit(h.last_pid, 1)
    assert s.state == S.PRE and h.launched[-1][0] == ["/bin/prep"]
    s.on_exit(h.last_pid, 0)
    assert s.state == S.UP and h.flags == ["-", "+", ""]


def test_start_post_runs_after_ready_and_its_failure_stops():
    s, h = up(type="notify", ready=Ready(kind="notify"), post=(cmd("/bin/post"),))
    main = s.pid
    assert s.state == S.STARTING
    assert s.on_notify(main, {"READY": "1"})
    assert s.state == S.POST and s.sub_state() == "start-post" and h.launched[-1][0] == ["/bin/post"]
    s.on_exit(h.last_pid, 0)
    assert s.state == S.UP
    s, h = up(post=(cmd("/bin/post"),))
    s.on_exit(h.last_pid, 2)
    assert s.state == S.STOPPING and (s.pid, TERM) in h.signals
    s.on_exit(s.pid, 128 + TERM)
    assert s.state == S.FAILED and s.result == "exit-code"


# ---- stop: ExecStop, KillMode, ExecStopPost ---------------------------------------------------

def test_exec_stop_runs_instead_of_the_first_signal_then_kill_then_stop_post():
    s, h = up(stop_commands=(cmd("/bin/web-stop"),), stop_post=(cmd("/bin/cleanup"),))
    main = s.pid
    s.stop()
    assert s.sub_state() == "stop" and h.launched[-1][0] == ["/bin/web-stop"] and not h.signals
    s.on_exit(main, 0)  # the daemon obeyed ExecStop
    assert s.state == S.STOPPING and h.launched[-1][0] == ["/bin/web-stop"]
    s.on_exit(h.last_pid, 0)
    assert s.state == S.STOP_POST and h.launched[-1][0] == ["/bin/cleanup"] and not h.signals
    s.on_exit(h.last_pid, 0)
    assert s.state == S.DOWN and s.result == "success"


def test_exec_stop_leaves_the_main_process_running_then_kill_signal():
    s, h = up(stop_commands=(cmd("/bin/web-stop"),), stop_signal="SIGINT")
    main = s.pid
    s.stop()
    s.on_exit(h.last_pid, 0)
    assert (main, 2) in h.signals and s.sub_state() == "stop-sigterm"
    s.on_exit(main, 130)
    assert s.state == S.DOWN


def test_exec_stop_post_runs_after_a_failure_too():
    s, h = up(stop_post=(cmd("/bin/cleanup"),), restart="never")
    s.on_exit(s.pid, 3)
    assert s.state == S.STOP_POST and h.launched[-1][0] == ["/bin/cleanup"]
    s.on_exit(h.last_pid, 0)
    assert s.state == S.FAILED and s.last_exit == 3


def test_exec_stop_runs_when_the_main_process_exits_on_its_own():
    s, h = up(stop_commands=(cmd("/bin/web-stop"),), restart="on-failure")
    s.on_exit(s.pid, 1)
    assert s.state == S.STOPPING and h.launched[-1][0] == ["/bin/web-stop"]
    s.on_exit(h.last_pid, 0)
    assert s.state == S.BACKOFF


def test_exec_stop_not_run_when_the_start_failed():
    s, h = up(type="notify", ready=Ready(kind="notify"), stop_commands=(cmd("/bin/web-stop"),), ready_timeout=5)
    h.advance(s, 5)
    assert s.state == S.STOPPING and h.launched[-1][0] != ["/bin/web-stop"] and (s.pid, TERM) in h.signals


@pytest.mark.parametrize("mode", ["control-group", "mixed", "process", "none"])
def test_kill_mode(mode):
    s, h = up(kill_mode=mode, stop_timeout=3)
    main = s.pid
    s.stop()
    group = [x for x in h.signals if x not in h.process_signals]
    if mode == "control-group":
        assert (main, TERM) in group and (main, CONT) in group
    elif mode in ("mixed", "process"):
        assert h.process_signals[:1] == [(main, TERM)] and not group
    else:
        assert not h.signals and s.state == S.DOWN, "KillMode=none: nothing is signalled"
        return
    h.advance(s, 3)
    killed = (main, KILL)
    if mode == "process":
        assert killed in h.process_signals
    else:
        assert killed in h.signals and killed not in h.process_signals, "SIGKILL goes to the whole group"
    s.on_exit(main, 128 + KILL)
    assert s.state == S.FAILED and s.result == "timeout"
    assert (main in h.leftovers) == (mode in ("control-group", "mixed"))


def test_send_sighup_and_no_sigkill():
    s, h = up(send_sighup=True, send_sigkill=False, stop_timeout=2)
    main = s.pid
    s.stop()
    assert h.signals[:3] == [(main, TERM), (main, HUP), (main, CONT)]
    h.advance(s, 2)
    assert (main, KILL) not in h.signals and s.state == S.DOWN


# ---- oneshot, RemainAfterExit -----------------------------------------------------------------

def test_oneshot_remain_after_exit_stays_active_and_stop_runs_exec_stop():
    s, h = up(type="oneshot", remain_after_exit=True, stop_commands=(cmd("/bin/undo"),))
    assert s.state == S.STARTING and s.active_state() == "activating"
    s.on_exit(s.pid, 0)
    assert s.state == S.DONE and (s.active_state(), s.sub_state()) == ("active", "exited") and s.ready
    s.start()
    assert len(h.launched) == 1, "starting an active (exited) unit does nothing"
    s.stop()
    assert h.launched[-1][0] == ["/bin/undo"]
    s.on_exit(h.last_pid, 0)
    assert s.state == S.DOWN and s.active_state() == "inactive"


def test_oneshot_without_remain_after_exit_is_inactive_but_ready_for_ordering():
    s, h = up(type="oneshot")
    s.on_exit(s.pid, 0)
    assert s.state == S.DONE and s.ready and (s.active_state(), s.sub_state()) == ("inactive", "dead")
    s.start()
    s.deps_ready()
    assert len(h.launched) == 2, "a finished oneshot runs again when started"


def test_simple_remain_after_exit():
    s, h = up(remain_after_exit=True)
    s.on_exit(s.pid, 0)
    assert s.active_state() == "active" and s.sub_state() == "exited"


# ---- forking without PIDFile -----------------------------------------------------------------

def test_forking_without_pidfile_guesses_the_main_pid():
    h = FakeHost()
    h.guessed = 4321
    s, _ = up(h, type="forking")
    s.on_exit(h.last_pid, 0)
    assert s.state == S.UP and s.pid == 4321
    h.guessed = None
    s, _ = up(h, type="forking", restart="never")
    s.on_exit(h.last_pid, 0)
    assert s.state == S.FAILED and s.result == "protocol"


# ---- sd_notify ---------------------------------------------------------------------------------

def test_notify_access_main_refuses_other_pids():
    s, h = up(type="notify", ready=Ready(kind="notify"))
    assert s.notify_access == "main"
    assert not s.on_notify(s.pid + 100, {"READY": "1"})
    assert s.state == S.STARTING
    assert s.on_notify(s.pid, {"READY": "1", "STATUS": "serving"})
    assert s.state == S.UP and s.status_text == "serving"


def test_notify_access_all_and_mainpid():
    s, h = up(type="notify", ready=Ready(kind="notify"), notify_access="all")
    assert s.on_notify(7777, {"MAINPID": "7777", "READY": "1"})
    assert s.state == S.UP and s.pid == 7777
    s, h = up(type="notify", ready=Ready(kind="notify"), notify_access="none")
    assert not s.on_notify(s.pid, {"READY": "1"}) and s.state == S.STARTING


def test_services_d_notify_readiness_accepts_any_of_its_processes():
    h = FakeHost()
    s = S.Service(ServiceSpec(name="y", command=("sh", "-c", "daemon"), ready=Ready(kind="notify")), h)
    s.start()
    s.deps_ready()
    assert s.notify_access == "all" and s.on_notify(s.pid + 1, {"READY": "1"}) and s.state == S.UP


def test_notify_stopping_then_exit():
    s, h = up(type="notify", ready=Ready(kind="notify"), restart="on-failure")
    s.on_notify(s.pid, {"READY": "1"})
    s.on_notify(s.pid, {"STOPPING": "1"})
    assert s.active_state() == "deactivating" and not h.signals
    s.on_exit(s.pid, 0)
    assert s.state == S.DOWN and s.result == "success"


def test_extend_timeout():
    s, h = up(type="notify", ready=Ready(kind="notify"), ready_timeout=5)
    s.on_notify(s.pid, {"EXTEND_TIMEOUT_USEC": "20000000"})
    h.advance(s, 10)
    assert s.state == S.STARTING
    h.advance(s, 11)
    assert s.state == S.STOPPING


def test_watchdog_pings_keep_it_up_and_a_missed_one_aborts_and_restarts():
    s, h = up(type="notify", ready=Ready(kind="notify"), watchdog=2.0, restart="on-watchdog")
    s.on_notify(s.pid, {"READY": "1"})
    for _ in range(5):
        h.advance(s, 1.5)
        s.on_notify(s.pid, {"WATCHDOG": "1"})
    assert s.state == S.UP and not h.signals
    main = s.pid
    h.advance(s, 2)
    assert s.sub_state() == "stop-watchdog" and (main, ABRT) in h.signals and s.result == "watchdog"
    s.on_exit(main, 128 + ABRT)
    assert s.state == S.BACKOFF
    h.advance(s, 0.1)
    assert s.state == S.STARTING and s.restarts == 1


# ---- reload ------------------------------------------------------------------------------------

def test_exec_reload():
    s, h = up(reload=(cmd("/bin/kill", "-HUP", "$MAINPID"),))
    assert s.reload() is None and s.active_state() == "reloading" and h.launched[-1][0][0] == "/bin/kill"
    s.on_exit(h.last_pid, 0)
    assert s.state == S.UP


def test_stop_during_exec_reload_ends_the_reload_first():
    s, h = up(reload=(cmd("/bin/slow-reload"),), stop_commands=(cmd("/bin/web-stop"),))
    s.reload()
    reloader = h.last_pid
    s.stop()
    assert (reloader, TERM) in h.signals and h.launched[-1][0] == ["/bin/web-stop"] and s.helper == h.last_pid
    s.on_exit(reloader, 143)  # no longer the control process: ignored
    assert s.sub_state() == "stop"


def test_notify_reload_signals_and_waits_for_ready():
    s, h = up(type="notify-reload", ready=Ready(kind="notify"), reload_signal="SIGUSR2")
    s.on_notify(s.pid, {"READY": "1"})
    assert s.reload() is None and (s.pid, 12) in h.process_signals
    s.on_notify(s.pid, {"RELOADING": "1"})
    assert s.state == S.RELOADING and s.sub_state() == "reload-notify"
    s.on_notify(s.pid, {"READY": "1"})
    assert s.state == S.UP


def test_reload_not_applicable():
    s, h = up()
    assert "not applicable" in s.reload()
    s.stop()
    s.on_exit(s.pid, 143)
    assert "not active" in s.reload()


# ---- properties, runtime directories ------------------------------------------------------------

def test_properties_are_systemds():
    s, h = up()
    p = s.properties(h.t, 1000.0)
    assert p["Id"] == "web.service" and p["ActiveState"] == "active" and p["SubState"] == "running"
    assert p["MainPID"] == s.pid and p["ActiveEnterTimestamp"] == int((h.t + 1000.0) * 1e6)
    s.on_exit(s.pid, 128 + KILL)
    p = s.properties(h.t, 1000.0)
    assert (p["ActiveState"], p["Result"], p["ExecMainStatus"], p["ExecMainCode"]) == ("failed", "signal", 9, 2)


@pytest.mark.parametrize("preserve,restart,cleanups", [("no", "always", [True]), ("no", "never", [False])])
def test_cleanup_is_told_whether_a_restart_follows(preserve, restart, cleanups):
    s, h = up(directories=(Directory(kind="runtime", path="web"),), runtime_preserve=preserve, restart=restart)
    s.on_exit(s.pid, 1)
    assert h.cleanups == cleanups


# ---- the supervisor's run-time dependencies (its OS side faked) ----------------------------------

class _Loop:
    def add_reader(self, fd, cb):
        pass

    def remove_reader(self, fd):
        pass


class _Ops:
    t = 50.0

    def now(self):
        return self.t

    def killpg(self, pid, sig):
        return True

    def kill(self, pid, sig):
        return True


def _sup(services, deps=None):
    from richinit.supervisor import Supervisor
    sup = Supervisor(_Loop(), _Ops(), control_dir="/nonexistent")
    sup.apply({"services": [unit(name=n, **kw).to_dict() for n, kw in services.items()],
               "deps": deps or {n: [] for n in services}, "order": [], "unit_files": {"off.service": "masked"}})
    launched = []

    def launch(s, command, main):
        launched.append(s.name)
        return 6000 + len(launched)
    sup.launch = launch
    sup.cleanup = lambda s, restarting: None
    sup.boot(lambda ok, code: None)
    return sup, launched


def test_requires_chain_failure_propagates():
    sup, launched = _sup({"db": {"type": "notify", "ready": Ready(kind="notify")}, "app": {"requires": ("db",)},
                          "web": {"requires": ("app.service",)}},
                         {"db": [], "app": ["db"], "web": ["app"]})
    db = sup.services["db"]
    db.on_exit(db.pid, 1)
    assert db.state == S.FAILED
    for name in ("app", "web"):
        st = sup.unit_status(name)
        assert (st["ActiveState"], st["Result"]) == ("inactive", "dependency")
    assert launched == ["db"]


def test_stop_propagates_to_requires_binds_to_and_part_of_but_not_wants():
    sup, _ = _sup({"db": {}, "a": {"requires": ("db",)}, "b": {"binds_to": ("db",)}, "c": {"part_of": ("db",)},
                   "d": {"wants": ("db",)}})
    assert sup.stop_service("db.service") == {"ok": True}
    states = {n: sup.services[n].state for n in "abcd"}
    assert states["d"] == S.UP and all(states[n] == S.STOPPING for n in "abc")


def test_binds_to_stops_when_the_other_dies():
    sup, _ = _sup({"db": {}, "b": {"binds_to": ("db",)}, "r": {"requires": ("db",)}})
    db = sup.services["db"]
    db.on_exit(db.pid, 1)
    assert sup.services["b"].state == S.STOPPING
    assert sup.services["r"].state == S.UP, "Requires= does not follow a crash, only an explicit stop"


def test_binds_to_a_unit_whose_condition_failed_does_not_start():
    from richinit.supervisor import Supervisor
    sup = Supervisor(_Loop(), _Ops(), control_dir="/nonexistent")
    sup.apply({"services": [unit(name="db", conditions=(Condition(name="PathExists", value="/nope"),)).to_dict(),
                            unit(name="b", binds_to=("db",), after=("db",)).to_dict(),
                            unit(name="w", wants=("db",), after=("db",)).to_dict()],
               "deps": {"db": [], "b": ["db"], "w": ["db"]}, "order": []})
    launched = []
    sup.launch = lambda s, c, main: launched.append(s.name) or 7000 + len(launched)
    sup.check_conditions = lambda s: ("ConditionPathExists=/nope", False)
    sup.boot(lambda ok, code: None)
    assert sup.services["db"].state == S.DOWN and "condition" in sup.services["db"].reason
    assert sup.services["b"].state == S.DOWN and sup.services["b"].result == "dependency"
    assert launched == ["w"], "Wants= does not care"


def test_a_required_unit_skipped_by_exec_condition_does_not_fail_its_dependents():
    sup, launched = _sup({"db": {"exec_condition": (cmd("/bin/check"),)}, "app": {"requires": ("db",)}},
                         {"db": [], "app": ["db"]})
    assert launched == ["db"] and sup.services["app"].state == S.WAITING
    db = sup.services["db"]
    db.on_exit(db.helper, 1)
    assert db.state == S.DOWN and sup.services["app"].state == S.UP and launched == ["db", "app"]


def test_restart_propagates_to_part_of():
    sup, launched = _sup({"db": {}, "c": {"part_of": ("db",)}})
    c = sup.services["c"]
    old = c.pid
    sup.restart_service("db")
    c.on_exit(old, 143)
    assert c.state == S.UP and c.pid != old


def test_requisite_must_be_active():
    sup, _ = _sup({"db": {"enabled": False}, "app": {"requisite": ("db",), "enabled": False}})
    r = sup.start_service("app")
    assert not r["ok"] and "Requisite" in r["error"]
    sup.start_service("db")
    assert sup.start_service("app") == {"ok": True} and sup.services["app"].state == S.UP


def test_conflicts_stop_the_other():
    sup, _ = _sup({"a": {}, "b": {"enabled": False, "conflicts": ("a.service",)}})
    sup.start_service("b")
    assert sup.services["a"].state == S.STOPPING and sup.services["b"].state == S.UP


def test_on_failure_starts_the_named_units():
    sup, launched = _sup({"a": {"on_failure": ("alert.service",)}, "alert": {"enabled": False}})
    a = sup.services["a"]
    a.on_exit(a.pid, 1)
    assert a.state == S.FAILED and sup.services["alert"].state == S.UP


def test_start_pulls_in_requires_and_wants_and_refuses_masked():
    sup, launched = _sup({"db": {"enabled": False}, "log": {"enabled": False},
                          "app": {"enabled": False, "requires": ("db",), "wants": ("log",)},
                          "off": {"enabled": False}})
    assert sup.start_service("app") == {"ok": True}
    assert sorted(launched) == ["app", "db", "log"]
    assert sup.start_service("off")["error"] == "Unit off.service is masked."
    assert sup.start_service("nope")["code"] == 5


def test_an_alias_finds_its_unit_for_every_verb():
    from richinit import verbs
    sup, launched = _sup({"ssh": {"enabled": False}})
    sup.aliases = {"sshd.service": "ssh.service"}
    assert sup.find("sshd") is sup.find("sshd.service") is sup.services["ssh"]
    assert sup.find("sshx") is None and sup.canonical("other") == "other"
    assert sup.start_service("sshd") == {"ok": True} and launched == ["ssh"]
    st = sup.unit_status("sshd.service")
    assert (st["Id"], st["Names"], st["ActiveState"]) == ("ssh.service", "ssh.service sshd.service", "active")
    assert verbs.unit_props(sup, "sshd.service")["Id"] == "ssh.service"
    assert sup.stop_service("sshd")["ok"] and sup.services["ssh"].state == S.STOPPING


def test_start_starts_the_socket_units_it_requires_first(tmp_path):
    from richinit.services.model import Listen, SocketSpec
    sup, launched = _sup({"app": {"enabled": False, "socket_deps": ("app",)}})
    path = str(tmp_path / "app.sock")
    sup._apply_units({"sockets": [SocketSpec(name="app", unit="app.socket", service="app", enabled=False,
                                             listen=(Listen(kind="stream", address=path),)).to_dict()]})
    assert sup.sockets.state("app") == ("inactive", "dead")
    handed = []
    sup.launch = lambda s, c, main: handed.append(sup.sockets.handover(s.name, s.spec.sockets)) or 7001
    assert sup.start_service("app") == {"ok": True}
    assert sup.sockets.state("app") == ("active", "running") and [n for _, n in handed[0]] == ["app.socket"]
    sup.sockets.stop("app")  # its fds closed


def test_when_settled_and_kill_and_reset_failed():
    sup, _ = _sup({"a": {"type": "notify", "ready": Ready(kind="notify"), "enabled": False}})
    seen = []
    sup.start_service("a")
    sup.when_settled("a", seen.append)
    assert seen == []
    a = sup.services["a"]
    a.on_notify(a.pid, {"READY": "1"})
    assert [s["ActiveState"] for s in seen] == ["active"]
    assert sup.kill_service("a", 10, "main")["pids"] == [a.pid]
    a.on_exit(a.pid, 1)
    assert sup.unit_status("a")["ActiveState"] == "failed"
    sup.reset_failed("a")
    assert sup.unit_status("a")["ActiveState"] == "inactive"


def test_reboot_restarts_every_service_in_order():
    sup, launched = _sup({"db": {}, "app": {"after": ("db",)}}, {"db": [], "app": ["db"]})
    sup.order = [["db"], ["app"]]
    pids = {n: s.pid for n, s in sup.services.items()}
    assert sup.reboot() == {"ok": True}
    assert sup.services["app"].state == S.STOPPING and sup.services["db"].state == S.UP, "reverse order"
    sup.services["app"].on_exit(pids["app"], 143)
    assert sup.services["db"].state == S.STOPPING
    sup.services["db"].on_exit(pids["db"], 143)
    assert launched[-2:] == ["db", "app"] and all(s.state == S.UP for s in sup.services.values())
    assert not sup.stopping


def test_idle_starts_after_the_other_starts():
    sup, launched = _sup({"slow": {"type": "notify", "ready": Ready(kind="notify")}, "late": {"type": "idle"}})
    assert launched == ["slow"], "Type=idle waits while another service is starting"
    slow = sup.services["slow"]
    slow.on_notify(slow.pid, {"READY": "1"})
    assert launched == ["slow", "late"] and sup.services["late"].state == S.UP


def test_idle_waits_for_the_other_starts_five_seconds_at_most_on_a_deadline():
    from richinit.supervisor import IDLE_TIMEOUT
    sup, launched = _sup({"slow": {"type": "notify", "ready": Ready(kind="notify"), "ready_timeout": 0},
                          "late": {"type": "idle"}})
    assert IDLE_TIMEOUT == 5.0, "systemd's IDLE_TIMEOUT_USEC"
    t0 = sup.ops.t
    assert launched == ["slow"] and sup.next_deadline() == t0 + 5.0, "PID 1 wakes up for it, no polling"
    sup.ops.t = t0 + 4.9
    sup.on_timer(sup.ops.t)
    assert launched == ["slow"]
    sup.ops.t = t0 + 5.0
    sup.on_timer(sup.ops.t)
    assert launched == ["slow", "late"], "started anyway after 5 s, slow still starting"
    assert sup.services["slow"].state == S.STARTING and sup.idle_held == {} and sup.next_deadline() is None


def test_an_idle_service_stopped_while_held_back_leaves_no_deadline():
    sup, launched = _sup({"slow": {"type": "notify", "ready": Ready(kind="notify"), "ready_timeout": 0},
                          "late": {"type": "idle"}})
    assert sup.next_deadline() is not None
    sup.stop_service("late")
    assert sup.services["late"].state == S.DOWN
    sup._progress()
    assert sup.idle_held == {} and sup.next_deadline() is None and launched == ["slow"]


def test_daemon_reload_keeps_running_units_and_starts_nothing():
    sup, launched = _sup({"a": {}, "b": {"enabled": False}})
    a = sup.services["a"]
    doc = {"services": [unit(name="a", enabled=False, description="new").to_dict(),
                        unit(name="b", enabled=True).to_dict(), unit(name="c").to_dict()],
           "deps": {"a": [], "b": [], "c": []}, "order": []}
    sup.load = lambda only=None: doc
    r = sup.reload()
    assert r["ok"] and sup.services["a"] is a and a.state == S.UP and a.spec.description == "new"
    assert launched == ["a"], "daemon-reload starts nothing (b newly enabled, c added)"
    assert sup.start_service("c") == {"ok": True} and launched == ["a", "c"]


def test_log_file_kinds_open_the_file_for_the_child(tmp_path):
    from richinit.supervisor import Supervisor
    sup = Supervisor(_Loop(), _Ops(), control_dir=str(tmp_path))
    path = tmp_path / "out.log"
    path.write_text("old\n")
    s = S.Service(unit(log=Log(kind="file", path=str(path), mode="truncate")), sup)
    fd, close = sup._output(s, 1)
    import os
    os.write(fd, b"new\n")
    os.close(fd)
    assert close and path.read_text() == "new\n"


def test_standard_output_socket_is_the_handed_over_connection(tmp_path):
    import os

    from richinit.supervisor import Supervisor
    sup = Supervisor(_Loop(), _Ops(), control_dir=str(tmp_path))
    s = S.Service(unit(log=Log(kind="socket"), stdin_socket=True), sup)
    assert sup._output(s, 1, 7) == (7, False)
    fd, close = sup._output(s, 1, None)  # nothing handed over: nowhere to write
    assert close and os.readlink("/proc/self/fd/%d" % fd) == "/dev/null"
    os.close(fd)
