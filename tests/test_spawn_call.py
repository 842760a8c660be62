"""spawn_call: a child forked from PID 1 that runs one of our functions gets the clean slate an
exec'd child gets (signals, mask, session, fds, environment) and exits with the function's value."""

import _signal
import os
import signal

from richinit.spawn import spawn_call


def _wait(pid):
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _report(fd, probe):
    os.write(fd, repr(probe()).encode())
    return 0


def _run(probe, **kw):
    r, w = os.pipe()
    pid = spawn_call(_report, (3, probe), extra_fds={3: w}, **kw)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    assert _wait(pid) == 0
    return eval(data.decode())  # noqa: S307 - our own repr()


def _open_fds():
    return sorted(int(n) for n in os.listdir("/proc/self/fd"))


def test_only_stdio_and_the_given_fds_stay_open():
    stray = os.open(os.devnull, os.O_RDONLY)  # like PID 1's epoll, wakeup pipe, control socket
    try:
        fds = _run(_open_fds)
    finally:
        os.close(stray)
    assert fds[:4] == [0, 1, 2, 3] and stray not in fds
    assert len(fds) == 5  # listdir's own fd


def test_exit_status_is_the_functions_value_and_errors_are_one():
    assert _wait(spawn_call(lambda: 7)) == 7
    assert _wait(spawn_call(lambda: None)) == 0
    assert _wait(spawn_call(lambda: 1 / 0, stdio=(None, None, os.open(os.devnull, os.O_WRONLY)))) == 1

    def bye():
        raise SystemExit(3)
    assert _wait(spawn_call(bye)) == 3


def test_signals_mask_session_and_environment_are_the_childs_own():
    old = signal.signal(signal.SIGUSR1, lambda *a: None)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        got = _run(lambda: (_signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL,
                            sorted(signal.pthread_sigmask(signal.SIG_BLOCK, ())),
                            os.getsid(0) == os.getpid(), dict(os.environ)),
                   env={"ONLY": "this"})
    finally:
        signal.signal(signal.SIGUSR1, old)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    assert got == (True, [], True, {"ONLY": "this"})


def test_a_source_on_another_targets_number_is_not_overwritten():
    # fd 70 := A, fd 71 := what fd 70 was (B): placing 70 first must not lose B.
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    os.dup2(b_w, 70)
    os.close(b_w)

    def write_both():
        os.write(70, b"on-70")
        os.write(71, b"on-71")
    pid = spawn_call(write_both, extra_fds={70: a_w, 71: 70})
    for fd in (70, a_w):
        os.close(fd)
    assert _wait(pid) == 0
    assert os.read(a_r, 10) == b"on-70" and os.read(b_r, 10) == b"on-71"
    for fd in (a_r, b_r):
        os.close(fd)


def test_spawn_places_fds_the_same_way():
    """spawn() (fork + exec) shares spawn_call's fd placement: a source on another target's number
    survives, and the exec-error pipe never lands on a target."""
    from richinit.spawn import spawn
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    os.dup2(b_w, 70)
    os.close(b_w)
    import sys
    pid = spawn([sys.executable, "-c", "import os; os.write(70, b'on-70'); os.write(71, b'on-71')"],
                extra_fds={70: a_w, 71: 70})
    for fd in (70, a_w):
        os.close(fd)
    assert _wait(pid) == 0
    assert os.read(a_r, 10) == b"on-70" and os.read(b_r, 10) == b"on-71"
    for fd in (a_r, b_r):
        os.close(fd)
