"""The Linux reference NAT: a router namespace doing MASQUERADE with the PPTP helper.

Layout (all interface names are inside the router namespace)::

    inside hosts --veth-- [bridge lan] ROUTER [bridge wan] --veth-- outside hosts

Both sides are Linux bridges, so any number of inside clients and outside servers
can hang off one router (:meth:`LinuxNat.add_inside`, :meth:`LinuxNat.add_outside`).
Outside hosts get no route to the inside network: only NAT makes replies work.
``helper=False`` leaves out the ``CT --helper pptp`` rule (the negative control:
the server's GRE then draws ICMP protocol-unreachable and PPP never comes up).
"""

from __future__ import annotations

import re
from typing import Any

from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.ovs import Bridge
from ryu_pptp_alg.testbed.proc import have, run

LAN, WAN = "lan", "wan"


class LinuxNat:
    """A NAT router namespace ``name``; deleting it removes every link it made."""

    def __init__(self, name: str, lan_address: str = "10.0.0.1/24",
                 wan_address: str = "198.51.100.1/24", helper: bool = True) -> None:
        self.router = Namespace(name)
        self.lan_address = lan_address
        self.wan_address = wan_address
        self.helper = helper
        self._ports = 0

    @property
    def lan_ip(self) -> str:
        return self.lan_address.split("/")[0]

    @property
    def wan_ip(self) -> str:
        return self.wan_address.split("/")[0]

    def create(self) -> LinuxNat:
        r = self.router.create()
        for bridge, address in ((LAN, self.lan_address), (WAN, self.wan_address)):
            r.run("ip", "link", "add", bridge, "type", "bridge")
            r.run("ip", "addr", "add", address, "dev", bridge)
            r.run("ip", "link", "set", bridge, "up")
        r.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        r.run("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", WAN, "-j", "MASQUERADE")
        if self.helper:
            r.run("iptables", "-t", "raw", "-A", "PREROUTING", "-i", LAN, "-p", "tcp",
                  "--dport", "1723", "-j", "CT", "--helper", "pptp")
        return self

    def _port(self, host: Namespace, bridge: str, address: str, ifname: str) -> str:
        self._ports += 1
        port = f"{bridge}{self._ports}"
        self.router.veth_to(host, port, ifname, peer_address=address)
        self.router.run("ip", "link", "set", port, "master", bridge)
        return port

    def add_inside(self, host: Namespace, address: str, ifname: str = "eth0") -> str:
        """Join ``host`` to the LAN with ``address`` (CIDR) and a default route via us;
        returns the router-side port name."""
        port = self._port(host, LAN, address, ifname)
        host.run("ip", "route", "add", "default", "via", self.lan_ip)
        return port

    def add_outside(self, host: Namespace, address: str, ifname: str = "eth0") -> str:
        """Join ``host`` to the WAN with ``address`` (CIDR) and no other route."""
        return self._port(host, WAN, address, ifname)

    def uplink(self, bridge: Bridge, ofport: int) -> str:
        """Join the WAN bridge to an OVS bridge port (the NAT sits outside a switch)."""
        root_end = f"{self.router.name[:10]}w{ofport}"
        run(["ip", "link", "del", root_end], check=False)
        run(["ip", "link", "add", root_end, "type", "veth", "peer", "name", "uplink",
             "netns", self.router.name])
        self.router.links.append(root_end)
        run(["ethtool", "-K", root_end, "tx", "off"], check=False)
        self.router.run("ethtool", "-K", "uplink", "tx", "off", check=False)
        self.router.run("ip", "link", "set", "uplink", "master", WAN)
        self.router.run("ip", "link", "set", "uplink", "up")
        run(["ip", "link", "set", root_end, "up"])
        bridge.add_port(root_end, ofport)
        return root_end

    def conntrack_lines(self) -> list[str]:
        """The router's conntrack table (``conntrack -L`` if present, else procfs)."""
        if have("conntrack"):
            out = self.router.run("conntrack", "-L", check=False).stdout
        else:
            out = self.router.run("cat", "/proc/net/nf_conntrack", check=False).stdout
        return [line for line in out.splitlines() if "=" in line]

    def conntrack(self) -> list[dict[str, Any]]:
        """Parsed entries: ``proto``, ``orig`` and ``reply`` tuples (src, dst, sport, dport,
        srckey, dstkey ...), ``helper`` and ``flags`` (e.g. ASSURED)."""
        return [parse_conntrack(line) for line in self.conntrack_lines()]

    def iptables(self) -> str:
        return "".join(self.router.run("iptables", "-t", table, "-nvL", check=False).stdout
                       for table in ("raw", "nat", "filter"))

    def delete(self) -> None:
        self.router.delete()

    def __enter__(self) -> LinuxNat:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.delete()


PROTOS = ("tcp", "udp", "gre", "icmp", "unknown")


def parse_conntrack(line: str) -> dict[str, Any]:
    tokens = line.split()
    entry: dict[str, Any] = {"proto": next((t for t in tokens if t in PROTOS), "?"),
                             "orig": {}, "reply": {}, "flags": [], "line": line}
    side = "orig"
    for token in tokens:
        if "=" in token:
            key, value = token.split("=", 1)
            if key in entry[side] and side == "orig":
                side = "reply"
            if key in ("src", "dst", "sport", "dport", "srckey", "dstkey", "type", "code",
                       "id", "packets", "bytes"):
                entry[side][key] = value
            else:
                entry[key] = value
        elif re.fullmatch(r"\[[A-Z_]+\]", token):
            entry["flags"].append(token.strip("[]"))
    return entry

