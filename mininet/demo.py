#!/usr/bin/env python3
"""ryu-pptp-alg demo: a Mininet NAT switch on Open vSwitch's userspace datapath.

Starts Open vSwitch, the controller (``ryu-pptp-alg``) and the topology in
``pptp_topo.py``; waits for the switch to connect; prints the installed
pipeline, the gateway status and the REST session table; then cleans up.
``--cli`` drops into the Mininet CLI before cleaning up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # ryu_pptp_alg from the checkout

from mininet.cli import CLI
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch, RemoteController
from pptp_topo import DPID, PptpNatTopo, gateway_config

from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.proc import run


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def disable_tx_offload(net: Mininet) -> None:
    """The userspace datapath does not complete checksums offloaded by veth."""
    for link in net.links:
        for intf in (link.intf1, link.intf2):
            intf.node.cmd(f"ethtool -K {intf.name} tx off >/dev/null 2>&1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--cli", action="store_true", help="open the Mininet CLI")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("demo: run as root (Mininet and Open vSwitch need it)")
    setLogLevel("warning")
    ovs.ensure_running()
    workdir = Path(tempfile.mkdtemp(prefix="ryu-pptp-alg-demo-"))
    with Controller(gateway_config(args.clients), workdir) as controller:
        section(f"controller: ryu-pptp-alg (REST {controller.url}, log {controller.log_path})")
        net = Mininet(topo=PptpNatTopo(clients=args.clients), switch=OVSSwitch,
                      controller=RemoteController("c0", ip="127.0.0.1",
                                                  port=controller.of_port),
                      autoSetMacs=True, waitConnected=False)
        try:
            net.start()
            disable_tx_offload(net)
            controller.wait_connected(DPID)
            section("switch nat1 connected; installed pipeline")
            print(run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "nat1"]).stdout)
            section("GET /pptp/gateways")
            print(json.dumps(controller.get("/pptp/gateways"), indent=2))
            section("GET /pptp/sessions")
            print(json.dumps(controller.get("/pptp/sessions"), indent=2))
            if args.cli:
                CLI(net)
        finally:
            net.stop()
    section("demo finished; everything it started is stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
