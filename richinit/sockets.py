"""Socket units in PID 1: listeners bound before any service starts, watched, handed over.

PID 1 owns the fds (a service that restarts finds the same socket, and what was sent meanwhile
waits in it: nothing is lost while a daemon starts or restarts). For each SocketSpec of the loader's
document, in order:

- bind: ListenStream/ListenDatagram/ListenSequentialPacket on "PORT" (IPv6 dual-stack, IPv4 where
  the kernel has no IPv6), "IP:PORT", "[IPv6]:PORT", "/path" (unix; a stale socket file is
  replaced, anything else is an error) or "@name" (abstract unix); ListenFIFO on a path (created
  with mkfifo, opened read-write so it never reads end-of-file). SocketMode=, SocketUser=,
  SocketGroup= apply to the file; Backlog= to listen(2). All fds non-blocking and close-on-exec.
- hand over: the service's main process gets the fds of its sockets (ServiceSpec.sockets, in
  order, then every other socket whose `service` is it) as 3, 4, ... with LISTEN_FDS, LISTEN_PID
  (its own pid, set in the child) and LISTEN_FDNAMES (FileDescriptorName=, else the socket
  unit's name, else the service's), at every start.
- activate (enabled sockets): Accept=no: the first connection or datagram starts the service;
  PID 1 stops watching while the service runs and watches again once it is down; after the
  service failed, only once it has run again (the queued traffic would restart it for ever).
  Accept=yes (stream only): PID 1 accepts, and starts an instance `TEMPLATE@N` (from the
  document's "templates") with the connection as fd 3, LISTEN_FDS=1, REMOTE_ADDR/REMOTE_PORT
  (and as stdin/stdout with StandardInput=socket); at most MaxConnections run at once (more are
  closed at once; out of fds, accepting waits for an instance to end). An instance runs once
  (no restart) and is dropped when it ends.
  A services.d `listen:` socket (not enabled) is bound all the same and handed to its service when
  that one starts, but traffic starts nothing. A socket unit that is not enabled (nothing pulls it
  at boot) is not bound: inactive, as under systemd, until systemctl starts it or a service that
  Requires=/Wants= it starts (Supervisor._start_one); its service binds its own.
- systemctl stop/start NAME.socket (`stop`, `start`): stop closes PID 1's listening fds (a service
  running keeps its copies) and, with RemoveOnStop=yes, removes the socket files and FIFOs (else
  they stay, as systemd leaves them; the next bind replaces a stale socket file); the unit is then
  inactive (dead) and hands nothing over. start binds again and watches: traffic activates the
  service from then on, enabled or not, as after systemd's start of the unit. Socket units are
  stopped the same way at the container's stop once every service is down (`stop_all`), and when
  a daemon-reload finds them gone; a services.d `listen:` socket that goes, and a hand-over-only
  socket whose service failed, always take their files with them.

Never blocks: accept and reads are non-blocking, and a bind error fails that socket alone (logged;
the service starts without it). `_socket`, not socket.py: its enums would cost PID 1 memory.
"""

import _socket as socket
import os
import stat

from richinit import log
from richinit.bootpaths import DEV_LOG

SOCK_TYPES = {"stream": socket.SOCK_STREAM, "dgram": socket.SOCK_DGRAM, "seqpacket": socket.SOCK_SEQPACKET}


def parse_address(address):
    """A Listen address -> (family, sockaddr). ValueError when it is not one."""
    a = address.strip()
    if a.startswith("/"):
        return socket.AF_UNIX, a
    if a.startswith("@") and len(a) > 1:
        return socket.AF_UNIX, "\0" + a[1:]
    host, port = None, a
    if a.startswith("["):
        end = a.find("]:")
        if end < 0:
            raise ValueError("bad address %r: expected [IPv6]:PORT" % address)
        host, port = a[1:end], a[end + 2:]
    elif ":" in a:
        host, _, port = a.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("bad address %r: a port 1-65535, IP:PORT, [IPv6]:PORT, /path or @name" % address)
    if host is None:
        return socket.AF_INET6, ("::", int(port))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.inet_pton(family, host)
    except OSError:
        raise ValueError("bad address %r: %r is not an IP address" % (address, host)) from None
    return family, (host, int(port))


