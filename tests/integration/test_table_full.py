"""Issue 13, a switch that refuses flows: the GRE table capped by OVS flow_limit.

    c1 10.0.0.11 --1-\\                                          /--10-- srv 198.51.100.10
    c2 10.0.0.12 --2--[OVS, table 1 flow_limit=N overflow_policy=refuse]
                        ryu-pptp-alg, pool 203.0.113.1-2 (each client its own address,
                        so each call its own pair: both would be fast)

Table 1 (the GRE table) holds the static drop flow and, per pair (``ryu_pptp_alg/pairs.py``):
the via-controller flow from the call request, then at Outgoing-Call-Reply the outward
and inward rewrite flows, added before the via-controller flow is deleted (adds before
deletes, so no GRE meets the drop flow): 3 entries at that moment, 2 after. N is the
static flows found in table 1 once the switch is connected, plus:

- ``room-for-one-call``: 3 (one call's peak): the first call must work on the fast path;
  the second call's rewrite flows are refused (OFPET_FLOW_MOD_FAILED / TABLE_FULL);
- ``room-for-no-call``: 1 (the via-controller flow fits, no rewrite flow does).

A call whose flows do not fit must either carry PPP through the controller (the session
table says ``"path": "slow"``) or be refused (its client sees the call fail: pptp-linux
logs that its request "has not been accepted" or its control connection ends; the
session table does not show it established); never established on the fast path while
carrying nothing. The refusal must be reported in ``/pptp/gateways`` (a counter or field
naming the refusal: ``refus``, ``table_full``, ``flow_mod_fail``). The call that fits keeps
its echoes meanwhile (at most 1 reply missed).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.ppp_standin import echo_report
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import have, run, wait_for
from tests.conftest import REPORT, require

pytestmark = pytest.mark.integration

DPID = 0xF2
CLIENTS = ("10.0.0.11", "10.0.0.12")
SERVER = "198.51.100.10"
PUBLICS = ("203.0.113.1", "203.0.113.2")
COOKIE_TAG = "0x5054"  # ours (pipeline.COOKIE_TAG >> 48)
PER_CALL_STEADY = 2  # gre_outward + gre_inward
PER_CALL_PEAK = 3  # + gre_via_controller until it is deleted after the adds
ROOM = {"room-for-one-call": PER_CALL_PEAK, "room-for-no-call": 1}
CALL_WAIT = 15.0  # for PPP, or for the client to see its call refused
REFUSAL_WORDS = ("refus", "table_full", "flow_mod_fail", "switch_error", "of_error")


@dataclass
class CallResult:
    name: str
    client: PptpClient
    ppp_up: bool
    seconds: float | None
    row: dict[str, Any] | None  # the session table's call
    refused_seen: str  # what the client saw of a refusal, or ""

    def describe(self) -> str:
        row = self.row
        table = ("not in the session table" if row is None else
                 f"session table: state {row['state']}, path {row['path']}, "
                 f"packets {row.get('packets')}")
        ppp = (f"PPP up after {self.seconds:.1f}s" if self.ppp_up
               else f"PPP NOT up within {CALL_WAIT:g}s")
        refusal = f"; client saw: {self.refused_seen}" if self.refused_seen else ""
        return f"{self.name} ({self.client.local_ip}): {ppp}; {table}{refusal}"


def table1_flows(bridge: ovs.Bridge) -> list[str]:
    return [line.strip() for line in ovs.ofctl("dump-flows", bridge.name, "table=1")
            .splitlines() if "cookie=" in line]


def ours(lines: list[str]) -> list[str]:
    return [line for line in lines if f"cookie={COOKIE_TAG}" in line]


def session_call(controller: Controller, client_ip: str) -> dict[str, Any] | None:
    for session in controller.get("/pptp/sessions")["sessions"]:
        if session["client"].split(":")[0] == client_ip:
            for call in session["calls"]:
                return {**call, "connection_state": session["state"]}
            return {"state": f"(connection {session['state']}, no call)", "path": "-",
                    "connection_state": session["state"]}
    return None


def refusal_seen(client: PptpClient) -> str:
    """What pptp-linux logged of its call being refused, or its exit; "" if nothing."""
    lines = client.log()
    for line in lines:
        if "has not been accepted" in line or "Result code is" in line:
            return line.split(": ", 1)[-1]
    code = client.pptp.poll() if client.pptp is not None else None
    if code is not None:
        return f"pptp exited with {code} ({' | '.join(lines[-3:])})"
    for line in lines:
        if "Closing connection" in line or "EOF" in line or "reset" in line.lower():
            return line.split(": ", 1)[-1]
    return ""


def call(stack: ExitStack, ns: Namespace, ip: str, name: str, workdir,
         controller: Controller) -> CallResult:
    started = time.monotonic()
    client = stack.enter_context(PptpClient(ns, SERVER, ip, workdir / name))
    up_at = None
    refused = ""
    while time.monotonic() < started + CALL_WAIT:
        if client.ppp_up():
            up_at = time.monotonic()
            break
        refused = refusal_seen(client)
        if refused:
            break
        time.sleep(0.1)
    if up_at is not None:  # the session table's packet counters lag by stats_interval
        time.sleep(1.5)
    return CallResult(name, client, up_at is not None,
                      None if up_at is None else up_at - started,
                      session_call(controller, ip), refused or refusal_seen(client))


def refusal_reports(gateway: dict[str, Any]) -> dict[str, Any]:
    """Counters and fields of the gateway row that name a refusal, with a value."""
    found: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        elif value and any(word in prefix.lower() for word in REFUSAL_WORDS):
            found[prefix.rstrip(".")] = value
    walk("", gateway)
    return found


def judge_unfitting(result: CallResult) -> list[str]:
    """A call whose flows do not fit: slow path carrying PPP, or refused and shown so."""
    row = result.row
    if result.ppp_up:
        if row is None:
            return [f"{result.name} carries PPP but is not in the session table"]
        if row["path"] != "slow":
            return [f"{result.name} carries PPP with the session table saying path "
                    f"{row['path']} although its flows cannot fit in table 1 (expected slow)"]
        return []
    failures = []
    if row is not None and row["state"] == "established":
        failures.append(f"{result.name} carried nothing (PPP not up in {CALL_WAIT:g}s) while "
                        f"the session table reports it established on the {row['path']} path "
                        f"(packets {row.get('packets')})")
    if not result.refused_seen:
        failures.append(f"{result.name} was neither carried nor refused: its client saw no "
                        "failure (pptp-linux logged no refused call and kept running)")
    return failures


@pytest.fixture
def peers_available(ovs_running):
    for tool in ("pptp", "pptpd"):
        require(have(tool), f"{tool} is not installed (run make test)")


@pytest.mark.parametrize("room", list(ROOM))
def test_gre_table_full(peers_available, run_id, tmp_path, room):
    config = {"gateways": [{"dpid": DPID, "inside_ports": [1, 2], "outside_ports": [10],
                            "inside_address": "10.0.0.1/24", "public_addresses": list(PUBLICS),
                            "switch_profile": "ovs"}],
              "timeouts": {"stats_interval": 1}}
    with ExitStack() as stack:
        controller = stack.enter_context(Controller(config, tmp_path / "ctl"))
        bridge = stack.enter_context(ovs.Bridge(f"ptf{run_id}", DPID, controller.of_port))
        clients = []
        for port, ip in enumerate(CLIENTS, 1):
            ns = stack.enter_context(Namespace(f"tf{run_id}c{port}"))
            ns.attach(bridge, port, f"{ip}/24", gateway="10.0.0.1")
            clients.append(ns)
        srv = stack.enter_context(Namespace(f"tf{run_id}sv"))
        srv.attach(bridge, 10, f"{SERVER}/24")
        srv.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        controller.wait_connected(DPID)
        static = wait_for(lambda: len(ours(table1_flows(bridge))), 10,
                          "the static flows in table 1")
        limit = static + ROOM[room]
        ovs.vsctl("--", "--id=@t", "create", "Flow_Table", f"flow_limit={limit}",
                  "overflow_policy=refuse", "--", "set", "Bridge", bridge.name,
                  "flow_tables:1=@t")
        facts = [f"table 1: {static} static flow(s) of ours, flow_limit={limit} "
                 f"overflow_policy=refuse ({room}: one call needs {PER_CALL_STEADY} entries, "
                 f"{PER_CALL_PEAK} while its path is switched)"]
        stack.enter_context(PptpServer(srv, SERVER, tmp_path / "pptpd", debug=False))

        first = call(stack, clients[0], CLIENTS[0], "call 1", tmp_path, controller)
        first_flows = table1_flows(bridge)
        window_start = time.monotonic()
        second = call(stack, clients[1], CLIENTS[1], "call 2", tmp_path, controller)
        time.sleep(2.5)  # the first call's echoes during the second's set-up get judged
        first_echoes = echo_report(first.client.stats(), window_start,
                                   time.monotonic() - 0.1)
        second.row = session_call(controller, CLIENTS[1])  # once more, settled
        flows_after = table1_flows(bridge)
        (gateway,) = [g for g in controller.get("/pptp/gateways")["gateways"]
                      if g["dpid"] == DPID]
        errors = [line.strip() for line in controller.log().splitlines()
                  if any(word in line for word in ("TABLE_FULL", "FLOW_MOD_FAILED",
                                                   "OFPErrorMsg", "error", "refus"))]
        table_id = ovs.vsctl("get", "Bridge", bridge.name, "flow_tables:1").strip()
        flow_table = run(["ovs-vsctl", "--timeout=5", "--columns=flow_limit,overflow_policy",
                          "list", "Flow_Table", table_id], check=False).stdout.split()

    failures: list[str] = []
    if room == "room-for-one-call":
        row = first.row
        if not first.ppp_up:
            failures.append(f"call 1 fits ({limit} entries) but PPP did not come up: "
                            f"{first.describe()}")
        elif row is None or row["state"] != "established" or row["path"] != "fast":
            failures.append(f"call 1 fits but the session table does not show it established "
                            f"on the fast path: {first.describe()}")
        if first_echoes.missing and len(first_echoes.missing) > 1:
            failures.append(f"call 1 lost {len(first_echoes.missing)} echo replies while call "
                            f"2 was set up: {first_echoes.describe()}")
        failures += judge_unfitting(second)
    else:
        failures += judge_unfitting(first)
        failures += judge_unfitting(second)
    reported = refusal_reports(gateway)
    if not reported:
        failures.append("the switch's refusal is not reported in /pptp/gateways (no counter "
                        f"or field naming {', '.join(REFUSAL_WORDS)} has a value)")
    lines = [*facts, first.describe(), second.describe(),
             f"table 1 after call 1 ({len(first_flows)} entries): " + " || ".join(
                 _short(line) for line in first_flows),
             f"table 1 at the end ({len(flows_after)} entries): " + " || ".join(
                 _short(line) for line in flows_after),
             f"call 1's echoes while call 2 was set up: {first_echoes.describe()}",
             f"refusals reported by /pptp/gateways: {reported or 'none'}",
             f"controller log lines about errors ({len(errors)}): "
             + (" || ".join(errors[:4]) or "none"),
             f"the bridge's Flow_Table for table 1: {' '.join(flow_table)}"]
    if failures:
        pytest.fail("\n".join([f"GRE table capped ({room}): {len(failures)} criteria failed",
                               *[f"- {f}" for f in failures], "figures:",
                               *[f"  {line}" for line in lines]]), pytrace=False)
    REPORT.append(f"GRE table full ({room}):")
    REPORT.extend(f"  {line}" for line in lines)


def _short(flow: str) -> str:
    """A flow line without its counters and durations."""
    keep = [part for part in flow.replace(", ", ",").split(",")
            if not part.strip().startswith(("duration", "n_packets", "n_bytes", "idle_age",
                                             "hard_age"))]
    return ",".join(keep)
