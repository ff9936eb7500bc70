"""Control-plane benchmark: PPTP call set-ups through ryu-pptp-alg, no real switch.

A simulated OpenFlow 1.3 switch (``simswitch.py``) connects to a ``ryu-pptp-alg``
process started here and replays whole outbound PPTP set-ups as packet-ins:
client SYN, server SYN-ACK, Start-Control-Connection-Request/-Reply,
Outgoing-Call-Request/-Reply, each step waiting for the packet-out the ALG sends
for the one before. It reports call set-ups per second, the Outgoing-Call-Request
to Outgoing-Call-Reply latency (GRE flows installed and the reply released), flow
entries per call, and the controller's memory per established call.

    .venv/bin/python bench/controlplane.py --quick
    .venv/bin/python bench/controlplane.py --json out.json --markdown out.md
    .venv/bin/python bench/controlplane.py --state etcd --concurrency 100 --calls-memory 0

``--state etcd`` starts a three-member etcd cluster on localhost (``testbed/etcd.py``)
for the whole benchmark and stops it at the end; each controller keeps its records
there under ``ETCD_PREFIX``, emptied before each start (a cold start, as each ``file``
run's own state file), and the benchmark fails unless the records reached etcd with
no write refused.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report
from simswitch import FlowMod, PacketOut, SimSwitch, connect, parse_match_fields

from ryu_pptp_alg import compiled, pipeline
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.testbed.controller import Controller, free_port
from ryu_pptp_alg.testbed.etcd import EtcdCluster

DPID = 1
INSIDE_PORT = 1
OUTSIDE_PORT = 3
PORTS = (1, 2, 3)
GATEWAY_MAC = "0e:00:00:00:00:01"
INSIDE_ADDRESS = "10.0.0.1/16"  # clients 10.0.0.2 ... 10.0.255.254
ROUTER = IPv4Address("192.0.2.1")  # outside next hop: servers are on the Internet
ROUTER_MAC = "02:00:c0:00:02:01"
PUBLIC_BASE = IPv4Address("203.0.113.1")  # pool: 203.0.113.1 ... (TEST-NET-3)
SERVER_BASE = IPv4Address("198.51.100.1")  # PPTP servers: 198.51.100.1 ... (TEST-NET-2)
FIRST_CLIENT_PORT = 1024  # every call has its own client port: at most 64,511 calls
TIMEOUTS = {"gre_idle": 3600, "control_idle": 3600, "closing_linger": 10,
            "stats_interval": 3600, "arp_retry": 1.0, "arp_give_up": 5.0}
COOKIE_TO_SERVER = pipeline.cookie(pipeline.CookieKind.PIPELINE,
                                   pipeline.PipelineFlow.PPTP_TO_SERVER)
COOKIE_FROM_SERVER = pipeline.cookie(pipeline.CookieKind.PIPELINE,
                                     pipeline.PipelineFlow.PPTP_FROM_SERVER)
COOKIE_ARP_PUBLIC = pipeline.cookie(pipeline.CookieKind.PIPELINE,
                                    pipeline.PipelineFlow.ARP_PUBLIC)
GRE_PAIR_KIND = pipeline.CookieKind.GRE_PAIR << pipeline.COOKIE_KIND_SHIFT
CLIENT_ISN = 1000
SERVER_ISN = 5000
OCRQ_CALL_ID = 12  # offset of Outgoing-Call-Request's call ID in the message
PPTP_TYPE = 8  # offset of the control message type
SYN = fr.TCP_SYN
PSH_ACK = fr.TCP_ACK | fr.TCP_PSH


def gateway_config(pool: int, timeouts: dict[str, float] | None = None,
                   switch_profile: str = "ovs") -> dict[str, Any]:
    return {
        "gateways": [{
            "dpid": DPID, "name": "bench", "inside_ports": [1, 2],
            "outside_ports": [OUTSIDE_PORT], "inside_address": INSIDE_ADDRESS,
            "public_addresses": [str(PUBLIC_BASE + i) for i in range(pool)],
            "outside_next_hop": str(ROUTER), "gateway_mac": GATEWAY_MAC,
            "switch_profile": switch_profile,
        }],
        "timeouts": timeouts or TIMEOUTS,
        # One simulated port carries every set-up: lift the per-class budgets (and the
        # per-host caps do not bind: each call has its own client address), so that what
        # is measured is the ALG, not its flood limiter.
        "rates": {name: 10_000_000 for name in ("arp", "new_connections", "control", "gre")},
        "limits": {"max_connections": 1_000_000, "max_calls": 1_000_000},
    }


def mac_of(address: IPv4Address) -> str:
    return "02:00:" + address.packed.hex(":")


def ethernet(dst_mac: str, src_mac: str, src: IPv4Address, dst: IPv4Address,
             segment: fr.Tcp) -> bytes:
    packet = fr.build_ipv4(fr.Ipv4(src, dst, fr.IP_PROTO_TCP, fr.build_tcp(segment, src, dst)))
    return fr.build_ethernet(fr.Ethernet(dst_mac, src_mac, fr.ETH_TYPE_IPV4, packet))


def router_arp_request(public: IPv4Address) -> bytes:
    """The upstream router asks for a public address: the gateway learns its MAC."""
    arp = fr.Arp(fr.ARP_REQUEST, ROUTER_MAC, ROUTER, fr.ZERO_MAC, public)
    return fr.build_ethernet(fr.Ethernet(fr.BROADCAST_MAC, ROUTER_MAC, fr.ETH_TYPE_ARP,
                                         fr.build_arp(arp)))


# Steps of one set-up: what the call waits for next.
WAIT_SYN, WAIT_SYNACK, WAIT_SCCRQ, WAIT_SCCRP, WAIT_OCRQ, WAIT_OCRP, DONE = range(7)


class Call:
    """One outbound PPTP control connection carrying one call, as a state machine
    driven by the packet-outs that come back."""

    __slots__ = (
        "bench",
        "client",
        "client_ack",
        "client_mac",
        "client_seq",
        "done_at",
        "index",
        "ocrq_at",
        "pair_flows",
        "port",
        "public",
        "server",
        "server_ack",
        "server_seq",
        "started_at",
        "step",
    )

    def __init__(self, bench: Bench, index: int) -> None:
        self.bench = bench
        self.index = index
        self.client = IPv4Address("10.0.0.2") + index
        self.client_mac = mac_of(self.client)
        self.port = FIRST_CLIENT_PORT + index
        self.server = SERVER_BASE + index % bench.servers
        self.public = PUBLIC_BASE
        self.client_seq = CLIENT_ISN
        self.client_ack = 0
        self.server_seq = SERVER_ISN
        self.server_ack = 0
        self.step = WAIT_SYN
        self.pair_flows = 0
        self.started_at = self.ocrq_at = self.done_at = 0.0

    def _from_client(self, flags: int, payload: bytes = b"") -> None:
        segment = fr.Tcp(self.port, pptp.PPTP_PORT, self.client_seq, self.client_ack, flags,
                         payload)
        self.client_seq += len(payload) + (1 if flags & SYN else 0)
        self.bench.packet_in(INSIDE_PORT, COOKIE_TO_SERVER, ethernet(
            GATEWAY_MAC, self.client_mac, self.client, self.server, segment))

    def _from_server(self, flags: int, payload: bytes = b"") -> None:
        segment = fr.Tcp(pptp.PPTP_PORT, self.port, self.server_seq, self.server_ack, flags,
                         payload)
        self.server_seq += len(payload) + (1 if flags & SYN else 0)
        self.bench.packet_in(OUTSIDE_PORT, COOKIE_FROM_SERVER, ethernet(
            GATEWAY_MAC, ROUTER_MAC, self.server, self.public, segment))

    def start(self) -> None:
        self.started_at = time.perf_counter()
        self._from_client(SYN)

    def packet_out(self, outward: bool, src: bytes, payload: bytes) -> None:
        """A packet-out of this connection: advance if it is the one we wait for."""
        step = self.step
        if (step in (WAIT_SYN, WAIT_SCCRQ, WAIT_OCRQ) and not outward) \
                or (step in (WAIT_SYNACK, WAIT_SCCRP, WAIT_OCRP) and outward):
            self.bench.unexpected += 1
            return
        if step == WAIT_SYN:
            self.public = IPv4Address(src)
            self.server_ack = self.client_seq
            self._from_server(SYN | fr.TCP_ACK)
        elif step == WAIT_SYNACK:
            self.client_ack = self.server_seq
            self._from_client(PSH_ACK, pptp.build(pptp.StartControlConnectionRequest()))
        elif step == WAIT_SCCRQ:
            self.server_ack = self.client_seq
            self._from_server(PSH_ACK, pptp.build(pptp.StartControlConnectionReply()))
        elif step == WAIT_SCCRP:
            self.client_ack = self.server_seq
            self.ocrq_at = time.perf_counter()
            self._from_client(PSH_ACK, pptp.build(pptp.OutgoingCallRequest(
                call_id=self.index % 0xFFFF + 1, call_serial_number=self.index & 0xFFFF)))
        elif step == WAIT_OCRQ:
            seen_id = int.from_bytes(payload[OCRQ_CALL_ID:OCRQ_CALL_ID + 2], "big")
            self.server_ack = self.client_seq
            self._from_server(PSH_ACK, pptp.build(pptp.OutgoingCallReply(
                call_id=(self.index * 7) % 0xFFFF + 1, peer_call_id=seen_id)))
        elif step == WAIT_OCRP:
            message_type = int.from_bytes(payload[PPTP_TYPE:PPTP_TYPE + 2], "big")
            if message_type != pptp.ControlMessageType.OUTGOING_CALL_REPLY:
                self.bench.unexpected += 1
                return
            self.done_at = time.perf_counter()
            self.step = DONE
            self.bench.call_done(self)
            return
        self.step += 1


class Bench:
    """The simulated switch's side of one measurement: calls in flight and counters."""

    def __init__(self, servers: int, verify: bool = False) -> None:
        self.servers = servers
        self.verify = verify  # parse every packet-out: checksums and NAT addresses
        self.bad_packet_outs = 0
        self.switch: SimSwitch | None = None
        self.calls: dict[int, Call] = {}  # by client port (== public port)
        self.by_pair_cookie: dict[int, Call] = {}
        self.next_index = 0
        self.unexpected = 0
        self.arp_replies = 0
        self.on_done: Callable[[Call], None] | None = None

    def packet_in(self, in_port: int, cookie: int, frame: bytes) -> None:
        assert self.switch is not None
        self.switch.send_packet_in(in_port, cookie, frame)

    def new_call(self) -> Call:
        call = Call(self, self.next_index)
        self.next_index += 1
        self.calls[call.port] = call
        return call

    def call_done(self, call: Call) -> None:
        if self.on_done is not None:
            self.on_done(call)

    def on_packet_out(self, po: PacketOut) -> None:
        data = po.data
        if data[12:14] == b"\x08\x06":
            self.arp_replies += 1
            return
        ihl = (data[14] & 0x0F) * 4
        tcp = 14 + ihl
        total = (data[16] << 8) | data[17]
        outward = po.out_ports[:1] == [OUTSIDE_PORT]
        sport, dport = struct.unpack_from("!HH", data, tcp)
        call = self.calls.get(sport if outward else dport)
        if call is None:
            self.unexpected += 1
            return
        if self.verify and not self._valid(call, outward, data):
            self.bad_packet_outs += 1
        header_len = (data[tcp + 12] >> 4) * 4
        call.packet_out(outward, data[26:30], data[tcp + header_len:14 + total])

    @staticmethod
    def _valid(call: Call, outward: bool, data: bytes) -> bool:
        """Checksums right, and the NAT did what it should: the client behind the public
        address on the way out, the client itself on the way in."""
        try:
            eth = fr.parse_ethernet(data)
            ip = fr.parse_ipv4(eth.payload)
            fr.parse_tcp(ip.payload, ip.src, ip.dst)
        except fr.FrameError:
            return False
        if outward:
            return eth.dst == ROUTER_MAC and ip.dst == call.server and ip.src != call.client
        return eth.dst == call.client_mac and ip.dst == call.client and ip.src == call.server

    def on_flow_mod(self, fm: FlowMod) -> None:
        if fm.table != pipeline.TABLE_GRE or fm.command != 0 \
                or fm.cookie & pipeline.COOKIE_KIND_MASK != pipeline.COOKIE_TAG | GRE_PAIR_KIND:
            return
        call = self.by_pair_cookie.get(fm.cookie)
        if call is None:  # the pair's first flow: outward, matching the client's address
            src = parse_match_fields(fm.match).get(11)  # OXM ipv4_src
            if src is None:
                return
            index = int.from_bytes(src, "big") - int(IPv4Address("10.0.0.2"))
            call = self.calls.get(FIRST_CLIENT_PORT + index)
            if call is None:
                return
            self.by_pair_cookie[fm.cookie] = call
        call.pair_flows += 1


