#!/usr/bin/env python3
"""ryu-pptp-alg demo: a real PPTP call through a Mininet NAT switch.

Starts Open vSwitch, the controller (``ryu-pptp-alg``) and the topology in
``pptp_topo.py`` (clients - nat1 - srv) on Open vSwitch's userspace datapath;
runs PoPToP (pptpd) on srv and pptp-linux on each client, with a userspace PPP
stand-in speaking LCP over the tunnel; prints the session table and the GRE
flows while the calls are up; hangs up and shows that the flows are gone.
``--cli`` opens the Mininet CLI while the calls are up. It prints the URLs of the
live web page (/pptp/ui/) and the metrics; the calls stay up ``--seconds`` (30) to look.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # ryu_pptp_alg from the checkout

from mininet.cli import CLI
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch, RemoteController
from pptp_topo import DPID, SERVER_ADDRESS, PptpNatTopo, client_address, gateway_config

from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.netns import AttachedNamespace
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import run, wait_for


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def disable_tx_offload(net: Mininet) -> None:
    """The userspace datapath does not complete checksums offloaded by veth."""
    for link in net.links:
        for intf in (link.intf1, link.intf2):
            intf.node.cmd(f"ethtool -K {intf.name} tx off >/dev/null 2>&1")


def gre_flows() -> str:
    flows = run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "nat1", "table=1"]).stdout
    return "\n".join(line for line in flows.splitlines()
                     if "cookie=" in line and "priority=0 " not in line) or \
        "(none besides the drop-and-count flow)"


def calls_with_traffic(controller: Controller, expected: int) -> bool:
    calls = [call for session in controller.get("/pptp/sessions")["sessions"]
             for call in session["calls"] if call["packets"] > 0]
    return len(calls) >= expected


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=30,
                        help="how long the calls stay up (to look at the web page)")
    parser.add_argument("--cli", action="store_true",
                        help="open the Mininet CLI (the calls stay up until you leave it)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("demo: run as root (Mininet and Open vSwitch need it)")
    setLogLevel("warning")
    ovs.ensure_running()
    workdir = Path(tempfile.mkdtemp(prefix="ryu-pptp-alg-demo-"))
    try:
        run_demo(args, workdir)
    except BaseException:
        print(f"demo: failed; the controller and peer logs are kept in {workdir}",
              file=sys.stderr)
        raise
    shutil.rmtree(workdir, ignore_errors=True)  # logs: kept only if the demo failed
    section("demo finished; everything it started is stopped")
    return 0


def run_demo(args: argparse.Namespace, workdir: Path) -> None:
    config = gateway_config(args.clients)
    config["timeouts"] = {"stats_interval": 1}
    with Controller(config, workdir / "controller") as controller:
        section(f"controller: ryu-pptp-alg (REST {controller.url}, log {controller.log_path})")
        print(f"web page: {controller.url}/pptp/ui/\nmetrics:  {controller.url}/metrics")
        net = Mininet(topo=PptpNatTopo(clients=args.clients), switch=OVSSwitch,
                      controller=RemoteController("c0", ip="127.0.0.1",
                                                  port=controller.of_port),
                      autoSetMacs=True, waitConnected=False)
        try:
            net.start()
            disable_tx_offload(net)
            net["srv"].cmd("ip route add 203.0.113.0/24 dev srv-eth0")  # no route inside
            controller.wait_connected(DPID)
            section("switch nat1 connected; pipeline")
            print(run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "nat1"]).stdout)
            with ExitStack() as stack:
                srv = stack.enter_context(AttachedNamespace("pademo-srv", net["srv"].pid))
                stack.enter_context(PptpServer(srv, SERVER_ADDRESS, workdir / "pptpd"))
                clients = []
                for index in range(1, args.clients + 1):
                    host = stack.enter_context(AttachedNamespace(f"pademo-c{index}",
                                                                 net[f"c{index}"].pid))
                    clients.append(stack.enter_context(PptpClient(
                        host, SERVER_ADDRESS, client_address(index),
                        workdir / f"pptp-c{index}")))
                for index, client in enumerate(clients, 1):
                    status = client.wait_ppp_up(30)
                    counters = status["counters"]
                    print(f"c{index}: PPP up over PPTP: LCP {status['state']}, "
                          f"{counters['lcp_echo_replies_received']} echo replies received")
                wait_for(lambda: calls_with_traffic(controller, args.clients), 15,
                         "per-call counters")
                until = "you leave the CLI" if args.cli else f"{args.seconds:g} s (--seconds)"
                section(f"calls up until {until}: watch them at {controller.url}/pptp/ui/")
                if not args.cli:
                    time.sleep(args.seconds)
                section("GET /pptp/sessions (calls up)")
                print(json.dumps(controller.get("/pptp/sessions"), indent=2))
                section("GRE flows in the switch (table 1)")
                print(gre_flows())
                if args.cli:
                    CLI(net)
                section("hanging up")
            wait_for(lambda: not any(s["calls"] for s in
                                     controller.get("/pptp/sessions")["sessions"]),
                     15, "calls to end")
            print("GRE flows left:", gre_flows())
            section("GET /pptp/gateways")
            print(json.dumps(controller.get("/pptp/gateways"), indent=2))
        finally:
            net.stop()


if __name__ == "__main__":
    sys.exit(main())
