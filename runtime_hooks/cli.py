"""rich: run unmodified images as rich containers, and install rich mode into container engines.

    rich run [OPTIONS] ROOTFS_DIR|ROOTFS_TARBALL [--] CMD...   build a bundle, run it through rich-runtime
    rich create [OPTIONS] ROOTFS|DISK [--] CMD...                as run -d, not started (rich start NAME)
    rich ps [--json] | exec NAME -- CMD | start NAME | stop NAME [--time S] | restart NAME | logs NAME
    rich rm [-f] NAME
    rich import DISK [--name N] [--output DIR | --oci-archive FILE] [--json]   a VM's disk to a rootfs
    rich gc                                                    undo what killed rich processes left behind
    rich runtime build [--output DIR]                          the portable richinit runtime
    rich quota ls [--json]                                     every container's quota directories
    rich inspect ROOTFS_DIR|ROOTFS_TARBALL [--json]            the image's services, pre-flight (runtime_hooks.inspect)
    rich install [--podman] [--containerd] [--docker] [--crio] [--root DIR] [--dry-run] / rich uninstall [--root DIR]
    rich install-launchers | ctl NAME VERB... | status NAME | doctor   (runtime_hooks.cli_engines)

Where things live (each also an environment variable, so tests and second installations can
keep to their own directories): containers under RICHINIT_CONTAINERS_DIR
(/var/lib/richinit/containers), the runtime's state under RICHINIT_RUN_ROOT (/run/richinit/rich),
quota records under RICHINIT_STATE_DIR (/var/lib/richinit), the hook log under RICHINIT_LOG_DIR.

Bad input is one line on stderr and exit status 125 (so it cannot be mistaken for the app's own
exit status, which `rich run` passes through).

`rich run` is on the start-up path of a container, so its command line is read from the table
RUN_OPTIONS by osbase.standin.parse_options (argparse would cost ~6.5 ms here), the one parser of
`rich run` (tests/test_cli_run_argv.py holds it to argparse on thousands of command-line shapes);
every other subcommand is argparse's.
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


# `rich run`'s options: (names, attribute, kind, metavar, help); kind is "value" (one argument),
# "append" (repeatable) or "flag". parse_run reads them (osbase.standin.parse_options: argparse
# would cost ~6.5 ms of a container's start), and prints --help from them.
RUN_OPTIONS = (
    (("--runtime",), "runtime", "value", "RUNTIME", "runc (default), crun, or a path"),
    (("--memory", "-m"), "memory", "value", "SIZE", "memory limit, e.g. 256m or 1g"),
    (("--cpus",), "cpus", "value", "CPUS", "CPU limit, fractional (a CFS quota), e.g. 1.5"),
    (("-v", "--volume"), "volume", "append", "HOST_DIR:DIR[:ro]", "bind a host directory (repeatable)"),
    (("-e", "--env"), "env", "append", "KEY=VALUE", "set an environment variable (repeatable)"),
    (("--annotation",), "annotation", "append", "KEY=VALUE", "an OCI annotation, e.g. io.richinit.* (repeatable)"),
    (("--quota",), "quota", "append", "RULE", "e.g. /data=10M (repeatable)"),
    (("--service",), "service", "append", "NAME", "only these services (repeatable)"),
    (("--no-services",), "no_services", "flag", None, "no services, only CMD under richinit"),
    (("--vm",), "vm", "flag", None, "keep running after CMD exits, until stopped"),
    (("--name",), "name", "value", "NAME", "the container's name (default: rich-RANDOM)"),
    (("--network",), "network", "value", "{none,host,bridge}",
     "none (a fresh namespace with lo; the default), the host's, or bridge (CNI; the default with --vm)"),
    (("-p", "--publish"), "publish", "append", "[IP:]HOST_PORT:CONTAINER_PORT[/udp]",
     "publish a container port on the host (--network bridge; repeatable)"),
    (("--ip",), "ip", "value", "IP", "the container's address on the bridge (--network bridge)"),
    (("--hostname",), "hostname", "value", "NAME", "the container's hostname (default: its name)"),
    (("--workdir", "-w"), "workdir", "value", "DIR", "CMD's working directory (default /)"),
    (("-d", "--detach"), "detach", "flag", None, "run in the background (rich logs, rich rm)"),
    (("-t", "--tty"), "tty", "flag", None, "give the app a terminal (foreground only)"),
    (("--keep",), "keep", "flag", None, "keep a foreground container after it exits"),
)
RUN_DEFAULTS = {"runtime": None, "memory": None, "cpus": None, "volume": [], "env": [], "annotation": [], "quota": [],
                "service": [], "no_services": False, "vm": False, "name": None, "network": None, "workdir": "/",
                "detach": False, "tty": False, "keep": False, "publish": [], "ip": None, "hostname": None}
NETWORKS = ("none", "host", "bridge")
_RUN_TABLE = {name: (attr, kind) for names, attr, kind, _m, _h in RUN_OPTIONS for name in names}
RUN_USAGE = "usage: rich run [OPTIONS] ROOTFS_DIR|ROOTFS_TARBALL [--] CMD..."


class Args:
    """What a parser found: attributes as argparse's Namespace has them."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __eq__(self, other):
        return vars(self) == vars(other)

    def __repr__(self):
        return "Args(%r)" % vars(self)


