"""The timer wheel as a state machine, on a fake clock (richinit.timers)."""

import os

import pytest

from richinit import calendar
from richinit.services.model import TimerSpec
from richinit.timers import Timers, sleep_between

WALL0 = 1700000000.0  # the wall clock when the monotonic clock reads 0 (a Tuesday, 22:13:20 UTC)


class FakeService:
    def __init__(self, name):
        self.name, self.started, self.pid = name, [], None

    def start(self):
        self.started.append(True)

    def pids(self):
        return [self.pid] if self.pid else []


class Host:
    def __init__(self, *names):
        self.t = 0.0
        self.started = 0.0
        self.services = {n: FakeService(n) for n in names}
        self.ops = self

    def now(self):
        return self.t


def wheel(host, *specs, wall_offset=WALL0, stamp_dir="/nonexistent"):
    state = {"offset": wall_offset}
    timers = Timers(host, wall=lambda: state["offset"] + host.t, stamp_dir=stamp_dir, perturb=0.0)
    timers.apply(list(specs), host.t)
    timers.clock = state
    return timers


def run_until(host, timers, until):
    """Advance the fake clock from deadline to deadline as PID 1's loop does; returns the fire times."""
    fired = []
    while True:
        d = timers.next_deadline(host.t)
        if d is None or d > until:
            host.t = until
            return fired
        host.t = max(host.t, d)
        before = {n: len(s.started) for n, s in host.services.items()}
        timers.on_timer(host.t)
        for n, s in host.services.items():
            fired += [(round(host.t, 3), n)] * (len(s.started) - before[n])


def spec(**kw):
    kw.setdefault("accuracy", 0.0)
    return TimerSpec(**kw)


def test_on_active_then_on_unit_active_repeats_from_each_start():
    host = Host("job")
    timers = wheel(host, spec(name="job", service="job", on_active=2.0, on_unit_active=3.0))
    assert timers.next_deadline(0.0) == 2.0
    assert run_until(host, timers, 2.0) == [(2.0, "job")]
    svc = host.services["job"]
    host.t = 2.1
    timers.service_changed(svc, down=False)   # the service left the inactive state at 2.1
    host.t = 2.4
    timers.service_changed(svc, down=True)
    assert timers.next_deadline(host.t) == pytest.approx(5.1)
    assert run_until(host, timers, 9.0) == [(5.1, "job"), (8.1, "job")]  # from the last trigger when later


def test_one_shot_fires_once_and_unit_active_alone_never():
    host = Host("a", "b")
    timers = wheel(host, spec(name="a", service="a", on_boot=1.0),
                   spec(name="b", service="b", on_unit_active=1.0))
    assert run_until(host, timers, 100.0) == [(1.0, "a")]
    assert timers.deadline is None


def test_on_unit_inactive_counts_from_the_stop():
    host = Host("w")
    timers = wheel(host, spec(name="w", service="w", on_unit_inactive=5.0))
    assert timers.next_deadline(0.0) is None
    svc = host.services["w"]
    host.t = 1.0
    timers.service_changed(svc, down=False)
    host.t = 3.0
    timers.service_changed(svc, down=True)
    assert run_until(host, timers, 10.0) == [(8.0, "w")]


def test_a_running_service_is_not_started_again():
    host = Host("s")
    host.services["s"].pid = 42
    timers = wheel(host, spec(name="s", service="s", on_boot=1.0))
    assert run_until(host, timers, 5.0) == []


def test_calendar_elapse_on_the_monotonic_wheel():
    host = Host("daily")
    timers = wheel(host, spec(name="daily", service="daily", calendar=("*-*-* 23:00:00 UTC",)))
    # WALL0 is 22:13:20 UTC: 46 min 40 s to go
    assert timers.next_deadline(0.0) == pytest.approx(2800.0)
    assert run_until(host, timers, 2800.0 + 86400 + 1) == [(2800.0, "daily"), (89200.0, "daily")]


def test_wall_clock_jump_recomputes_calendar_timers():
    host = Host("c")
    timers = wheel(host, spec(name="c", service="c", calendar=("*-*-* 23:00:00 UTC",)))
    assert timers.next_deadline(0.0) == pytest.approx(2800.0)
    host.t = 10.0
    timers.clock["offset"] += 2000.0  # the wall clock was set 2000 s forward
    assert timers.next_deadline(host.t) == pytest.approx(800.0)
    timers.clock["offset"] += 0.5      # below a second: NTP's slew, nothing recomputed
    assert timers.next_deadline(host.t) == pytest.approx(800.0)


def test_persistent_catches_up_a_missed_run_and_stamps(tmp_path):
    host = Host("p", "q")
    stamp = tmp_path / "stamp-p.timer"
    stamp.touch()
    os.utime(stamp, (WALL0 - 2 * 86400, WALL0 - 2 * 86400))  # last ran two days ago
    timers = wheel(host, spec(name="p", service="p", calendar=("daily",), persistent=True),
                   spec(name="q", service="q", calendar=("daily",)), stamp_dir=str(tmp_path))
    assert timers.timers["p"].due < 0 and timers.next_deadline(0.0) == 0.0  # missed: due at once
    assert run_until(host, timers, 1.0) == [(0.0, "p")]
    assert os.stat(stamp).st_mtime == pytest.approx(WALL0)
    assert not (tmp_path / "stamp-q.timer").exists()  # not persistent: no stamp, no catch-up
    midnight = calendar.next_elapse("daily", WALL0) - WALL0
    assert timers.timers["p"].due == pytest.approx(midnight) and timers.timers["q"].due == pytest.approx(midnight)