# --- controller process ------------------------------------------------------------------

def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def proc_cpu_s(pid: int) -> float:
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Session:
    """A controller process and the simulated switch connected to it."""

    controller: Controller
    bench: Bench
    switch: SimSwitch
    pid: int


async def open_session(controller: Controller, servers: int, verify: bool,
                       timeout: float = 30) -> Session:
    bench = Bench(servers, verify)
    switch = await connect("127.0.0.1", controller.of_port, DPID, PORTS, bench.on_packet_out,
                           bench.on_flow_mod, timeout)
    bench.switch = switch
    # The pipeline ends with a barrier; packet-ins before MAIN_DISPATCHER would be lost,
    # so ask for the router's ARP answer until it comes.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while bench.arp_replies == 0:
        if loop.time() > deadline:
            raise RuntimeError("the gateway never answered ARP")
        bench.packet_in(OUTSIDE_PORT, COOKIE_ARP_PUBLIC, router_arp_request(PUBLIC_BASE))
        await asyncio.sleep(0.2)
    assert controller.process is not None
    return Session(controller, bench, switch, controller.process.pid)


@dataclass
class RunResult:
    calls: int
    concurrency: int
    completed: int
    wall_s: float
    latencies_ms: list[float] = field(repr=False)  # OCRQ sent -> OCRP back
    full_ms: list[float] = field(repr=False)  # SYN sent -> OCRP back
    fast: int  # calls whose pair got two GRE flows (both directions in the switch)
    slow: int  # one flow: server-to-client GRE through the controller
    unexpected: int
    bad: int  # packet-outs that failed --verify
    sim_cpu_s: float
    controller_cpu_s: float
    messages: dict[str, int]
    flow_entries: int  # table 1 (GRE) entries above the drop flow, after the run

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "calls": self.calls, "concurrency": self.concurrency,
            "completed": self.completed, "wall_s": round(self.wall_s, 3),
            "setups_per_s": round(self.completed / self.wall_s, 1) if self.wall_s else 0.0,
            "latency_p50_ms": round(percentile(lat, 50), 2),
            "latency_p99_ms": round(percentile(lat, 99), 2),
            "latency_max_ms": round(lat[-1], 2) if lat else 0.0,
            "full_setup_p50_ms": round(percentile(sorted(self.full_ms), 50), 2),
            "full_setup_p99_ms": round(percentile(sorted(self.full_ms), 99), 2),
            "flow_entries_per_call": round(self.flow_entries / self.completed, 3)
            if self.completed else 0.0,
            "fast_path_calls": self.fast, "slow_path_calls": self.slow,
            "unexpected_packet_outs": self.unexpected, "bad_packet_outs": self.bad,
            "sim_cpu_s": round(self.sim_cpu_s, 3),
            "controller_cpu_s": round(self.controller_cpu_s, 3),
            "controller_cpu_ms_per_setup": round(1000 * self.controller_cpu_s / self.completed,
                                                 3) if self.completed else 0.0,
            "sim_cpu_ms_per_setup": round(1000 * self.sim_cpu_s / self.completed, 3)
            if self.completed else 0.0,
            # Busy fraction of one core: the controller should be near 1, the simulator not.
            "controller_cpu_share": round(self.controller_cpu_s / self.wall_s, 3)
            if self.wall_s else 0.0,
            "sim_cpu_share": round(self.sim_cpu_s / self.wall_s, 3) if self.wall_s else 0.0,
            "messages": self.messages,
        }


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    rank = q / 100 * (len(sorted_values) - 1)
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


