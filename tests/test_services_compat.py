"""The peers' layouts run as they are: s6-overlay and runit/my_init service dirs, init-script dirs."""

import os
import textwrap

from richinit.services import spec as S
from richinit.services.load import DEFAULTS_DIR, load

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(REPO, "tests", "fixtures", "services")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def load_fixture(name, **kw):
    return load(os.path.join(FIX, name), DEFAULTS_DIR, search_path=PATH, **kw)


def test_s6_service_dir_becomes_a_service():
    r = load_fixture("s6")
    nginx = r.spec("nginx")
    d = "/etc/services.d/nginx"
    assert nginx == S.ServiceSpec(
        name="nginx", origin="s6-overlay", source=d + "/run",
        # with-contenv is gone from the image: its interpreter runs the script (we pass the env anyway)
        command=("/bin/bash", d + "/run"), workdir=d, finish=(d + "/finish",),
        ready=S.Ready(kind="fd", fd=3), restart="always", stop_signal="SIGQUIT", stop_timeout=8.0)
    # A plain script keeps its own shebang; the s6-overlay grace time is the default stop timeout.
    logged = r.spec("logged")
    assert logged.command == ("/etc/services.d/logged/run",) and logged.stop_timeout == 3.0


def test_s6_down_file_disables_and_bad_files_fail_alone():
    r = load_fixture("s6")
    assert r.spec("php").enabled is False and r.skipped["php"] == "disabled (down file)"
    assert [str(p) for p in r.errors] == [
        "/etc/services.d/badfd/notification-fd:1: expected a file descriptor number from 3 to 1023, got 'two'"]
    assert r.failed == ["badfd"]
    assert r.order == [["execline", "logged", "nginx", "syslog", "web"], ["cron"]]


def test_s6_warnings_say_what_is_not_supported():
    r = load_fixture("s6")
    assert [str(p) for p in r.warnings] == [
        "/etc/services.d/execline/run:1: interpreter /command/execlineb not found in the image",
        "/etc/services.d/logged/log/run: s6/runit loggers are not supported; logged's output goes to the "
        "container's stdout (or set log: in a richinit definition)",
        "/etc/services.d/norun: no run file; not a service",
        "/etc/services.d/web/run: 'web' is also defined by /etc/richinit/services.d/web.yaml, which wins",
        "/etc/cont-init.d/30-notexec: not executable; skipped (chmod +x to run it at boot)",
    ]
    assert r.spec("web").command == ("/usr/bin/new-web",) and r.spec("web").origin == "image"


def test_cont_init_scripts_in_order_optional_by_default():
    r = load_fixture("s6")
    assert r.init_scripts == [
        S.InitScript(path="/etc/cont-init.d/10-adduser", command=("/bin/sh", "/etc/cont-init.d/10-adduser"),
                     origin="s6-overlay", optional=True),
        S.InitScript(path="/etc/cont-init.d/20-config", command=("/etc/cont-init.d/20-config",),
                     origin="s6-overlay", optional=True),
    ]
    assert r.finish_scripts == [S.InitScript(path="/etc/cont-finish.d/10-cleanup",
                                             command=("/etc/cont-finish.d/10-cleanup",),
                                             origin="s6-overlay", optional=True)]


def test_s6_behaviour_if_stage2_fails_makes_cont_init_required():
    r = load_fixture("s6", environ={"S6_BEHAVIOUR_IF_STAGE2_FAILS": "2"})
    assert [s.optional for s in r.init_scripts] == [False, False]


def test_my_init_scripts_then_richinit_ones_then_rc_local():
    r = load_fixture("my_init")
    got = [(s.path, s.origin, s.optional) for s in r.init_scripts]
    assert got == [
        ("/etc/my_init.d/00_regen_ssh_host_keys.sh", "my_init", False),
        ("/etc/my_init.d/10_syslog-ng.init", "my_init", False),
        ("/etc/my_init.d/B_upper", "my_init", False),  # byte order: upper case first
        ("/etc/my_init.d/a_lower", "my_init", False),
        ("/etc/richinit/init.d/40-must.sh", "richinit", False),
        ("/etc/richinit/init.d/50-seed.optional.sh", "richinit", True),
        ("/etc/richinit/init.d/60-opt.optional", "richinit", True),
        ("/etc/richinit/init.d/70-optionality.sh", "richinit", False),
        ("/etc/rc.local", "rc.local", False),
    ]
    assert all(s.command == (s.path,) for s in r.init_scripts)


