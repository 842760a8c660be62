"""Unit tests of PID 1's state machine against a fake OS facade (no processes involved)."""

import errno
import signal

import pytest

from richinit import pid1
from richinit.pid1 import Init
from tests.support.faultinit import inject


class FakeOps:
    def __init__(self):
        self.t = 100.0
        self.sent = []  # (target, sig): target is pid, ("pg", pid), ("session", sid) or "all"
        self.gone = set()  # children that have exited but are not reaped yet

    def exited(self, pid):
        return pid in self.gone

    def now(self):
        return self.t

    def kill(self, pid, sig):
        self.sent.append((pid, sig))

    def killpg(self, pgid, sig):
        self.sent.append((("pg", pgid), sig))

    def kill_session(self, sid, sig):
        self.sent.append((("session", sid), sig))

    def kill_all(self, sig):
        self.sent.append(("all", sig))

    def oom_kills(self):
        return 0


def started(**kw):
    ops = FakeOps()
    init = Init(ops, **kw)
    init.on_started(42)
    return ops, init


def test_forwards_ordinary_signals_to_main_child():
    ops, init = started()
    for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGQUIT, signal.SIGCONT):
        init.on_signal(sig)
    assert ops.sent == [(42, s) for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH,
                                          signal.SIGQUIT, signal.SIGCONT)]
    assert init.phase == pid1.RUNNING


def test_sigchld_is_not_forwarded():
    ops, init = started()
    init.on_signal(signal.SIGCHLD)
    assert ops.sent == []


@pytest.mark.parametrize("mode,target", [("group", ("pg", 42)), ("session", ("session", 42))])
def test_forward_modes(mode, target):
    ops, init = started(forward=mode)
    init.on_signal(signal.SIGUSR1)
    assert ops.sent == [(target, signal.SIGUSR1)]


def test_rewrite_and_drop():
    ops, init = started(rewrite={signal.SIGUSR1: signal.SIGUSR2, signal.SIGHUP: 0})
    init.on_signal(signal.SIGUSR1)
    init.on_signal(signal.SIGHUP)
    assert ops.sent == [(42, signal.SIGUSR2)]


def test_main_exit_stops_everything_and_keeps_its_code():
    ops, init = started()
    init.on_exit(42, 3)
    assert init.phase == pid1.STOPPING_ALL
    assert ("all", signal.SIGTERM) in ops.sent and ("all", signal.SIGCONT) in ops.sent
    init.on_no_children()
    assert init.phase == pid1.DONE and init.exit_code == 3


def test_orphan_exit_is_just_reaped():
    ops, init = started()
    init.on_exit(99, 0)
    assert init.phase == pid1.RUNNING and ops.sent == []


def test_sigterm_sequence_with_a_child_that_ignores_it():
    ops, init = started(grace=10, kill_grace=5)
    init.on_signal(signal.SIGTERM)
    assert init.phase == pid1.STOPPING_MAIN and ops.sent == [(42, signal.SIGTERM)]
    assert init.deadline == 110.0
    ops.t = 109.9
    init.on_timer(ops.t)
    assert init.phase == pid1.STOPPING_MAIN
    ops.t = 110.0
    init.on_timer(ops.t)
    assert init.phase == pid1.STOPPING_ALL and init.deadline == 115.0
    ops.t = 115.0
    init.on_timer(ops.t)
    assert init.phase == pid1.KILLING and ops.sent[-1] == ("all", signal.SIGKILL)
    init.on_exit(42, 128 + 9)
    init.on_no_children()
    assert init.phase == pid1.DONE and init.exit_code == 137


def test_sigint_reaches_the_app_as_sigint_and_pwr_as_term():
    ops, init = started()
    init.on_signal(signal.SIGINT)
    assert ops.sent == [(42, signal.SIGINT)]
    ops2, init2 = started()
    init2.on_signal(signal.SIGPWR)
    assert ops2.sent == [(42, signal.SIGTERM)]
    ops3, init3 = started()
    init3.on_signal(signal.SIGRTMIN + 3)
    assert ops3.sent == [(42, signal.SIGTERM)]


def test_stop_signal_can_be_rewritten():
    ops, init = started(rewrite={signal.SIGTERM: signal.SIGQUIT})
    init.on_signal(signal.SIGTERM)
    assert ops.sent == [(42, signal.SIGQUIT)]


def test_second_stop_signal_is_forwarded_not_restarting_the_sequence():
    ops, init = started()
    init.on_signal(signal.SIGINT)
    deadline = init.deadline
    ops.t += 1
    init.on_signal(signal.SIGINT)
    assert ops.sent == [(42, signal.SIGINT), (42, signal.SIGINT)]
    assert init.deadline == deadline


def test_main_exit_during_grace_moves_on_at_once():
    ops, init = started()
    init.on_signal(signal.SIGTERM)
    init.on_exit(42, 143)
    assert init.phase == pid1.STOPPING_ALL
    init.on_no_children()
    assert init.exit_code == 143


