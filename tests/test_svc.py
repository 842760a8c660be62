"""svc.Service's state machine against a fake host: every transition, no processes.

The fake records what the service asks of the OS (launches, signals) and lets the test play
the events the supervisor would deliver: exits, readiness, the clock.
"""

import pytest

from richinit import svc as S
from richinit.services.spec import Backoff, CrashLoop, Ready, ServiceSpec


class FakeHost:
    def __init__(self):
        self.t = 100.0
        self.next_pid = 1000
        self.launched = []       # (argv, main, pid)
        self.signals = []        # (pid, sig)
        self.leftovers = []
        self.changes = []        # states seen by changed()
        self.pidfile = None      # what read_pidfile answers
        self.pidfile_reads = 0
        self.probe_ok = False
        self.fail_launch = None  # an exception to raise from launch
        self.flags = []          # Command.flags of each launch
        self.process_signals = []  # (pid, sig) sent to the process alone
        self.conditions = None   # what check_conditions answers
        self.guessed = None      # what guess_main_pid answers
        self.cleanups = []

    def launch(self, svc, cmd, main):
        if self.fail_launch is not None:
            raise self.fail_launch
        self.next_pid += 1
        self.launched.append((list(cmd.argv), main, self.next_pid))
        self.flags.append(cmd.flags)
        return self.next_pid

    def kill_group(self, pid, sig):
        self.signals.append((pid, sig))

    def kill_process(self, pid, sig):
        self.signals.append((pid, sig))
        self.process_signals.append((pid, sig))

    def check_conditions(self, svc):
        return self.conditions

    def guess_main_pid(self, svc):
        return self.guessed

    def cleanup(self, svc, restarting):
        self.cleanups.append(restarting)

    def kill_leftovers(self, pgid):
        self.leftovers.append(pgid)

    def now(self):
        return self.t

    def read_pidfile(self, path):
        self.pidfile_reads += 1
        return self.pidfile

    def probe(self, ready):
        return self.probe_ok

    def changed(self, svc):
        self.changes.append(svc.state)

    # test helpers
    @property
    def last_pid(self):
        return self.launched[-1][2]

    def advance(self, svc, seconds):
        """Move the clock, firing the service's timer each time it is due (as the loop would)."""
        end = self.t + seconds
        while svc.deadline is not None and svc.deadline <= end:
            self.t = max(self.t, svc.deadline)
            svc.on_timer(self.t)
        self.t = end


def spec(**kw):
    kw.setdefault("name", "svc")
    kw.setdefault("command", ("daemon", "-f"))
    kw.setdefault("backoff", Backoff(initial=0.5, max=4, factor=2, reset_after=10))
    kw.setdefault("crash_loop", CrashLoop(starts=5, within=30))
    return ServiceSpec(**kw)


def started(host=None, **kw):
    host = host or FakeHost()
    s = S.Service(spec(**kw), host)
    s.start()
    s.deps_ready()
    return s, host


# ---- start and readiness -------------------------------------------------------

def test_start_waits_for_dependencies_then_launches():
    h = FakeHost()
    s = S.Service(spec(), h)
    s.start()
    assert s.state == S.WAITING and not h.launched
    s.deps_ready()
    assert s.state == S.UP and s.ready and s.pid == h.last_pid
    assert h.launched == [(["daemon", "-f"], True, s.pid)]
    assert s.status(h.t)["restarts"] == 0


def test_start_is_idempotent_while_running():
    s, h = started()
    s.start()
    assert s.state == S.UP and len(h.launched) == 1


def test_tcp_readiness_probes_until_ready():
    s, h = started(ready=Ready(kind="tcp", port=22), ready_timeout=5)
    assert s.state == S.STARTING and not s.ready and s.due == "probe"
    h.advance(s, 0.2)
    assert s.state == S.STARTING
    probes = s.probes
    assert 4 <= probes <= 8  # 5 ms doubling up to 100 ms: a few probes, not one every few ms
    h.probe_ok = True
    h.advance(s, S.PROBE_MAX)
    assert s.state == S.UP and s.up_since is not None and s.deadline is None


def test_fd_readiness_waits_for_the_notification():
    s, h = started(ready=Ready(kind="fd", fd=3), ready_timeout=5)
    assert s.state == S.STARTING and s.due == "start-timeout"
    s.on_ready()
    assert s.state == S.UP and s.deadline is None


