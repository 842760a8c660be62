"""rich: run unmodified images as rich containers, and install rich mode into container engines.

    rich run [OPTIONS] ROOTFS_DIR|ROOTFS_TARBALL [--] CMD...   build a bundle, run it through rich-runtime
    rich ps | exec NAME -- CMD | stop NAME [--time S] | logs NAME | rm [-f] NAME
    rich gc                                                    undo what killed rich processes left behind
    rich runtime build [--output DIR]                          the portable richinit runtime
    rich quota ls [--json]                                     every container's quota directories
    rich install [--podman] [--containerd] [--docker] [--crio] [--root DIR] [--dry-run] / rich uninstall [--root DIR]
    rich install-launchers | ctl NAME VERB... | status NAME | doctor   (runtime_hooks.cli_engines)

Where things live (each also an environment variable, so tests and second installations can
keep to their own directories): containers under RICHINIT_CONTAINERS_DIR
(/var/lib/richinit/containers), the runtime's state under RICHINIT_RUN_ROOT (/run/richinit/rich),
quota records under RICHINIT_STATE_DIR (/var/lib/richinit), the hook log under RICHINIT_LOG_DIR.

Bad input is one line on stderr and exit status 125 (so it cannot be mistaken for the app's own
exit status, which `rich run` passes through).

`rich run` is on the start-up path of a container, so its command line is read by a small parser
of its own (parse_run): argparse costs ~8 ms to import here. What that parser is not sure about
(help, abbreviations, bundled short flags, anything unknown or wrong) goes to argparse, which has
the last word on errors; tests/test_cli_run_argv.py holds the two to the same results.
"""

import sys

PROG = "rich"
EXIT_RICH = 125


class CliError(Exception):
    """One line for stderr."""


_PARSER = []


def _parser_class():
    """argparse.ArgumentParser whose errors are one CliError line (made once, on first use)."""
    if not _PARSER:
        import argparse

        class _Parser(argparse.ArgumentParser):
            def error(self, message):  # one line, no usage dump
                raise CliError("%s: %s" % (self.prog, message))
        _PARSER.append(_Parser)
    return _PARSER[0]


def _add_run(sub):
    import argparse
    p = sub.add_parser("run", help="run a rootfs directory or tarball as a rich container")
    p.add_argument("--runtime", default=None, help="runc (default), crun, or a path")
    p.add_argument("--memory", "-m", help="memory limit, e.g. 256m or 1g")
    p.add_argument("--cpus", help="CPU limit, fractional (a CFS quota), e.g. 1.5")
    p.add_argument("-v", "--volume", action="append", default=[], metavar="HOST_DIR:DIR[:ro]")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--annotation", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--quota", action="append", default=[], metavar="RULE", help="e.g. /data=10M (repeatable)")
    p.add_argument("--service", action="append", default=[], metavar="NAME", help="only these services")
    p.add_argument("--no-services", action="store_true", help="no services, only CMD under richinit")
    p.add_argument("--vm", action="store_true", help="keep running after CMD exits, until stopped")
    p.add_argument("--name")
    p.add_argument("--network", choices=NETWORKS, default="none")
    p.add_argument("--workdir", "-w", default="/")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-t", "--tty", action="store_true", help="give the app a terminal (foreground only)")
    p.add_argument("--keep", action="store_true", help="keep a foreground container after it exits")
    p.add_argument("rootfs", metavar="ROOTFS_DIR|ROOTFS_TARBALL")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")


# `rich run`'s options for parse_run: (names, attribute, what) where what is "value" (one
# argument), "append" (repeatable) or "flag"; defaults as _add_run gives them.
RUN_OPTIONS = (
    (("--runtime",), "runtime", "value"), (("--memory", "-m"), "memory", "value"),
    (("--cpus",), "cpus", "value"), (("-v", "--volume"), "volume", "append"), (("-e", "--env"), "env", "append"),
    (("--annotation",), "annotation", "append"), (("--quota",), "quota", "append"),
    (("--service",), "service", "append"), (("--no-services",), "no_services", "flag"),
    (("--vm",), "vm", "flag"), (("--name",), "name", "value"), (("--network",), "network", "value"),
    (("--workdir", "-w"), "workdir", "value"), (("-d", "--detach"), "detach", "flag"),
    (("-t", "--tty"), "tty", "flag"), (("--keep",), "keep", "flag"),
)
RUN_DEFAULTS = {"runtime": None, "memory": None, "cpus": None, "volume": [], "env": [], "annotation": [], "quota": [],
                "service": [], "no_services": False, "vm": False, "name": None, "network": "none", "workdir": "/",
                "detach": False, "tty": False, "keep": False}
