"""Which signals PID 1 owns, forwards or leaves alone, and how names parse.

PID 1's modules use the C module `_signal` (as `signal`) rather than the `signal`
package: the latter wraps every number in an IntEnum and so loads enum, collections
and functools, about 0.5 MB that PID 1 would carry for its whole life.
"""

import _signal as signal

# Canonical names first, so aliases (SIGIOT, SIGCLD, SIGPOLL) do not win.
_CANONICAL = ("SIGHUP SIGINT SIGQUIT SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGKILL SIGUSR1 SIGSEGV SIGUSR2 "
              "SIGPIPE SIGALRM SIGTERM SIGSTKFLT SIGCHLD SIGCONT SIGSTOP SIGTSTP SIGTTIN SIGTTOU SIGURG "
              "SIGXCPU SIGXFSZ SIGVTALRM SIGPROF SIGWINCH SIGIO SIGPWR SIGSYS").split()
NAMES = {getattr(signal, n): n for n in _CANONICAL if hasattr(signal, n)}
NUMBERS = {n: v for n, v in vars(signal).items()
           if n.startswith("SIG") and not n.startswith("SIG_") and isinstance(v, int)}

# Signals that start a shutdown. SIGRTMIN+3 is systemd's halt signal, which
# engines such as podman --systemd send; SIGPWR is LXC's and the kernel's.
SHUTDOWN = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGPWR, signal.SIGRTMIN + 3})

# Synchronous fault signals: if the kernel sends one to us, it is our own bug,
# and a Python handler would loop on the faulting instruction. tini leaves
# them at their default too.
_SYNCHRONOUS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL,
                          signal.SIGTRAP, signal.SIGSYS, signal.SIGABRT})
_UNCATCHABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})


def catchable():
    """Every signal we install a (no-op) handler for so it wakes the loop."""
    return [s for s in range(1, signal.SIGRTMAX + 1)
            if s not in _UNCATCHABLE and s not in _SYNCHRONOUS and s not in (32, 33)]


def forwardable(sig):
    return sig not in SHUTDOWN and sig != signal.SIGCHLD and sig not in _UNCATCHABLE \
        and sig not in _SYNCHRONOUS


def parse(text):
    """'TERM', 'SIGTERM', '15', 'RTMIN+3' -> signal number; 0 allowed (means drop)."""
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 <= n <= signal.SIGRTMAX:
            return n
        raise ValueError("no signal number %s" % text)
    if not t.startswith("SIG"):
        t = "SIG" + t
    for base, num in (("SIGRTMIN", signal.SIGRTMIN), ("SIGRTMAX", signal.SIGRTMAX)):
        if t.startswith(base):
            rest = t[len(base):]
            off = int(rest) if rest else 0
            n = num + off
            if signal.SIGRTMIN <= n <= signal.SIGRTMAX:
                return n
            raise ValueError("no signal %s" % text)
    if t in NUMBERS:
        return NUMBERS[t]
    raise ValueError("unknown signal %r" % text)


def name(sig):
    if sig in NAMES:
        return NAMES[sig]
    if signal.SIGRTMIN <= sig <= signal.SIGRTMAX:
        return "SIGRTMIN+%d" % (sig - signal.SIGRTMIN) if sig > signal.SIGRTMIN else "SIGRTMIN"
    return str(sig)


def parse_rewrite(text):
    """'TERM:QUIT' -> (15, 3); 'USR1:0' drops USR1."""
    src, sep, dst = text.partition(":")
    if not sep:
        raise ValueError("rewrite must be SIG:SIG, got %r" % text)
    s = parse(src)
    if s == 0:
        raise ValueError("cannot rewrite signal 0")
    return s, parse(dst)
