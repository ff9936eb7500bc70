"""The controller process under load, through bench/'s simulated OpenFlow switch.

No root or Open vSwitch needed: the simulated switch speaks OpenFlow 1.3 over TCP and
checks every packet-out (``verify``). Many set-ups in flight is where the app takes
packet-ins straight from Ryu's receive loop, and where ordering mistakes would show.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import controlplane  # noqa: E402


def run(tmp_path: Path, switch_profile: str, concurrency: int, calls: int,
        build: str = controlplane.COMPILED) -> tuple[dict, dict]:
    settings = controlplane.Settings(pool=254, servers=254, workdir=tmp_path, timeout=60,
                                     verify=True, switch_profile=switch_profile, build=build)
    gateway: dict = {}

    async def body(session: controlplane.Session) -> dict:
        result = (await controlplane.run_calls(session, calls, concurrency, 60)).summary()
        gateway.update(session.controller.get("/pptp/gateways")["gateways"][0])
        return result
    return controlplane.with_controller(settings, f"{switch_profile}-{concurrency}", body), \
        gateway


def assert_all_set_up(result: dict, calls: int) -> None:
    assert result["completed"] == calls
    assert result["fast_path_calls"] == calls and result["slow_path_calls"] == 0
    assert result["bad_packet_outs"] == 0 and result["unexpected_packet_outs"] == 0
    assert result["flow_entries_per_call"] == 2


@pytest.fixture
def build() -> str:
    from ryu_pptp_alg import compiled
    if compiled.state({}) == compiled.COMPILED:
        return controlplane.COMPILED
    return controlplane.PURE


@pytest.mark.parametrize("switch_profile", ["ovs", "openflow"])
def test_set_ups_in_flight_all_complete_and_check_out(tmp_path: Path, switch_profile: str,
                                                      build: str) -> None:
    result, gateway = run(tmp_path, switch_profile, 100, 600, build)
    assert_all_set_up(result, 600)
    counters = gateway["counters"]
    assert counters["calls_requested"] == 600
    # Six packet-ins a set-up, the router's ARP answer(s) besides.
    assert counters["packet_in"] >= 6 * 600
    # Packet-ins and barrier replies with nothing queued ahead are handled in the receive
    # loop: most of them with ovs; with openflow, queued barrier replies often come first.
    handled = counters.get("handled_in_receive_loop", 0)
    assert handled > (3 * 600 if switch_profile == "ovs" else 0)


def test_the_python_sources_set_up_calls_alike(tmp_path: Path) -> None:
    result, _ = run(tmp_path, "ovs", 20, 100, controlplane.PURE)
    assert_all_set_up(result, 100)
