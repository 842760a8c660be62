"""Timer units on PID 1's own timer wheel: no polling, no wake-up between due times.

Each Timer computes its next elapse as systemd does (systemd.timer(5)) and the wheel offers the
earliest wake-up to PID 1's loop as one more deadline (Supervisor.next_deadline), so an idle PID 1
with timers armed sleeps in epoll until the first one is due, and only then.

- OnBootSec=, OnStartupSec=: from PID 1's start (a container's boot); OnActiveSec=: from the timer's
  activation. Each fires once.
- OnUnitActiveSec=, OnUnitInactiveSec=: from when the activated service last left, or last entered,
  the inactive state (the supervisor reports every state change), or from the last trigger if later:
  repeating. Neither fires before the service was ever started or stopped, as in systemd.
- OnCalendar=: richinit.calendar, the next match after the last trigger (Persistent=: read back
  from /var/lib/richinit/timers/stamp-NAME.timer, whose mtime each trigger sets, so a run missed
  while the container was down fires at boot), else after the timer's activation.
- RandomizedDelaySec=: a delay drawn in [0, value) each time an elapse is computed after a trigger.
- AccuracySec=: the wake-up falls in [due, due + accuracy], on the same spot of the minute (else of
  10 s, 1 s, 250 ms) for every timer, as sd-event's sleep_between() picks it, with a perturbation
  derived from the kernel's boot id (the same for every container of the host, though not the value
  systemd derives from it): timers due close together share one wake-up (all timers already due
  fire at each wake-up). AccuracySec=1us is exact.
- A trigger starts the service (Unit=, or the timer's name); a running one is left alone.

The wall clock: calendar elapses are kept as monotonic deadlines, and whenever PID 1 asks for the
next deadline (after every event it handled) the offset between the wall and the monotonic clock is
compared with the one the elapses were computed with; a change of more than a second (a clock set,
a suspended host) recomputes them. This costs two clock reads per wake-up and no timerfd (whose
TFD_TIMER_CANCEL_ON_SET would need ctypes in PID 1); the price is that a clock change while PID 1
sleeps is seen at its next wake-up, which is at the latest the old deadline.

systemctl start/stop NAME.timer (`start`, `stop`): stop disarms the timer (inactive, dead; nothing
fires); start arms it, enabled or not, its OnActiveSec= counting from that start (systemd's
activation). A daemon-reload keeps what systemctl did: a stopped timer stays stopped, a started one
armed while its unit exists.

`status()` is `systemctl list-timers`' data: NEXT, LEFT, LAST, PASSED, UNIT, ACTIVATES (a stopped
timer too, with no NEXT: list-timers --all shows it).
"""

import os
import time

from richinit import log

STAMP_DIR = "/var/lib/richinit/timers"
_STEPS = (60.0, 10.0, 1.0, 0.25)
_ONE_SHOT = ("on_boot", "on_startup", "on_active")
_MONOTONIC = ("on_boot", "on_startup", "on_active", "on_unit_active", "on_unit_inactive")


