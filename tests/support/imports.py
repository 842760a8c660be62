"""What a program imports: `python -X importtime` around it, minus what the interpreter loads anyway.

    mods = imported([sys.executable, "-X", "importtime", "-IS", script, ...])   # {module: cumulative µs}
"""

import subprocess
import sys

_BASE = {}


def parse(stderr):
    """{module: cumulative µs} from -X importtime lines (other stderr lines are skipped)."""
    out = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _self, cumulative, name = line[len("import time:"):].split("|")
        if cumulative.strip().isdigit():
            out[name.strip()] = int(cumulative)
    return out


def baseline(flags=("-IS",)):
    """The modules `python FLAGS -c pass` loads: every program pays them; no budget lists them."""
    flags = tuple(flags)
    if flags not in _BASE:
        r = subprocess.run([sys.executable, "-X", "importtime", *flags, "-c", "pass"], capture_output=True, text=True)
        _BASE[flags] = frozenset(parse(r.stderr))
    return _BASE[flags]


def _flags(argv):
    out = []
    for a in argv[1:]:
        if a in ("-c", "-m") or not a.startswith("-"):
            break
        if a in ("-I", "-S", "-IS"):
            out.append(a)
    return tuple(out)


def imported(argv, **kw):
    """Run argv (which must include -X importtime) and return (CompletedProcess, {module: µs} beyond the
    baseline of the same interpreter flags)."""
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    base = baseline(_flags(argv))
    return r, {m: us for m, us in parse(r.stderr).items() if m not in base}


def over_budget(mods, budget):
    """The modules outside the budget (a set of names; 'pkg.*' allows a package's submodules), with µs."""
    def allowed(m):
        return m in budget or any(b.endswith(".*") and (m == b[:-2] or m.startswith(b[:-1])) for b in budget)
    return {m: us for m, us in mods.items() if not allowed(m)}
