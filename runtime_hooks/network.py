"""`rich run --network bridge`: a network like a VM's, through the standard CNI plugins.

The container gets a network namespace of its own (`ip netns add rich-NAME`, so it outlives no
one but is found by name) wired by Debian's containernetworking-plugins, called as the CNI spec
says (CNI_COMMAND, CNI_NETNS, ... in the environment, the network configuration on stdin):
- loopback: lo up;
- bridge + host-local: a veth on the host bridge RICHINIT_BRIDGE (default richbr0), an address
  from RICHINIT_SUBNET (default 10.77.0.0/24; `--ip` asks for one), the bridge as gateway,
  outbound traffic masqueraded; host-local keeps its allocations under STATE/cni;
- portmap: `-p [IP:]HOST_PORT:CONTAINER_PORT[/udp]` as DNAT rules on the host (127.0.0.1 works:
  portmap turns on route_localnet for the bridge).

plan() is pure (validated options -> a dict saved in the container's plan); apply() runs ADD
and records each plugin's result in that dict; undo() runs DEL in reverse order with those
results (veth, iptables rules, the address) and deletes the namespace. undo is safe after a
half apply or none (a killed `rich run`): DEL of something never added is no error in CNI.
"""

import json
import os
import subprocess

DEFAULT_BRIDGE = "richbr0"
DEFAULT_SUBNET = "10.77.0.0/24"
CNI_PATH = "/usr/lib/cni:/opt/cni/bin"
CNI_VERSION = "1.0.0"
NETNS_DIR = "/run/netns"
IFNAME = "eth0"
TIMEOUT = 60


class NetworkError(Exception):
    """One line: the option or the plugin, and why."""


def parse_publish(spec):
    """-p [IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp] as a CNI portMappings entry."""
    import ipaddress
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise NetworkError("-p %s: protocol must be tcp or udp" % spec)
    parts = body.rsplit(":", 2)
    if len(parts) == 2:
        host_ip, host_port, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        host_ip, host_port, port = parts
        host_ip = host_ip.strip("[]")
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise NetworkError("-p %s: %r is not an IP address" % (spec, host_ip)) from None
    else:
        raise NetworkError("-p %s: expected [IP:]HOST_PORT:CONTAINER_PORT[/udp]" % spec)
    ports = []
    for p in (host_port, port):
        if not p.isdigit() or not 0 < int(p) < 65536:
            raise NetworkError("-p %s: %r is not a port (1-65535)" % (spec, p))
        ports.append(int(p))
    out = {"hostPort": ports[0], "containerPort": ports[1], "protocol": proto}
    if host_ip:
        out["hostIP"] = host_ip
    return out


def plan(name, publish=(), ip=None, hostname=None, state_dir="/var/lib/richinit", environ=None):
    """What --network bridge will do for container NAME, as data (NetworkError on a bad option)."""
    import ipaddress
    environ = os.environ if environ is None else environ
    bridge = environ.get("RICHINIT_BRIDGE") or DEFAULT_BRIDGE
    if len(bridge) > 15 or not bridge.replace("-", "").replace("_", "").isalnum():
        raise NetworkError("RICHINIT_BRIDGE: %r is not an interface name" % bridge)
    try:
        subnet = ipaddress.ip_network(environ.get("RICHINIT_SUBNET") or DEFAULT_SUBNET)
    except ValueError as e:
        raise NetworkError("RICHINIT_SUBNET: %s" % e) from None
    if ip is not None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise NetworkError("--ip %s: not an IP address" % ip) from None
        if addr not in subnet or addr in (subnet.network_address, subnet.broadcast_address, next(subnet.hosts())):
            raise NetworkError("--ip %s: not a free host address of %s (the first is the bridge's)" % (ip, subnet))
    mappings = [parse_publish(p) for p in publish]
    seen = set()
    for m in mappings:
        key = (m.get("hostIP", ""), m["hostPort"], m["protocol"])
        if key in seen:
            raise NetworkError("-p: host port %d/%s is published twice" % (m["hostPort"], m["protocol"]))
        seen.add(key)
    netns = "rich-%s" % name
    conflist = {"cniVersion": CNI_VERSION, "name": "rich-%s" % bridge, "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": str(subnet)}]], "routes": [{"dst": "0.0.0.0/0"}],
                  "dataDir": os.path.join(state_dir, "cni", "networks")}},
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ]}
    return {"mode": "bridge", "netns": netns, "path": os.path.join(NETNS_DIR, netns), "ifname": IFNAME,
            "conflist": conflist, "ports": mappings, "ip": ip, "hostname": hostname, "results": [],
            "cni_path": environ.get("CNI_PATH") or CNI_PATH}