def test_no_children_while_running_is_ignored():
    ops, init = started()
    init.on_no_children()
    assert init.phase == pid1.RUNNING


def test_exec_failure_exits_with_its_code():
    ops = FakeOps()
    init = Init(ops)
    init.on_exec_failed(127)
    init.on_no_children()
    assert init.phase == pid1.DONE and init.exit_code == 127


def test_processes_that_survive_kill_do_not_hang_the_exit():
    ops, init = started(grace=1, kill_grace=1)
    init.on_exit(42, 0)
    ops.t += 1
    init.on_timer(ops.t)
    assert init.phase == pid1.KILLING
    ops.t += pid1.KILL_WAIT
    init.on_timer(ops.t)
    assert init.phase == pid1.DONE and init.exit_code == 0


def test_main_never_reported_exits_137():
    ops, init = started(grace=1, kill_grace=1)
    init.on_signal(signal.SIGTERM)
    for _ in range(3):
        ops.t += 10
        init.on_timer(ops.t)
    assert init.phase == pid1.DONE and init.exit_code == 137


def test_injected_fault_raises_once_and_leaves_state_consistent():
    ops, init = started()
    inject(init, ["forward"])
    with pytest.raises(RuntimeError):
        init.on_signal(signal.SIGUSR1)
    assert init.phase == pid1.RUNNING and ops.sent == []
    init.on_signal(signal.SIGUSR1)
    assert ops.sent == [(42, signal.SIGUSR1)]


def test_heal_moves_a_stop_on_when_the_exit_handler_failed_half_way():
    ops, init = started()
    inject(init, ["stop-services"])
    init.on_signal(signal.SIGTERM)
    with pytest.raises(RuntimeError):
        init.on_exit(42, 143)  # bookkeeping done, then the injected fault: no transition
    assert init.phase == pid1.STOPPING_MAIN and init.main_pid is None and init.exit_code == 143
    init.heal()
    assert init.phase == pid1.STOPPING_ALL and ("all", signal.SIGTERM) in ops.sent
    init.on_no_children()
    assert init.phase == pid1.DONE and init.exit_code == 143


def test_heal_rearms_a_lost_timer():
    ops, init = started(kill_grace=5)
    init.on_exit(42, 0)
    init._deadline = None  # as if a handler died before arming it
    init.heal()
    assert init.deadline == ops.t + 5


def test_heal_leaves_a_healthy_state_alone():
    ops, init = started()
    init.heal()
    assert init.phase == pid1.RUNNING and ops.sent == []


class FakeServices:
    """What Init asks of the supervisor; boot() reports the app's turn when told."""

    def __init__(self):
        self.on_change = None
        self.booted = None
        self.stopped = False

    def boot(self, done):
        self.booted = done

    def next_deadline(self):
        return None

    def all_down(self):
        return self.stopped

    def stop_all(self):
        self.stopped = True

    def on_exit(self, pid, code):
        return False


def test_the_app_started_before_the_services_is_not_started_again():
    ops = FakeOps()
    spawned = []
    init = Init(ops, start_app=lambda: spawned.append(1) or 42)
    init.start_app_early()                     # before the supervisor even exists
    services = FakeServices()
    init.use_services(services)
    assert services.on_change == init.on_services_changed
    init.boot()
    assert init.phase == pid1.RUNNING and services.booted is not None
    services.booted(True, 0)                    # the services' "app's turn" comes later: nothing happens
    assert spawned == [1] and init.main_pid == 42
    init.on_exit(42, 3)                         # the app's exit stops the services, code kept
    assert services.stopped and init.phase == pid1.STOPPING_ALL and init.exit_code == 3


@pytest.mark.parametrize("vm", [False, True])
def test_no_service_starts_when_the_early_app_has_already_exited(vm):
    ops = FakeOps()
    init = Init(ops, vm=vm, start_app=lambda: 42)
    init.start_app_early()
    ops.gone.add(42)                            # `-- /bin/true`: gone while PID 1 imported the supervisor
    services = FakeServices()
    init.use_services(services)
    assert init.app_gone() is (not vm)
    init.boot()
    assert (services.booted is None) is (not vm)  # --vm keeps the container up: its services start
    init.on_exit(42, 0)                         # the loop reaps it: the stop goes on with nothing to stop
    if not vm:
        assert init.phase == pid1.STOPPING_ALL and init.exit_code == 0


def test_an_app_that_could_not_be_executed_counts_as_gone():
    from richinit.spawn import ExecError
    ops = FakeOps()

    def fail():
        raise ExecError("/nope", errno.ENOENT)
    init = Init(ops, start_app=fail)
    init.start_app_early()
    assert init.app_gone() and init.exit_code == 127


def test_the_app_waits_for_the_services_boot_when_it_did_not_start_early():
    ops = FakeOps()
    spawned = []
    services = FakeServices()
    init = Init(ops, services=services, start_app=lambda: spawned.append(1) or 42)
    init.boot()
    assert init.phase == pid1.BOOTING and spawned == []
    services.booted(True, 0)
    assert init.phase == pid1.RUNNING and spawned == [1]
