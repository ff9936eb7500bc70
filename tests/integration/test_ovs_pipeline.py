"""The pipeline and the control-connection NAT on a real OVS userspace bridge.

h1 (10.0.0.2, port 1) and h3 (10.0.0.3, port 3) are inside, h1 routing through
the gateway 10.0.0.1; srv (198.51.100.10, port 2) is outside and knows no route
to 10.0.0.0/8. A foreign flow (another application's) in the next table
forwards with NORMAL, so LAN traffic the ALG passes on must still get through.
"""

from __future__ import annotations

import sys

import pytest

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.codec.gre import EnhancedGre, build_gre
from ryu_pptp_alg.pipeline import PipelineFlow
from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.proc import wait_for

DPID = 0xA1
FOREIGN_COOKIE = 0x77
SERVER = "198.51.100.10"

ECHO_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 1723)); s.listen(1); s.settimeout(20)
print("listening", flush=True)
conn, peer = s.accept()
data = conn.recv(100)
conn.sendall(data.upper())
print(peer[0], peer[1], data.decode(), flush=True)
conn.close()
"""

ECHO_CLIENT = """
import socket
s = socket.create_connection(("198.51.100.10", 1723), timeout=10)
s.sendall(b"hello pptp")
print(s.recv(100).decode())
"""


def static_cookie(flow: PipelineFlow) -> int:
    return pipeline.cookie(pipeline.CookieKind.PIPELINE, flow)


@pytest.fixture
def net(ovs_running, run_id, tmp_path):
    config = {"gateways": [{
        "dpid": DPID, "inside_ports": [1, 3], "outside_ports": [2],
        "inside_address": "10.0.0.1/24", "public_addresses": ["203.0.113.1"],
    }]}
    with Controller(config, tmp_path) as controller, \
            ovs.Bridge(f"pab{run_id}", DPID, controller.of_port) as bridge, \
            Namespace(f"pa{run_id}h1") as h1, Namespace(f"pa{run_id}h3") as h3, \
            Namespace(f"pa{run_id}sv") as srv:
        h1.attach(bridge, 1, "10.0.0.2/24", gateway="10.0.0.1")
        h3.attach(bridge, 3, "10.0.0.3/24")
        srv.attach(bridge, 2, f"{SERVER}/24")
        srv.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        controller.wait_connected(DPID)
        ovs.ofctl("add-flow", bridge.name,
                  f"table=2,priority=0,cookie={FOREIGN_COOKIE:#x},actions=NORMAL")
        yield controller, bridge, h1, h3, srv


def packets(bridge: ovs.Bridge, cookie: int) -> int:
    return bridge.flow_packets().get(cookie, 0)


def test_pipeline_installed_as_documented(net):
    _, bridge, *_ = net
    counts = bridge.flow_packets()
    for flow in PipelineFlow:
        assert static_cookie(flow) in counts, f"{flow.name} missing:\n{bridge.dump_flows()}"


def test_lan_traffic_passes_to_next_table_untouched(net):
    _, bridge, h1, _, _ = net
    wait_for(lambda: h1.run("ping", "-c", "1", "-W", "1", "10.0.0.3",
                            check=False).returncode == 0, 15, "ping h1 -> h3")
    assert packets(bridge, FOREIGN_COOKIE) > 0
    assert packets(bridge, static_cookie(PipelineFlow.CLASSIFY_DEFAULT)) > 0


def test_control_connection_is_natted_through_the_controller(net):
    controller, bridge, h1, _, srv = net
    server = srv.popen([sys.executable, "-c", ECHO_SERVER], stdout=-1, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        reply = h1.run(sys.executable, "-c", ECHO_CLIENT, timeout=30)
        assert reply.stdout.strip() == "HELLO PPTP"
        peer_ip, peer_port, data = server.communicate(timeout=10)[0].split(maxsplit=2)
    finally:
        server.kill()
    assert peer_ip == "203.0.113.1"  # the server only ever saw the public address
    assert data.strip() == "hello pptp"
    assert packets(bridge, static_cookie(PipelineFlow.PPTP_TO_SERVER)) > 0
    assert packets(bridge, static_cookie(PipelineFlow.PPTP_FROM_SERVER)) > 0
    assert packets(bridge, static_cookie(PipelineFlow.ARP_INSIDE)) > 0  # h1 ARPed for us
    (gateway,) = controller.get("/pptp/gateways")["gateways"]
    assert gateway["counters"]["control_connections_outbound"] == 1
    assert gateway["counters"]["arp_replies_sent"] >= 1
    (session,) = controller.get("/pptp/sessions")["sessions"]
    assert session["client"].startswith("10.0.0.2:")
    assert session["public"] == f"203.0.113.1:{peer_port}"


def test_gre_without_a_call_is_dropped_and_counted(net):
    """From outside: by the switch (its drop flow counts it). From inside: at the
    controller (it could be a pair whose outward flow the switch refused), counted."""
    controller, bridge, h1, _, srv = net
    frame = build_gre(EnhancedGre(call_id=7, payload=b"\xff\x03\xc0\x21", sequence=1))

    def sender(dst: str) -> str:
        return ("import socket\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)\n"
                f"s.sendto({frame!r}, ('{dst}', 0))\n")
    srv.run(sys.executable, "-c", sender("203.0.113.1"))  # resolves the gateway first
    wait_for(lambda: srv.run(sys.executable, "-c", sender("203.0.113.1")) and
             packets(bridge, static_cookie(PipelineFlow.GRE_UNMATCHED)) > 0, 10,
             "GRE from outside to hit the unmatched-GRE drop flow")
    h1.run(sys.executable, "-c", sender(SERVER))

    def inside_drops() -> bool:
        h1.run(sys.executable, "-c", sender(SERVER))
        (gateway,) = controller.get("/pptp/gateways")["gateways"]
        return packets(bridge, static_cookie(PipelineFlow.GRE_OUTWARD_UNMATCHED)) > 0 \
            and gateway["counters"].get("gre_no_call", 0) > 0
    wait_for(inside_drops, 10, "GRE from inside to reach the controller and be dropped")
    assert packets(bridge, static_cookie(PipelineFlow.GRE_TO_GRE_TABLE)) > 0


def test_controller_restart_rebuilds_ours_and_keeps_foreign_flows(net):
    controller, bridge, *_ = net
    ovs.ofctl("add-flow", bridge.name,
              f"table=1,priority=5,cookie={pipeline.COOKIE_TAG | 0xDEAD:#x},actions=drop")
    controller.stop()
    controller.start()  # same ports: the switch reconnects by itself
    controller.wait_connected(DPID)
    counts = bridge.flow_packets()
    assert FOREIGN_COOKIE in counts
    ours = sorted(c for c in counts if c & pipeline.COOKIE_TAG_MASK == pipeline.COOKIE_TAG)
    assert ours == sorted(static_cookie(f) for f in PipelineFlow)  # the stale one is gone
