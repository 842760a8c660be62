"""--network bridge's options as data: -p forms, --ip, RICHINIT_BRIDGE/RICHINIT_SUBNET, the CNI conflist."""

import pytest

from runtime_hooks import network as N


def test_publish_forms():
    assert N.parse_publish("8080:80") == {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}
    assert N.parse_publish("127.0.0.1:2222:22") == {"hostPort": 2222, "containerPort": 22, "protocol": "tcp",
                                                    "hostIP": "127.0.0.1"}
    assert N.parse_publish("5353:53/udp")["protocol"] == "udp"
    assert N.parse_publish("[::1]:8443:443")["hostIP"] == "::1"
    for bad, why in (("80", "expected"), ("0:80", "not a port"), ("8080:70000", "not a port"),
                     ("x:1:2", "not an IP"), ("1:2/sctp", "tcp or udp"), ("a:b", "not a port")):
        with pytest.raises(N.NetworkError, match=why):
            N.parse_publish(bad)


def test_plan():
    p = N.plan("web", ["127.0.0.1:2222:22", "8080:80"], "10.77.0.50", "web1", state_dir="/s", environ={})
    assert p["netns"] == "rich-web" and p["path"] == "/run/netns/rich-web" and p["ip"] == "10.77.0.50"
    bridge, portmap = p["conflist"]["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "richbr0" and bridge["isGateway"]
    assert bridge["ipam"] == {"type": "host-local", "ranges": [[{"subnet": "10.77.0.0/24"}]],
                              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "/s/cni/networks"}
    assert portmap["capabilities"] == {"portMappings": True}
    assert [m["hostPort"] for m in p["ports"]] == [2222, 8080]
    p = N.plan("db", environ={"RICHINIT_BRIDGE": "testbr1", "RICHINIT_SUBNET": "10.99.1.0/24"})
    assert p["conflist"]["plugins"][0]["bridge"] == "testbr1"
    assert p["conflist"]["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.99.1.0/24"}]]


def test_plan_refuses():
    for kw, why in (({"ip": "10.78.0.5"}, "not a free host address"), ({"ip": "10.77.0.1"}, "the bridge's"),
                    ({"ip": "nope"}, "not an IP"), ({"publish": ["80:80", "80:81"]}, "published twice"),
                    ({"environ": {"RICHINIT_BRIDGE": "a/b"}}, "not an interface name"),
                    ({"environ": {"RICHINIT_SUBNET": "10.0.0.1/33"}}, "RICHINIT_SUBNET")):
        kw.setdefault("environ", {})
        with pytest.raises(N.NetworkError, match=why):
            N.plan("x", **kw)
    # the same port on two host addresses, or tcp and udp, is fine
    assert len(N.plan("x", ["127.0.0.1:80:80", "127.0.0.2:80:80", "80:80/udp"], environ={})["ports"]) == 3
