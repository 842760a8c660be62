"""The ServiceSpec data model and the validation of plain values (no YAML involved)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from richinit.services import spec as S

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(raw, name="svc"):
    d, bad = S.parse_definition(raw, name)
    assert not bad, [(b.path, b.message) for b in bad]
    return d.resolve()


def problems(raw, name="svc"):
    d, bad = S.parse_definition(raw, name)
    assert d is None
    return [(b.path, b.message) for b in bad]


def test_spec_module_stays_cheap_for_pid1():
    code = ("import sys, richinit.services.spec; "
            "print(sorted(m for m in ('yaml', 'json', 'dataclasses', 'ctypes', 'inspect', 'difflib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_defaults_of_a_minimal_service():
    s = parse({"command": ["/bin/daemon"]})
    assert s.name == "svc" and s.command == ("/bin/daemon",) and s.type == "simple"
    assert s.restart == "always" and s.ready == S.Ready(kind="none")
    assert s.backoff == S.Backoff(initial=0.5, max=30.0, factor=2.0, reset_after=10.0)
    assert s.crash_loop == S.CrashLoop(starts=5, within=30.0)
    assert s.stop_signal == "SIGTERM" and s.stop_signum == signal.SIGTERM and s.stop_timeout == 5.0
    assert s.log == S.Log(kind="stdout") and s.enabled is True and s.environment == {}


def test_string_command_runs_through_sh_and_numbers_become_arguments():
    assert parse({"command": "exec nginx -g 'daemon off;'"}).command == ("/bin/sh", "-c", "exec nginx -g 'daemon off;'")
    assert parse({"command": ["sleep", 10, 1.5]}).command == ("sleep", "10", "1.5")


def test_builtin_token_in_string_or_list():
    s = parse({"command": "@builtin cron --verbose"})
    assert s.command == ("@builtin", "cron", "--verbose") and s.builtin == "cron"
    assert parse({"command": ["@builtin", "syslogd"]}).builtin == "syslogd"
    assert parse({"command": ["/usr/sbin/cron"]}).builtin is None
    assert problems({"command": "@builtin telnetd"}) == [(("command",), "@builtin needs one of: cron, syslogd")]


def test_units_of_durations_and_sizes():
    s = parse({"command": ["x"], "ready_timeout": "1.5m", "stop_timeout": "250ms",
               "backoff": {"initial": "100ms", "max": "1h", "factor": 1.5, "reset_after": 7},
               "log": {"file": "/var/log/x", "max_size": "2M", "keep": 0}})
    assert (s.ready_timeout, s.stop_timeout) == (90.0, 0.25)
    assert s.backoff == S.Backoff(initial=0.1, max=3600.0, factor=1.5, reset_after=7.0)
    assert s.log == S.Log(kind="file", path="/var/log/x", max_size=2 * 1024 * 1024, keep=0)
    assert parse({"command": ["x"], "log": {"file": "/l"}}).log.max_size == 10 * 1024 * 1024


def test_readiness_forms():
    def ready(v):
        return parse({"command": ["x"], "ready": v}).ready
    assert ready("notify") == S.Ready(kind="notify")
    assert ready("none") == S.Ready(kind="none")
    assert ready({"tcp": 22}) == S.Ready(kind="tcp", host="127.0.0.1", port=22)
    assert ready({"tcp": "0.0.0.0:8080"}) == S.Ready(kind="tcp", host="0.0.0.0", port=8080)
    assert ready({"tcp": "[::1]:443"}) == S.Ready(kind="tcp", host="::1", port=443)
    assert ready({"unix": "/run/x.sock"}) == S.Ready(kind="unix", path="/run/x.sock")
    assert ready({"file": "/run/x.ready"}) == S.Ready(kind="file", path="/run/x.ready")
    assert ready({"fd": 3}) == S.Ready(kind="fd", fd=3)


@pytest.mark.parametrize("raw, expected", [
    ({"ready": {"fd": 1}}, (("ready", "fd"), "a notification fd must be between 3 and 1023, got 1")),
    ({"ready": {"tcp": 22, "unix": "/x"}}, (("ready",), "ready takes exactly one of tcp, unix, file, fd")),
    ({"ready": {"http": 80}}, (("ready", "http"),
                               "unknown readiness 'http' (known: none, notify, tcp, unix, file, fd)")),
    ({"ready": {"unix": "run/x"}}, (("ready", "unix"), "expected an absolute path, got 'run/x'")),
    ({"ready": {"tcp": "localhost"}}, (("ready", "tcp"), "expected a port or HOST:PORT, got 'localhost'")),
    ({"user": "bad user"}, (("user",), "not a valid user or group name: 'bad user'")),
    ({"user": True}, (("user",), "expected a name or a number, got a boolean")),
    ({"workdir": "srv"}, (("workdir",), "expected an absolute path, got 'srv'")),
    ({"after": ["ok", "no way"]}, (("after", 1), "not a valid service name: 'no way'")),
    ({"environment": {"A=B": "x"}}, (("environment", "A=B"), "not a valid variable name: 'A=B'")),
    ({"environment": {"A": None}}, (("environment", "A"), "A: expected a string or a number, got null")),
    ({"environment": ["A=1"]}, (("environment",), "expected a mapping of VARIABLE: value, got a list")),
    ({"stop_signal": "STOP"}, (("stop_signal",), "SIGSTOP does not stop a process")),
    ({"stop_signal": 99}, (("stop_signal",), "no such signal: 99")),
    ({"backoff": {"initial": 10, "max": 1}}, (("backoff",), "backoff: max (1) is below initial (10)")),
    ({"backoff": {"factor": 0.5}}, (("backoff", "factor"), "factor must be at least 1, got 0.5")),
    ({"crash_loop": {"starts": 3}}, (("crash_loop",), "crash_loop needs 'within'")),
    ({"crash_loop": {"starts": 0, "within": 5}}, (("crash_loop", "starts"),
                                                  "starts must be between 1 and 1000000, got 0")),
    ({"log": "journal"}, (("log",), "expected stdout, syslog, none or {file: PATH, max_size: SIZE, keep: N}, "
                                    "got 'journal'")),
    ({"condition": {}}, (("condition",), "condition is empty (known tests: path_exists, path_missing, "
                                         "command_exists, command_missing, busybox_applet, native_command)")),
    ({"condition": {"path_exists": "relative"}}, (("condition", "path_exists"),
                                                  "expected an absolute path, got 'relative'")),
    ({"pidfile": "/run/x.pid"}, (("pidfile",), "pidfile only applies to type: forking")),
    ({"enabled": "yes"}, (("enabled",), "expected true or false, got a string")),
    ({"command": []}, (("command",), "command is empty")),
    ({"command": ["x", ["y"]]}, (("command", 1), "command arguments must be strings, got a list")),
    ({"stop_timeout": -1}, (("stop_timeout",), "duration out of range: -1.0")),
    ({"listen": [{"datagram": "/dev/log", "stream": "80"}]},
     (("listen", 0), "expected one of {stream: ADDRESS}, {datagram: ADDRESS}, {seqpacket: ADDRESS}, {fifo: PATH}")),
    ({"listen": [{"stream": "99999"}]}, (("listen", 0, "stream"), "bad address '99999': a port 1-65535, IP:PORT, "
                                                                 "[IPv6]:PORT, /path or @name")),
    ({"listen": {"fifo": "run/f"}}, (("listen", 0, "fifo"), "expected an absolute path, got 'run/f'")),
])
def test_each_bad_value_names_its_field(raw, expected):
    raw = dict({"command": ["x"]}, **raw)
    assert problems(raw) == [expected]


def test_every_problem_of_a_file_is_reported():
    got = problems({"comand": ["x"], "restart": "sometimes", "type": "forking"})
    assert got == [(("comand",), "unknown field 'comand' (did you mean 'command'?)"),
                   (("restart",), "expected one of always | on-failure | never, got 'sometimes'"),
                   ((), "missing field 'command' (or alternatives; or enabled: false)")]


def test_oneshot_defaults_to_no_restart_but_can_retry():
    assert parse({"command": ["x"], "type": "oneshot"}).restart == "never"
    assert parse({"command": ["x"], "type": "oneshot", "restart": "on-failure"}).restart == "on-failure"


def test_disabled_or_masked_service_needs_no_command():
    assert parse({"enabled": False}).command == ()
    d, bad = S.parse_definition(None, "sshd")
    assert not bad and d.masked and d.resolve().enabled is False


def test_alternatives_carry_their_own_fields_and_conditions():
    d, bad = S.parse_definition({"alternatives": [
        ["cron", "-f"],
        {"command": ["crond", "-n"], "condition": {"native_command": "crond"}},
        {"command": "@builtin syslogd", "ready": {"fd": 3}},
        "exec fallback"], "stop_timeout": 3}, "x")
    assert not bad
    a = d.alternatives
    assert [x.implicit for x in a] == [True, False, False, False]
    assert a[1].condition == S.Condition(native_command=("crond",))
    chosen = d.resolve(a[2])
    assert chosen.command == ("@builtin", "syslogd") and chosen.ready == S.Ready(kind="fd", fd=3)
    assert chosen.stop_timeout == 3.0
    assert d.resolve(a[3]).command == ("/bin/sh", "-c", "exec fallback")


def test_alternative_checked_with_the_service_fields():
    got = problems({"type": "forking", "pidfile": "/run/a.pid",
                    "alternatives": [["a"], {"command": ["b"], "type": "simple"}]})
    assert got == [(("alternatives", 1, "pidfile"), "pidfile only applies to type: forking")]


def test_json_round_trip_is_identity():
    s = parse({"command": ["/usr/bin/web", "--port", 8080], "user": "www-data", "group": 33,
               "environment": {"A": "1", "B": 2}, "env_files": ["/e", "-/f"], "after": "db",
               "requires": ["db", "cache"], "ready": {"tcp": "[::1]:8080"}, "restart": "on-failure",
               "pre": [["mkdir", "-p", "/run/x"], "echo hi"], "finish": ["/bin/fin"],
               "crash_loop": "none", "stop_signal": "SIGRTMIN+3", "log": {"file": "/var/log/w", "keep": 2}},
              name="web")
    again = S.ServiceSpec.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s
    assert tuple(c.argv for c in again.pre) == (("mkdir", "-p", "/run/x"), ("/bin/sh", "-c", "echo hi"))
    assert again.crash_loop is None and again.stop_signal == "SIGRTMIN+3"
    assert again.stop_signum == signal.SIGRTMIN + 3
    assert again.env_file_paths == [("/e", False), ("/f", True)]
    assert again != s.replace(stop_timeout=9.0)


def test_from_dict_refuses_unknown_fields_and_specs_are_immutable():
    d = S.ServiceSpec(name="x", command=("a",)).to_dict()
    d["surprise"] = 1
    with pytest.raises(TypeError):
        S.ServiceSpec.from_dict(d)
    s = S.ServiceSpec(name="x")
    with pytest.raises(AttributeError):
        s.name = "y"


def test_init_script_and_problem_round_trip():
    i = S.InitScript(path="/etc/my_init.d/10", command=("/bin/sh", "/etc/my_init.d/10"), origin="my_init")
    assert S.InitScript.from_dict(json.loads(json.dumps(i.to_dict()))) == i
    p = S.Problem(service="web", file="/etc/richinit/services.d/web.yaml", line=4, message="bad")
    assert S.Problem.from_dict(p.to_dict()) == p
    assert str(p) == "/etc/richinit/services.d/web.yaml:4: bad"
    assert str(S.Problem(file="/f", message="m")) == "/f: m"


def test_backoff_first_restart_is_immediate_then_exponential_and_capped():
    b = S.Backoff(initial=0.5, max=4.0, factor=2.0, reset_after=10.0)
    assert [b.delay(k) for k in range(1, 7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert S.Backoff(initial=1, max=30, factor=10).delay(10 ** 6) == 30


def test_signal_names():
    assert S.signal_number("term") == S.signal_number("SIGTERM") == signal.SIGTERM
    assert S.signal_name(signal.SIGRTMIN + 3) == "SIGRTMIN+3" and S.signal_name(signal.SIGRTMIN) == "SIGRTMIN"
    assert S.signal_number("RTMAX-1") == signal.SIGRTMAX - 1
    with pytest.raises(ValueError):
        S.signal_number("RTMAX+1")


def test_env_file_text():
    env, bad = S.parse_env_text('# comment\n\nA=1\nexport B = two words \nC="q \\"x\\""\nD=\'s\'\nnope\n1X=2\n')
    assert env == {"A": "1", "B": "two words", "C": 'q "x"', "D": "s"}
    assert bad == [(7, "expected KEY=VALUE, got 'nope'"), (8, "expected KEY=VALUE, got '1X=2'")]


def test_read_env_files_in_order_with_optional_ones(tmp_path):
    a, b = tmp_path / "a.env", tmp_path / "b.env"
    a.write_text("X=1\nY=a\n")
    b.write_text("Y=b\nbroken\n")
    env, errors = S.read_env_files([str(a), "-%s" % (tmp_path / "none.env"), str(b), str(tmp_path / "gone.env")])
    assert env == {"X": "1", "Y": "b"}
    assert errors == ["%s:2: expected KEY=VALUE, got 'broken'" % b, "%s: env file not found" % (tmp_path / "gone.env")]


# ---- the hand-written syntax checks against the regular expressions they replace (no `re` at boot) ----

def _corpus(alphabet, longest, extra=()):
    import itertools
    for n in range(longest + 1):
        for t in itertools.product(alphabet, repeat=n):
            yield "".join(t)
    yield from extra


def test_name_and_user_checks_match_their_regexes():
    import re

    from richinit.services import spec as S
    name_re = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")
    user_re = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?\Z")
    long = ("a" * 63, "a" * 64, "a" * 65, "a" * 31 + "$", "a" * 32 + "$", "a" * 33, "é", "ab\n", "a\u0661")
    for t in _corpus("aZ0_.@-$ ", 3, long):
        assert S.valid_name(t) == bool(name_re.match(t)), t
        assert S._valid_user_name(t) == bool(user_re.match(t)), t


def test_duration_size_and_port_parsers_match_their_regexes():
    import re

    from richinit.services import spec as S
    dur = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*\Z")
    size = re.compile(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*\Z", re.IGNORECASE)
    port = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_.-]+)):(\d{1,5})")
    units = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for t in _corpus("1.ms ", 4, ("\u0661\u0662", "1.5h", " 2 m ", "10ss", "1e3", "-1", "1_0")):
        m = dur.match(t)
        assert S._parse_duration(t) == (float(m.group(1)) * units[m.group(2)] if m else None), t
    for t in _corpus("1kMiB ", 4, ("10 MiB", "10 K B", "10Mi", "10iB", "1GB", "1tb", "\u0661K", "+1")):
        m = size.match(t)
        want = int(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " ") if m else None
        assert S._parse_size(t) == want, t
    for t in _corpus("a1:[].", 5, ("[::1]:22", "[fe80::1]:2222", "host.example:8080", "a:b:22", ":22", "[]:1",
                                   "x:123456", "x:\u0661")):
        m = port.fullmatch(t.strip())
        want = (m.group(1) or m.group(2), int(m.group(3))) if m else None
        assert S._parse_host_port(t) == want, t


def test_script_name_checks_match_their_regexes():
    import re

    from richinit.services import compat
    optional = re.compile(r"\.optional(\.[^.]+)?\Z")
    skip = re.compile(r"(\A\.|~\Z|\.dpkg-[a-z]+\Z|\.rpm(save|new|orig)\Z|\.swp\Z)")
    names = ("10-x.optional", "x.optional.sh", "x.optional.", "x.optional.a.b", "optional", ".optional",
             "a.dpkg-old", "a.dpkg-", "a.dpkg-Old", "a.dpkg-old.dpkg-", "a.rpmnew", "a.rpmsave", "a.rpmorig",
             "a.rpm", "a.swp", "a~", ".hidden", "run", "a.dpkg-x.dpkg-old", "a.optional\n", "a\n.swp")
    for t in _corpus("a.~-", 3, names):
        assert compat.is_optional_name(t) == bool(optional.search(t)), t
        assert compat._skipped_name(t) == bool(skip.search(t)), t


def test_listen_declares_sockets_handed_over():
    d, bad = S.parse_definition({"command": ["x"], "listen": [{"datagram": "/dev/log"}, {"stream": 8080},
                                                               {"seqpacket": "@ctl"}, {"fifo": "/run/f"}]}, "svc")
    assert not bad
    assert d.listen == (S.Listen(kind="dgram", address="/dev/log"), S.Listen(kind="stream", address="8080"),
                        S.Listen(kind="seqpacket", address="@ctl"), S.Listen(kind="fifo", address="/run/f"))