def test_runit_services_of_a_baseimage_replace_the_defaults():
    r = load_fixture("my_init")
    assert r.errors == []
    assert r.spec("cron").origin == "runit" and r.spec("cron").command == ("/etc/service/cron/run",)
    assert r.spec("memcached").workdir == "/etc/service/memcached"
    # /etc/service/sshd is a symlink to /etc/sv/sshd, which holds a down file (the baseimage default)
    assert r.skipped["sshd"] == "disabled (down file)" and r.spec("sshd").origin == "runit"
    # the image's syslog-ng service owns /dev/log: richinit's syslog stays out of its way
    assert r.skipped["syslog"] == "condition failed: path_missing /etc/service/syslog-ng"
    assert r.order == [["cron", "memcached", "syslog-ng"]]
    assert [str(p) for p in r.warnings] == [
        "/etc/service/memcached/check: runit check scripts are not supported; use ready: in a richinit definition",
        "%s/cron.yaml: default service 'cron' replaced by /etc/service/cron/run" % DEFAULTS_DIR,
        "%s/sshd.yaml: default service 'sshd' replaced by /etc/service/sshd/run" % DEFAULTS_DIR,
    ]


def test_with_contenv_kept_when_the_image_still_has_it(tmp_path):
    run = tmp_path / "etc/services.d/myapp/run"
    run.parent.mkdir(parents=True)
    run.write_text("#!/command/with-contenv sh\nexec app\n")
    wc = tmp_path / "command/with-contenv"
    wc.parent.mkdir(parents=True)
    wc.write_text("#!/bin/sh\n")
    for p in (run, wc):
        p.chmod(0o755)
    r = load(str(tmp_path), None, search_path=PATH)
    assert r.spec("myapp").command == ("/etc/services.d/myapp/run",)
    wc.unlink()
    r = load(str(tmp_path), None, search_path=PATH)
    assert r.spec("myapp").command == ("sh", "/etc/services.d/myapp/run")
    assert [str(p) for p in r.warnings] == ["/etc/services.d/myapp/run:1: interpreter sh not found in the image"]


def test_service_dir_edge_cases(tmp_path):
    def script(rel, text="#!/bin/sh\nexec x\n"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
        p.chmod(0o755)
    script("bin/sh", "")
    script("etc/services.d/dup/run")  # same name in s6 and runit: s6 wins
    script("etc/service/dup/run")
    script("etc/services.d/app/run")  # the container's command is "app"
    script("etc/services.d/bad name/run")
    script("etc/services.d/sig/run")
    (tmp_path / "etc/services.d/sig/down-signal").write_text("SIGNOPE\n")
    (tmp_path / "etc/services.d/sig/timeout-kill").write_text("soon\n")
    script("etc/services.d/dup.d/run")
    (tmp_path / "etc/services.d/file").write_text("not a dir\n")
    r = load(str(tmp_path), None, search_path=PATH)
    assert r.spec("dup").origin == "s6-overlay" and r.order == [["dup", "dup.d"]]
    assert [str(p) for p in r.errors] == [
        "/etc/services.d/app: the name 'app' is reserved",
        "/etc/services.d/bad name: not a valid service name: 'bad name'",
        "/etc/services.d/sig/down-signal:1: no such signal: 'SIGNOPE'",
        "/etc/services.d/sig/timeout-kill:1: expected milliseconds, got 'soon'",
    ]
    assert [str(p) for p in r.warnings] == [
        "/etc/service/dup: service 'dup' is already defined by /etc/services.d/dup; ignored"]


def test_init_dirs_skip_backups_dirs_and_hidden_files(tmp_path):
    d = tmp_path / "etc/richinit/init.d"
    d.mkdir(parents=True)
    for name in ("10-a", ".20-hidden", "30-b~", "40-c.dpkg-old", "50-d.rpmnew", "60-e.swp", "70-f.optional"):
        (d / name).write_text("#!/bin/sh\n")
        (d / name).chmod(0o755)
    (d / "80-dir").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/sh").write_text("")
    (tmp_path / "bin/sh").chmod(0o755)
    r = load(str(tmp_path), None, search_path=PATH)
    assert [(s.path, s.optional) for s in r.init_scripts] == [("/etc/richinit/init.d/10-a", False),
                                                              ("/etc/richinit/init.d/70-f.optional", True)]
    assert r.warnings == []
