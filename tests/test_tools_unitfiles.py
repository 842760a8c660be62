"""systemctl's unit-file side (richinit.tools.unitfiles) on real directory trees: where a unit is,
is-enabled's answers, and the symlinks enable/disable/mask/unmask make, as systemd makes them."""

import os

import pytest

from richinit.tools import systemctl as sc
from richinit.tools import unitfiles as uf

UNITS = {
    "lib/systemd/system/web.service": "[Unit]\nDescription=web\n[Service]\nExecStart=/bin/web\n"
                                      "[Install]\nWantedBy=multi-user.target\nAlias=www.service\nAlso=web-log.service\n",
    "lib/systemd/system/web-log.service": "[Service]\nExecStart=/bin/log\n[Install]\nRequiredBy=web.service\n",
    "lib/systemd/system/static.service": "[Service]\nExecStart=/bin/static\n",
    "lib/systemd/system/worker@.service": "[Service]\nExecStart=/bin/w %i\n[Install]\nWantedBy=multi-user.target\n",
    "lib/systemd/system/deflt@.service": "[Service]\nExecStart=/bin/w %i\n[Install]\n"
                                        "WantedBy=multi-user.target\nDefaultInstance=one\n",
    "lib/systemd/system/cont.service": "[Service]\nExecStart=/bin/c\n[Install]\nWantedBy=multi-user.target \\\n"
                                       "  sockets.target\n",
    "etc/systemd/system/local.service": "[Service]\nExecStart=/bin/local\n[Install]\nWantedBy=multi-user.target\n",
    "etc/systemd/system/web.service.d/10-env.conf": "[Service]\nEnvironment=A=1\n",
    "etc/init.d/legacy": "#!/bin/sh\n",
}


@pytest.fixture
def root(tmp_path):
    for rel, text in UNITS.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return str(tmp_path)


def links(root):
    out = {}
    base = os.path.join(root, "etc/systemd/system")
    for dirpath, _dirs, files in os.walk(base):
        for f in files + _dirs:
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                out[os.path.relpath(p, base)] = os.readlink(p)
    return out


def test_names_and_templates():
    assert uf.unit_name("nginx") == "nginx.service"
    assert uf.unit_name("foo.timer") == "foo.timer"
    assert uf.template_of("postgresql@15-main.service") == "postgresql@.service"
    assert uf.template_of("worker@.service") is None and uf.template_of("web.service") is None


def test_enable_follows_install_section_alias_and_also(root):
    assert uf.state("web.service", root) == "disabled"
    changes = uf.enable(["web.service"], root)
    assert links(root) == {
        "multi-user.target.wants/web.service": "/lib/systemd/system/web.service",
        "www.service": "/lib/systemd/system/web.service",
        "web.service.requires/web-log.service": "/lib/systemd/system/web-log.service",
    }
    assert ("symlink", "/etc/systemd/system/www.service", "/lib/systemd/system/web.service") in changes
    assert uf.state("web.service", root) == "enabled"
    assert uf.state("web-log.service", root) == "enabled"
    assert uf.state("www.service", root) == "alias"
    assert uf.enable(["web.service"], root) == [], "enabling twice changes nothing"

    removed = uf.disable(["web.service"], root)
    assert links(root) == {}
    assert ("unlink", "/etc/systemd/system/www.service") in removed
    assert uf.state("web.service", root) == "disabled"


def test_static_template_instances_and_default_instance(root):
    assert uf.state("static.service", root) == "static"
    assert uf.enable(["static.service"], root) == []
    uf.enable(["worker@a.service", "worker@b.service"], root)
    assert links(root) == {"multi-user.target.wants/worker@a.service": "/lib/systemd/system/worker@.service",
                           "multi-user.target.wants/worker@b.service": "/lib/systemd/system/worker@.service"}
    assert uf.state("worker@a.service", root) == "enabled"
    assert uf.state("worker@c.service", root) == "disabled"
    assert uf.state("worker@.service", root) == "enabled"  # some instance is
    uf.disable(["worker@a.service"], root)
    assert list(links(root)) == ["multi-user.target.wants/worker@b.service"]
    uf.enable(["deflt@.service"], root)
    assert links(root)["multi-user.target.wants/deflt@one.service"] == "/lib/systemd/system/deflt@.service"