NETWORKS = ("none", "host")
_RUN_TABLE = {name: (attr, what) for names, attr, what in RUN_OPTIONS for name in names}


class Args:
    """What a parser found: attributes as argparse's Namespace has them."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __eq__(self, other):
        return vars(self) == vars(other)

    def __repr__(self):
        return "Args(%r)" % vars(self)


def parse_run(args):
    """`rich run` options (args after "run", up to any `--`) as Args, or None when argparse must decide."""
    out = dict(RUN_DEFAULTS, command="run")
    for k in ("volume", "env", "annotation", "quota", "service"):
        out[k] = []
    i = 0
    while i < len(args):
        tok = args[i]
        if not tok.startswith("-") or tok == "-":
            out["rootfs"], out["cmd"] = tok, list(args[i + 1:])
            return Args(**out)
        name, eq, value = tok.partition("=") if tok.startswith("--") else (tok, "", "")
        spec = _RUN_TABLE.get(name)
        if spec is None:
            return None  # help, abbreviations, -dt, -m256m, unknown: argparse's business
        attr, what = spec
        if what == "flag":
            if eq:
                return None
            out[attr] = True
            i += 1
            continue
        if not eq:
            i += 1
            if i >= len(args) or (args[i].startswith("-") and args[i] != "-"):
                return None  # a missing value (or one argparse might read as an option)
            value = args[i]
        if attr == "network" and value not in NETWORKS:
            return None
        if what == "append":
            out[attr].append(value)
        else:
            out[attr] = value
        i += 1
    return None  # no ROOTFS: argparse says what is missing


def _add_name(sub, name, help):
    p = sub.add_parser(name, help=help)
    p.add_argument("name")
    return p


def _add_exec(sub):
    import argparse
    e = sub.add_parser("exec", help="run a command in a running container")
    e.add_argument("-t", "--tty", action="store_true")
    e.add_argument("name")
    e.add_argument("cmd", nargs=argparse.REMAINDER)


def _add_stop(sub):
    s = _add_name(sub, "stop", "stop a container (TERM, then KILL after --time)")
    s.add_argument("--time", "-t", type=float, default=10.0)


def _add_rm(sub):
    r = _add_name(sub, "rm", "remove a container")
    r.add_argument("-f", "--force", action="store_true", help="kill it first if it runs")


def _add_runtime(sub):
    rt = sub.add_parser("runtime", help="the portable richinit runtime")
    rts = rt.add_subparsers(dest="runtime_cmd", required=True, parser_class=_parser_class())
    b = rts.add_parser("build", help="assemble it (default %s)" % "/var/lib/richinit/runtime")
    b.add_argument("--output")


def _add_quota(sub):
    q = sub.add_parser("quota", help="quota directories")
    qs = q.add_subparsers(dest="quota_cmd", required=True, parser_class=_parser_class())
    ls = qs.add_parser("ls", help="every container's quota directories: backend, ID, limit, usage")
    ls.add_argument("--json", action="store_true")


def _add_install(name, what):
    def add(sub):
        i = sub.add_parser(name, help=what)
        i.add_argument("--podman", action="store_true", help="oci-hooks JSON (podman, CRI-O)")
        i.add_argument("--containerd", action="store_true", help="config.toml runtime handler, RuntimeClass")
        i.add_argument("--docker", action="store_true", help="daemon.json runtimes rich and rich-all")
        i.add_argument("--crio", action="store_true", help="CRI-O runtime handler and oci-hooks JSON")
        i.add_argument("--dry-run", action="store_true", help="show the changes as diffs, change nothing")
        i.add_argument("--root", default="/", help="install below this directory (default /)")
        i.add_argument("--bin-dir", help="where rich-runtime and rich-hook are (default: beside rich)")
    return add


# The subcommands: name -> (add its parser to the subparsers, "module:function" handling its Args).
# A new subcommand is one entry here (its handler is imported only when it runs).
COMMANDS = {
    "run": (_add_run, "runtime_hooks.cli_containers:run"),
    "ps": (lambda sub: sub.add_parser("ps", help="list containers"), "runtime_hooks.cli_containers:ps"),
    "exec": (_add_exec, "runtime_hooks.cli_containers:exec_"),
    "stop": (_add_stop, "runtime_hooks.cli_containers:stop"),
    "logs": (lambda sub: _add_name(sub, "logs", "what a detached container wrote to stdout/stderr"),
             "runtime_hooks.cli_containers:logs"),
    "rm": (_add_rm, "runtime_hooks.cli_containers:rm"),
    "gc": (lambda sub: sub.add_parser("gc", help="undo what killed rich processes left behind"),
           "runtime_hooks.cli_containers:gc"),
    "runtime": (_add_runtime, "runtime_hooks.cli:_runtime_build"),
    "quota": (_add_quota, "runtime_hooks.cli:_quota_ls"),
    "install": (_add_install("install", "put the hook bundle in place"), "runtime_hooks.cli:_install"),
    "uninstall": (_add_install("uninstall", "take it away"), "runtime_hooks.cli:_install"),
}


def _engines_command(name):
    """A command of runtime_hooks.cli_engines (its parser is added from there too, when it runs)."""
    def add(sub):
        from runtime_hooks import cli_engines
        getattr(cli_engines, "add_" + name.replace("-", "_"))(sub)
    return add, "runtime_hooks.cli_engines:" + name.replace("-", "_")


COMMANDS.update((n, _engines_command(n)) for n in ("install-launchers", "ctl", "status", "doctor"))


def build_parser(only=None):
    """The whole parser, or (`only` = a command name) just that command's: argparse spends ~10 ms
    building the dozen subparsers."""
    _Parser = _parser_class()
    p = _Parser(prog=PROG, description="rich containers: unmodified images with an init, services and views")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (add, _handler) in COMMANDS.items():
        if only is None or name == only:
            add(sub)
    return p


def _split_cmd(argv):
    """`rich run OPTS ROOTFS -- CMD`: everything after the first `--` is CMD, untouched by argparse."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, None


