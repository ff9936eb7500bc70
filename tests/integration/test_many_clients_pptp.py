"""Three real pptp clients, forced to the same call ID and TCP source port, calling one
pptpd at the same time: through ryu-pptp-alg with one public address (the shared key
takes the slow path), with a pool of three (all fast), and through the Linux reference
NAT (MASQUERADE + CT --helper pptp) for comparison.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.linux_nat import LinuxNat
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import have, wait_for
from tests.conftest import REPORT, require

DPID = 0xC1
SERVER_IP = "198.51.100.10"
CLIENT_IPS = ("10.0.0.11", "10.0.0.12", "10.0.0.13")
OUTSIDE_PORT = 10
CALL_ID = 0x4242
SOURCE_PORT = 41723
POOL = ("203.0.113.1", "203.0.113.2", "203.0.113.3")


@pytest.fixture
def peers_available(ovs_running):
    for tool in ("pptp", "pptpd", "iptables"):
        require(have(tool), f"{tool} is not installed (run make test)")


@contextmanager
def three_calls(server_ns: Namespace, clients: list[Namespace],
                workdir: Path) -> Iterator[list[dict]]:
    """The three forced clients calling one pptpd; PPP must come up on every call, in
    both directions. Yields the server's view of the calls while they are up."""
    with ExitStack() as stack:
        server = stack.enter_context(PptpServer(server_ns, SERVER_IP, workdir / "pptpd"))
        running = [stack.enter_context(PptpClient(ns, SERVER_IP, ip, workdir / f"pptp{i}",
                                                  call_id=CALL_ID, source_port=SOURCE_PORT))
                   for i, (ns, ip) in enumerate(zip(clients, CLIENT_IPS, strict=True))]
        for client in running:
            client.wait_ppp_up(30)
        wait_for(lambda: sum(c["counters"].get("lcp_echo_replies_received", 0) > 0
                             for c in server.calls()) >= 3, 15,
                 "echo replies on all three server-side calls")
        yield server.calls()


@pytest.fixture
def alg_net(peers_available, run_id, tmp_path):
    def build(publics: tuple[str, ...]):
        config = {"gateways": [{"dpid": DPID, "inside_ports": [1, 2, 3],
                                "outside_ports": [OUTSIDE_PORT],
                                "inside_address": "10.0.0.1/24",
                                "public_addresses": list(publics),
                                "switch_profile": "ovs"}],  # (test_outbound: openflow)
                  "timeouts": {"stats_interval": 1}}
        stack = ExitStack()
        controller = stack.enter_context(Controller(config, tmp_path / "ctl"))
        bridge = stack.enter_context(ovs.Bridge(f"pam{run_id}", DPID, controller.of_port))
        clients = []
        for port, ip in enumerate(CLIENT_IPS, 1):
            ns = stack.enter_context(Namespace(f"pa{run_id}c{port}"))
            ns.attach(bridge, port, f"{ip}/24", gateway="10.0.0.1")
            clients.append(ns)
        server = stack.enter_context(Namespace(f"pa{run_id}sv"))
        server.attach(bridge, OUTSIDE_PORT, f"{SERVER_IP}/24")
        server.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        controller.wait_connected(DPID)
        return stack, controller, clients, server
    return build


def alg_calls(controller: Controller) -> list[dict]:
    return [{**call, "client": s["client"], "public": s["public"]}
            for s in controller.get("/pptp/sessions")["sessions"] for call in s["calls"]]


def record(title: str, rows: list[str]) -> None:
    REPORT.append(f"{title}:")
    REPORT.extend(f"  {row}" for row in rows)


def test_one_public_address_translates_ids_and_serves_the_shared_key_slowly(alg_net, tmp_path):
    stack, controller, clients, server = alg_net(POOL[:1])
    with stack, three_calls(server, clients, tmp_path):
        calls = wait_for(lambda: (c := alg_calls(controller)) and len(c) == 3
                         and all(x["packets"] > 0 for x in c) and c, 15, "three calls")
        record("ryu-pptp-alg, one public address", [
            f"{c['client']} -> {c['public']}  call ID {c['client_call_id']:#x} -> "
            f"{c['public_call_id']:#x}  server call ID {c['server_call_id']:#x}  "
            f"path {c['path']}" for c in calls])
        assert all(c["client_call_id"] == CALL_ID for c in calls)
        assert len({c["public_call_id"] for c in calls}) == 3  # unique at the server
        assert sum(c["public_call_id"] == CALL_ID for c in calls) == 1  # only when needed
        assert len({c["public"] for c in calls}) == 3  # source ports remapped apart
        assert {c["path"] for c in calls} == {"slow"}
        (gateway,) = controller.get("/pptp/gateways")["gateways"]
        assert gateway["counters"]["gre_via_controller"] > 0
        assert gateway["counters"]["call_ids_translated"] == 2


def test_pool_keeps_every_call_fast(alg_net, tmp_path):
    stack, controller, clients, server = alg_net(POOL)
    with stack, three_calls(server, clients, tmp_path):
        calls = wait_for(lambda: (c := alg_calls(controller)) and len(c) == 3
                         and all(x["packets"] > 0 for x in c) and c, 15, "three calls")
        record("ryu-pptp-alg, pool of three", [
            f"{c['client']} -> {c['public']}  call ID {c['client_call_id']:#x} -> "
            f"{c['public_call_id']:#x}  path {c['path']}" for c in calls])
        assert {c["public"].split(":")[0] for c in calls} == set(POOL)
        assert {(c["public_call_id"], c["path"]) for c in calls} == {(CALL_ID, "fast")}
        (gateway,) = controller.get("/pptp/gateways")["gateways"]
        assert gateway["counters"].get("gre_via_controller", 0) == 0


def test_differential_linux_reference_nat_carries_the_same_scenario(peers_available, run_id,
                                                                    tmp_path):
    with LinuxNat(f"pa{run_id}rt") as nat, ExitStack() as stack:
        clients = []
        for i, ip in enumerate(CLIENT_IPS, 1):
            ns = stack.enter_context(Namespace(f"pa{run_id}l{i}"))
            nat.add_inside(ns, f"{ip}/24")
            clients.append(ns)
        server = stack.enter_context(Namespace(f"pa{run_id}ls"))
        nat.add_outside(server, f"{SERVER_IP}/24")
        with three_calls(server, clients, tmp_path):
            entries = [e for e in nat.conntrack() if e["proto"] in ("gre", "tcp")]
        record("Linux MASQUERADE + CT --helper pptp", [
            f"{e['proto']} orig {e['orig']} reply {e['reply']}" for e in entries])
        gre = [e for e in entries if e["proto"] == "gre"]
        assert len(gre) >= 3