def test_continuation_lines_and_etc_units(root):
    uf.enable(["cont.service", "local.service"], root)
    got = links(root)
    assert got["sockets.target.wants/cont.service"] == "/lib/systemd/system/cont.service"
    assert got["multi-user.target.wants/local.service"] == "/etc/systemd/system/local.service"


def test_mask_unmask(root):
    uf.enable(["web.service"], root)
    uf.mask(["web.service"], root)
    assert uf.state("web.service", root) == "masked"
    assert uf.locate("web.service", root) == ("/etc/systemd/system/web.service", True)
    with pytest.raises(uf.UnitFileError, match="masked"):
        uf.enable(["web.service"], root)
    with pytest.raises(uf.UnitFileError, match="already exists"):
        uf.mask(["local.service"], root)  # a real unit file in /etc is never replaced
    assert uf.unmask(["web.service"], root) == [("unlink", "/etc/systemd/system/web.service")]
    assert uf.state("web.service", root) == "enabled"


def test_sysv_scripts_and_not_found(root):
    assert uf.state("legacy.service", root) == "disabled"
    os.makedirs(os.path.join(root, "etc/rc2.d"))
    os.symlink("../init.d/legacy", os.path.join(root, "etc/rc2.d/S01legacy"))
    assert uf.state("legacy.service", root) == "enabled"
    assert uf.state("nope.service", root) == "not-found"
    files = dict(uf.list_files(root))
    assert files["legacy.service"] == "generated" and files["static.service"] == "static"
    assert files["web.service"] == "disabled"


def test_cat_shows_fragment_then_dropins(root):
    text = uf.cat("web.service", root)
    assert text.startswith("# /lib/systemd/system/web.service\n[Unit]")
    assert "\n# /etc/systemd/system/web.service.d/10-env.conf\n[Service]\nEnvironment=A=1\n" in text
    with pytest.raises(uf.UnitFileError):
        uf.cat("nope.service", root)


@pytest.mark.parametrize("argv,verb,args,attrs", [
    (["status", "nginx", "--no-pager"], "status", ["nginx"], {}),
    (["-q", "is-active", "a", "b"], "is-active", ["a", "b"], {"quiet": True}),
    (["show", "-p", "ActiveState", "--property=SubState,MainPID", "--value", "x"], "show", ["x"],
     {"property": ["ActiveState", "SubState", "MainPID"], "value": True}),
    (["enable", "--now", "x.service"], "enable", ["x.service"], {"now": True}),
    (["kill", "-s", "HUP", "--kill-whom=main", "x"], "kill", ["x"], {"signal": "HUP", "kill_whom": "main"}),
    (["--system", "--no-legend", "list-units", "--all", "--type=service"], "list-units", [],
     {"all": True, "type": ["service"], "no_legend": True}),
    ([], "list-units", [], {}),
])
def test_systemctl_command_lines(argv, verb, args, attrs):
    v, a, o = sc.parse(argv)
    assert (v, a) == (verb, args)
    for k, val in attrs.items():
        assert getattr(o, k) == val


@pytest.mark.parametrize("argv", [["frobnicate"], ["status", "--bogus"], ["show", "-p"], ["--host", "h", "status"]])
def test_systemctl_refuses_bad_command_lines(argv):
    with pytest.raises(sc.Usage):
        sc.parse(argv)


def test_offline_verbs_work_on_another_root_without_pid1(root, capsys):
    """What deb-systemd-helper runs: `systemctl --root=DIR --system --preset-mode=enable-only preset UNIT`."""
    env_dir = os.path.join(root, "nothing-here")  # no control socket: PID 1 is not reachable
    os.environ["RICHINIT_CONTROL_DIR"] = env_dir
    try:
        assert sc.main(["--root=" + root, "--system", "--preset-mode=enable-only", "preset", "web.service"]) == 0
        assert uf.state("web.service", root) == "enabled"
        assert "Created symlink /etc/systemd/system/multi-user.target.wants/web.service" in capsys.readouterr().err
        assert sc.main(["--root", root, "is-enabled", "web"]) == 0
        assert capsys.readouterr().out == "enabled\n"
        assert sc.main(["--root", root, "disable", "-q", "web"]) == 0
        assert sc.main(["--root", root, "is-enabled", "web", "static"]) == 0  # static counts as enabled
        assert capsys.readouterr().out == "disabled\nstatic\n"
        assert sc.main(["--root", root, "start", "web"]) == 1, "a job needs PID 1, not a root"
        assert sc.main(["is-active", "web"]) == 1  # PID 1 unreachable: one clear line, exit 1
        assert "richinit" in capsys.readouterr().err
    finally:
        del os.environ["RICHINIT_CONTROL_DIR"]
    assert sc.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("systemd 252 (richinit)\n")