async def run_calls(session: Session, calls: int, concurrency: int,
                    timeout: float) -> RunResult:
    """``calls`` set-ups with at most ``concurrency`` in flight (a sliding window)."""
    bench, switch = session.bench, session.switch
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    done: list[Call] = []
    started = 0

    def on_done(call: Call) -> None:
        nonlocal started
        done.append(call)
        if started < calls:
            started += 1
            bench.new_call().start()
        elif len(done) == calls and not finished.done():
            finished.set_result(None)

    sent_before = dict(switch.sent)
    received_before = dict(switch.received)
    unexpected_before, bad_before = bench.unexpected, bench.bad_packet_outs
    bench.on_done = on_done
    cpu0, ctl0 = time.process_time(), proc_cpu_s(session.pid)
    t0 = time.perf_counter()
    first = min(concurrency, calls)
    started = first
    for _ in range(first):
        bench.new_call().start()
    try:
        await asyncio.wait_for(finished, timeout)
    except TimeoutError:
        print(f"  timeout: {len(done)}/{calls} set-ups completed", file=sys.stderr)
    wall = (max(c.done_at for c in done) if done else time.perf_counter()) - t0
    cpu, ctl = time.process_time() - cpu0, proc_cpu_s(session.pid) - ctl0
    bench.on_done = None
    names = {10: "packet_in", 13: "packet_out", 14: "flow_mod", 20: "barrier_request",
             21: "barrier_reply"}
    messages = {name: switch.sent[t] - sent_before.get(t, 0) if t in (10, 21)
                else switch.received[t] - received_before.get(t, 0)
                for t, name in names.items()}
    return RunResult(
        calls=calls, concurrency=concurrency, completed=len(done), wall_s=wall,
        latencies_ms=[(c.done_at - c.ocrq_at) * 1000 for c in done],
        full_ms=[(c.done_at - c.started_at) * 1000 for c in done],
        fast=sum(c.pair_flows >= 2 for c in done), slow=sum(c.pair_flows == 1 for c in done),
        unexpected=bench.unexpected - unexpected_before,
        bad=bench.bad_packet_outs - bad_before, sim_cpu_s=cpu,
        controller_cpu_s=ctl, messages=messages,
        flow_entries=switch.table.count(pipeline.TABLE_GRE,
                                        pipeline.Priority.GRE_OUTWARD_UNMATCHED + 1))


