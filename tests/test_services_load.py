"""The loader over fixture trees: YAML with FILE:LINE errors, overlay of the defaults, dependencies, CLI."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from richinit.services import load as L
from richinit.services import spec as S
from richinit.services.load import DEFAULTS_DIR, load

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(REPO, "tests", "fixtures", "services")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SVC = "/etc/richinit/services.d/"


def tree(tmp_path, files):
    """Write {relative path: text} under tmp_path; returns its path."""
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return str(tmp_path)


def messages(problems):
    return [str(p) for p in problems]


# --- good definitions and the overlay of the defaults ---------------------------------------------------

def test_good_tree_waves_and_skips():
    r = load(os.path.join(FIX, "good"), DEFAULTS_DIR, search_path=PATH)
    assert r.errors == [] and r.failed == []
    assert r.order == [["legacyd", "syslog"], ["cron", "db"], ["migrate"], ["web"]]
    assert r.skipped == {"notifier": "disabled", "sshd": "masked (empty definition)"}
    # db logs to syslog, so it starts after syslog (and stops before it) without saying so.
    assert r.deps["db"] == {"syslog"} and r.deps["web"] == {"db", "migrate"}


def test_good_tree_fields():
    r = load(os.path.join(FIX, "good"), DEFAULTS_DIR, search_path=PATH)
    web = r.spec("web")
    assert web == S.ServiceSpec(
        name="web", origin="image", source=SVC + "web.yaml", description="the web front end",
        command=("/usr/bin/web", "--port", "8080"), user="www-data", group=33, workdir="/srv/web",
        environment={"MODE": "production", "WORKERS": "4"}, env_files=("/etc/web.env", "-/etc/web.local.env"),
        requires=("db",), after=("migrate",), ready=S.Ready(kind="tcp", host="127.0.0.1", port=8080),
        ready_timeout=20.0, restart="on-failure",
        backoff=S.Backoff(initial=0.25, max=60.0, factor=3.0, reset_after=30.0),
        crash_loop=S.CrashLoop(starts=3, within=60.0), stop_signal="SIGQUIT", stop_timeout=2.5,
        log=S.Log(kind="file", path="/var/log/web.log", max_size=5 * 1024 * 1024, keep=3))
    assert r.spec("db").command == ("/bin/sh", "-c", "exec /usr/bin/db --foreground")
    assert r.spec("db").log.kind == "syslog" and r.spec("db").ready == S.Ready(kind="unix", path="/run/db.sock")
    assert r.spec("migrate").type == "oneshot" and r.spec("migrate").restart == "never"
    legacy = r.spec("legacyd")  # named by `name:`, not by its file legacy.yaml
    assert legacy.source == SVC + "legacy.yaml" and legacy.type == "forking" and legacy.pidfile == "/run/legacyd.pid"
    assert legacy.crash_loop is None and legacy.stop_signal == "SIGTERM"
    notifier = r.spec("notifier")  # disabled, yet fully loaded for `richctl start`
    assert notifier.enabled is False and notifier.source == SVC + "notifier.yml"
    assert tuple(c.argv for c in notifier.pre) == (("/usr/bin/notifier", "--check"),
                                                   ("/bin/sh", "-c", "mkdir -p /run/notifier"))


def test_image_file_replaces_the_default_of_the_same_name_as_a_whole():
    r = load(os.path.join(FIX, "good"), DEFAULTS_DIR, search_path=PATH)
    cron = r.spec("cron")
    assert cron.origin == "image" and cron.command == ("/usr/sbin/cron", "-f", "-L", "15")
    assert cron.stop_timeout == 5.0  # the default's 3 s is not merged in
    sshd = r.spec("sshd")  # masked by an empty file although /usr/sbin/sshd exists in the image
    assert sshd.origin == "image" and sshd.enabled is False
    syslog = r.spec("syslog")
    assert syslog.origin == "default" and syslog.command == ("/usr/sbin/rsyslogd", "-n", "-iNONE")


def test_default_replaced_by_an_image_service_named_alike(tmp_path):
    root = tree(tmp_path, {"etc/richinit/services.d/mysyslog.yaml": "name: syslog\ncommand: [/bin/logd]\n"})
    r = load(root, DEFAULTS_DIR, search_path=PATH)
    assert r.spec("syslog").command == ("/bin/logd",) and r.errors == []
    assert messages(r.warnings) == [
        "%s/syslog.yaml: default service 'syslog' replaced by %smysyslog.yaml" % (DEFAULTS_DIR, SVC)]


def test_enabled_false_alone_turns_a_default_off(tmp_path):
    root = tree(tmp_path, {"etc/richinit/services.d/cron.yaml": "enabled: false\n"})
    r = load(root, DEFAULTS_DIR, search_path=PATH)
    assert r.errors == [] and r.skipped["cron"] == "disabled" and r.spec("cron").command == ()
    assert r.order == [["syslog"]]


def test_two_image_files_claiming_one_name(tmp_path):
    root = tree(tmp_path, {"etc/richinit/services.d/a.yaml": "name: x\ncommand: [/bin/a]\n",
                           "etc/richinit/services.d/b.yaml": "command: [/bin/b]\nname: x\n"})
    r = load(root, None, search_path=PATH)
    assert r.spec("x").command == ("/bin/a",)
    assert messages(r.errors) == [SVC + "b.yaml:2: service 'x' is already defined in %sa.yaml" % SVC]


def test_yaml_and_yml_of_one_name(tmp_path):
    root = tree(tmp_path, {"etc/richinit/services.d/a.yaml": "command: [/bin/a]\n",
                           "etc/richinit/services.d/a.yml": "command: [/bin/b]\n",
                           "etc/richinit/services.d/README": "not a service\n"})
    r = load(root, None, search_path=PATH)
    assert r.order == [["a"]] and r.spec("a").command == ("/bin/a",)
    assert messages(r.warnings) == [SVC + "a.yml: %sa.yaml also exists; this file is ignored" % SVC]


# --- bad input: every kind, each with its exact FILE:LINE message; the rest still loads ------------------

BAD = [
    "alt.yaml:4: unknown field 'user' in an alternative (it may set: command, condition, pre, type, pidfile, "
    "ready, ready_timeout, stop_signal, stop_timeout)",
    "app.yaml:1: the name 'app' is reserved",
    "badname.yaml:1: not a valid service name: 'has space' (letters, digits, _ . @ -)",
    "both.yaml:2: give either command or alternatives, not both",
    "control.yaml:2: invalid YAML: character U+0001 is not allowed",
    "dependent.yaml:2: requires 'typo', which failed",
    "dupkey.yaml:3: duplicate key 'restart'",
    "duration.yaml:2: expected a duration (seconds, or e.g. 500ms, 10s, 2m), got 'soon'",
    "envbool.yaml:4: DEBUG: YAML reads this as a boolean; quote it if you mean the string",
    "envfile.yaml:2: expected an absolute path (optionally prefixed with '-'), got 'relative.env'",
    "envfile.yaml:3: expected a size (bytes, or e.g. 512K, 10M, 1G), got '10 parsecs'",
    "forking.yaml:1: type: forking needs a pidfile",
    "latin1.yaml:2: not UTF-8 text",
    "laughs.yaml:2: document too large (more than 20000 values)",
    "list.yaml:1: expected a mapping of fields, got a list",
    "malformed.yaml:2: invalid YAML: {malformed} (while parsing a flow sequence started at line 1)",
    "needy.yaml:4: requires unknown service 'ghost'",
    "nested.yaml:4: unknown field 'maximum' in backoff (known: initial, max, factor, reset_after)",
    "oneshotready.yaml:3: a oneshot is ready when it exits 0; remove ready",
    "port.yaml:3: port must be between 1 and 65535, got 70000",
    "restart.yaml:2: expected one of always | on-failure | never, got 'sometimes'",
    "signal.yaml:2: no such signal: 'SIGFOO'",
    "{tabs}",
    "twodocs.yaml:2: invalid YAML: expected a single document in the stream, but found another document",
    "typo.yaml:2: unknown field 'comand' (did you mean 'command'?)",
    "typo.yaml:2: missing field 'command' (or alternatives; or enabled: false)",
    "wrongtype.yaml:1: expected a command (a list of arguments or a string), got a number",
]


# libyaml words two parse errors its own way; both parsers are checked.
PARSER_WORDS = {
    "SafeLoader": {"malformed": "expected ',' or ']', but got ':'",
                   "tabs": "tabs.yaml:2: invalid YAML: found character '\\t' that cannot start any token"},
    "CSafeLoader": {"malformed": "did not find expected ',' or ']'",
                    "tabs": "tabs.yaml:3: invalid YAML: found a tab character that violates indentation "
                            "(while scanning a plain scalar started at line 2)"},
}


@pytest.mark.parametrize("parser", sorted(PARSER_WORDS))
def test_every_kind_of_bad_file_fails_alone_with_file_and_line(parser, monkeypatch):
    if not hasattr(yaml, parser):
        pytest.skip("PyYAML built without libyaml")
    monkeypatch.setattr(L, "_Loader", getattr(yaml, parser))
    r = load(os.path.join(FIX, "bad"), None, search_path=PATH)
    assert messages(r.errors) == [SVC + m.format(**PARSER_WORDS[parser]) for m in BAD]
    assert r.order == [["ok"]]
    assert r.failed == sorted({m.split(".")[0].strip("{}") for m in BAD})
    assert messages(r.warnings) == [SVC + "dependent.yaml:3: after: unknown service 'phantom' (ignored)"]


def test_unreadable_things_in_services_d(tmp_path):
    d = tmp_path / "etc/richinit/services.d"
    d.mkdir(parents=True)
    os.mkfifo(d / "fifo.yaml")  # must not block the loader
    (d / "dir.yaml").mkdir()
    (d / "ok.yaml").write_text("command: [/bin/true]\n")
    (d / "huge.yaml").write_text("command: [/bin/true]\n" + "#" * (1024 * 1024) + "\n")
    r = load(str(tmp_path), None, search_path=PATH)
    assert messages(r.errors) == [SVC + "dir.yaml:1: cannot read: not a regular file",
                                  SVC + "fifo.yaml:1: cannot read: not a regular file",
                                  SVC + "huge.yaml:1: cannot read: larger than 1048576 bytes"]
    assert r.order == [["ok"]]


def test_symlinks_resolve_inside_the_root(tmp_path):
    root = tree(tmp_path, {"etc/passwd.yaml": "command: [/bin/inside-the-root]\n"})
    d = tmp_path / "etc/richinit/services.d"
    d.mkdir(parents=True)
    os.symlink("/../../../../../../etc/passwd.yaml", d / "escape.yaml")
    r = load(root, None, search_path=PATH)
    assert r.errors == [] and r.spec("escape").command == ("/bin/inside-the-root",)


# --- dependencies -------------------------------------------------------------------------------------

def test_cycles_fail_their_members_and_what_requires_them(tmp_path):
    root = tree(tmp_path, {
        "etc/richinit/services.d/a.yaml": "command: [/bin/a]\nafter: [b]\n",
        "etc/richinit/services.d/b.yaml": "command: [/bin/b]\nrequires:\n  - base\n  - a\n",
        "etc/richinit/services.d/base.yaml": "command: [/bin/base]\n",
        "etc/richinit/services.d/needs_a.yaml": "command: [/bin/c]\nrequires: [a]\n",
        "etc/richinit/services.d/after_a.yaml": "command: [/bin/d]\nafter: [a, base]\n",
        "etc/richinit/services.d/self.yaml": "command: [/bin/s]\n\nafter: self\n",
        "etc/richinit/services.d/x.yaml": "command: [/bin/x]\nafter: [y]\n",
        "etc/richinit/services.d/y.yaml": "command: [/bin/y]\nafter: [z]\n",
        "etc/richinit/services.d/z.yaml": "command: [/bin/z]\nrequires: [x]\n",
    })
    r = load(root, None, search_path=PATH)
    assert messages(r.errors) == [
        SVC + "a.yaml:2: cycle: a -> b -> a",
        SVC + "b.yaml:4: cycle: a -> b -> a",
        SVC + "needs_a.yaml:2: requires 'a', which failed",
        SVC + "self.yaml:3: cycle: self -> self",
        SVC + "x.yaml:2: cycle: x -> y -> z -> x",
        SVC + "y.yaml:2: cycle: x -> y -> z -> x",
        SVC + "z.yaml:2: cycle: x -> y -> z -> x",
    ]
    # An ordering-only dependency on a failed service does not stop a service.
    assert r.order == [["base"], ["after_a"]]
    assert r.deps == {"base": set(), "after_a": {"base"}}


def test_requires_on_disabled_or_skipped_is_an_error_after_is_not(tmp_path):
    root = tree(tmp_path, {
        "etc/richinit/services.d/off.yaml": "command: [/bin/off]\nenabled: false\n",
        "etc/richinit/services.d/absent.yaml": "command: [/bin/x]\ncondition: {path_exists: /nope}\n",
        "etc/richinit/services.d/r1.yaml": "command: [/bin/r]\nrequires: ['off']\n",
        "etc/richinit/services.d/r2.yaml": "command: [/bin/r]\nrequires: [absent]\n",
        "etc/richinit/services.d/a1.yaml": "command: [/bin/a]\nafter: ['off', absent]\n",
        "etc/richinit/services.d/a2.yaml": "command: [/bin/a]\nafter:\n  - absent\n  - off\n",
    })
    r = load(root, None, search_path=PATH)
    assert messages(r.errors) == [SVC + "a2.yaml:4: a boolean where a service name belongs: YAML reads "
                                        "yes/no/on/off/true/false as booleans, quote the name",
                                  SVC + "r1.yaml:2: requires 'off', which is skipped: disabled",
                                  SVC + "r2.yaml:2: requires 'absent', which is skipped: condition failed: "
                                        "path_exists /nope"]
    assert r.order == [["a1"]] and r.deps == {"a1": set()}
    assert r.skipped == {"absent": "condition failed: path_exists /nope", "off": "disabled"}


def test_only_selects_services_and_what_they_require():
    r = load(os.path.join(FIX, "good"), DEFAULTS_DIR, only=["web", "syslog", "nosuch"], search_path=PATH)
    assert r.order == [["syslog"], ["db"], ["web"]]  # db pulled in by web's requires; migrate is only `after`
    assert r.skipped["migrate"] == "not selected (only: web,syslog,nosuch)"
    assert r.skipped["cron"] == "not selected (only: web,syslog,nosuch)"
    assert r.skipped["sshd"] == "masked (empty definition)"
    assert messages(r.warnings) == ["--only: unknown service 'nosuch'"]


# --- defaults on different distributions ---------------------------------------------------------------

RSYSLOG = ("/usr/sbin/rsyslogd", "-n", "-iNONE")
BB_CROND = ("-f", "-c", "/etc/crontabs")
OUR_CRON = ("@builtin", "cron", "--notify-fd", "3", "--stop-timeout", "2")
OUR_SYSLOG = ("@builtin", "syslogd")


@pytest.mark.parametrize("distro, cron, syslog, sshd", [
    ("debian", ("/usr/sbin/cron", "-f"), RSYSLOG, True),
    ("rhel", ("/usr/sbin/crond", "-n"), RSYSLOG, False),
    ("alpine", ("/usr/sbin/crond",) + BB_CROND, ("/sbin/syslogd", "-n"), False),
    ("busybox", OUR_CRON, OUR_SYSLOG, False),
    ("bbnolinks", ("/bin/busybox", "crond") + BB_CROND, ("/bin/busybox", "syslogd", "-n"), False),
    ("sng", OUR_CRON, ("/usr/sbin/syslog-ng", "-F", "--no-caps"), False),
])
def test_defaults_pick_the_image_daemon_or_the_builtin(distro, cron, syslog, sshd):
    r = load(os.path.join(FIX, "distros", distro), DEFAULTS_DIR, search_path=PATH)
    assert r.errors == [] and r.warnings == []
    assert r.spec("cron").command == cron and r.spec("syslog").command == syslog
    # our cron tells when it is ready on fd 3; syslog needs no readiness check: PID 1 holds /dev/log
    # (a socket named after it, handed over at each start, activating nothing)
    assert r.spec("cron").ready == (S.Ready(kind="fd", fd=3) if cron[0] == "@builtin" else S.Ready())
    assert r.spec("syslog").ready == S.Ready() and r.spec("syslog").sockets == ("syslog",)
    assert r.sockets == [S.SocketSpec(name="syslog", source=r.spec("syslog").source, service="syslog",
                                      listen=(S.Listen(kind="dgram", address="/dev/log"),), enabled=False)]
    assert ("sshd" in r.skipped) is not sshd
    assert r.order == ([["syslog"], ["cron", "sshd"]] if sshd else [["syslog"], ["cron"]])


def test_debian_sshd_prepares_keys_and_run_dir():
    r = load(os.path.join(FIX, "distros", "debian"), DEFAULTS_DIR, search_path=PATH)
    s = r.spec("sshd")
    assert s.command == ("/usr/sbin/sshd", "-D", "-e") and s.ready == S.Ready(kind="tcp", host="127.0.0.1", port=22)
    assert tuple(c.argv for c in s.pre) == (("ssh-keygen", "-A"), ("mkdir", "-p", "-m", "0755", "/run/sshd"))
    assert s.after == ("syslog",) and s.restart == "always"


def test_busybox_crond_not_taken_when_it_would_ignore_jobs(tmp_path):
    import shutil as sh
    root = tmp_path / "alpine"
    sh.copytree(os.path.join(FIX, "distros", "alpine"), root, symlinks=True)
    (root / "etc/cron.d").mkdir()
    r = load(str(root), DEFAULTS_DIR, search_path=PATH)
    assert r.spec("cron").command == OUR_CRON


def test_hard_linked_applets_are_busybox_too(tmp_path):
    (tmp_path / "bin").mkdir()
    bb = tmp_path / "bin/busybox"
    bb.write_text("#!fake\n")
    bb.chmod(0o755)
    for applet in ("crond", "syslogd"):
        os.link(bb, tmp_path / "bin" / applet)  # `busybox --install` without -s
    r = load(str(tmp_path), DEFAULTS_DIR, search_path=PATH)
    assert r.spec("cron").command == OUR_CRON and r.spec("syslog").command == OUR_SYSLOG


def test_empty_image_gets_the_builtins():
    r = load(os.path.join(FIX, "distros", "busybox"), DEFAULTS_DIR, search_path=PATH)
    assert r.skipped == {"sshd": "condition failed: path_exists /usr/sbin/sshd"}


def test_real_busybox_rootfs(busybox_rootfs):
    """The integration tests' busybox image: applet links but no cron or syslog set up -> built-ins."""
    r = load(busybox_rootfs, DEFAULTS_DIR, search_path=PATH)
    assert r.spec("cron").builtin == "cron" and r.spec("syslog").builtin == "syslogd"
    assert r.errors == []