def test_not_ready_in_time_stops_and_restarts():
    s, h = started(ready=Ready(kind="notify"), ready_timeout=2, stop_timeout=3)
    first = s.pid
    h.advance(s, 2)
    assert s.state == S.STOPPING and (first, 15) in h.signals
    assert "not ready within 2.0s" in s.reason
    s.on_exit(first, 143)
    assert s.state in (S.STARTING, S.BACKOFF)
    assert s.restarts == 1


def test_not_ready_in_time_with_restart_never_fails_with_the_reason():
    s, h = started(ready=Ready(kind="tcp", port=80), ready_timeout=1, restart="never")
    h.advance(s, 1)
    s.on_exit(s.pid, 143)
    assert s.state == S.FAILED and s.reason == "not ready within 1.0s"


def test_launch_error_is_a_failed_start():
    h = FakeHost()
    h.fail_launch = OSError(2, "No such file or directory")
    s, _ = started(h, restart="never")
    assert s.state == S.FAILED and "No such file" in s.reason and s.pid is None


# ---- exits, backoff, crash loop ------------------------------------------------

def test_exit_after_a_healthy_run_restarts_at_once():
    s, h = started()
    old = s.pid
    h.t += 60  # well past reset_after
    s.on_exit(old, 1)
    assert s.state == S.UP and s.pid != old and s.restarts == 1 and s.last_exit == 1
    assert old in h.leftovers, "what the dead process left in its group is killed"


def test_backoff_grows_and_resets_after_a_long_run():
    s, h = started(crash_loop=None)
    delays = []
    for _ in range(5):
        s.on_exit(s.pid, 1)
        if s.state == S.BACKOFF:
            delays.append(round(s.deadline - h.t, 3))
            h.advance(s, s.deadline - h.t)
        else:
            delays.append(0)
        assert s.state == S.UP
    assert delays == [0, 0.5, 1.0, 2.0, 4.0]
    h.t += 11  # a run longer than reset_after ends the streak
    s.on_exit(s.pid, 1)
    assert s.state == S.UP and s.restarts == 6


def test_stop_during_backoff_cancels_the_restart():
    s, h = started()
    s.on_exit(s.pid, 1)
    s.on_exit(s.pid, 1)
    assert s.state == S.BACKOFF
    n = len(h.launched)
    s.stop()
    assert s.state == S.DOWN and s.deadline is None
    h.advance(s, 10)
    assert len(h.launched) == n


def test_crash_loop_marks_failed_after_the_limit():
    s, h = started(crash_loop=CrashLoop(starts=3, within=20), backoff=Backoff(initial=0.1, max=1, factor=2))
    for _ in range(10):
        if s.pid:
            s.on_exit(s.pid, 3)
        if s.state == S.BACKOFF:
            h.advance(s, s.deadline - h.t)
        if s.state == S.FAILED:
            break
    assert s.state == S.FAILED and "crash loop: 3 starts within 20s" in s.reason
    assert len(h.launched) == 3 and s.restarts == 2 and s.last_exit == 3
    h.advance(s, 60)
    assert len(h.launched) == 3, "a failed service is not restarted"
    s.start()  # richctl start clears it
    s.deps_ready()
    assert s.state == S.UP and len(h.launched) == 4


def test_starts_outside_the_window_do_not_count():
    s, h = started(crash_loop=CrashLoop(starts=3, within=5), backoff=Backoff(initial=0.1, max=1, factor=2))
    for _ in range(6):
        h.t += 3  # every run lasts 3 s: never 3 starts within 5 s
        s.on_exit(s.pid, 1)
        if s.state == S.BACKOFF:
            h.advance(s, s.deadline - h.t)
    assert s.state == S.UP and s.restarts == 6


@pytest.mark.parametrize("policy,code,state", [
    ("never", 0, S.DOWN), ("never", 1, S.FAILED), ("on-failure", 0, S.DOWN),
    ("on-failure", 1, S.UP), ("always", 0, S.UP),
])
def test_restart_policy(policy, code, state):
    s, h = started(restart=policy)
    h.t += 60
    s.on_exit(s.pid, code)
    assert s.state == state


# ---- stop ----------------------------------------------------------------------

def test_stop_sends_the_stop_signal_then_down():
    s, h = started(stop_signal="SIGINT")
    pid = s.pid
    s.stop()
    assert s.state == S.STOPPING and h.signals == [(pid, 2), (pid, 18)]
    s.on_exit(pid, 130)
    assert s.state == S.DOWN and s.reason == "stopped" and s.pid is None
    assert len(h.launched) == 1, "a requested stop is not restarted"