async def run_offered(session: Session, rate: float, calls: int,
                      timeout: float) -> dict[str, Any]:
    """Open loop: a new set-up every 1/``rate`` seconds whatever the controller does, so
    the latency is what a call meets at that load (not a queue the driver builds)."""
    bench = session.bench
    loop = asyncio.get_running_loop()
    finished = loop.create_future()
    done: list[Call] = []

    def on_done(call: Call) -> None:
        done.append(call)
        if len(done) == calls and not finished.done():
            finished.set_result(None)

    bench.on_done = on_done
    cpu0 = proc_cpu_s(session.pid)
    start = loop.time() + 0.05
    for i in range(calls):
        loop.call_at(start + i / rate, lambda: bench.new_call().start())
    t0 = time.perf_counter() + 0.05
    try:
        await asyncio.wait_for(finished, timeout)
    except TimeoutError:
        print(f"  timeout: {len(done)}/{calls} set-ups completed", file=sys.stderr)
    wall = (max(c.done_at for c in done) if done else time.perf_counter()) - t0
    bench.on_done = None
    latencies = sorted((c.done_at - c.ocrq_at) * 1000 for c in done)
    full = sorted((c.done_at - c.started_at) * 1000 for c in done)
    return {"offered_per_s": rate, "calls": calls, "completed": len(done),
            "achieved_per_s": round(len(done) / wall, 1) if wall > 0 else 0.0,
            "latency_p50_ms": round(percentile(latencies, 50), 2),
            "latency_p99_ms": round(percentile(latencies, 99), 2),
            "full_setup_p99_ms": round(percentile(full, 99), 2),
            "controller_cpu_share": round((proc_cpu_s(session.pid) - cpu0) / wall, 3)
            if wall > 0 else 0.0}


# --- measurements ------------------------------------------------------------------------

COMPILED, PURE = "compiled", "pure"  # how the controller runs its packet-in path

@dataclass
class Settings:
    pool: int
    servers: int
    workdir: Path
    timeout: float
    profile: Path | None = None  # py-spy collapsed stacks of the controller go here
    verify: bool = False
    switch_profile: str = "ovs"  # the simulated switch runs messages in order, as OVS does
    build: str = COMPILED  # or PURE: the controller runs its hot path from the Python sources
    state: str = "file"  # the state store's backend (file: in the run's own directory)
    etcd_endpoints: tuple[str, ...] = ()  # state etcd: the cluster's client URLs