def parse_run(args, command="run"):
    """`rich run` (or `rich create`) options (args after the command, up to any `--`) as Args;
    CliError for a bad line."""
    from osbase import standin
    try:
        values, rest = standin.parse_options(_RUN_TABLE, args, {"network": NETWORKS})
    except standin.OptionError as e:
        raise CliError("rich %s: %s" % (command, e))
    if values is None:
        sys.stdout.write(_run_help())
        raise Exit(0)
    out = dict(RUN_DEFAULTS, command=command)
    out.update({k: [] for k, v in RUN_DEFAULTS.items() if isinstance(v, list)})
    out.update(values)
    if not rest:
        raise CliError("rich %s: the following arguments are required: ROOTFS_DIR|ROOTFS_TARBALL" % command)
    out["rootfs"], out["cmd"] = rest[0], rest[1:]
    return Args(**out)


def _run_help():
    lines = [RUN_USAGE, "", "Run a rootfs directory or tarball as a rich container.", "", "options:"]
    for names, _attr, _kind, metavar, text in RUN_OPTIONS:
        spelled = ", ".join(n + (" " + metavar if metavar else "") for n in names)
        lines.append("  %-36s %s" % (spelled, text))
    return "\n".join(lines) + "\n"


class Exit(Exception):
    """Leave main() with this status (after --help)."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


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


def _add_stop(sub, name="stop"):
    s = _add_name(sub, name, "stop a container (TERM, then KILL after --time)" if name == "stop" else
                  "stop, then start a container (its changes kept)")
    s.add_argument("--time", "-t", type=float, default=10.0)


def _add_ps(sub):
    p = sub.add_parser("ps", help="list containers: state, services up/failed, address")
    p.add_argument("--json", action="store_true")


def _add_import(sub):
    from runtime_hooks.vmimport import command
    command.add_arguments(sub.add_parser("import", help=command.HELP))


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


def _add_inspect(sub):
    n = sub.add_parser("inspect", help="pre-flight report: the image's units and scripts, what is skipped")
    n.add_argument("rootfs", metavar="ROOTFS_DIR|ROOTFS_TARBALL")
    n.add_argument("--json", action="store_true")


def _inspect(args):
    from runtime_hooks import inspect
    try:
        return inspect.inspect(args.rootfs, args.json)
    except inspect.InspectError as e:
        raise CliError("%s inspect: %s" % (PROG, e))


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
    # (`rich run` is parsed by parse_run; argparse only lists it in `rich --help`)
    "run": (lambda sub: sub.add_parser("run", help="run a rootfs directory or tarball as a rich container",
                                       add_help=False), "runtime_hooks.cli_containers:run"),
    "create": (lambda sub: sub.add_parser("create", help="create a container as `run -d` does, not started",
                                          add_help=False), "runtime_hooks.cli_containers:create"),
    "start": (lambda sub: _add_name(sub, "start", "start a created or stopped container (its changes kept)"),
              "runtime_hooks.cli_containers:start"),
    "restart": (lambda sub: _add_stop(sub, "restart"), "runtime_hooks.cli_containers:restart"),
    "ps": (_add_ps, "runtime_hooks.cli_containers:ps"),
    "import": (_add_import, "runtime_hooks.vmimport.command:run"),
    "exec": (_add_exec, "runtime_hooks.cli_containers:exec_"),
    "stop": (_add_stop, "runtime_hooks.cli_containers:stop"),
    "logs": (lambda sub: _add_name(sub, "logs", "what a detached container wrote to stdout/stderr"),
             "runtime_hooks.cli_containers:logs"),
    "rm": (_add_rm, "runtime_hooks.cli_containers:rm"),
    "gc": (lambda sub: sub.add_parser("gc", help="undo what killed rich processes left behind"),
           "runtime_hooks.cli_containers:gc"),
    "runtime": (_add_runtime, "runtime_hooks.cli:_runtime_build"),
    "quota": (_add_quota, "runtime_hooks.cli:_quota_ls"),
    "inspect": (_add_inspect, "runtime_hooks.cli:_inspect"),
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
    args = parse_run(head[1:], head[0]) if head[:1] in (["run"], ["create"]) else None
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
    except Exit as e:
        return e.code
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
    # Through the module proper: dispatch imports handlers from runtime_hooks.cli, whose CliError
    # is not this __main__ copy's.
    from runtime_hooks.cli import entry as _entry
    _entry()
