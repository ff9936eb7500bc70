"""Several hosts behind one switch port: a hub namespace with a Linux bridge.

The outside of a NAT gateway is usually one uplink: every outside host's traffic, a
flooder's and a legitimate client's alike, enters the switch on the same port, so a
defence keyed by the switch port cannot tell them apart. :class:`Segment` builds that::

    host A --veth--\\
    host B --veth---[bridge "hub" in namespace NAME]--veth "uplink"-- OVS port N
    host C --veth--/

Hosts get their address and no route (add what they need). Deleting the segment (its
namespace) removes every veth it made; the uplink's root end is removed too.
"""

from __future__ import annotations

from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.ovs import Bridge
from ryu_pptp_alg.testbed.proc import run

HUB_BRIDGE = "hub"


class Segment:
    def __init__(self, name: str) -> None:
        self.hub = Namespace(name)
        self._hosts = 0
        self.uplink_port: str | None = None  # the root-namespace end on the OVS bridge

    def create(self) -> Segment:
        hub = self.hub.create()
        try:
            hub.run("ip", "link", "add", "name", HUB_BRIDGE, "type", "bridge")
            hub.run("ip", "link", "set", HUB_BRIDGE, "up")
        except Exception:
            self.delete()
            raise
        return self

    def add(self, host: Namespace, address: str, ifname: str = "eth0") -> str:
        """Join ``host`` to the segment with ``address`` (CIDR); returns the hub's port."""
        self._hosts += 1
        port = f"h{self._hosts}"
        self.hub.veth_to(host, port, ifname, peer_address=address)
        self.hub.run("ip", "link", "set", port, "master", HUB_BRIDGE)
        # Frames from the host reach the userspace datapath: no checksum offload.
        host.run("ethtool", "-K", ifname, "tx", "off", check=False)
        self.hub.run("ethtool", "-K", port, "tx", "off", check=False)
        return port

    def uplink(self, bridge: Bridge, ofport: int) -> str:
        """Join the segment to ``bridge`` port ``ofport``; returns the root end's name."""
        root_end = f"{self.hub.name[:10]}u{ofport}"
        run(["ip", "link", "del", root_end], check=False)
        run(["ip", "link", "add", root_end, "type", "veth", "peer", "name", "uplink",
             "netns", self.hub.name])
        self.hub.links.append(root_end)
        run(["ethtool", "-K", root_end, "tx", "off"], check=False)
        self.hub.run("ethtool", "-K", "uplink", "tx", "off", check=False)
        self.hub.run("ip", "link", "set", "uplink", "master", HUB_BRIDGE)
        self.hub.run("ip", "link", "set", "uplink", "up")
        run(["ip", "link", "set", root_end, "up"])
        bridge.add_port(root_end, ofport)
        self.uplink_port = root_end
        return root_end

    def delete(self) -> None:
        self.hub.delete()

    def __enter__(self) -> Segment:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.delete()
