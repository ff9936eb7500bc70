"""The ALG's own share: call set-ups driven straight into ``Gateway``, no Ryu, no sockets.

The same outbound set-ups as ``controlplane.py`` (SYN, SYN-ACK, SCCRQ, SCCRP, OCRQ,
OCRP, barriers answered) go to one ``Gateway`` in this process, and every message it
returns is encoded with ``ofwire`` as the app would. It reports the CPU time per
set-up of that logic alone (the controller's total minus this is Ryu and eventlet),
and the Python heap each established call keeps (tracemalloc), with the allocation
sites that hold most of it.

    .venv/bin/python bench/heap.py --calls 10000
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib
import shlex
import sys
import time
import tracemalloc
import types
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import report
from controlplane import (
    COOKIE_FROM_SERVER,
    COOKIE_TO_SERVER,
    FIRST_CLIENT_PORT,
    GATEWAY_MAC,
    INSIDE_PORT,
    OUTSIDE_PORT,
    PSH_ACK,
    PUBLIC_BASE,
    ROUTER_MAC,
    SERVER_BASE,
    SYN,
    TIMEOUTS,
    ethernet,
    gateway_config,
    mac_of,
    router_arp_request,
)
from ryu.ofproto import ofproto_v1_3
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import compiled, ofwire
from ryu_pptp_alg.app import freeze_startup_objects
from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.config import Timeouts, config_from_dict
from ryu_pptp_alg.gateway import Gateway

ROOT = Path(__file__).resolve().parents[1]
# What Ryu's serialiser needs of a datapath, for the messages ofwire hands it.
RYU_DATAPATH = types.SimpleNamespace(ofproto=ofproto_v1_3, ofproto_parser=parser)


class Driver:
    """Plays client, server and switch for one gateway; counts the time spent inside it."""

    def __init__(self, pool: int, servers: int) -> None:
        config = config_from_dict(gateway_config(pool))
        self.gateway = Gateway(config.gateways[0], Timeouts(**TIMEOUTS))
        self.servers = servers
        self.xid = 1
        self.busy = 0.0
        self.messages = 0
        self._deliver(self.gateway.datapath_up())
        self.packet_in(OUTSIDE_PORT, router_arp_request(PUBLIC_BASE), 0)

    def _deliver(self, msgs: list[Any]) -> list[Any]:
        """Encode like the app; answer barriers like the switch."""
        out = []
        for msg in msgs:
            if msg.xid is None:
                msg.xid = self.xid
                self.xid += 1
            ofwire.encode(msg, RYU_DATAPATH)
            self.messages += 1
            if isinstance(msg, parser.OFPBarrierRequest):
                out.extend(self._deliver(self.gateway.barrier_reply(msg.xid)))
            elif isinstance(msg, parser.OFPFlowStatsRequest):  # on connect: an empty switch
                out.extend(self._deliver(self.gateway.flow_stats([], msg.xid)))
            else:
                out.append(msg)
        return out

    def packet_in(self, port: int, frame: bytes, cookie: int) -> list[Any]:
        started = time.process_time()
        msgs = self.gateway.packet_in(port, frame, cookie)
        self.gateway.take_changes()  # encoded for the store, as the app does (not written)
        out = self._deliver(msgs)
        self.busy += time.process_time() - started
        return out

    def call(self, index: int) -> None:
        client = IPv4Address("10.0.0.2") + index
        server = SERVER_BASE + index % self.servers
        port = FIRST_CLIENT_PORT + index
        seq, server_seq = 1000, 5000

        def from_client(flags: int, ack: int, payload: bytes = b"") -> list[Any]:
            segment = fr.Tcp(port, pptp.PPTP_PORT, seq, ack, flags, payload)
            return self.packet_in(INSIDE_PORT, ethernet(GATEWAY_MAC, mac_of(client), client,
                                                        server, segment), COOKIE_TO_SERVER)

        (syn,) = from_client(SYN, 0)
        ip = fr.parse_ipv4(fr.parse_ethernet(syn.data).payload)
        public, public_port = ip.src, fr.parse_tcp(ip.payload, ip.src, ip.dst).src_port
        seq += 1

        def from_server(flags: int, payload: bytes = b"") -> list[Any]:
            segment = fr.Tcp(pptp.PPTP_PORT, public_port, server_seq, seq, flags, payload)
            return self.packet_in(OUTSIDE_PORT, ethernet(GATEWAY_MAC, ROUTER_MAC, server,
                                                         public, segment), COOKIE_FROM_SERVER)

        from_server(SYN | fr.TCP_ACK)
        server_seq += 1
        for request, reply in (
                (pptp.StartControlConnectionRequest(), pptp.StartControlConnectionReply()),
                (pptp.OutgoingCallRequest(call_id=index % 0xFFFF + 1),
                 pptp.OutgoingCallReply(call_id=7, peer_call_id=index % 0xFFFF + 1))):
            data = pptp.build(request)
            from_client(PSH_ACK, server_seq, data)
            seq += len(data)
            data = pptp.build(reply)
            from_server(PSH_ACK, data)
            server_seq += len(data)


def full_collection_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return 1000 * (time.perf_counter() - started)


def measure(calls: int, pool: int, servers: int, top: int) -> dict[str, Any]:
    """Two runs: one timed (no tracing), one traced for the heap once warm."""
    importlib.import_module("ryu.controller.ofp_handler")  # loaded in the controller too
    startup_pause = full_collection_ms()  # Ryu and the app loaded, no calls, not frozen
    freeze_startup_objects()  # as the app does when it starts
    warm = min(1000, calls // 10)  # caches and the allocator reach their working size
    driver = Driver(pool, servers)
    for i in range(warm):
        driver.call(i)
    busy0, messages0 = driver.busy, driver.messages
    started = time.process_time()
    for i in range(warm, calls):
        driver.call(i)
    cpu = time.process_time() - started
    busy = driver.busy - busy0
    messages = driver.messages - messages0
    del driver  # one gateway's objects at a time: the GC pause below is the traced one's
    gc.collect()
    traced = Driver(pool, servers)
    for i in range(warm):
        traced.call(i)
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    for i in range(warm, calls):
        traced.call(i)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    # A full collection walks every tracked object: the pause the controller takes
    # whenever CPython decides to run one (about each time the long-lived objects grew
    # by a quarter), with this many calls up; and what it would be had the app not
    # frozen its startup objects.
    gc_pause = full_collection_ms()
    tracked = len(gc.get_objects())  # the frozen ones are not listed
    gc.unfreeze()
    unfrozen_pause = full_collection_ms()
    measured = calls - warm
    stats = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in stats)
    sites = [{"site": f"{Path(str(stat.traceback[0].filename)).name}:{stat.traceback[0].lineno}",
              "bytes_per_call": round(stat.size_diff / measured, 1)}
             for stat in stats[:top]]
    return {"calls": calls, "measured_calls": measured, "pool": pool, "servers": servers,
            "gateway_cpu_us_per_setup": round(1e6 * busy / measured, 1),
            "setups_per_s_gateway_alone": round(measured / busy, 1) if busy else 0.0,
            "driver_cpu_us_per_setup": round(1e6 * (cpu - busy) / measured, 1),
            "messages_per_setup": round(messages / measured, 2),
            "heap_bytes_per_call": round(total / measured, 1),
            "sessions": len(traced.gateway.state.conns), "top_sites": sites,
            "full_gc_pause_ms": round(gc_pause, 1), "gc_tracked_objects": tracked,
            "full_gc_pause_unfrozen_ms": round(unfrozen_pause, 1),
            "full_gc_pause_no_calls_unfrozen_ms": round(startup_pause, 1),
            "gc_tracked_objects_per_call": round(tracked / calls, 1)}


def main(argv: list[str] | None = None) -> int:
    parser_ = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser_.add_argument("--calls", type=int, default=10000)
    parser_.add_argument("--pool", type=int, default=254)
    parser_.add_argument("--servers", type=int, default=254)
    parser_.add_argument("--top", type=int, default=12, help="allocation sites listed")
    parser_.add_argument("--quick", action="store_true", help="2,000 calls")
    parser_.add_argument("--json", type=Path)
    parser_.add_argument("--markdown", type=Path)
    args = parser_.parse_args(argv)
    calls = 2000 if args.quick else args.calls
    if calls > 65535 - FIRST_CLIENT_PORT:
        parser_.error("at most 64,511 calls (one client port each)")
    started = time.perf_counter()
    result = measure(calls, args.pool, args.servers, args.top)
    result.update({
        "benchmark": "heap", "machine": report.machine(), "build": compiled.BUILD,
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - started, 1)})
    print(f"gateway alone ({compiled.BUILD}): "
          f"{result['gateway_cpu_us_per_setup']:.0f} us CPU per set-up "
          f"({result['setups_per_s_gateway_alone']:.0f}/s), "
          f"{result['messages_per_setup']:.1f} messages out per set-up; "
          f"heap {result['heap_bytes_per_call'] / 1024:.2f} KiB per established call; a full "
          f"garbage collection with {calls} calls up takes {result['full_gc_pause_ms']:.0f} ms "
          f"({result['full_gc_pause_unfrozen_ms']:.0f} ms without the startup freeze; "
          f"{result['gc_tracked_objects_per_call']:.0f} tracked objects per call)")
    for site in result["top_sites"]:
        print(f"  {site['bytes_per_call']:7.0f} B/call  {site['site']}")
    report.save(result, args.json, args.markdown, markdown)
    return 0


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"## The ALG alone: gateway logic and heap per call (no Ryu; {result['build']})", "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}; took {result['elapsed_s']} s  ",
        f"{result['machine']['summary']}", "",
        f"{result['measured_calls']} outbound set-ups ({result['pool']} public addresses, "
        f"{result['servers']} servers) driven into one `Gateway` in-process, messages "
        "encoded with `ofwire`, switch profile ovs (no barriers):", "",
        "| gateway CPU µs per set-up | set-ups/s, gateway alone | messages out per set-up "
        "| Python heap per established call | GC-tracked objects per call |",
        "|---:|---:|---:|---:|---:|",
        f"| {result['gateway_cpu_us_per_setup']:.0f} | "
        f"{result['setups_per_s_gateway_alone']:.0f} | {result['messages_per_setup']:.1f} | "
        f"{result['heap_bytes_per_call'] / 1024:.2f} KiB "
        f"| {result['gc_tracked_objects_per_call']:.1f} |", "",
        "A full garbage collection stops the controller while it walks every tracked "
        "object; CPython runs one about each time the long-lived objects have grown by a "
        "quarter. With Ryu and the app loaded (as in the controller):", "",
        "| calls up | startup objects frozen (the app does this) | not frozen |",
        "|---:|---:|---:|",
        f"| 0 | - | {result['full_gc_pause_no_calls_unfrozen_ms']:.0f} ms |",
        f"| {result['calls']:,} | {result['full_gc_pause_ms']:.0f} ms "
        f"| {result['full_gc_pause_unfrozen_ms']:.0f} ms |", "",
        "Where an established call's heap goes (tracemalloc, by allocation site):", "",
        "| bytes per call | allocated at |", "|---:|---|"]
    lines += [f"| {s['bytes_per_call']:.0f} | `{s['site']}` |" for s in result["top_sites"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
