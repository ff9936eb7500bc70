"""Issue 12, calls survive a controller restart: real peers through OVS, four calls up
(fast path, two on a shared key on the slow path, and one inbound through a port forward),
then the controller is killed (SIGKILL or SIGTERM) and started again 2 s later, or
ovs-vswitchd is restarted instead (its flows are lost and must come back from state).

    c1 10.0.0.11 --1-\\                                       /--10-- srv 198.51.100.10 (pptpd)
    c2 10.0.0.12 --2--[OVS + ryu-pptp-alg, publics .1 .2]----11-- out 192.0.2.30 (pptp)
    c3 10.0.0.13 --3-/    203.0.113.2:1723 -> 10.0.0.10
    in 10.0.0.10 --4- (pptpd)

c1 takes 203.0.113.1 and c2 203.0.113.2 (the pool gives each client an address no other
client uses towards that server); c3 finds the pool exhausted and shares 203.0.113.1 with
c1, so the pair (srv, 203.0.113.1) is served slowly: server-to-client GRE of c1 and c3
goes through the controller. All three force call ID 0x4242, so c3's is translated.

Every call carries PPP: each end's stand-in sends an LCP Echo-Request every 0.5 s and
logs when each reply came back. Criteria, over a window from 2 s before the disruption
to 5 s after the switch is connected again:

- a fast-path call misses no echo reply at all (controller restarts): the switch keeps
  forwarding its GRE while the controller is away and the new one must not disturb it;
- a slow-path call (and every call when vswitchd restarts: its flows are gone) goes
  without replies no longer than the outage (disruption to reconnect) plus
  ``GAP_ALLOWANCE``, and once the switch is back no reply goes missing;
- the session table shows the same calls, IDs and paths;
- the clients then hang up cleanly (each server's pptpctrl logs the Call-Clear-Request)
  and new calls (one outbound, one inbound) bring PPP up.

Failures of every step are gathered and reported together, so one run says everything
that broke. The vswitchd case restarts the host's one ovs-vswitchd (it is running again
afterwards); it skips (fails under CI=true) while other bridges exist, so it never pulls
the switch from under another test. The config carries ``state: {path: ...}`` (the
persisted state) when the controller's configuration accepts that section; before it
does, the test runs without it and says so.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller, state_section_refused
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.ppp_standin import EchoReport, echo_report
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import HarnessError, have, wait_for
from tests.conftest import REPORT, require
from tests.integration.test_inbound_pptp import DIRECT_IP as OUTSIDE_CLIENT_IP
from tests.integration.test_inbound_pptp import SERVER_IP as INSIDE_SERVER_IP
from tests.integration.test_many_clients_pptp import CALL_ID, CLIENT_IPS, SOURCE_PORT
from tests.integration.test_many_clients_pptp import SERVER_IP as OUTSIDE_SERVER_IP

pytestmark = pytest.mark.integration

DPID = 0xD1
PUBLICS = ("203.0.113.1", "203.0.113.2")
FORWARDED = PUBLICS[1]
INSIDE_SERVER_PORT = 4
OUTSIDE_SERVER_PORT, OUTSIDE_CLIENT_PORT = 10, 11
ECHO_INTERVAL = 0.5  # the stand-ins' default
# A reply may be lost just before the outage starts and the first one after it is
# only sent up to an interval after the switch is back: two intervals plus slack.
GAP_ALLOWANCE = 2 * ECHO_INTERVAL + 0.5
KILL_DOWNTIME = 2.0  # the controller stays dead this long before it is started again
PRE_WINDOW = 2.0  # echo history judged before the disruption
POST_WINDOW = 5.0  # and after the switch is connected again
SETTLED = 1.0  # after reconnecting, replies must not go missing any more

DISRUPTIONS = ("kill-9", "sigterm", "vswitchd-restart")


@dataclass
class Call:
    """One call of the scenario: its client, the server that answers it, what path."""

    name: str  # c1, c2, c3, inbound
    client: PptpClient
    server: PptpServer
    server_index: int  # the call's stand-in among server.calls() (started in order)
    seen_as: str  # the client's address as its server sees it (the stand-in's ipparam)
    path: str  # expected: fast or slow

    @property
    def label(self) -> str:
        return f"call {self.name} {self.client.local_ip} ({self.path} path)"

    def server_status(self) -> dict[str, Any]:
        calls = self.server.calls()
        return calls[self.server_index] if self.server_index < len(calls) else {}


@dataclass
class Scenario:
    controller: Controller
    bridge: ovs.Bridge
    namespaces: dict[str, Namespace]
    workdir: Path
    state_note: str  # why the config has no state section, or ""
    stack: ExitStack = field(default_factory=ExitStack)


@pytest.fixture
def scenario(ovs_running, run_id, tmp_path) -> Iterator[Scenario]:
    for tool in ("pptp", "pptpd", "iptables"):
        require(have(tool), f"{tool} is not installed (run make test)")
    config: dict[str, Any] = {
        "gateways": [{"dpid": DPID, "inside_ports": [1, 2, 3, INSIDE_SERVER_PORT],
                      "outside_ports": [OUTSIDE_SERVER_PORT, OUTSIDE_CLIENT_PORT],
                      "inside_address": "10.0.0.1/24", "public_addresses": list(PUBLICS),
                      "port_forwards": [{"public": FORWARDED, "inside": INSIDE_SERVER_IP}],
                      "switch_profile": "ovs"}],
        "timeouts": {"stats_interval": 1},
        "state": {"backend": "file", "path": str(tmp_path / "state.msgpack")}}
    refused = state_section_refused(config)
    note = ""
    if refused:
        del config["state"]
        note = f"the controller's config refuses the state section ({refused}): ran without"
    with ExitStack() as stack:
        controller = stack.enter_context(Controller(config, tmp_path / "ctl"))
        bridge = stack.enter_context(ovs.Bridge(f"par{run_id}", DPID, controller.of_port))
        namespaces = {}
        for port, ip in enumerate(CLIENT_IPS, 1):
            ns = namespaces[f"c{port}"] = stack.enter_context(Namespace(f"pa{run_id}c{port}"))
            ns.attach(bridge, port, f"{ip}/24", gateway="10.0.0.1")
        inside = namespaces["in"] = stack.enter_context(Namespace(f"pa{run_id}in"))
        inside.attach(bridge, INSIDE_SERVER_PORT, f"{INSIDE_SERVER_IP}/24", gateway="10.0.0.1")
        for name, port, address in (("srv", OUTSIDE_SERVER_PORT, OUTSIDE_SERVER_IP),
                                    ("out", OUTSIDE_CLIENT_PORT, OUTSIDE_CLIENT_IP)):
            ns = namespaces[name] = stack.enter_context(Namespace(f"pa{run_id}{name}"))
            ns.attach(bridge, port, f"{address}/24")
            ns.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        controller.wait_connected(DPID)
        scenario = Scenario(controller, bridge, namespaces, tmp_path, note)
        with scenario.stack:
            yield scenario


# --- observing -------------------------------------------------------------------------

def session_calls(controller: Controller) -> list[dict[str, Any]]:
    """The session table's calls, each with its connection's fields."""
    return [{**call, "direction": s["direction"], "client": s["client"],
             "public": s["public"], "server": s["server"]}
            for s in controller.get("/pptp/sessions")["sessions"] for call in s["calls"]]


IDENTITY = ("direction", "client", "public", "server", "client_call_id", "public_call_id",
            "server_call_id", "path")


def identities(calls: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(c.get(k) for k in IDENTITY) for c in calls)


def show(identity: tuple[Any, ...]) -> str:
    row = dict(zip(IDENTITY, identity, strict=True))
    ids = "/".join(f"{v:#x}" if isinstance(v, int) else str(v)
                   for v in (row["client_call_id"], row["public_call_id"], row["server_call_id"]))
    return (f"{row['direction']} {row['client']} -> {row['public']} -> {row['server']} "
            f"call IDs (client/public/server) {ids} {row['path']}")


def gateway_row(controller: Controller) -> dict[str, Any]:
    (row,) = [g for g in controller.get("/pptp/gateways")["gateways"] if g["dpid"] == DPID]
    return row


def our_flows(bridge: ovs.Bridge) -> tuple[int, int]:
    """(every flow with our cookie tag, those in the GRE table)."""
    tag = f"cookie={pipeline.COOKIE_TAG >> 48:#x}"
    lines = [line for line in bridge.dump_flows().splitlines() if tag in line]
    return len(lines), sum("table=1," in line for line in lines)


def hangups_seen(server: PptpServer) -> dict[str, int]:
    """Call-Clear-Requests pptpctrl received, by the client address it saw."""
    client_of: dict[int | None, str] = {}
    cleared: dict[str, int] = {}
    for line in server.syslog.records("pptpd", "pptpctrl"):  # pptpctrl logs as pptpd
        if "control connection started" in line.message:
            client_of[line.pid] = line.message.split("Client ")[1].split()[0]
        elif "Received CALL CLR request" in line.message:
            address = client_of.get(line.pid, "?")
            cleared[address] = cleared.get(address, 0) + 1
    return cleared


def last_reply_age(status: dict[str, Any]) -> float:
    last = status.get("last_echo_reply")
    return float("inf") if last is None else time.monotonic() - float(last)


# --- the scenario ----------------------------------------------------------------------

def start_calls(sc: Scenario) -> list[Call]:
    ns, work = sc.namespaces, sc.workdir
    outside = sc.stack.enter_context(PptpServer(ns["srv"], OUTSIDE_SERVER_IP, work / "srv"))
    inside = sc.stack.enter_context(PptpServer(ns["in"], INSIDE_SERVER_IP, work / "in"))
    calls = []
    # One after the other, so each takes its public address in this order.
    for i, (name, ip, seen_as, path) in enumerate((("c1", CLIENT_IPS[0], PUBLICS[0], "slow"),
                                                  ("c2", CLIENT_IPS[1], PUBLICS[1], "fast"),
                                                  ("c3", CLIENT_IPS[2], PUBLICS[0], "slow"))):
        client = sc.stack.enter_context(PptpClient(ns[name], OUTSIDE_SERVER_IP, ip,
                                                   work / name, call_id=CALL_ID,
                                                   source_port=SOURCE_PORT))
        calls.append(Call(name, client, outside, i, seen_as, path))
        wait_for(lambda n=i + 1: len(session_calls(sc.controller)) >= n
                 and len(outside.calls()) >= n, 20, f"{name}'s call to be set up")
    client = sc.stack.enter_context(PptpClient(ns["out"], FORWARDED, OUTSIDE_CLIENT_IP,
                                               work / "out"))
    calls.append(Call("inbound", client, inside, 0, OUTSIDE_CLIENT_IP, "fast"))
    for call in calls:
        call.client.wait_ppp_up(30)
    wait_for(lambda: all(call.server_status().get("last_echo_reply") for call in calls), 15,
             "echo replies on every server-side stand-in")
    return calls


def check_calls_up(sc: Scenario, calls: list[Call]) -> list[dict[str, Any]]:
    """Before the disruption everything must hold (the harness's own checks)."""
    for call in calls:
        status = call.server_status()
        assert status.get("ipparam") == call.seen_as, (call.label, status.get("ipparam"))
    rows = wait_for(lambda: (c := session_calls(sc.controller)) and len(c) == 4
                    and all(x["state"] == "established" and x["packets"] > 0 for x in c)
                    and c, 15, "four established calls with traffic in the session table")
    paths = {c["client"].split(":")[0]: c["path"] for c in rows}
    assert paths == {**{call.client.local_ip: call.path for call in calls[:3]},
                     OUTSIDE_CLIENT_IP: "fast"}, rows
    outbound = [c for c in rows if c["direction"] == "outbound"]
    assert {c["client_call_id"] for c in outbound} == {CALL_ID}
    assert len({(c["public"].split(":")[0], c["public_call_id"]) for c in outbound}) == 3
    assert sum(c["public_call_id"] != CALL_ID for c in outbound) == 1  # c3's, translated
    # Every end of every call is answering right now.
    time.sleep(PRE_WINDOW)
    for call in calls:
        for side, status in (("client", call.client.stats()), ("server", call.server_status())):
            assert last_reply_age(status) < 1.5, f"{call.label} {side} side is silent: {status}"
    return rows


def disrupt(sc: Scenario, how: str, facts: list[str]) -> tuple[float, float]:
    """Break the controller or the switch, bring it back; (outage start, reconnected)."""
    before = gateway_row(sc.controller)
    flows_before = our_flows(sc.bridge)
    began = time.monotonic()
    if how in ("kill-9", "sigterm"):
        sig = signal.SIGKILL if how == "kill-9" else signal.SIGTERM
        code = sc.controller.kill(sig)
        died = time.monotonic()
        facts.append(f"controller exited with {code} {died - began:.2f}s after "
                     f"{signal.Signals(sig).name}")
        time.sleep(max(0.0, KILL_DOWNTIME - 0.5))
        flows_away = our_flows(sc.bridge)
        facts.append(f"fail-mode={sc.bridge.fail_mode()}: our flows (all, GRE table) "
                     f"{flows_before} before, {flows_away} with no controller")
        time.sleep(max(0.0, began + KILL_DOWNTIME - time.monotonic()))
        restarted = time.monotonic()
        sc.controller.restart()
        ready = time.monotonic()
        connected = sc.controller.wait_connected(DPID, 30)
        facts.append(f"controller restarted (REST up {ready - restarted:.2f}s later, "
                     f"switch connected {connected - ready:.2f}s after that); "
                     f"away {connected - began:.2f}s")
    else:
        took = ovs.restart_vswitchd(keep_flows=False)
        back = time.monotonic()
        sc.bridge.wait_ports(30)
        offload = sc.bridge.tx_checksum_offload()
        if any(offload.values()):
            facts.append(f"tx checksum offload on after the restart: {offload}")

        def new_connection() -> bool:
            row = gateway_row(sc.controller)
            return row["connected"] and (
                row.get("connected_since") != before.get("connected_since")
                or row["counters"].get("connects", 0) > before["counters"].get("connects", 0))
        wait_for(new_connection, 30, "the switch to reconnect to the controller", 0.05)
        connected = time.monotonic()
        facts.append(f"ovs-vswitchd restarted in {took:.2f}s, switch reconnected "
                     f"{connected - back:.2f}s later; outage {connected - began:.2f}s; "
                     f"our flows (all, GRE table) {flows_before} before")
    sc.controller.wait_connected(DPID, 5)
    time.sleep(0.3)
    facts.append(f"our flows (all, GRE table) 0.3s after reconnecting: {our_flows(sc.bridge)}")
    return began, connected


def judge_echoes(calls: list[Call], how: str, began: float,
                 connected: float) -> tuple[list[str], list[str]]:
    """(failures, one line per call end) for the echo criteria."""
    outage = connected - began
    limit = outage + GAP_ALLOWANCE
    since = began - PRE_WINDOW
    failures, lines = [], []
    for call in calls:
        for side, get in (("client", call.client.stats), ("server", call.server_status)):
            status = get()
            until = float(status.get("updated_monotonic") or time.monotonic())
            report = echo_report(status, since, until)
            after = echo_report(status, connected + SETTLED, until)
            where = f"{call.label} {side} side"
            lines.append(f"{where}: {report.describe(began)}")
            gapless = call.path == "fast" and how != "vswitchd-restart"
            if report.truncated or report.requests == 0:
                failures.append(f"{where}: no echo history for the window ({report})")
            elif gapless and report.missing:
                failures.append(f"{where} missed {len(report.missing)} LCP echo replies "
                                f"(fast path: none may go missing); {describe(report, began)}")
            elif not gapless and report.longest_gap > limit:
                failures.append(f"{where} went {report.longest_gap:.1f}s without LCP echo "
                                f"replies (allowed: outage {outage:.1f}s + {GAP_ALLOWANCE}s); "
                                f"{describe(report, began)}")
            elif not gapless and after.missing:
                failures.append(f"{where} still misses replies after reconnecting: "
                                f"{describe(after, began)}")
    return failures, lines


def describe(report: EchoReport, origin: float) -> str:
    return report.describe(origin) + " [times from the disruption]"


def check_session_table(sc: Scenario, before: list[dict[str, Any]]) -> list[str]:
    expected = identities(before)
    with suppress(HarnessError):
        wait_for(lambda: identities(session_calls(sc.controller)) == expected, 5,
                 "the same calls in the session table")
    now = session_calls(sc.controller)
    got = identities(now)
    if got == expected:
        return []
    if not now:
        return [f"session table empty after the disruption ({len(before)} calls before)"]
    lost = "; ".join(show(row) for row in expected if row not in got)
    new = "; ".join(show(row) for row in got if row not in expected)
    return [f"session table differs after the disruption: lost [{lost}], new [{new}]"]


def hang_up(calls: list[Call]) -> list[str]:
    """Stop every client; each server must have received each call's clear request."""
    expected: dict[tuple[int, str], int] = {}
    servers = {id(call.server): call.server for call in calls}
    for call in calls:
        key = (id(call.server), call.seen_as)
        expected[key] = expected.get(key, 0) + 1
    for call in calls:
        call.client.stop()

    def cleared() -> bool:
        return all(hangups_seen(servers[sid]).get(addr, 0) >= n
                   for (sid, addr), n in expected.items())
    with suppress(HarnessError):
        wait_for(cleared, 8, "every server to see its calls cleared")
    failures = []
    for (sid, address), count in expected.items():
        seen = hangups_seen(servers[sid]).get(address, 0)
        if seen < count:
            names = [c.name for c in calls if id(c.server) == sid and c.seen_as == address]
            failures.append(f"hang-up of {'/'.join(names)}: the server saw {seen} of "
                            f"{count} Call-Clear-Requests from {address}")
    return failures


def new_calls(sc: Scenario, calls: list[Call]) -> list[str]:
    """A fresh outbound and a fresh inbound call must bring PPP up."""
    ns, work = sc.namespaces, sc.workdir
    outbound = sc.stack.enter_context(PptpClient(ns["c2"], OUTSIDE_SERVER_IP, CLIENT_IPS[1],
                                                 work / "c2-new"))
    inbound = sc.stack.enter_context(PptpClient(ns["out"], FORWARDED, OUTSIDE_CLIENT_IP,
                                                work / "out-new"))
    failures = []
    for name, client in (("outbound", outbound), ("inbound", inbound)):
        try:
            client.wait_ppp_up(20)
        except HarnessError as err:
            failures.append(f"new {name} call: PPP did not come up: "
                            f"{str(err).splitlines()[0]}")
    return failures


@pytest.mark.parametrize("how", DISRUPTIONS)
def test_calls_survive(scenario: Scenario, how: str) -> None:
    sc = scenario
    started = time.monotonic()
    if how == "vswitchd-restart":  # the host has one vswitchd: never pull it from others
        others = sorted(set(ovs.vsctl("list-br").split()) - {sc.bridge.name})
        require(not others, f"other bridges on this ovs-vswitchd ({', '.join(others)}): "
                            "restarting it would disrupt them")
    assert sc.bridge.fail_mode() == "secure"
    calls = start_calls(sc)
    before = check_calls_up(sc, calls)
    facts: list[str] = [sc.state_note] if sc.state_note else []
    began, connected = disrupt(sc, how, facts)
    time.sleep(max(0.0, connected + POST_WINDOW - time.monotonic()))

    failures: list[str] = []
    echo_failures, echo_lines = judge_echoes(calls, how, began, connected)
    failures += echo_failures
    failures += check_session_table(sc, before)
    after_rows = session_calls(sc.controller)
    steps: list[tuple[str, Callable[[], list[str]]]] = [
        ("hang-up", lambda: hang_up(calls)), ("new calls", lambda: new_calls(sc, calls))]
    for _step, run_step in steps:
        failures += run_step()

    if failures:
        lines = [f"calls did not survive {how}:", *[f"- {f}" for f in failures],
                 "facts:", *[f"  {f}" for f in facts],
                 "echoes (times relative to the disruption):",
                 *[f"  {line}" for line in echo_lines],
                 "session table before:", *[f"  {show(row)}" for row in identities(before)],
                 "session table after:", *([f"  {show(row)}" for row in identities(after_rows)]
                                           or ["  (empty)"]),
                 f"controller logs: {', '.join(str(p) for p in sc.controller.log_paths)}"]
        pytest.fail("\n".join(lines), pytrace=False)
    REPORT.append(f"restart test, {how} ({time.monotonic() - started:.0f}s):")
    REPORT.extend(f"  {line}" for line in facts + echo_lines)