def test_stop_timeout_kills_and_then_gives_up():
    s, h = started(stop_timeout=3)
    pid = s.pid
    s.stop()
    h.advance(s, 2.9)
    assert (pid, 9) not in h.signals
    h.advance(s, 0.2)
    assert (pid, 9) in h.signals and s.state == S.STOPPING
    s.on_exit(pid, 137)
    assert s.state == S.DOWN and s.reason == "stopped (killed)"


def test_a_process_that_survives_sigkill_is_given_up():
    s, h = started(stop_timeout=1)
    s.stop()
    h.advance(s, 1 + S.KILL_WAIT + 0.1)
    assert s.state == S.DOWN and s.pid is None


def test_stop_of_a_waiting_service():
    h = FakeHost()
    s = S.Service(spec(), h)
    s.start()
    s.stop()
    assert s.state == S.DOWN
    s.deps_ready()
    assert not h.launched


# ---- pre commands --------------------------------------------------------------

def test_pre_commands_run_in_order_then_the_service():
    s, h = started(pre=(("keygen",), ("mkdir", "/run/x")))
    assert s.state == S.PRE and h.launched[-1][:2] == (["keygen"], False)
    s.on_exit(h.last_pid, 0)
    assert s.state == S.PRE and h.launched[-1][:2] == (["mkdir", "/run/x"], False)
    s.on_exit(h.last_pid, 0)
    assert s.state == S.UP and h.launched[-1][:2] == (["daemon", "-f"], True)


def test_pre_failure_is_a_failed_start():
    s, h = started(pre=(("keygen",), ("other",)), restart="never")
    s.on_exit(h.last_pid, 2)
    assert s.state == S.FAILED and s.reason == "pre command 1 exited with 2"
    assert len(h.launched) == 1


def test_pre_failure_with_restart_goes_to_backoff():
    s, h = started(pre=(("keygen",),))
    s.on_exit(h.last_pid, 2)
    # first restart of a streak is immediate: the pre command runs again
    assert s.state == S.PRE and s.restarts == 1 and h.launched[-1][0] == ["keygen"]


def test_stop_during_pre_kills_the_helper():
    s, h = started(pre=(("slow",),))
    helper = h.last_pid
    s.stop()
    assert (helper, 15) in h.signals
    s.on_exit(helper, 143)
    assert s.state == S.DOWN and len(h.launched) == 1


# ---- dependencies --------------------------------------------------------------

def test_dependency_failure_fails_a_waiting_service():
    h = FakeHost()
    s = S.Service(spec(), h)
    s.start()
    s.dep_failed("syslog")
    assert s.state == S.FAILED and s.reason == "required service syslog failed"
    assert not h.launched


def test_dep_failed_is_ignored_once_running():
    s, h = started()
    s.dep_failed("syslog")
    assert s.state == S.UP


# ---- oneshot -------------------------------------------------------------------

def test_oneshot_is_done_when_it_exits_0():
    s, h = started(type="oneshot", restart="never")
    assert s.state == S.STARTING and not s.ready
    s.on_exit(s.pid, 0)
    assert s.state == S.DONE and s.ready and s.deadline is None


def test_oneshot_failure_fails():
    s, h = started(type="oneshot", restart="never")
    s.on_exit(s.pid, 4)
    assert s.state == S.FAILED and "exited with 4" in s.reason


def test_oneshot_longer_than_its_timeout_is_stopped():
    s, h = started(type="oneshot", restart="never", ready_timeout=2)
    pid = s.pid
    h.advance(s, 2)
    assert s.state == S.STOPPING and (pid, 15) in h.signals
    s.on_exit(pid, 143)
    assert s.state == S.FAILED


# ---- forking -------------------------------------------------------------------

def forking(**kw):
    return started(type="forking", pidfile="/run/d.pid", **kw)


def test_forking_followed_through_its_pidfile():
    s, h = forking()
    starter = h.last_pid
    assert s.state == S.STARTING and s.helper == starter and s.pid is None
    h.pidfile = 4242
    s.on_exit(starter, 0)
    h.advance(s, 0)
    assert s.state == S.UP and s.pid == 4242 and s.helper is None


def test_forking_daemon_death_restarts_it():
    s, h = forking()
    h.pidfile = 4242
    s.on_exit(h.last_pid, 0)
    h.advance(s, 0)
    h.t += 60
    h.pidfile = None  # the new starter has not written it yet
    s.on_exit(4242, 137)
    assert s.state == S.STARTING and s.restarts == 1 and s.helper == h.last_pid
    h.pidfile = 5151
    s.on_exit(h.last_pid, 0)
    h.advance(s, 0.2)
    assert s.state == S.UP and s.pid == 5151


