"""Fault injection for tests only: richinit itself has no switch for it (no environment variable,
no option), so no image and no launcher can turn it on.

`inject(init, points)` makes named steps of one pid1.Init raise once, to prove that the loop
survives a bug in a handler and that heal() still moves a stop on. Points:

    signal          on_signal: the signal is lost
    forward         _forward: a forwarded signal is lost
    stop-services   _enter_stopping_services: the transition after the app's exit does not happen

Run as PID 1 with faults: `python -m tests.support.faultinit POINTS [richinit options] -- CMD`.
"""

import sys

POINTS = {"signal": "on_signal", "forward": "_forward", "stop-services": "_enter_stopping_services"}


def inject(init, points):
    for point in points:
        attr = POINTS[point]

        def once(*args, _attr=attr, _point=point, **kw):
            del init.__dict__[_attr]  # the class's method again from now on
            raise RuntimeError("injected fault at %s" % _point)
        setattr(init, attr, once)
    return init


def main():
    points = [p for p in sys.argv[1].split(",") if p]
    del sys.argv[1]
    from richinit import main as rmain
    from richinit import pid1

    class FaultyInit(pid1.Init):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            inject(self, points)
    pid1.Init = FaultyInit  # main() imports Init from the module when it runs
    rmain.entry()


if __name__ == "__main__":
    main()