def _unlink_stale(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(17, "%s exists and is not a socket" % path)
    os.unlink(path)


def _own(path, mode, user, group):
    os.chmod(path, mode)
    if user is not None or group is not None:
        from richinit.identity import passwd_lookup
        uid, gid, _ = passwd_lookup(user, group)
        os.chown(path, uid if user is not None else -1, gid if group is not None else -1)


def bind(listen, spec):
    """Create, bind and (stream, seqpacket) listen one Listen of `spec` (SocketSpec: mode, user,
    group, backlog): a socket object, or the fd of a FIFO."""
    return bind_address(listen.kind, listen.address, spec.mode, spec.user, spec.group, spec.backlog)


def bind_address(kind, address, mode=0o666, user=None, group=None, backlog=4096):
    """What bind() does, from plain values (PID 1 binds /dev/log before the data model is loaded)."""
    if kind == "fifo":
        path = address
        try:
            st = os.lstat(path)
            if not stat.S_ISFIFO(st.st_mode):
                raise OSError(17, "%s exists and is not a FIFO" % path)
        except FileNotFoundError:
            os.mkfifo(path, mode)
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        _own(path, mode, user, group)
        return fd
    family, addr = parse_address(address)
    kind = SOCK_TYPES[kind]
    if family == socket.AF_INET6 and addr[0] == "::" and not socket.has_ipv6:
        family, addr = socket.AF_INET, ("0.0.0.0", addr[1])
    s = _socket_for(family, kind, addr)
    try:
        if family == socket.AF_UNIX and not addr.startswith("\0"):
            _unlink_stale(addr)
        s.bind(addr)
        if family == socket.AF_UNIX and not addr.startswith("\0"):
            _own(addr, mode, user, group)
        if kind != socket.SOCK_DGRAM:
            s.listen(backlog)
        return s
    except BaseException:
        s.close()
        raise


def _socket_for(family, kind, addr):
    try:
        s = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)
    except OSError:
        if family != socket.AF_INET6 or addr[0] != "::":
            raise
        family, addr = socket.AF_INET, ("0.0.0.0", addr[1])
        s = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)
    if family in (socket.AF_INET, socket.AF_INET6):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and addr[0] == "::":
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    return s


def bind_dev_log(path=DEV_LOG):
    """PID 1's /dev/log, bound before the services loader runs, so nothing the app or a service
    logs is lost whoever ends up reading it: {("dgram", path): socket}, or {} when a live socket is
    there already (the host's, bind-mounted) or it cannot be bound (logged)."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, 0)
            try:
                probe.connect(path)
                return {}  # somebody reads it already
            except OSError:
                pass  # a stale socket file: ours to replace
            finally:
                probe.close()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("%s: %s", path, e.strerror)
        return {}
    try:
        s = bind_address("dgram", path)
    except OSError as e:
        log.warning("cannot bind %s: %s", path, e.strerror or e)
        return {}
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # room for a burst while syslogd starts
    except OSError:
        pass
    return {("dgram", path): s}


def release(prebound):
    """Close sockets bound early that no socket of the document claimed, and remove their files."""
    for (_kind, address), s in prebound.items():
        s.close()
        if address.startswith("/"):
            try:
                _unlink_stale(address)
            except OSError:
                pass


class Unit:
    """One socket unit's runtime state: its fds, whether PID 1 watches them, its instances."""

    def __init__(self, spec):
        self.spec = spec
        self.fds = []          # [(fd, Listen)] bound
        self.objects = {}      # fd -> its socket object (None for a FIFO), kept open
        self.error = None      # why binding failed (the unit is "failed")
        self.watching = False
        self.instances = set()  # Accept=yes: running instance names
        self.accepted = 0       # Accept=yes: connections accepted so far (instance numbers)
        self.refused = 0
        self.paused = None      # why PID 1 stopped watching though the service is down (failed, out of fds)
        self.stopped = False    # systemctl stop: no fds until systemctl start
        self.started = False    # systemctl start: activates its service though not enabled

    @property
    def activates(self):
        return (self.spec.enabled or self.started) and not self.stopped

    @property
    def fd_name(self):
        return self.spec.fd_name or self.spec.unit or self.spec.name