def test_forking_pidfile_late_is_polled():
    s, h = forking(ready_timeout=5)
    s.on_exit(h.last_pid, 0)
    h.advance(s, 1)
    assert s.state == S.STARTING and h.pidfile_reads > 5
    h.pidfile = 77
    h.advance(s, 0.1)
    assert s.state == S.UP and s.pid == 77


def test_forking_starter_failure_is_a_failed_start():
    s, h = forking(restart="never")
    s.on_exit(h.last_pid, 1)
    assert s.state == S.FAILED and s.reason == "forking starter exited with 1"


def test_forking_pidfile_never_written_fails():
    s, h = forking(restart="never", ready_timeout=3)
    s.on_exit(h.last_pid, 0)
    h.advance(s, 3.1)
    assert s.state == S.FAILED and "pidfile /run/d.pid did not appear" in s.reason


def test_forking_pidfile_wait_ends_without_a_ready_timeout():
    # ready_timeout 0 means "no readiness limit", not "poll the pidfile forever".
    s, h = forking(restart="never", ready_timeout=0)
    s.on_exit(h.last_pid, 0)
    h.advance(s, S.PIDFILE_WAIT + 0.1)
    assert s.state == S.FAILED and "did not appear" in s.reason
    assert s.deadline is None


def test_stop_while_the_forking_starter_runs():
    s, h = forking()
    starter = h.last_pid
    s.stop()
    assert (starter, 15) in h.signals
    s.on_exit(starter, 143)
    assert s.state == S.DOWN


def test_forking_readiness_has_no_limit_after_the_pidfile_when_ready_timeout_is_0():
    s, h = forking(ready_timeout=0, ready=Ready(kind="tcp", port=80))
    s.on_exit(h.last_pid, 0)
    h.pidfile = 99
    h.advance(s, S.PIDFILE_WAIT * 4)
    assert s.state == S.STARTING and s.pid == 99
    h.probe_ok = True
    h.advance(s, 0.1)
    assert s.state == S.UP


# ---- the supervisor's way to start its own interpreter again -------------------

# ---- the supervisor's boot order (its OS side faked: launch records, nothing runs) ----

class _Loop:
    def add_reader(self, fd, cb):
        pass

    def remove_reader(self, fd):
        pass


class _Ops:
    t = 50.0

    def now(self):
        return self.t


def _supervisor(services, deps):

    from richinit.supervisor import Supervisor
    sup = Supervisor(_Loop(), _Ops(), control_dir="/nonexistent")
    sup.apply({"services": [spec(name=n, **kw).to_dict() for n, kw in services.items()], "deps": deps,
               "order": []})
    launched = []

    def launch(s, argv, main):
        launched.append(s.name)
        return 5000 + len(launched)
    sup.launch = launch
    return sup, launched


def test_boot_starts_a_service_only_after_its_dependency_is_ready():
    sup, launched = _supervisor({"syslog": {"ready": Ready(kind="notify")}, "cron": {}, "app2": {}},
                                {"syslog": [], "cron": ["syslog"], "app2": ["cron"]})
    sup.app_after = ("app2",)
    booted = []
    sup.boot(lambda ok, code: booted.append(ok))
    assert launched == ["syslog"], "cron sorts first but must wait for syslog"
    assert booted == [], "the app waits for app2, which waits for cron, which waits for syslog"
    sup.services["syslog"].on_ready()
    assert launched == ["syslog", "cron", "app2"] and booted == [True]


def test_the_app_waits_for_no_service_unless_told():
    sup, launched = _supervisor({"syslog": {"ready": Ready(kind="notify")}, "cron": {}},
                                {"syslog": [], "cron": ["syslog"]})
    booted = []
    sup.boot(lambda ok, code: booted.append(ok))
    assert launched == ["syslog"] and booted == [True], "the app's turn comes while syslog starts"
    sup.services["syslog"].on_ready()
    assert launched == ["syslog", "cron"]


def test_reload_starts_added_services_in_dependency_order():
    sup, launched = _supervisor({"base": {}}, {"base": []})
    sup.boot(lambda ok, code: None)
    sup.load = lambda only=None: {
        "services": [spec(name="base").to_dict(), spec(name="a-user").to_dict(),
                     spec(name="z-dep", ready=Ready(kind="notify")).to_dict()],
        "deps": {"base": [], "a-user": ["z-dep"], "z-dep": []}, "order": []}
    sup.reload()
    assert launched == ["base", "z-dep"]
    sup.services["z-dep"].on_ready()
    assert launched == ["base", "z-dep", "a-user"]