def _plugin(net, conf, command, ifname, prev=None):
    found = None
    for d in net["cni_path"].split(":"):
        if d and os.access(os.path.join(d, conf["type"]), os.X_OK):
            found = os.path.join(d, conf["type"])
            break
    if found is None:
        raise NetworkError("CNI plugin %s not found in %s (apt-get install containernetworking-plugins)"
                           % (conf["type"], net["cni_path"]))
    body = dict(conf, cniVersion=CNI_VERSION, name=net["conflist"]["name"])
    if conf.get("capabilities", {}).get("portMappings"):
        body["runtimeConfig"] = {"portMappings": net["ports"]}
    if prev is not None:
        body["prevResult"] = prev
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": net["netns"], "CNI_NETNS": net["path"], "CNI_IFNAME": ifname,
           "CNI_PATH": net["cni_path"], "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if net.get("ip") and conf["type"] == "bridge":
        env["CNI_ARGS"] = "IgnoreUnknown=1;IP=%s" % net["ip"]
    try:
        r = subprocess.run([found], input=json.dumps(body), capture_output=True, text=True, env=env,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise NetworkError("CNI %s %s: no answer in %d s" % (conf["type"], command, TIMEOUT)) from None
    if r.returncode != 0:
        try:
            err = json.loads(r.stdout)
            why = err.get("msg", "") + (": " + err["details"] if err.get("details") else "")
        except ValueError:
            why = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["exit %d" % r.returncode]
            why = why[0] if isinstance(why, list) else why
        raise NetworkError("CNI %s %s: %s" % (conf["type"], command, why))
    return json.loads(r.stdout) if command == "ADD" and r.stdout.strip() else None


def apply(net):
    """Create the namespace and ADD every plugin; results recorded in NET (save the plan after)."""
    r = subprocess.run(["ip", "netns", "add", net["netns"]], capture_output=True, text=True)
    if r.returncode != 0:
        raise NetworkError("ip netns add %s: %s" % (net["netns"], r.stderr.strip()))
    _plugin(net, {"type": "loopback"}, "ADD", "lo")
    prev = None
    for conf in net["conflist"]["plugins"]:
        prev = _plugin(net, conf, "ADD", net["ifname"], prev)
        net["results"].append(prev)
    return net


def address(net):
    """The container's address on the bridge, from the bridge plugin's result."""
    for res in net.get("results") or []:
        for ip in (res or {}).get("ips", []):
            return ip["address"].split("/")[0]
    return None


def undo(net):
    """DEL every plugin (reverse order, with the results ADD gave), then the namespace. Problems as lines."""
    problems = []
    plugins = net["conflist"]["plugins"]
    last = next((r for r in reversed(net.get("results") or []) if r), None)
    for conf in reversed(plugins):
        try:
            _plugin(net, conf, "DEL", net["ifname"], last)
        except NetworkError as e:
            problems.append(str(e))
    if os.path.exists(net["path"]):
        r = subprocess.run(["ip", "netns", "delete", net["netns"]], capture_output=True, text=True)
        if r.returncode != 0:
            problems.append("ip netns delete %s: %s" % (net["netns"], r.stderr.strip()))
    return problems
