"""Inbound PPTP end to end: a real pptpd inside behind a port forward, real pptp clients
outside, two of them behind one remote Linux NAT (same source address).

    srv 10.0.0.10 --port 1-- [OVS + ryu-pptp-alg] --port 10-- remote NAT 192.0.2.20 -- r1, r2
                      public 203.0.113.1 -> 10.0.0.10 --port 11-- c3 192.0.2.30
                                                      --port 12-- stranger 192.0.2.66
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import ExitStack

import pytest

from ryu_pptp_alg.codec.gre import EnhancedGre, build_gre
from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.linux_nat import LinuxNat
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import have, wait_for
from tests.conftest import require

DPID = 0xE1
PUBLIC = "203.0.113.1"
SERVER_IP = "10.0.0.10"
REMOTE_NAT = "192.0.2.20"
DIRECT_IP = "192.0.2.30"
STRANGER_IP = "192.0.2.66"


@pytest.fixture
def net(ovs_running, run_id, tmp_path):
    for tool in ("pptp", "pptpd", "iptables"):
        require(have(tool), f"{tool} is not installed (run make test)")
    config = {"gateways": [{"dpid": DPID, "inside_ports": [1], "outside_ports": [10, 11, 12],
                            "inside_address": "10.0.0.1/24", "public_addresses": [PUBLIC],
                            "port_forwards": [{"public": PUBLIC, "inside": SERVER_IP}]}],
              "timeouts": {"stats_interval": 1}}
    with ExitStack() as stack:
        controller = stack.enter_context(Controller(config, tmp_path / "ctl"))
        bridge = stack.enter_context(ovs.Bridge(f"pai{run_id}", DPID, controller.of_port))
        srv = stack.enter_context(Namespace(f"pa{run_id}sv"))
        srv.attach(bridge, 1, f"{SERVER_IP}/24", gateway="10.0.0.1")
        # The server counts GRE from the stranger (a rule with no target only counts).
        srv.run("iptables", "-A", "INPUT", "-p", "gre", "-s", STRANGER_IP)
        remote = stack.enter_context(LinuxNat(f"pa{run_id}rn", lan_address="10.9.0.1/24",
                                              wan_address=f"{REMOTE_NAT}/24"))
        remote.uplink(bridge, 10)
        remote.router.run("ip", "route", "add", "203.0.113.0/24", "dev", "wan")
        behind = []
        for i in (1, 2):
            ns = stack.enter_context(Namespace(f"pa{run_id}r{i}"))
            remote.add_inside(ns, f"10.9.0.{10 + i}/24")
            behind.append(ns)
        direct = stack.enter_context(Namespace(f"pa{run_id}c3"))
        direct.attach(bridge, 11, f"{DIRECT_IP}/24")
        direct.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        stranger = stack.enter_context(Namespace(f"pa{run_id}st"))
        stranger.attach(bridge, 12, f"{STRANGER_IP}/24")
        stranger.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        controller.wait_connected(DPID)
        yield controller, srv, behind, direct, stranger, tmp_path


def stranger_gre_seen_by_server(srv: Namespace) -> int:
    out = srv.run("iptables", "-L", "INPUT", "-v", "-x", "-n").stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if STRANGER_IP in line)


def send_gre(ns: Namespace, destination: str, count: int) -> None:
    frame = build_gre(EnhancedGre(call_id=0, payload=b"\xff\x03\xc0\x21", sequence=1))
    ns.run(sys.executable, "-c",
           "import socket\n"
           "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)\n"
           f"for _ in range({count}): s.sendto({frame!r}, ('{destination}', 0))\n")


def test_outside_clients_reach_the_forwarded_server(net):
    controller, srv, behind, direct, stranger, tmp = net
    with ExitStack() as stack:
        server = stack.enter_context(PptpServer(srv, SERVER_IP, tmp / "pptpd"))
        clients = [stack.enter_context(PptpClient(ns, PUBLIC, f"10.9.0.{11 + i}",
                                                  tmp / f"pptp-r{i}", call_id=0x5151))
                   for i, ns in enumerate(behind)]
        clients.append(stack.enter_context(PptpClient(direct, PUBLIC, DIRECT_IP,
                                                      tmp / "pptp-c3")))
        for client in clients:
            client.wait_ppp_up(30)
        wait_for(lambda: sum(c["counters"].get("lcp_echo_replies_received", 0) > 0
                             for c in server.calls()) >= 3, 15, "three server-side calls")
        sessions = wait_for(
            lambda: (s := controller.get("/pptp/sessions")["sessions"]) and len(s) == 3
            and all(c["packets"] > 0 for x in s for c in x["calls"]) and s, 15,
            "three inbound sessions with traffic")
        assert {s["direction"] for s in sessions} == {"inbound"}
        assert sorted(s["client"].split(":")[0] for s in sessions) == sorted(
            [DIRECT_IP, REMOTE_NAT, REMOTE_NAT])
        assert {(s["public"], s["server"]) for s in sessions} == {
            (f"{PUBLIC}:1723", f"{SERVER_IP}:1723")}
        calls = [c for s in sessions for c in s["calls"]]
        assert len(calls) == 3 and {c["path"] for c in calls} == {"fast"}
        assert {c["state"] for c in calls} == {"established"}

        # A stranger's GRE to the public address is dropped in the switch and counted.
        send_gre(stranger, PUBLIC, 5)
        wait_for(lambda: controller.get("/pptp/gateways")["gateways"][0]["switch_counters"]
                 .get("gre_unmatched_dropped", 0) >= 5, 10, "the drop counter")
        assert stranger_gre_seen_by_server(srv) == 0
        (forward,) = controller.get("/pptp/forwards")["forwards"]
        assert forward["sessions"] == 3


def test_removing_the_forward_over_rest_ends_its_calls(net):
    controller, srv, _, direct, _, tmp = net
    with PptpServer(srv, SERVER_IP, tmp / "pptpd"), \
            PptpClient(direct, PUBLIC, DIRECT_IP, tmp / "pptp-c3") as client:
        client.wait_ppp_up(30)
        request = subprocess.run(
            ["curl", "-s", "-X", "DELETE", f"{controller.url}/pptp/forwards/{PUBLIC}"],
            capture_output=True, text=True, check=True)
        assert json.loads(request.stdout)["sessions_torn_down"] == 1
        assert controller.get("/pptp/sessions")["sessions"] == []
        before = client.counters()["lcp_echo_replies_received"]
        time.sleep(2)  # four echo intervals
        assert client.counters()["lcp_echo_replies_received"] == before  # nothing gets through


def test_incoming_call_driven_by_scapy_is_set_up_and_translated(net):
    controller, srv, _, direct, _, tmp = net
    log = tmp / "pac.jsonl"
    pac = srv.popen([sys.executable, "-m", "ryu_pptp_alg.testbed.mini_pac", "--out", str(log),
                     "--incoming", "--seconds", "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert pac.stdout.readline().strip() == "listening"
        direct.run("iptables", "-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST",
                   "-j", "DROP")
        result = direct.run(sys.executable, "-m", "ryu_pptp_alg.testbed.scapy_pns",
                            "--local", DIRECT_IP, "--server", PUBLIC, "--incoming", "0x61",
                            "--keep-open", timeout=60)
    finally:
        pac.kill()
    replies = json.loads(result.stdout.splitlines()[-1])["replies"]
    assert [(r["type"], r.get("call_id"), r.get("peer_call_id")) for r in replies] == [
        ("StartControlConnectionReply", None, None),
        ("IncomingCallRequest", 0x90, None),
        ("IncomingCallConnected", None, 0x61)]
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"peer": f"{DIRECT_IP}:42000", "type": "IncomingCallReply", "call_id": 0x61,
            "peer_call_id": 0x90} in seen  # the server saw the client's real address
    (session,) = controller.get("/pptp/sessions")["sessions"]
    (call,) = session["calls"]
    assert (call["client_call_id"], call["server_call_id"], call["state"], call["path"]) == (
        0x61, 0x90, "established", "fast")
