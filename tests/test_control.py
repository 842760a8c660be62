"""The control socket's wire format: text requests in, JSON lines out (PID 1 has no json package)."""

import json

import pytest

from richinit.control import dumps, parse_request


@pytest.mark.parametrize("obj", [
    {"ok": True, "services": [{"name": "sshd", "pid": 7, "uptime": 1.5, "last_exit": None, "ready": False}]},
    "quote \" backslash \\ newline \n tab \t nul \x00 del \x7f ls \u2028 emoji \U0001F600 accents é",
    [], {}, 0, -3, 2.25, False, None,
])
def test_replies_are_json_the_json_module_reads_back(obj):
    assert json.loads(dumps(obj)) == obj


def test_non_finite_floats_become_null():
    assert json.loads(dumps({"x": float("nan"), "y": float("inf")})) == {"x": None, "y": None}


@pytest.mark.parametrize("line,req", [
    (b"status", {"cmd": "status"}),
    (b"start sshd", {"cmd": "start", "name": "sshd", "follow": False}),
    (b"logs cron follow", {"cmd": "logs", "name": "cron", "follow": True}),
    (b"  reload  ", {"cmd": "reload"}),
    (b"reboot", {"cmd": "reboot"}),
    (b"poweroff", {"cmd": "poweroff"}),
])
def test_requests(line, req):
    assert parse_request(line) == req


@pytest.mark.parametrize("line", [b"", b"bogus", b"start", b"stop a b", b"logs a b", b"status now", b"{\"cmd\": 1}"])
def test_bad_requests_are_refused(line):
    with pytest.raises(ValueError):
        parse_request(line)