class Sockets:
    """Every socket of the document. `host` is the supervisor: host.loop (add_reader, remove_reader),
    host.services (name -> svc.Service), host.start_instance(template, name) -> bool, which launches
    the instance through host.launch, where handover(), env_for() and launched() are asked."""

    def __init__(self, host):
        self.host = host
        self.units = {}           # socket name -> Unit
        self.conn_fds = {}        # Accept=yes instance name -> its connection fd until launched
        self.instance_env = {}    # instance name -> REMOTE_ADDR/REMOTE_PORT

    # ---- set-up -------------------------------------------------------------

    def apply(self, specs, prebound=None):
        """Bind every socket (before any service starts; on a reload, the new and changed ones, and
        close those gone). `prebound`: {(kind, address): socket} PID 1 bound earlier (/dev/log),
        taken over instead of bound again; returns what nobody claimed."""
        prebound = dict(prebound or {})
        wanted = {spec.name: spec for spec in specs}
        for name, unit in list(self.units.items()):  # a reload: gone or changed ones are closed
            if wanted.get(name) != unit.spec:
                self._close(name, remove=unit.spec.remove_on_stop or not unit.spec.unit)
        for spec in specs:
            if spec.name in self.units:
                continue  # unchanged: a reload keeps the bound fds (and what waits in them)
            unit = self.units[spec.name] = Unit(spec)
            if spec.unit and not spec.enabled:
                unit.stopped = True  # inactive until started
                continue
            self._bind(unit, prebound)
            if unit.activates and unit.fds:
                self._watch(unit)
        return prebound

    def _bind(self, unit, prebound):
        spec = unit.spec
        unit.error = None
        for listen in spec.listen:
            obj = prebound.pop((listen.kind, listen.address), None)
            try:
                if obj is None:
                    obj = bind(listen, spec)
            except (OSError, ValueError, LookupError) as e:
                unit.error = "%s %s: %s" % (listen.kind, listen.address, getattr(e, "strerror", None) or e)
                log.error("socket %s: cannot listen on %s", spec.name, unit.error)
                continue
            fd = obj if isinstance(obj, int) else obj.fileno()
            unit.objects[fd] = None if isinstance(obj, int) else obj
            unit.fds.append((fd, listen))

    # ---- systemctl start/stop NAME.socket -----------------------------------

    def start(self, name):
        """Listen again (after a stop) and activate the service on traffic from now on; None, or
        why it cannot ("failed to bind ...")."""
        unit = self.units[name]
        unit.started, unit.stopped, unit.paused = True, False, None
        if unit.error is not None:  # some Listen= failed to bind: all of them are tried again
            self._unwatch(unit)
            self._release(unit, remove=False)
        if not unit.fds:
            self._bind(unit, {})
        if unit.error is not None:
            return unit.error
        svc = self.host.services.get(unit.spec.service)
        if unit.spec.accept or svc is None or not getattr(svc, "pids", list)():
            self._watch(unit)  # else the service has the fds: watched again once it is down
        return None

    def stop(self, name):
        """Close the listening fds (RemoveOnStop=: and remove the files); the unit is inactive."""
        unit = self.units[name]
        self._unwatch(unit)
        self._release(unit, remove=unit.spec.remove_on_stop)
        unit.stopped, unit.started, unit.error, unit.paused = True, False, None, None

    def stop_all(self):
        """The container stops, every service is down: every socket unit is stopped (stop())."""
        for name, unit in self.units.items():
            if unit.spec.unit and not unit.stopped:
                self.stop(name)

    def state(self, name):
        """(ActiveState, SubState) of the socket unit, as systemd names them; None when unknown."""
        unit = self.units.get(name)
        if unit is None:
            return None
        if unit.stopped:
            return "inactive", "dead"
        if unit.error:
            return "failed", "failed"
        return "active", "listening" if unit.watching else "running"

    # ---- hand-over ----------------------------------------------------------

    def handover(self, svc_name, declared=()):
        """The fds a service's main process gets: [(fd, name)] (its declared sockets first)."""
        conn = self.conn_fds.get(svc_name)
        if conn is not None:
            return [(conn, "connection")]
        units = [self.units[n] for n in declared if n in self.units]
        units += [u for n, u in sorted(self.units.items()) if u.spec.service == svc_name and u not in units
                  and not u.spec.accept]
        return [(fd, u.fd_name) for u in units for fd, _ in u.fds]

    def launched(self, svc_name):
        """The main process of svc_name was spawned (or failed to): PID 1's copy of a connection goes."""
        fd = self.conn_fds.pop(svc_name, None)
        if fd is not None:
            os.close(fd)

    def env_for(self, svc_name):
        return self.instance_env.get(svc_name, {})

    # ---- activation ---------------------------------------------------------

    def _watch(self, unit):
        if unit.watching or unit.error is not None or unit.paused is not None or unit.stopped:
            return
        unit.watching = True
        for fd, _ in unit.fds:
            self.host.loop.add_reader(fd, lambda fd, unit=unit: self._readable(unit, fd))

    def _unwatch(self, unit):
        if not unit.watching:
            return
        unit.watching = False
        for fd, _ in unit.fds:
            self.host.loop.remove_reader(fd)

    def _readable(self, unit, fd):
        spec = unit.spec
        if spec.accept:
            return self._accept(unit, fd)
        svc = self.host.services.get(spec.service)
        if svc is None:
            log.warning("socket %s: no service %s to activate", spec.name, spec.service)
            self._unwatch(unit)
            return
        self._unwatch(unit)  # the service takes it from here; watched again once it is down
        log.info("socket %s: traffic: starting %s", spec.name, spec.service)
        svc.start()

    def _accept(self, unit, fd):
        try:
            conn_fd, addr = unit.objects[fd]._accept()  # _socket has no accept() wrapper
        except BlockingIOError:
            return  # another wake-up took it
        except OSError as e:  # out of fds: the connection stays queued; watched again once an instance ends
            unit.paused = e.strerror or str(e)
            log.warning("socket %s: cannot accept: %s", unit.spec.name, unit.paused)
            self._unwatch(unit)
            return
        os.set_blocking(conn_fd, True)  # the instance reads it as it would any socket
        spec = unit.spec
        if len(unit.instances) >= spec.max_connections:
            unit.refused += 1
            log.warning("socket %s: %d connections already: refused", spec.name, len(unit.instances))
            os.close(conn_fd)
            return
        template = spec.service if spec.service.endswith("@") else spec.service + "@"
        name = "%s%d" % (template, unit.accepted)
        unit.accepted += 1
        env = {}
        if isinstance(addr, tuple) and len(addr) >= 2:
            env = {"REMOTE_ADDR": str(addr[0]), "REMOTE_PORT": str(addr[1])}
        self.conn_fds[name] = conn_fd
        self.instance_env[name] = env
        unit.instances.add(name)
        if not self.host.start_instance(template, name):
            self._instance_gone(unit, name)

    def _instance_gone(self, unit, name):
        unit.instances.discard(name)
        self.instance_env.pop(name, None)
        self.launched(name)

    def service_changed(self, svc, down):
        """The supervisor's notification: `svc` changed state; `down`: it is not running any more.

        A hand-over-only socket (not enabled) whose service has failed for good is closed and its file
        removed: nobody would read it, and writers (syslog(3) on /dev/log) would block once it is full,
        where without it they get an error and go on."""
        if down and getattr(svc, "state", None) == "failed":
            for name, unit in list(self.units.items()):
                if unit.spec.service == svc.name and not unit.spec.enabled and not unit.spec.accept:
                    log.warning("socket %s: %s failed: closed", name, svc.name)
                    self._close(name)
        for unit in self.units.values():
            if unit.spec.accept:
                if down and svc.name in unit.instances:
                    self._instance_gone(unit, svc.name)
                    unit.paused = None
                    self._watch(unit)
            elif unit.spec.service == svc.name and unit.activates:
                if not down:
                    unit.paused = None
                    self._unwatch(unit)
                elif getattr(svc, "state", None) == "failed":
                    # The traffic that started it is still queued: watching would start it again at
                    # once, for ever. It waits for the service to run again (systemctl start).
                    unit.paused = "%s failed" % svc.name
                    log.warning("socket %s: %s failed: not listening for it until it runs again",
                                unit.spec.name, svc.name)
                else:
                    self._watch(unit)

    def _close(self, name, remove=True):
        """Drop a socket: its fds closed, its socket files and FIFOs removed when `remove`."""
        unit = self.units.pop(name)
        self._unwatch(unit)
        self._release(unit, remove)

    @staticmethod
    def _release(unit, remove):
        for fd, listen in unit.fds:
            obj = unit.objects.get(fd)
            if obj is not None:
                obj.close()
            else:
                os.close(fd)
            if remove and listen.address.startswith("/"):
                try:
                    if listen.kind == "fifo":
                        os.unlink(listen.address)
                    else:
                        _unlink_stale(listen.address)
                except OSError:
                    pass
        unit.fds, unit.objects = [], {}

    # ---- queries ------------------------------------------------------------

    def status(self):
        out = []
        for name, u in sorted(self.units.items()):
            out.append({"name": name, "unit": u.spec.unit or name + ".socket", "service": u.spec.service,
                        "listen": ["%s %s" % (listen.kind, listen.address) for _, listen in u.fds],
                        "state": "inactive" if u.stopped else "failed" if u.error or u.paused
                        else "listening" if u.watching else "running",
                        "error": u.error or u.paused, "accept": u.spec.accept, "connections": len(u.instances),
                        "accepted": u.accepted, "refused": u.refused})
        return out