def test_states_are_the_loaders(root):
    """systemctl and the loader (whose states PID 1 serves) give one answer per unit file, in
    systemd's order: a link in a .wants directory enables even a unit without [Install]."""
    from richinit.services import rootfs
    from richinit.services.units import load_units

    uf.enable(["web.service"], root)
    wants = os.path.join(root, "etc/systemd/system/multi-user.target.wants")
    os.symlink("/lib/systemd/system/static.service", os.path.join(wants, "static.service"))
    assert uf.state("static.service", root) == "enabled"
    with rootfs.Root(root) as r:
        loaded = load_units(r, lambda *a: None)
    files = dict(uf.list_files(root))
    assert files.pop("legacy.service") == "generated"
    assert files == loaded.unit_files
    assert files["web.service"] == "enabled" and files["www.service"] == "alias"
    assert files["cont.service"] == "disabled" and files["worker@.service"] == "disabled"


def test_status_info_the_file_its_state_and_drop_ins_by_directory(root):
    os.makedirs(os.path.join(root, "lib/systemd/system/web.service.d"))
    with open(os.path.join(root, "lib/systemd/system/web.service.d/20-lib.conf"), "w") as f:
        f.write("[Service]\nEnvironment=B=2\n")
    os.makedirs(os.path.join(root, "lib/systemd/system/service.d"))
    with open(os.path.join(root, "lib/systemd/system/service.d/05-all.conf"), "w") as f:
        f.write("[Service]\nEnvironment=C=3\n")
    assert uf.status_info("web.service", root) == (
        False, "/lib/systemd/system/web.service", "disabled",
        ["/lib/systemd/system/service.d/05-all.conf", "/etc/systemd/system/web.service.d/10-env.conf",
         "/lib/systemd/system/web.service.d/20-lib.conf"])
    assert uf.status_info("legacy.service", root)[1:3] == ("/etc/init.d/legacy", "disabled")
    assert uf.status_info("nope.service", root) == (False, None, "not-found", [])
    uf.mask(["static.service"], root)
    assert uf.status_info("static.service", root) == (True, None, "masked", [])


def test_loaded_and_drop_in_lines_group_the_drop_ins_by_directory(monkeypatch):
    info = (False, "/lib/systemd/system/web.service", "indirect",
            ["/etc/systemd/system/web.service.d/a.conf", "/etc/systemd/system/web.service.d/b.conf",
             "/lib/systemd/system/service.d/c.conf", "/etc/systemd/system/web.service.d/d.conf"])
    monkeypatch.setattr(uf, "status_info", lambda name: info)
    assert sc._loaded_lines({"LoadState": "loaded"}, "web.service") == [
        "     Loaded: loaded (/lib/systemd/system/web.service; indirect; preset: enabled)",
        "    Drop-In: /etc/systemd/system/web.service.d",
        "             └─a.conf, b.conf",
        "             /lib/systemd/system/service.d",
        "             └─c.conf",
        "             /etc/systemd/system/web.service.d",
        "             └─d.conf"]
    info = (False, "/etc/init.d/legacy", "enabled", [])
    assert sc._loaded_lines({}, "legacy.service") == ["     Loaded: loaded (/etc/init.d/legacy; generated)"]
    info = (False, None, "not-found", [])
    assert sc._loaded_lines({"LoadState": "loaded", "FragmentPath": "/etc/richinit/services.d/web.yaml",
                             "UnitFileState": "enabled"}, "web.service") == [
        "     Loaded: loaded (/etc/richinit/services.d/web.yaml; enabled; preset: enabled)"]
    assert sc._loaded_lines({}, "multi-user.target") == ["     Loaded: loaded"]
