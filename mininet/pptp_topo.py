"""Mininet topology for ryu-pptp-alg: PPTP clients - NAT switch - PPTP server.

    c1 (10.0.0.11) --port 1--+
    c2 (10.0.0.12) --port 2--+  nat1 (OVS userspace, ryu-pptp-alg)  --port 10-- srv (198.51.100.10)
    ...                      +  LAN 10.0.0.0/24, public 203.0.113.1

The server knows nothing of 10.0.0.0/8: only the NAT can make a call work.
Use with ``mn --custom mininet/pptp_topo.py --topo pptpnat,clients=2 --switch user
--controller remote,port=6653`` or through ``mininet/demo.py``.
"""

from __future__ import annotations

from typing import Any

from mininet.topo import Topo

DPID = 0x1
OUTSIDE_PORT = 10
GATEWAY_INSIDE = "10.0.0.1/24"
PUBLIC_ADDRESSES = ("203.0.113.1",)
SERVER_ADDRESS = "198.51.100.10"


def client_address(index: int) -> str:
    return f"10.0.0.{10 + index}"


class PptpNatTopo(Topo):
    def build(self, clients: int = 1, dpid: int = DPID) -> None:
        switch = self.addSwitch("nat1", dpid=f"{dpid:016x}", protocols="OpenFlow13",
                                datapath="user", failMode="secure")
        gateway = GATEWAY_INSIDE.split("/")[0]
        for index in range(1, clients + 1):
            host = self.addHost(f"c{index}", ip=f"{client_address(index)}/24",
                                defaultRoute=f"via {gateway}")
            self.addLink(host, switch, port2=index)
        server = self.addHost("srv", ip=f"{SERVER_ADDRESS}/24")
        self.addLink(server, switch, port2=OUTSIDE_PORT)


def gateway_config(clients: int = 1, dpid: int = DPID,
                   public_addresses: tuple[str, ...] = PUBLIC_ADDRESSES) -> dict[str, Any]:
    """The ryu-pptp-alg configuration matching the topology."""
    return {"gateways": [{
        "dpid": dpid,
        "name": "nat1",
        "inside_ports": list(range(1, clients + 1)),
        "outside_ports": [OUTSIDE_PORT],
        "inside_address": GATEWAY_INSIDE,
        "public_addresses": list(public_addresses),
        "outside_next_hop": None,
        "port_forwards": [],
        "switch_profile": "ovs",  # Open vSwitch runs OpenFlow messages in order
    }]}


topos = {"pptpnat": PptpNatTopo}
