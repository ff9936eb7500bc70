#!/usr/bin/env python3
"""Legitimate call set-up under flood (issue 13): ryu-pptp-alg against the Linux NAT.

Per network (the ALG on an OVS userspace bridge, switch profile ovs; the Linux reference
NAT, MASQUERADE + CT --helper pptp), one inside client (10.0.0.11) places ``--calls``
calls one after the other to a PoPToP server outside (198.51.100.10), real peers with
the PPP stand-in: first on a quiet network, then while a flooder on another inside host
sends ``--rate`` TCP SYNs per second to the server's port 1723 from random source ports
(``--mode``: also ``gre``, junk GRE from outside to the public address, or ``arp``,
junk ARP for the gateway). Set-up latency: from starting pptp to the first LCP echo
reply through the tunnel (pptp-linux waits about 1 s between its Start-Control-
Connection-Reply and its Outgoing-Call-Request, so about 1 s is the floor). A call not
up within ``--call-timeout`` counts as that long and is reported as timed out.

Reported per network and condition: p50 and p99 (nearest rank: with 10 calls p99 is
the slowest), timeouts, the controller's CPU (user + system seconds per wall second,
1.0 = one core) and RSS, ovs-vswitchd's CPU, what the flooder sent, and the conntrack
entries of the Linux NAT. The flood is bounded (it stops by itself at most a few seconds
after the last call could end) and runs only between the benchmark's own namespaces.

    sudo .venv/bin/python bench/flood.py [--calls 10] [--rate 50000] [--mode syn]
        [--call-timeout 15] [--networks alg,linux] [--json F] [--markdown F]

Part of ``make bench`` (bench/all.py), as ``flood``.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import machine, markdown_table, save
from ryu_pptp_alg.testbed import flood_scenario as fs
from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.flood import Flooder
from ryu_pptp_alg.testbed.monitor import process_usage

WARMUP = 2.0  # the flood runs this long before the first call


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class CpuWatch:
    """CPU seconds per wall second of a pid between start() and stop()."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.began = 0.0
        self.cpu0 = 0.0
        self.share: float | None = None
        self.rss_kib: int | None = None

    def start(self) -> CpuWatch:
        usage = process_usage(self.pid) if self.pid else None
        self.began, self.cpu0 = time.monotonic(), usage.cpu_seconds if usage else 0.0
        return self

    def stop(self) -> CpuWatch:
        usage = process_usage(self.pid) if self.pid else None
        if usage is not None:
            self.share = (usage.cpu_seconds - self.cpu0) / max(1e-3, time.monotonic()
                                                               - self.began)
            self.rss_kib = usage.rss_kib
        return self


def calls(net: fs.FloodNet, count: int, timeout: float, label: str) -> list[float | None]:
    """``count`` sequential calls from ``new``; seconds to PPP each (None: timed out)."""
    results: list[float | None] = []
    for i in range(count):
        timing = fs.legit_call(net, "new", net.workdir / f"{label}-{i}", timeout)
        results.append(timing.seconds)
        timing.client.stop()
        time.sleep(0.3)  # the control connection's close handshake
    return results


def condition(net: fs.FloodNet, args: argparse.Namespace, flooded: bool) -> dict[str, Any]:
    controller = CpuWatch(net.controller.pid if net.controller else None).start()
    vswitchd = CpuWatch(ovs.vswitchd_pid() if net.kind == "alg" else None).start()
    conntrack = fs.ConntrackSampler(net.nat).start() if net.nat is not None else None
    flooder = None
    began = time.monotonic()
    if flooded:
        case = fs.CASES[args.mode]
        target = {"dial": net.dial, "public": net.public,
                  "gateway": net.arp_target[case.flooder]}[case.target]
        seconds = min(600.0, WARMUP + args.calls * (args.call_timeout + 1.0) + 5)
        flooder = Flooder(net.hosts[case.flooder].ns, case.mode, target, args.rate, seconds,
                          spoof=case.spoof, arp_op=case.arp_op)
        flooder.command()  # resolve the next hop before the load starts
        flooder.start()
        time.sleep(WARMUP)
    try:
        latencies = calls(net, args.calls, args.call_timeout,
                          "flood" if flooded else "quiet")
    finally:
        sent = flooder.stop() if flooder is not None else None
        controller.stop()
        vswitchd.stop()
        if conntrack is not None:
            conntrack.stop()
    ended = time.monotonic()
    done = [v for v in latencies if v is not None]
    counted = [v if v is not None else args.call_timeout for v in latencies]
    result: dict[str, Any] = {
        "flood": (fs.CASES[args.mode].describe(args.rate, sent.elapsed) if sent else "none"),
        "calls": len(latencies), "timeouts": len(latencies) - len(done),
        "samples_s": latencies,
        "min_s": min(done) if done else None,
        "p50_s": percentile(counted, 50), "p99_s": percentile(counted, 99),
        "median_of_completed_s": statistics.median(done) if done else None,
        "controller_cpu": controller.share, "controller_rss_mib":
            controller.rss_kib / 1024 if controller.rss_kib else None,
        "vswitchd_cpu": vswitchd.share, "seconds": ended - began,
        "flooder_pps": sent.pps if sent else None,
        "conntrack_max": conntrack.max(began, ended) if conntrack else None}
    if net.controller is not None:
        try:
            (gateway,) = [g for g in net.controller.get("/pptp/gateways", timeout=10)
                          ["gateways"] if g["dpid"] == fs.DPID]
            result["control_connections_after"] = gateway.get("control_connections")
        except (OSError, ValueError):
            result["control_connections_after"] = None
    return result