def start_profiler(settings: Settings, name: str, pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the controller (``--profile``): collapsed stacks, one file per run."""
    if settings.profile is None:
        return None
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    settings.profile.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--rate", "200",
                             "--format", "raw", "--output",
                             str(settings.profile / f"{name}.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)


def with_controller(settings: Settings, name: str,
                    body: Callable[[Session], Any]) -> Any:
    """Start a fresh controller, connect the simulated switch, run ``body``, stop."""
    env = {compiled.PURE_ENV: "1"} if settings.build == PURE else {}
    config = gateway_config(settings.pool, switch_profile=settings.switch_profile)
    if settings.state == ETCD:
        config["state"] = {"backend": ETCD, "endpoints": list(settings.etcd_endpoints),
                           "prefix": ETCD_PREFIX}
        etcd_clear(settings.etcd_endpoints[0])
    elif settings.state != "file":
        config["state"] = {"backend": settings.state}
    controller = Controller(config, settings.workdir / name, env=env)
    controller.start()
    assert controller.process is not None
    profiler = start_profiler(settings, name, controller.process.pid)
    try:
        async def main() -> Any:
            session = await open_session(controller, settings.servers, settings.verify)
            try:
                return await body(session)
            finally:
                session.switch.close()
        result = asyncio.run(main())
        if settings.state == ETCD:
            check_etcd_used(name, controller, settings.etcd_endpoints[0])
    finally:
        stop_profiler(profiler)
        controller.stop()
    ran = build_of(controller.log())
    if ran != settings.build:
        raise RuntimeError(f"{name}: the controller ran its packet-in path as {ran!r}, not "
                           f"{settings.build!r} (make compile?)")
    return result


ETCD = "etcd"
ETCD_PREFIX = "/ryu-pptp-alg-bench/"
STORE_ERRORS = re.compile(r"^pptp_state_store_errors_total (\S+)$", re.MULTILINE)


def etcd_post(endpoint: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """One request to etcd's HTTP gateway (``/v3/kv/range``...), its JSON answer."""
    request = urllib.request.Request(f"{endpoint}/v3/{method}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        result: dict[str, Any] = json.load(answer)
    return result


def etcd_prefix_range(prefix: str) -> dict[str, str]:
    """Every key starting with ``prefix``, as etcd's key and range_end (base64)."""
    raw = prefix.encode()
    return {"key": base64.b64encode(raw).decode(),
            "range_end": base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()}


def etcd_clear(endpoint: str) -> None:
    """Delete what the last controller left under ``ETCD_PREFIX`` and compact etcd's
    history, so that each controller starts cold on a like store."""
    answer = etcd_post(endpoint, "kv/deleterange", etcd_prefix_range(ETCD_PREFIX))
    if int(answer.get("deleted", 0)):
        etcd_post(endpoint, "kv/compaction", {"revision": answer["header"]["revision"],
                                              "physical": True})


def check_etcd_used(name: str, controller: Controller, endpoint: str) -> None:
    """Fail loudly unless the controller kept its records in etcd: it found the bench's
    empty prefix there at start, no write was refused, and its records are there now."""
    with urllib.request.urlopen(controller.url + "/metrics", timeout=10) as answer:
        errors = STORE_ERRORS.search(answer.read().decode())
    count = etcd_post(endpoint, "kv/range", {**etcd_prefix_range(f"{ETCD_PREFIX}gateways/"),
                                             "count_only": True}).get("count", 0)
    problems = []
    if f"etcd {','.join(controller.config['state']['endpoints'])}, prefix {ETCD_PREFIX}" \
            not in controller.log():
        problems.append("its log does not show it joining the election over the etcd "
                        "cluster at start")
    if errors is None or float(errors.group(1)) != 0:
        problems.append(f"{float(errors.group(1)):.0f} writes refused" if errors
                        else "no state store error count in /metrics")
    if int(count) == 0:
        problems.append(f"etcd holds no records under {ETCD_PREFIX}gateways/")
    if problems:
        raise RuntimeError(f"{name}: the controller did not keep its state in etcd: "
                           + "; ".join(problems))


def etcd_version(binary: str) -> str:
    output = subprocess.run([binary, "--version"], capture_output=True, text=True,
                            timeout=10).stdout
    return output.splitlines()[0].removeprefix("etcd Version: ") if output else "unknown"


def build_of(log: str) -> str:
    """What the app logged at start-up: its packet-in path compiled or from source."""
    match = re.search(r"packet-in path: (.+?) \(", log)
    if match is None:
        return "unknown"
    return COMPILED if match.group(1) == compiled.COMPILED else PURE


def measure_concurrency(settings: Settings, concurrency: int, calls: int,
                        name: str) -> dict[str, Any]:
    async def body(session: Session) -> dict[str, Any]:
        result = await run_calls(session, calls, concurrency, settings.timeout)
        return result.summary()
    return with_controller(settings, name, body)


def measure_offered(settings: Settings, live: int, rates: list[float], seconds: float,
                    index: int) -> dict[str, Any]:
    """``live`` calls set up and kept, then open-loop set-ups at each offered rate."""
    async def body(session: Session) -> dict[str, Any]:
        if live:
            await run_calls(session, live, min(live, 1000), settings.timeout)
        await asyncio.sleep(0.5)
        points = []
        for rate in rates:
            point = await run_offered(session, rate, max(50, int(rate * seconds)),
                                      settings.timeout)
            point["live_calls"] = live
            points.append(point)
            print(f"  offered {rate:>6.0f}/s with {live:>6} live calls: "
                  f"{point['achieved_per_s']:.0f}/s, p50 {point['latency_p50_ms']:.1f} ms, "
                  f"p99 {point['latency_p99_ms']:.1f} ms", flush=True)
            await asyncio.sleep(0.5)
        return {"live_calls": live, "points": points}
    return with_controller(settings, f"offered-{live}-{index}", body)


def measure_memory(settings: Settings, checkpoints: list[int], window: int,
                   index: int) -> dict[str, Any]:
    async def body(session: Session) -> dict[str, Any]:
        await asyncio.sleep(0.5)
        before = proc_rss_kib(session.pid)
        points = []
        established = 0
        for target in checkpoints:
            result = await run_calls(session, target - established, window, settings.timeout)
            established += result.completed
            await asyncio.sleep(0.5)
            rss = proc_rss_kib(session.pid)
            points.append({
                "calls": established, "rss_kib": rss, "delta_kib": rss - before,
                "kib_per_call": round((rss - before) / established, 3) if established else 0,
                "setups_per_s_in_batch": result.summary()["setups_per_s"],
                "flow_entries": session.switch.table.count(
                    pipeline.TABLE_GRE, pipeline.Priority.GRE_OUTWARD_UNMATCHED + 1),
            })
        return {"rss_before_kib": before, "checkpoints": points}
    return with_controller(settings, f"memory-{index}", body)


ECHO_APP = Path(__file__).resolve().with_name("echo_app.py")
RYU_MANAGER_WITH_SHIM = ("from ryu_pptp_alg import compat; compat.apply(); import sys; "
                         "from ryu.cmd import manager; sys.exit(manager.main(sys.argv[1:]))")


def measure_floor(settings: Settings, messages: int, window: int,
                  index: int) -> dict[str, Any]:
    """Ryu and eventlet alone: packet-ins answered per second by ``echo_app.py``, with
    ``window`` packet-ins outstanding. Each ALG call set-up costs 6 packet-ins and 10
    messages out (switch profile ovs; openflow adds 2 barriers and 2 replies)."""
    port = free_port()
    log = settings.workdir / f"floor-{index}.log"
    settings.workdir.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", RYU_MANAGER_WITH_SHIM,
                                    str(ECHO_APP), "--ofp-tcp-listen-port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT)
    frame = ethernet(GATEWAY_MAC, ROUTER_MAC, SERVER_BASE, PUBLIC_BASE, fr.Tcp(
        pptp.PPTP_PORT, 2000, 1, 1, PSH_ACK, pptp.build(pptp.StartControlConnectionReply())))

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        answered = 0
        sent = 0

        def on_packet_out(po: PacketOut) -> None:
            nonlocal answered, sent
            answered += 1
            if sent < messages:
                sent += 1
                switch.send_packet_in(OUTSIDE_PORT, COOKIE_FROM_SERVER, frame)
            elif answered == messages and not finished.done():
                finished.set_result(None)

        switch = await connect("127.0.0.1", port, DPID, PORTS, on_packet_out, None,
                               settings.timeout)
        await asyncio.sleep(0.5)
        cpu0 = proc_cpu_s(process.pid)
        t0 = time.perf_counter()
        sent = min(window, messages)
        for _ in range(sent):
            switch.send_packet_in(OUTSIDE_PORT, COOKIE_FROM_SERVER, frame)
        await asyncio.wait_for(finished, settings.timeout)
        wall = time.perf_counter() - t0
        cpu = proc_cpu_s(process.pid) - cpu0
        switch.close()
        return {"messages": messages, "window": window, "wall_s": round(wall, 3),
                "packet_ins_per_s": round(messages / wall, 1),
                "controller_cpu_us_per_message": round(1e6 * cpu / messages, 1),
                "controller_cpu_share": round(cpu / wall, 3)}
    try:
        return asyncio.run(main())
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


SUMMARY_KEYS = ("setups_per_s", "latency_p50_ms", "latency_p99_ms", "full_setup_p50_ms",
                "full_setup_p99_ms", "flow_entries_per_call",
                "controller_cpu_ms_per_setup", "sim_cpu_ms_per_setup", "controller_cpu_share",
                "sim_cpu_share")


def machine() -> dict[str, Any]:
    info = report.machine()
    info["loadavg_at_start"] = info["loadavg"]
    return info


def calls_for(concurrency: int, quick: bool) -> int:
    """Set-ups per run: enough to reach a steady state, and at least one full window."""
    base = (30 if concurrency == 1 else 300) if quick else (200 if concurrency == 1 else 2000)
    return max(concurrency, base)


def parse_ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def git_state() -> dict[str, Any]:
    """The commit measured and the files that differ from it (the ALG is the working tree)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except OSError:
            return ""
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "ryu_pptp_alg").splitlines()]
    return {"commit": git("rev-parse", "HEAD"), "alg_files_modified": dirty}


@dataclass
class Scenario:
    """An address plan (how many public addresses and servers the calls spread over), the
    switch profile, and whether the controller runs its compiled packet-in path."""

    name: str
    pool: int
    servers: int
    levels: list[int]
    switch_profile: str = "ovs"
    build: str = COMPILED

    def describe(self) -> str:
        return f"{self.pool} public address(es), {self.servers} server(s)"

    def label(self) -> str:
        return f"{self.name}-{self.switch_profile}-{self.build}"


def run_scenarios(settings: Settings, scenarios: list[Scenario], repeat: int,
                  quick: bool) -> list[dict[str, Any]]:
    """Every (scenario, level) once per round, ``repeat`` rounds: the rows compared with
    each other are interleaved, so a slow spell of the machine hits them alike."""
    cells = [(scenario, level) for scenario in scenarios for level in scenario.levels]
    runs: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(cells))}
    for round_ in range(repeat):
        for i, (scenario, level) in enumerate(cells):
            calls = calls_for(level, quick)
            cell = replace(settings, pool=scenario.pool, servers=scenario.servers,
                           switch_profile=scenario.switch_profile, build=scenario.build)
            run = measure_concurrency(cell, level, calls, f"{scenario.label()}-c{level}-{round_}")
            runs[i].append(run)
            print(f"{scenario.name:>6} {scenario.switch_profile:>8} {scenario.build:>8} "
                  f"concurrency {level:>6}: run {round_ + 1}/{repeat}: "
                  f"{run['completed']}/{calls} set-ups, {run['setups_per_s']:.0f}/s, "
                  f"p50 {run['latency_p50_ms']:.1f} ms, p99 {run['latency_p99_ms']:.1f} ms, "
                  f"fast/slow {run['fast_path_calls']}/{run['slow_path_calls']}", flush=True)
    return [{"scenario": scenario.name, "address_plan": scenario.describe(),
             "switch_profile": scenario.switch_profile, "build": scenario.build,
             "concurrency": level, "calls": calls_for(level, quick), "runs": runs[i],
             "summary": {key: spread([r[key] for r in runs[i]]) for key in SUMMARY_KEYS}}
            for i, (scenario, level) in enumerate(cells)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small numbers for a smoke run (< 1 minute)")
    parser.add_argument("--concurrency", type=parse_ints, default=None,
                        help="calls in flight, comma-separated (default 1,100,10000; "
                             "0 skips them)")
    parser.add_argument("--calls-memory", type=parse_ints, default=None,
                        help="established-call checkpoints for RSS (default 10000,50000)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per concurrency level (default 3; --quick 1)")
    parser.add_argument("--pool", type=int, default=254,
                        help="public addresses in the pool (default 254, a /24)")
    parser.add_argument("--servers", type=int, default=254,
                        help="distinct PPTP servers, calls spread round-robin (default 254)")
    parser.add_argument("--shared-concurrency", type=parse_ints, default=None,
                        help="levels for the shared scenario (1 public address, 1 server: "
                             "the slow path); default 100; 0 skips it")
    parser.add_argument("--openflow-concurrency", type=parse_ints, default=[100],
                        help="levels run again with switch_profile openflow (barriers); "
                             "the others use ovs (default 100; empty skips it)")
    parser.add_argument("--pure-concurrency", type=parse_ints, default=[100],
                        help="levels run again with the packet-in path from the Python "
                             "sources (RYU_PPTP_ALG_PURE=1); empty skips (default 100)")
    parser.add_argument("--offered-rates", type=parse_ints, default=None,
                        help="open-loop set-up rates per second (default 250,500,1000; "
                             "0 skips the open-loop runs)")
    parser.add_argument("--offered-live", type=parse_ints, default=None,
                        help="calls kept up during the open-loop runs (default 100,10000)")
    parser.add_argument("--offered-seconds", type=float, default=3.0,
                        help="seconds of set-ups per offered rate (default 3)")
    parser.add_argument("--floor-messages", type=int, default=None,
                        help="packet-ins for the Ryu floor (echo app); default 30000, "
                             "0 skips it")
    parser.add_argument("--memory-window", type=parse_ints, default=[100, 5000],
                        help="calls in flight while establishing the memory checkpoints, "
                             "one controller each (default 100,5000)")
    parser.add_argument("--timeout", type=float, default=240.0,
                        help="seconds one run may take before it is cut short")
    parser.add_argument("--verify", action="store_true",
                        help="check every packet-out (checksums, NAT); on with --quick")
    parser.add_argument("--state", choices=("file", "none", ETCD), default="file",
                        help="the controller's state store (default: file, as deployed; "
                             "etcd: a three-member cluster started here on localhost)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--markdown", type=Path, help="write a Markdown section here")
    parser.add_argument("--workdir", type=Path,
                        help="keep the controller logs here (default: a temp dir, removed "
                             "after a successful run)")
    parser.add_argument("--profile", type=Path,
                        help="sample the controller with py-spy; collapsed stacks go here")
    args = parser.parse_args(argv)
    concurrency = [c for c in (args.concurrency or ([1, 100, 1000] if args.quick
                                                    else [1, 100, 10000])) if c > 0]
    shared = [c for c in (args.shared_concurrency or [100]) if c > 0]
    checkpoints = sorted(c for c in args.calls_memory or ([1000, 3000] if args.quick
                                                          else [10000, 50000]) if c > 0)
    repeat = args.repeat or (1 if args.quick else 3)
    rates = [r for r in (args.offered_rates or [250, 500, 1000]) if r > 0]
    live_levels = args.offered_live or ([100, 1000] if args.quick else [100, 10000])
    floor_messages = args.floor_messages if args.floor_messages is not None \
        else (5000 if args.quick else 30000)
    if max([0, *checkpoints] + [calls_for(c, args.quick) for c in concurrency + shared]) \
            > 65535 - FIRST_CLIENT_PORT:
        parser.error("at most 64,511 calls per controller (one client port each)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-controlplane-"))
    verify = args.verify or args.quick
    pool = Scenario("pool", args.pool, args.servers, concurrency)
    scenarios = [pool] if concurrency else []
    if args.openflow_concurrency:
        scenarios.append(Scenario("pool", args.pool, args.servers, args.openflow_concurrency,
                                  "openflow"))
    if args.pure_concurrency:
        scenarios.append(Scenario("pool", args.pool, args.servers, args.pure_concurrency,
                                  build=PURE))
    if shared:
        scenarios.append(Scenario("shared", 1, 1, shared))
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    started = time.perf_counter()
    results: dict[str, Any] = {
        "benchmark": "controlplane", "command": command, "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git": git_state(),
        "setup": {"pool": args.pool, "servers": args.servers, "timeouts": TIMEOUTS,
                  "state": args.state,
                  "repeat": repeat, "memory_window": args.memory_window, "verify": verify,
                  "workdir": str(workdir) if args.workdir else None},
        "concurrency": [], "offered": [], "floor": [], "memory": None,
    }
    with contextlib.ExitStack() as stack:  # the etcd cluster stops however the runs end
        cluster = stack.enter_context(EtcdCluster(workdir / "etcd", token="ryu-pptp-alg-bench")) \
            if args.state == ETCD else None
        endpoints = tuple(cluster.endpoints) if cluster is not None else ()
        settings = Settings(args.pool, args.servers, workdir, args.timeout, args.profile,
                            verify, state=args.state, etcd_endpoints=endpoints)
        results["concurrency"] = run_scenarios(settings, scenarios, repeat, args.quick)
        for i, live in enumerate(live_levels if rates else []):
            results["offered"].append(measure_offered(settings, live, rates,
                                                      args.offered_seconds, i))
        for i, window in enumerate([1, 100] if floor_messages else []):
            floor = measure_floor(settings, floor_messages, window, i)
            print(f"  Ryu floor (echo app), {window} in flight: {floor['packet_ins_per_s']:.0f} "
                  f"packet-ins/s, {floor['controller_cpu_us_per_message']:.0f} us CPU each",
                  flush=True)
            results["floor"].append(floor)
        results["memory"] = []
        for i, window in enumerate(args.memory_window if checkpoints else []):  # 0: none
            memory = measure_memory(settings, checkpoints, window, i)
            memory["address_plan"] = pool.describe()
            memory["window"] = window
            results["memory"].append(memory)
        if cluster is not None:  # the members' CPU over every run (not the controller's)
            results["setup"]["etcd"] = {
                "members": len(cluster.names), "endpoints": list(endpoints),
                "prefix": ETCD_PREFIX, "etcd_version": etcd_version(cluster.binary),
                "cpu_s": round(sum(proc_cpu_s(p.pid) for p in cluster.processes
                                   if p is not None), 2)}
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    results["machine"]["loadavg_at_end"] = report.loadavg()
    print(table(results))
    report.save(results, args.json, args.markdown, markdown)
    if args.workdir is None:  # a failed run never gets here: its logs stay for a look
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def table(results: dict[str, Any]) -> str:
    rows = [f"{'scenario':>8} {'profile':>8} {'build':>8} {'in flight':>9} {'calls':>6} "
            f"{'setups/s':>18} {'p50 ms':>22} {'p99 ms':>22} {'flows/call':>10} "
            f"{'ctl ms/setup':>12} {'sim ms/setup':>12}"]
    for level in results["concurrency"]:
        s = level["summary"]
        rows.append(f"{level['scenario']:>8} {level['switch_profile']:>8} "
                    f"{level['build']:>8} {level['concurrency']:>9} {level['calls']:>6} "
                    f"{fmt(s['setups_per_s'], 0):>18} {fmt(s['latency_p50_ms'], 1):>22} "
                    f"{fmt(s['latency_p99_ms'], 1):>22} "
                    f"{s['flow_entries_per_call']['median']:>10.2f} "
                    f"{s['controller_cpu_ms_per_setup']['median']:>12.2f} "
                    f"{s['sim_cpu_ms_per_setup']['median']:>12.2f}")
    for level in results["offered"]:
        for point in level["points"]:
            rows.append(f"  open loop, {point['live_calls']} live calls: offered "
                        f"{point['offered_per_s']:.0f}/s, achieved {point['achieved_per_s']:.0f}/s"
                        f", p50 {point['latency_p50_ms']:.1f} ms, "
                        f"p99 {point['latency_p99_ms']:.1f} ms")
    for floor in results["floor"]:
        rows.append(f"  Ryu floor, {floor['window']} in flight: {floor['packet_ins_per_s']:.0f} "
                    f"packet-ins/s, {floor['controller_cpu_us_per_message']:.0f} us each")
    for memory in results["memory"]:
        rows.append(f"controller RSS with no calls: {memory['rss_before_kib']} KiB "
                    f"({memory['window']} in flight while establishing)")
        for point in memory["checkpoints"]:
            rows.append(f"  {point['calls']:>6} calls up: {point['rss_kib']} KiB, "
                        f"{point['kib_per_call']:.2f} KiB/call")
    rows.append(f"took {results['elapsed_s']} s")
    return "\n".join(rows)


def fmt(s: dict[str, float], digits: int) -> str:
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    setup = results["setup"]
    git = results["git"]
    modified = ", ".join(git["alg_files_modified"]) or "none"
    state = setup.get("state", "file")
    etcd = setup.get("etcd")
    lines = [
        "## Control plane: PPTP call set-ups (simulated switch"
        + ("" if state == "file" else f"; state backend {state}") + ")", "",
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}; took {results['elapsed_s']} s  ",
        f"Machine: {m['nproc']} CPUs, {m['cpu']}, Linux {m['kernel']}, "
        f"Python {m['python']}; load average {m['loadavg_at_start']} at start, "
        f"{m['loadavg_at_end']} at end  ",
        f"Code: {git['commit'][:12]}, ALG files modified in the working tree: {modified}  ",
        f"Runs: median [min-max] of {setup['repeat']}, a fresh controller per run"
        + ("" if etcd is None else
           f"  \nState: etcd {etcd['etcd_version']}, {etcd['members']} members on this "
           f"machine, prefix {etcd['prefix']} emptied before each controller starts; the "
           f"members' CPU over all runs {etcd['cpu_s']} s (not in the controller's)"), "",
        "Switch profile (`switch_profile`): `ovs` sends no barriers, since the switch "
        "runs messages in order, as Open vSwitch and this simulated switch do; `openflow` "
        "fences each call's flow changes with a barrier and holds the server's reply for "
        "its answer (any OpenFlow switch). Build: `compiled` runs the packet-in path as "
        "`scripts/setup.sh` installs it (mypyc, `ryu_pptp_alg/compiled.py`), `pure` from "
        "its Python sources (`RYU_PPTP_ALG_PURE=1`). Rows are measured in interleaved "
        "rounds.", "",
        "| address plan | switch profile | build | calls in flight | set-ups per run | set-ups/s "
        "| OCRQ→OCRP p50 ms | p99 ms | GRE flow entries per call | fast/slow path calls "
        "| controller CPU ms per set-up |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in results["concurrency"]:
        s = level["summary"]
        last = level["runs"][-1]
        lines.append(f"| {level['address_plan']} | {level['switch_profile']} | "
                     f"{level['build']} | {level['concurrency']} | {level['calls']} | "
                     f"{fmt(s['setups_per_s'], 0)} | {fmt(s['latency_p50_ms'], 1)} | "
                     f"{fmt(s['latency_p99_ms'], 1)} | "
                     f"{s['flow_entries_per_call']['median']:.2f} | "
                     f"{last['fast_path_calls']}/{last['slow_path_calls']} | "
                     f"{s['controller_cpu_ms_per_setup']['median']:.2f} |")
    if results["offered"]:
        lines += ["", "Open loop (same address plan, switch profile ovs): calls kept up, "
                  "then a new set-up every "
                  "1/rate seconds whatever the controller does, so latency is what a call "
                  "meets at that load rather than a queue the driver builds. One run each.",
                  "", "| calls up | offered set-ups/s | achieved set-ups/s | OCRQ→OCRP p50 ms "
                  "| p99 ms | SYN→OCRP p99 ms | controller CPU share |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for level in results["offered"]:
            for p in level["points"]:
                lines.append(f"| {p['live_calls']} | {p['offered_per_s']:.0f} | "
                             f"{p['achieved_per_s']:.0f} | {p['latency_p50_ms']:.1f} | "
                             f"{p['latency_p99_ms']:.1f} | {p['full_setup_p99_ms']:.1f} | "
                             f"{p['controller_cpu_share']:.2f} |")
    if results["floor"]:
        lines += ["", "Ryu floor: `bench/echo_app.py` under the same `ryu-manager` answers each "
                  "packet-in with one packet-out and does nothing else. A call set-up through "
                  "the ALG is 6 packet-ins and 10 messages out (6 packet-outs, 4 flow-mods); "
                  "the openflow profile adds 2 barriers and their 2 replies.", "",
                  "| packet-ins in flight | packet-ins/s | controller CPU µs per packet-in "
                  "| CPU share |", "|---:|---:|---:|---:|"]
        for f in results["floor"]:
            lines.append(f"| {f['window']} | {f['packet_ins_per_s']:.0f} | "
                         f"{f['controller_cpu_us_per_message']:.1f} | "
                         f"{f['controller_cpu_share']:.2f} |")
    memories = results["memory"]
    if memories:
        lines += ["", f"Memory ({memories[0]['address_plan']}, a fresh controller per row "
                  "group, calls kept up): RSS growth divided by the calls up. How many set-ups "
                  "are in flight while the calls are established matters: their transient "
                  "objects leave the Python heap larger than the calls need.", "",
                  "| in flight while establishing | RSS with no calls KiB "
                  "| calls established | RSS KiB | KiB per call |", "|---:|---:|---:|---:|---:|"]
        marginal = []
        for memory in memories:
            points = memory["checkpoints"]
            for point in points:
                lines.append(f"| {memory['window']} | {memory['rss_before_kib']} | "
                             f"{point['calls']} | {point['rss_kib']} | "
                             f"{point['kib_per_call']:.2f} |")
            if len(points) >= 2:
                first, last = points[0], points[-1]
                growth = (last["rss_kib"] - first["rss_kib"]) / (last["calls"] - first["calls"])
                marginal.append(f"{growth:.2f} KiB ({memory['window']} in flight)")
        if marginal:
            lines += ["", "The first checkpoint also carries fixed costs that do not grow with "
                      "the calls: the bounded caches (addresses, MACs, encoded matches) fill "
                      "during the first thousand set-ups. Each further call, from the first "
                      "checkpoint to the last: " + ", ".join(marginal) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
