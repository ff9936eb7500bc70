"""The classification pipeline on a real OVS userspace bridge.

Two hosts on one LAN: h1 on inside port 1, h2 on outside port 2. A foreign
flow (another application's) in the next table forwards with NORMAL, so
non-PPTP traffic that the ALG passes on must still get through.
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


def static_cookie(flow: PipelineFlow) -> int:
    return pipeline.cookie(pipeline.CookieKind.PIPELINE, flow)


@pytest.fixture
def lan(ovs_running, run_id, tmp_path):
    config = {"gateways": [{
        "dpid": DPID, "inside_ports": [1], "outside_ports": [2],
        "inside_address": "10.0.0.1/24", "public_addresses": ["203.0.113.1"],
    }]}
    with Controller(config, tmp_path) as controller, \
            ovs.Bridge(f"pab{run_id}", DPID, controller.of_port) as bridge, \
            Namespace(f"pa{run_id}h1") as h1, Namespace(f"pa{run_id}h2") as h2:
        h1.attach(bridge, 1, "10.0.0.2/24")
        h2.attach(bridge, 2, "10.0.0.3/24")
        controller.wait_connected(DPID)
        ovs.ofctl("add-flow", bridge.name,
                  f"table=2,priority=0,cookie={FOREIGN_COOKIE:#x},actions=NORMAL")
        yield controller, bridge, h1, h2


def packets(bridge: ovs.Bridge, cookie: int) -> int:
    return bridge.flow_packets().get(cookie, 0)


def test_pipeline_installed_as_documented(lan):
    _, bridge, _, _ = lan
    counts = bridge.flow_packets()
    for flow in PipelineFlow:
        assert static_cookie(flow) in counts, f"{flow.name} missing:\n{bridge.dump_flows()}"


def test_other_traffic_passes_to_next_table(lan):
    _, bridge, h1, _ = lan
    result = wait_for(lambda: h1.run("ping", "-c", "1", "-W", "1", "10.0.0.3",
                                     check=False).returncode == 0, 15, "ping h1 -> h2")
    assert result
    assert packets(bridge, FOREIGN_COOKIE) > 0
    assert packets(bridge, static_cookie(PipelineFlow.CLASSIFY_DEFAULT)) > 0


def test_pptp_control_goes_to_controller(lan):
    controller, bridge, h1, _ = lan
    h1.run(sys.executable, "-c",
           "import socket\n"
           "try: socket.create_connection(('10.0.0.3', 1723), timeout=1)\n"
           "except OSError: pass\n", check=False)
    wait_for(lambda: packets(bridge, static_cookie(PipelineFlow.PPTP_TO_SERVER)) > 0, 5,
             "TCP/1723 to hit the PPTP flow")
    (gateway,) = controller.get("/pptp/gateways")["gateways"]
    assert gateway["counters"]["packet_in"] >= 1


def test_gre_without_a_call_is_dropped_and_counted(lan):
    _, bridge, h1, _ = lan
    frame = build_gre(EnhancedGre(call_id=7, payload=b"\xff\x03\xc0\x21", sequence=1))
    h1.run(sys.executable, "-c",
           "import socket\n"
           "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)\n"
           f"s.sendto({frame!r}, ('10.0.0.3', 0))\n")
    wait_for(lambda: packets(bridge, static_cookie(PipelineFlow.GRE_UNMATCHED)) > 0, 5,
             "GRE to hit the unmatched-GRE drop flow")
    assert packets(bridge, static_cookie(PipelineFlow.GRE_TO_GRE_TABLE)) > 0


def test_controller_restart_rebuilds_ours_and_keeps_foreign_flows(lan):
    controller, bridge, _, _ = lan
    ovs.ofctl("add-flow", bridge.name,
              f"table=1,priority=5,cookie={pipeline.COOKIE_TAG | 0xDEAD:#x},actions=drop")
    controller.stop()
    controller.start()  # same ports: the switch reconnects by itself
    controller.wait_connected(DPID)
    counts = bridge.flow_packets()
    assert FOREIGN_COOKIE in counts
    ours = [c for c in counts if c & pipeline.COOKIE_TAG_MASK == pipeline.COOKIE_TAG]
    assert sorted(ours) == sorted(static_cookie(f) for f in PipelineFlow)  # stale one gone
