"""Outbound PPTP end to end: real pptp-linux inside, real pptpd outside, OVS in between.

    cli 10.0.0.11 --port 1-- [OVS userspace bridge, ryu-pptp-alg] --port 2-- srv 198.51.100.10

The server has no route to 10.0.0.0/8: only the NAT can make the call work.
GRE counters in the server namespace (iptables rules that only count) are
compared with the packet counts of the ALG's GRE flows in the switch.
"""

from __future__ import annotations

import pytest

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import HarnessError, have, wait_for
from tests.conftest import require

DPID = 0xB1
CLIENT_IP = "10.0.0.11"
SERVER_IP = "198.51.100.10"
PUBLIC = "203.0.113.1"
CALL_ID = 0x1234


@pytest.fixture
def net(ovs_running, run_id, tmp_path):
    for tool in ("pptp", "pptpd", "iptables"):
        require(have(tool), f"{tool} is not installed (run make test)")
    config = {"gateways": [{"dpid": DPID, "inside_ports": [1], "outside_ports": [2],
                            "inside_address": "10.0.0.1/24", "public_addresses": [PUBLIC]}],
              "timeouts": {"stats_interval": 1}}
    with Controller(config, tmp_path / "ctl") as controller, \
            ovs.Bridge(f"pao{run_id}", DPID, controller.of_port) as bridge, \
            Namespace(f"pa{run_id}cl") as cli, Namespace(f"pa{run_id}sv") as srv:
        cli.attach(bridge, 1, f"{CLIENT_IP}/24", gateway="10.0.0.1")
        srv.attach(bridge, 2, f"{SERVER_IP}/24")
        srv.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        for chain in ("INPUT", "OUTPUT"):  # counting only: no target
            srv.run("iptables", "-A", chain, "-p", "gre")
        controller.wait_connected(DPID)
        yield controller, bridge, cli, srv, tmp_path


def server_gre_counts(srv: Namespace) -> dict[str, int]:
    out = srv.run("iptables", "-L", "-v", "-x", "-n").stdout
    counts, chain = {}, None
    for line in out.splitlines():
        if line.startswith("Chain "):
            chain = line.split()[1]
        elif line.split()[2:3] == ["47"] and chain:
            counts[chain] = int(line.split()[0])
    return counts


def pair_flow_packets(bridge: ovs.Bridge) -> dict[str, int]:
    """n_packets of the GRE pair flows, by direction (from the match)."""
    result = {}
    for line in bridge.dump_flows().splitlines():
        if "cookie=0x5054010" not in line or "priority=3000" not in line:
            continue
        n_packets = int(line.split("n_packets=")[1].split(",")[0])
        direction = "to_server" if f"nw_src={CLIENT_IP}" in line else "to_client"
        result[direction] = n_packets
    return result


def established_call(controller: Controller) -> dict | None:
    for session in controller.get("/pptp/sessions")["sessions"]:
        for call in session["calls"]:
            if call["state"] == "established" and call["packets"] > 0:
                return call
    return None


def test_real_call_passes_the_nat_on_the_fast_path(net):
    controller, bridge, cli, srv, tmp = net
    with PptpServer(srv, SERVER_IP, tmp / "pptpd") as server, \
            PptpClient(cli, SERVER_IP, CLIENT_IP, tmp / "pptp", call_id=CALL_ID) as client:
        client.wait_ppp_up(20)
        wait_for(lambda: any(c["counters"].get("lcp_echo_replies_received", 0) > 0
                             for c in server.calls()), 10, "the server's echo replies")
        call = wait_for(lambda: established_call(controller), 10, "call counters")
        assert call["path"] == "fast"
        assert call["client_call_id"] == CALL_ID
        assert call["public_call_id"] == CALL_ID
        assert call["server_call_id"] is not None
        (session,) = controller.get("/pptp/sessions")["sessions"]
        assert session["client"].startswith(f"{CLIENT_IP}:")
        assert session["public"].startswith(f"{PUBLIC}:")
        assert session["server"] == f"{SERVER_IP}:1723"
        assert session["state"] == "established"

        # The switch's GRE flows account for the GRE the server sent and received.
        flows, seen = pair_flow_packets(bridge), server_gre_counts(srv)
        assert flows["to_server"] > 0 and flows["to_client"] > 0
        assert abs(flows["to_server"] - seen["INPUT"]) <= 4, (flows, seen)
        # Server GRE sent before the flows were confirmed went through the controller.
        assert abs(flows["to_client"] + call_slow_packets(controller) - seen["OUTPUT"]) <= 4, \
            (flows, seen)
    # The client is gone: the call is torn down and no GRE flow outlives it.
    wait_for(lambda: not pair_flow_packets(bridge), 10, "GRE flows to be removed")
    wait_for(lambda: all(not s["calls"] for s in controller.get("/pptp/sessions")["sessions"]),
             10, "the call to leave the session table")


def call_slow_packets(controller: Controller) -> int:
    (gateway,) = controller.get("/pptp/gateways")["gateways"]
    return gateway["counters"].get("gre_via_controller", 0)


def test_negative_control_without_gre_flows_the_call_fails(net):
    """With table 1 shadowed by a drop-all GRE flow, PPP must not come up."""
    controller, bridge, cli, srv, tmp = net
    ovs.ofctl("add-flow", bridge.name,
              "table=1,priority=65535,cookie=0x99,ip,nw_proto=47,actions=drop")
    with PptpServer(srv, SERVER_IP, tmp / "pptpd"), \
            PptpClient(cli, SERVER_IP, CLIENT_IP, tmp / "pptp") as client:
        with pytest.raises(HarnessError):
            client.wait_ppp_up(8)
        # The control connection itself did pass the NAT: the call was set up.
        sessions = controller.get("/pptp/sessions")["sessions"]
        assert any(call["state"] == "established" for s in sessions for call in s["calls"])
    assert pipeline.COOKIE_TAG  # the shadow flow was foreign, ours were installed too