def fmt(value: float | None, timeouts: int, limit: float, pattern: str = "{:.2f}") -> str:
    if value is None:
        return "-"
    text = pattern.format(value)
    return f">{text}" if timeouts and value >= limit else text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50_000)
    parser.add_argument("--mode", choices=("syn", "syn-spoofed", "gre", "arp"), default="syn")
    parser.add_argument("--call-timeout", type=float, default=15.0)
    parser.add_argument("--networks", default="alg,linux")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--quick", action="store_true", help="3 calls per condition")
    args = parser.parse_args()
    if args.quick:
        args.calls = 3
    networks = [n for n in args.networks.split(",") if n]
    if not set(networks) <= {"alg", "linux"} or not 1 <= args.calls <= 200:
        parser.error("--networks: alg and/or linux; --calls 1..200")
    ovs.ensure_running()
    workdir = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    tag = f"{int(time.time()) % 10000:04d}"
    results: dict[str, dict[str, Any]] = {}
    for name in networks:
        with ExitStack() as stack:
            net = (fs.build_alg(stack, tag, workdir / name) if name == "alg"
                   else fs.build_linux(stack, tag, workdir / name))
            fs.start_server(net)
            calls(net, 1, args.call_timeout, "warm")  # ARP caches, first-call costs
            results[name] = {"quiet": condition(net, args, False),
                             "flood": condition(net, args, True)}
    rows = []
    for name, conditions in results.items():
        for cond, r in conditions.items():
            rows.append([
                "ryu-pptp-alg" if name == "alg" else "Linux NAT", cond,
                fmt(r["min_s"], 0, 0),
                fmt(r["p50_s"], r["timeouts"], args.call_timeout),
                fmt(r["p99_s"], r["timeouts"], args.call_timeout),
                f"{r['timeouts']}/{r['calls']}",
                fmt(r["controller_cpu"] * 100 if r["controller_cpu"] is not None else None, 0,
                    0, "{:.0f}%"),
                fmt(r["controller_rss_mib"], 0, 0, "{:.0f}"),
                fmt(r["vswitchd_cpu"] * 100 if r["vswitchd_cpu"] is not None else None, 0, 0,
                    "{:.0f}%"),
                fmt(r["flooder_pps"], 0, 0, "{:,.0f}"),
                r.get("control_connections_after", "-") if name == "alg" else
                (f"conntrack {r['conntrack_max']:,}" if r["conntrack_max"] else "-")])
    header = ["network", "condition", "min (s)", "p50 (s)", "p99 (s)", "timed out",
              "controller CPU",
              "controller RSS (MiB)", "vswitchd CPU", "flood sent (/s)",
              "connections after / conntrack max"]
    table = markdown_table(header, rows)
    info = machine()
    result = {"machine": info, "calls": args.calls, "rate": args.rate, "mode": args.mode,
              "call_timeout": args.call_timeout, "networks": results}
    print(info["summary"])
    print(f"{args.calls} sequential calls per condition; flood: "
          f"{fs.CASES[args.mode].describe(args.rate, 0).rsplit(' for ', 1)[0]}, "
          f"call timeout {args.call_timeout:g}s")
    print(table)
    command = "sudo .venv/bin/python bench/flood.py " + " ".join(sys.argv[1:])
    save(result, args.json, args.markdown, lambda result: (
        f"### Legitimate call set-up under flood\n\nCommand: `{command.strip()}`\n\n"
        f"{result['machine']['summary']}\n\n{args.calls} sequential calls per condition, "
        f"set-up from starting pptp to the first LCP echo reply; a call not up within "
        f"{args.call_timeout:g}s counts as that long (shown as >).\n\n{table}\n"))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