# ---- forking: a starter that does not fork -------------------------------------

def test_forking_starter_that_is_the_daemon_is_adopted():
    # sshd started by PID 1 in its own session does not fork; its pidfile names the starter.
    s, h = forking(ready_timeout=5)
    starter = h.last_pid
    h.advance(s, 0.2)
    assert s.state == S.STARTING
    h.pidfile = starter
    h.advance(s, S.PROBE_INTERVAL)
    assert s.state == S.UP and s.pid == starter and s.helper is None
    h.t += 60
    s.on_exit(starter, 137)
    assert s.state == S.STARTING and s.restarts == 1 and s.helper == h.last_pid


def test_forking_pidfile_naming_another_process_waits_for_the_starter():
    s, h = forking(ready_timeout=5)
    starter = h.last_pid
    h.pidfile = 4242  # maybe stale: not trusted while the starter still runs
    h.advance(s, 0.5)
    assert s.state == S.STARTING and s.pid is None and s.helper == starter
    s.on_exit(starter, 0)
    h.advance(s, 0)
    assert s.state == S.UP and s.pid == 4242


def test_forking_starter_that_never_exits_nor_writes_fails_at_the_ready_timeout():
    s, h = forking(ready_timeout=2, restart="never")
    starter = h.last_pid
    h.advance(s, 2.1)
    assert s.state == S.STOPPING and (starter, 15) in h.signals
    s.on_exit(starter, 143)
    assert s.state == S.FAILED and "did not appear" in s.reason


def test_forking_without_ready_timeout_stops_polling_while_the_starter_runs():
    s, h = forking(ready_timeout=0)
    starter = h.last_pid
    h.advance(s, S.PIDFILE_WAIT + 1)
    reads = h.pidfile_reads
    assert s.state == S.STARTING and s.deadline is None, "no endless 50 ms polling"
    h.advance(s, 60)
    assert h.pidfile_reads == reads
    h.pidfile = 4242
    s.on_exit(starter, 0)
    h.advance(s, 0)
    assert s.state == S.UP and s.pid == 4242


# ---- s6-overlay finish scripts, restart in place ---------------------------------

def test_finish_runs_with_exit_code_and_signal_then_restart_policy_applies():
    s, h = started(finish=("/etc/services.d/svc/finish",))
    pid = s.pid
    s.on_exit(pid, 128 + 9)  # killed by SIGKILL
    assert s.state == S.FINISH
    argv, main, fpid = h.launched[-1]
    assert argv == ["/etc/services.d/svc/finish", "256", "9"] and not main
    s.on_exit(fpid, 0)
    assert s.state in (S.UP, S.BACKOFF) and s.restarts == 1


def test_finish_exiting_125_means_do_not_restart():
    s, h = started(finish=("fin",))
    s.on_exit(s.pid, 3)
    assert h.launched[-1][0] == ["fin", "3", "0"]
    s.on_exit(h.last_pid, S.FINISH_NO_RESTART)
    assert s.state == S.DOWN and "125" in s.reason and s.restarts == 0


def test_finish_that_hangs_is_killed_and_the_service_goes_on():
    s, h = started(finish=("fin",))
    s.on_exit(s.pid, 1)
    fpid = h.last_pid
    h.advance(s, S.FINISH_TIMEOUT + 0.1)
    assert (fpid, 9) in h.signals
    assert s.state in (S.UP, S.BACKOFF, S.STARTING)


def test_finish_runs_on_a_requested_stop_too_and_ends_down():
    s, h = started(finish=("fin",))
    s.stop()
    s.on_exit(s.pid, 143)
    assert s.state == S.FINISH and h.launched[-1][0] == ["fin", "256", "15"]
    s.on_exit(h.last_pid, 0)
    assert s.state == S.DOWN


def test_restart_keeps_the_service_and_its_counters():
    s, h = started()
    s.restarts = 4
    old = s.pid
    s.restart()
    assert s.state == S.STOPPING
    s.on_exit(old, 143)
    assert s.state == S.WAITING  # the supervisor starts it once its dependencies are ready
    s.deps_ready()
    assert s.state == S.UP and s.pid != old and s.restarts == 4


def test_start_while_stopping_starts_again_once_down():
    s, h = started()
    old = s.pid
    s.stop()
    s.start()
    assert s.state == S.STOPPING and len(h.launched) == 1
    s.on_exit(old, 143)
    assert s.state == S.WAITING
    s.deps_ready()
    assert s.state == S.UP and s.pid != old