def test_accuracy_coalesces_wake_ups():
    host = Host("a", "b")
    timers = wheel(host, spec(name="a", service="a", on_boot=100.2, accuracy=60.0),
                   spec(name="b", service="b", on_boot=110.7, accuracy=60.0))
    # One wake-up on the minute's common spot serves both (systemd's sleep_between).
    assert timers.timers["a"].wake == timers.timers["b"].wake == 120.0
    assert run_until(host, timers, 200.0) == [(120.0, "a"), (120.0, "b")]


def test_sleep_between_prefers_the_common_spot():
    assert sleep_between(100.0, 100.0, 7.0) == 100.0
    assert sleep_between(100.0, 200.0, 7.0) == 187.0    # the minute's spot
    assert sleep_between(100.0, 105.0, 7.0) == 105.0    # no 10 s spot inside: whole seconds
    assert sleep_between(100.2, 100.9, 7.0) == 100.75   # no second spot inside: 250 ms steps
    assert sleep_between(100.2, 100.3, 7.1) == 100.3    # none: the latest


def test_randomized_delay_stays_in_range_and_is_drawn_once_per_elapse():
    host = Host("r")
    timers = wheel(host, spec(name="r", service="r", on_boot=10.0, on_unit_active=10.0, randomized_delay=5.0))
    t = timers.timers["r"]
    first = t.due
    assert 10.0 <= first < 15.0
    timers.service_changed(host.services["r"], down=False)  # a recompute keeps the drawn delay
    assert t.due == first


def test_status_rows():
    host = Host("job", "idle")
    timers = wheel(host, spec(name="job", service="job", on_boot=2.0),
                   spec(name="idle", service="idle", on_unit_active=1.0))
    run_until(host, timers, 3.0)
    rows = timers.status()
    assert sorted(r["unit"] for r in rows) == ["idle.timer", "job.timer"]
    job = next(r for r in rows if r["unit"] == "job.timer")
    assert job["activates"] == "job.service" and job["next"] is None
    assert job["last"] == pytest.approx(WALL0 + 2.0) and job["passed"] == pytest.approx(1.0)


def test_timers_and_sockets_keep_pid1_lean(tmp_path):
    """The wheel with a calendar timer and bound sockets brings nothing heavy into PID 1."""
    import subprocess
    import sys
    code = ("import sys; from richinit import sockets, timers; from richinit.services.model import Listen, SocketSpec, "
            "TimerSpec\n"
            "class H: started = 0.0; services = {}; ops = type('O', (), {'now': staticmethod(lambda: 1.0)})()\n"
            "class L:\n    def add_reader(self, fd, cb): pass\n    def remove_reader(self, fd): pass\n"
            "H.loop = L()\n"
            "w = timers.Timers(H(), stamp_dir=sys.argv[1])\n"
            "w.apply([TimerSpec(name='t', service='t', calendar=('Mon *-*-* 10:00',), on_boot=5.0)], 1.0)\n"
            "assert w.next_deadline(1.0) is not None\n"
            "s = sockets.Sockets(H()); s.apply([SocketSpec(name='s', service='s', listen=(Listen(kind='dgram', "
            "address=sys.argv[1] + '/s'),))])\n"
            "print(' '.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path)], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         env={"PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
    assert out.returncode == 0, out.stderr
    heavy = {"re", "enum", "socket", "selectors", "datetime", "zoneinfo", "json", "collections", "random",
             "ctypes", "typing", "logging"}
    assert sorted(set(out.stdout.split()) & heavy) == []


def test_start_arms_stop_disarms_and_a_reload_keeps_what_systemctl_did():
    host = Host("a", "b")
    specs = [spec(name="a", service="a", on_active=10.0), spec(name="b", service="b", on_active=10.0, enabled=False)]
    timers = wheel(host, *specs)
    assert timers.state("a") == ("active", "waiting") and timers.state("b") == ("inactive", "dead")
    assert timers.state("c") is None
    host.t = 5.0
    timers.start("b")
    timers.stop("a")
    assert timers.state("a") == ("inactive", "dead") and timers.state("b") == ("active", "waiting")
    assert [r["unit"] for r in timers.status()] == ["b.timer", "a.timer"] and timers.status()[1]["next"] is None
    timers.apply(specs, host.t)
    assert (timers.state("a"), timers.state("b")) == (("inactive", "dead"), ("active", "waiting"))
    assert run_until(host, timers, 30.0) == [(15.0, "b")], "OnActiveSec= from the start; a stopped timer is silent"
    timers.start("a")
    assert run_until(host, timers, 60.0) == [(40.0, "a")]