def test_root_slash_reads_plain_paths_without_ctypes():
    code = ("import sys; from richinit.services.load import load, DEFAULTS_DIR; r = load('/', DEFAULTS_DIR); "
            "print('ctypes' in sys.modules, sorted(s.name for s in r.services), r.errors)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(" [", 1)[0] == "False"
    assert "'cron', 'sshd', 'syslog'" in out.stdout
    from richinit.services.rootfs import Root
    with Root("/") as direct, Root("/usr/..") as same:
        assert direct.direct and same.direct
        assert direct.which("sh") == shutil.which("sh", path=PATH)
        assert direct.listdir("/etc") == sorted(os.listdir("/etc"), key=os.fsencode)


# --- the CLI PID 1 runs -------------------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "richinit.services.load", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_cli_json_round_trips_into_the_same_specs():
    root = os.path.join(FIX, "good")
    t0 = time.monotonic()
    out = run_cli("--json", "--root", root, "--defaults", DEFAULTS_DIR, "--path", PATH)
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1 and out.stderr == ""
    doc = json.loads(out.stdout)
    assert set(doc) == {"services", "skipped", "failed", "errors", "warnings", "init_scripts", "finish_scripts",
                        "order", "deps", "sockets", "timers", "templates", "unit_files", "aliases"}
    direct = load(root, DEFAULTS_DIR, search_path=PATH)
    assert [S.ServiceSpec.from_dict(d) for d in doc["services"]] == direct.services
    assert doc["order"] == direct.order and doc["skipped"] == direct.skipped
    print("loader CLI wall time: %.0f ms" % (elapsed * 1000))


def test_cli_reports_errors_as_data_and_filters():
    out = run_cli("--json", "--root", os.path.join(FIX, "bad"), "--defaults", "", "--only", "ok,needy")
    assert out.returncode == 0
    doc = json.loads(out.stdout)
    assert doc["order"] == [["ok"]]
    errors = {p["service"]: S.Problem.from_dict(p) for p in doc["errors"]}
    # Broken files are reported even when not selected; unselected services fail nothing else.
    assert errors["alt"].file == SVC + "alt.yaml" and errors["alt"].line == 4
    assert str(errors["needy"]) == SVC + "needy.yaml:4: requires unknown service 'ghost'"
    assert "dependent" not in errors and doc["skipped"]["dependent"] == "not selected (only: ok,needy)"


def test_cli_human_output():
    out = run_cli("--root", os.path.join(FIX, "bad"), "--defaults", "")
    assert out.returncode == 0
    assert out.stdout.splitlines()[0] == "wave 1: ok"
    assert "error: %sport.yaml:3: port must be between 1 and 65535, got 70000" % SVC in out.stdout.splitlines()


def test_cli_bad_root_is_one_line_without_traceback(tmp_path):
    out = run_cli("--json", "--root", str(tmp_path / "missing"))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == ("python -m richinit.services.load: cannot read root %s: No such file or directory\n"
                          % (tmp_path / "missing"))
    out = run_cli("--bogus")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_the_marshal_document_pid1_reads_equals_the_json_one():
    """write_document is what PID 1's loader child runs; --json is what people read."""
    import marshal
    root = os.path.join(FIX, "good")
    j = json.loads(run_cli("--json", "--root", root).stdout)
    r, w = os.pipe()
    assert L.write_document(w, root) == 0
    os.close(w)
    with os.fdopen(r, "rb") as f:
        m = marshal.loads(f.read())
    assert m["services"] and json.loads(json.dumps(m)) == j