def parse(argv):
    """argv (without the program name) -> Args/Namespace; CliError for a bad command line."""
    head, cmd = _split_cmd(argv)
    args = parse_run(head[1:]) if head[:1] == ["run"] else None
    if args is None:
        # A known command first: build only its parser (anything else gets the whole one, for help
        # and for the error naming the choices).
        args = build_parser(head[0] if head and head[0] in COMMANDS else None).parse_args(head)
    if cmd is not None:
        if getattr(args, "cmd", None):
            raise CliError("%s: give CMD either after ROOTFS or after --, not both" % PROG)
        args.cmd = cmd
    return args


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return dispatch(parse(argv))
    except CliError as e:
        sys.stderr.write("%s\n" % e)
        return EXIT_RICH
    except KeyboardInterrupt:
        sys.stderr.write("%s: interrupted\n" % PROG)
        return 130


def dispatch(args):
    module, _, fn = COMMANDS[args.command][1].partition(":")
    return getattr(__import__(module, fromlist=[fn]), fn)(args)


def _install(args):
    from runtime_hooks import install
    try:
        if args.command == "install":
            return install.install(args)
        return install.uninstall(args)
    except install.InstallError as e:
        raise CliError("%s %s: %s" % (PROG, args.command, e))


def _runtime_build(args):
    from runtime_hooks import portable, settings
    out = args.output or settings.DEFAULT_RUNTIME_DIR
    tty = sys.stderr.isatty()
    progress = (lambda m: sys.stderr.write("rich runtime: %s\n" % m)) if tty else None
    try:
        m = portable.build(out, progress=progress)
    except portable.BuildError as e:
        raise CliError("rich runtime build: %s" % e)
    except OSError as e:
        raise CliError("rich runtime build: %s: %s" % (out, e.strerror or e))
    print("%s: %.1f MB, python %s, loader %s" % (out, m["size"] / 1e6, m["python"], m["loader"]))
    return 0


def _quota_ls(args):
    from runtime_hooks import hostprep
    from runtime_hooks.quota.__main__ import main as quota_main
    try:
        paths = hostprep.HostPaths.from_env()
    except hostprep.PrepError as e:
        raise CliError("rich quota: %s" % e)
    rc = quota_main(["--state-dir", paths.state_dir, "ls"] + (["--json"] if args.json else []))
    return 0 if rc == 0 else EXIT_RICH


def entry():
    """The console script: main(), then out at once (no interpreter finalization)."""
    from osbase.quickexit import exit_now
    exit_now(main())


if __name__ == "__main__":
    entry()