def boot_perturbation():
    """Seconds in [0, 60): the same for every process of this boot (the kernel's boot id)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            text = f.read().replace("-", "").strip()
        return int(text[:15], 16) % 60000000 / 1e6
    except (OSError, ValueError):
        return 0.0


def sleep_between(a, b, perturb):
    """A wake-up time in [a, b], the latest on the common spot of the minute, 10 s, 1 s or 250 ms."""
    if b <= a:
        return a
    for step in _STEPS:
        c = (b // step) * step + perturb % step
        if c > b:
            c -= step
        if c >= a:
            return c
    return b


class Timer:
    """One timer's state. Times: `mono` monotonic seconds, `real` epoch seconds."""

    def __init__(self, spec, activated, boot, wall_offset, stamp_dir):
        self.spec = spec
        self.name = spec.name
        self.activated = activated        # monotonic time the timer was activated (armed)
        self.boot = boot                  # monotonic time PID 1 started
        self.last_mono = self.last_real = None
        self.disabled = set()             # one-shot kinds already fired
        self.due = None                   # monotonic elapse, random delay included
        self.wake = None                  # when the wheel wakes up for it, within its accuracy
        self.random = None                # the drawn RandomizedDelaySec for the pending elapse
        self.calendars = []
        self.stamp = os.path.join(stamp_dir, "stamp-%s.timer" % spec.name)
        if spec.calendar:
            from richinit import calendar  # only when a calendar timer exists
        for expr in spec.calendar:
            try:
                self.calendars.append(calendar.parse(expr))
            except ValueError as e:
                log.warning("timer %s: %s", spec.name, e)
        if spec.persistent and self.calendars:
            try:
                self.last_real = os.stat(self.stamp).st_mtime
                self.last_mono = self.last_real - wall_offset
            except OSError:
                pass

    def compute(self, now, wall_offset, svc_times, perturb):
        """Next elapse from the state: sets due and wake (None: nothing more to come)."""
        spec = self.spec
        candidates = []
        exit_at, enter_at = svc_times
        for kind in _MONOTONIC:
            value = getattr(spec, kind)
            if value is None or kind in self.disabled:
                continue
            if kind in _ONE_SHOT:
                base = self.activated if kind == "on_active" else self.boot
            else:
                base = exit_at if kind == "on_unit_active" else enter_at
                if self.last_mono is not None and (base is None or self.last_mono > base):
                    base = self.last_mono
                if base is None:
                    continue
            at = base + value
            if kind in _ONE_SHOT and self.last_mono is not None and (at <= self.last_mono or at < now):
                self.disabled.add(kind)  # fired already, or passed since the last trigger: once only
                continue
            candidates.append(at)
        if self.calendars:
            after = self.last_real if self.last_real is not None else self.activated + wall_offset
            nexts = [e for e in (c.next_elapse(after) for c in self.calendars) if e is not None]
            if nexts:
                candidates.append(min(nexts) - wall_offset)
        if not candidates:
            self.due = self.wake = None
            return
        if self.random is None:
            rd = spec.randomized_delay or 0.0
            self.random = rd * int.from_bytes(os.urandom(4), "little") / 2 ** 32 if rd > 0 else 0.0
        self.due = min(candidates) + self.random
        a = max(self.due, now)
        self.wake = sleep_between(a, a + max(spec.accuracy or 0.0, 0.0), perturb)

    def fired(self, now, wall):
        self.last_mono, self.last_real = now, wall
        self.random = None
        if self.spec.persistent and self.calendars:
            try:
                os.makedirs(os.path.dirname(self.stamp), mode=0o755, exist_ok=True)
                fd = os.open(self.stamp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
                os.close(fd)
                os.utime(self.stamp, (wall, wall))
            except OSError as e:
                log.warning("timer %s: stamp %s: %s", self.name, self.stamp, e.strerror)


class Timers:
    """Every timer of the document. `host` is the supervisor: host.ops.now() (monotonic),
    host.services (name -> svc.Service with start()), host.started (PID 1's start, monotonic)."""

    def __init__(self, host, wall=time.time, stamp_dir=STAMP_DIR, perturb=None):
        self.host, self.wall, self.stamp_dir = host, wall, stamp_dir
        self.perturb = boot_perturbation() if perturb is None else perturb
        self.timers = {}     # armed: name -> Timer
        self.specs = {}      # every timer of the document, armed or not
        self.stopped = set()  # systemctl stop: not armed again by a reload
        self.started = set()  # systemctl start of a timer not enabled: armed again by a reload
        self.exit_at = {}    # service -> monotonic time it last left the inactive state
        self.enter_at = {}   # service -> monotonic time it last entered it
        self.active = set()  # services not inactive, as last reported
        self.offset = None   # wall - monotonic the calendar elapses were computed with
        self.deadline = None

    def _offset(self, now):
        return self.wall() - now

    def apply(self, specs, now):
        """Arm the enabled timers of the document (at boot, and on reload: new ones armed, gone ones
        dropped, the others kept with their state)."""
        offset = self.offset = self._offset(now)
        self.specs = {s.name: s for s in specs}
        self.stopped &= set(self.specs)
        self.started &= set(self.specs)
        wanted = {s.name: s for s in specs if (s.enabled or s.name in self.started) and s.name not in self.stopped}
        for name in list(self.timers):
            if name not in wanted or self.timers[name].spec != wanted[name]:
                del self.timers[name]
        for name, spec in wanted.items():
            if name not in self.timers:
                self.timers[name] = Timer(spec, now, self.host.started, offset, self.stamp_dir)
                if spec.service not in self.host.services:
                    log.warning("timer %s: no service %s to activate", name, spec.service)
        self._compute_all(now)

    def start(self, name):
        """systemctl start NAME.timer: arm it (its OnActiveSec= from now); armed already: kept."""
        now = self.host.ops.now()
        self.stopped.discard(name)
        self.started.add(name)
        if name not in self.timers:
            t = self.timers[name] = Timer(self.specs[name], now, self.host.started, self._offset(now), self.stamp_dir)
            self._compute(t, now)
            self._update_deadline()

    def stop(self, name):
        """systemctl stop NAME.timer: disarm it; nothing fires until it is started again."""
        self.started.discard(name)
        self.stopped.add(name)
        if self.timers.pop(name, None) is not None:
            self._update_deadline()

    def state(self, name):
        """(ActiveState, SubState) of the timer unit, as systemd names them; None when unknown."""
        t = self.timers.get(name)
        if t is not None:
            return "active", "waiting" if t.due is not None else "elapsed"
        return ("inactive", "dead") if name in self.specs else None

    def _compute_all(self, now):
        for t in self.timers.values():
            self._compute(t, now)
        self._update_deadline()

    def _compute(self, t, now):
        svc = t.spec.service
        t.compute(now, self.offset, (self.exit_at.get(svc), self.enter_at.get(svc)), self.perturb)

    def _update_deadline(self):
        wakes = [t.wake for t in self.timers.values() if t.wake is not None]
        self.deadline = min(wakes) if wakes else None

    def next_deadline(self, now):
        """The wheel's next wake-up; first recomputes calendar elapses if the wall clock moved."""
        if self.offset is not None and abs(self._offset(now) - self.offset) > 1.0:
            log.info("the wall clock changed by %+.0fs: timers recomputed", self._offset(now) - self.offset)
            self.offset = self._offset(now)
            for t in self.timers.values():
                if t.last_real is not None:
                    t.last_mono = t.last_real - self.offset
            self._compute_all(now)
        return self.deadline

    def on_timer(self, now):
        """Fire every timer already due (those close behind share this wake-up), then re-arm."""
        if self.deadline is None or now < self.deadline:
            return
        wall = self.wall()
        for t in list(self.timers.values()):
            if t.due is not None and t.due <= now:
                t.fired(now, wall)
                self._trigger(t)
                self._compute(t, now)
        self._update_deadline()

    def _trigger(self, t):
        svc = self.host.services.get(t.spec.service)
        if svc is None:
            log.warning("timer %s: no service %s", t.name, t.spec.service)
            return
        log.info("timer %s: starting %s", t.name, t.spec.service)
        if not svc.pids():
            svc.start()

    def service_changed(self, svc, down):
        """The supervisor's notification; timers of that service recompute their elapse."""
        name = svc.name
        now = self.host.ops.now()
        if down and name in self.active:
            self.active.discard(name)
            self.enter_at[name] = now
        elif not down and name not in self.active:
            self.active.add(name)
            self.exit_at[name] = now
        else:
            return
        touched = [t for t in self.timers.values() if t.spec.service == name]
        for t in touched:
            self._compute(t, now)
        if touched:
            self._update_deadline()

    def status(self):
        """`systemctl list-timers` rows, soonest first: next/last as epoch seconds (None: n/a),
        left/passed in seconds."""
        now = self.host.ops.now()
        wall = self.wall()
        rows = []
        for t in self.timers.values():
            nxt = None if t.due is None else wall + (t.due - now)
            rows.append({"unit": t.spec.unit or t.name + ".timer", "activates": t.spec.service + ".service",
                         "next": nxt, "left": None if nxt is None else max(0.0, nxt - wall),
                         "last": t.last_real, "passed": None if t.last_real is None else wall - t.last_real})
        for name in sorted(self.stopped):
            spec = self.specs[name]
            rows.append({"unit": spec.unit or name + ".timer", "activates": spec.service + ".service",
                         "next": None, "left": None, "last": None, "passed": None})
        rows.sort(key=lambda r: (r["next"] is None, r["next"] or 0))
        return rows
