"""journalctl inside a richinit container: `-u NAME` reads PID 1's ring of the service's output
(the last 200 lines), `-f` follows it; without -u, the syslog file (/var/log/syslog or messages)."""

import os
import sys
import time

from richinit.tools import client
from richinit.tools import unitfiles as uf

SYSLOG_FILES = ("/var/log/syslog", "/var/log/messages")
_IGNORED = ("--no-pager", "-e", "--pager-end", "-x", "--catalog", "-b", "--boot", "-q", "--quiet", "--no-hostname",
            "-a", "--all", "--system", "--full", "-l", "--no-tail", "-r", "--reverse", "--utc")
_IGNORED_VALUE = ("-o", "--output", "--since", "-S", "--until", "-U", "-p", "--priority", "-t", "--identifier")


class Usage(Exception):
    pass


def parse(argv):
    units, follow, lines, end = [], False, None, False
    it = iter(argv)
    for a in it:
        key, eq, value = a.partition("=")
        if a in ("-u", "--unit"):
            units.append(_next(it, a))
        elif key == "--unit" and eq:
            units.append(value)
        elif a.startswith("-u") and len(a) > 2:
            units.append(a[2:])
        elif a in ("-f", "--follow"):
            follow = True
        elif a in ("-n", "--lines"):
            lines = _count(_next(it, a))
        elif key == "--lines" and eq:
            lines = _count(value)
        elif a.startswith("-n") and len(a) > 2:
            lines = _count(a[2:])
        elif a in ("-e", "--pager-end"):
            end = True
        elif a in _IGNORED or (key in _IGNORED_VALUE and eq):
            continue
        elif a in _IGNORED_VALUE:
            _next(it, a)
        elif a.startswith("-x") or a.startswith("-b"):
            continue
        else:
            raise Usage("unsupported argument: %s" % a)
    if lines is None:
        lines = 10 if follow else (1000 if end else None)
    return units, follow, lines


def _next(it, opt):
    try:
        return next(it)
    except StopIteration:
        raise Usage("option %s needs a value" % opt)


def _count(v):
    if v == "all":
        return None
    if not v.lstrip("+").isdigit():
        raise Usage("failed to parse lines '%s'" % v)
    return int(v.lstrip("+"))


def _unit_logs(units, follow, lines):
    if len(units) > 1 and follow:
        raise Usage("-f follows one unit")
    stamp = time.strftime("%b %d %H:%M:%S")
    host = os.uname().nodename
    any_line = False
    for unit in units:
        name = uf.stem(uf.unit_name(unit))
        for reply in client.replies(["logs", name] + (["follow"] if follow else [])):
            if "line" in reply:
                print("%s %s %s: %s" % (time.strftime("%b %d %H:%M:%S"), host, name, reply["line"]), flush=True)
                continue
            if not reply.get("ok"):
                if "unknown service" not in (reply.get("error") or ""):
                    sys.stderr.write("journalctl: %s\n" % reply.get("error"))
                break
            got = reply.get("lines") or []
            got = got if lines is None else got[-lines:] if lines else []
            any_line = any_line or bool(got)
            for line in got:
                print("%s %s %s: %s" % (stamp, host, name, line), flush=True)
            if not follow or reply.get("end"):
                break
    if not any_line and not follow:
        print("-- No entries --")
    return 0


def _file_logs(follow, lines):
    path = next((p for p in SYSLOG_FILES if os.path.exists(p)), None)
    if path is None:
        print("-- No entries --")
        return 0
    with open(path, errors="replace") as f:
        text = f.read().splitlines()
        for line in text if lines is None else text[-lines:] if lines else []:
            print(line)
        while follow:
            line = f.readline()
            if line:
                print(line, end="", flush=True)
            else:
                time.sleep(0.2)
    return 0


def main(argv):
    try:
        units, follow, lines = parse(argv)
        if units:
            return _unit_logs(units, follow, lines)
        return _file_logs(follow, lines)
    except Usage as e:
        sys.stderr.write("journalctl: %s\n" % e)
        return 1
    except client.Unreachable as e:
        return client.fail_unreachable("journalctl", e)
