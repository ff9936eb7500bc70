#!/usr/bin/env python3
"""``make bench``: every benchmark, one after the other, into docs/benchmarks.md.

Each benchmark writes its own JSON (docs/bench/*.json) and Markdown section; this
script runs them in turn (never concurrently: they share 2 cores) and assembles
docs/benchmarks.md with the command, the machine and the date.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import machine
from ryu_pptp_alg.compiled import PURE_ENV

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "bench"
PURE = {PURE_ENV: "1"}  # the packet-in path from its Python sources
BENCHMARKS: list[tuple[str, str, list[str], dict[str, str]]] = [  # name, script, args, env
    ("controlplane", "bench/controlplane.py", [], {}),
    # The same set-ups with the records in a local three-member etcd cluster (group
    # commit); no open-loop rates and no Ryu floor (it has no store).
    ("controlplane-etcd", "bench/controlplane.py",
     ["--state", "etcd", "--concurrency", "100", "--calls-memory", "0", "--offered-rates", "0",
      "--floor-messages", "0"], {}),
    ("heap", "bench/heap.py", [], {}),
    ("heap_pure", "bench/heap.py", [], PURE),
    ("profile", "bench/profile.py", [], {}),
    ("dataplane", "bench/dataplane.py", [], {}),
    ("endtoend", "bench/endtoend.py", ["--rounds", "7"], {}),
    ("restore", "bench/restore.py", ["--rounds", "3"], {}),
    ("flood", "bench/flood.py", [], {}),  # issue 13: set-up under a 50k SYN/s flood
    ("failover", "bench/failover.py", [], {}),  # issue 15: ten kills -9 of the master
]
TARGETS = """Targets (issue 6): >= 2,000 call set-ups per second and p99 set-up latency under
10 ms at 100 concurrent calls; under 2 KiB of controller memory per call; fast path
>= 0.9 x plain forwarding."""


def pool_at_100(control: dict[str, Any] | None, profile: str,
                build: str = "compiled") -> dict[str, Any] | None:
    """The control-plane row at 100 in flight, fast-path address plan, one switch profile,
    the packet-in path compiled (as set up) or from its Python sources."""
    return next((c for c in (control or {}).get("concurrency", [])
                 if c["scenario"] == "pool" and c["concurrency"] == 100
                 and c["switch_profile"] == profile and c.get("build", "compiled") == build),
                None)


def standing() -> str:
    """Each target against this run's figures, read back from the JSON just written."""
    def load(name: str) -> dict[str, Any] | None:
        path = RESULTS / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None
    rows = []
    control, data, heap = load("controlplane"), load("dataplane"), load("heap")
    if control:
        for profile, build in (("ovs", "compiled"), ("openflow", "compiled"), ("ovs", "pure")):
            level = pool_at_100(control, profile, build)
            if level:
                rate = level["summary"]["setups_per_s"]["median"]
                how = "" if build == "compiled" else "; Python sources, for reference"
                rows.append((f"call set-ups per second (100 in flight, switch profile "
                             f"{profile}{how})", ">= 2,000", f"{rate:,.0f}", rate >= 2000))
        at_100 = pool_at_100(control, "ovs")
        if at_100:
            p99 = at_100["summary"]["latency_p99_ms"]["median"]
            rows.append(("p99 set-up latency, 100 always in flight (closed loop)", "< 10 ms",
                         f"{p99:.1f} ms", p99 < 10))
        for level in control.get("offered", []):
            for point in level["points"]:
                if point["live_calls"] == 100:
                    rows.append((f"p99 set-up latency, {point['offered_per_s']:,.0f} set-ups/s "
                                 "offered, 100 calls up (open loop)", "< 10 ms",
                                 f"{point['latency_p99_ms']:.1f} ms",
                                 point["latency_p99_ms"] < 10))
        for memory in control.get("memory", [])[:1]:
            for point in memory["checkpoints"]:
                rows.append((f"controller RSS per call, {point['calls']:,} calls up",
                             "< 2 KiB", f"{point['kib_per_call']:.2f} KiB",
                             point["kib_per_call"] < 2))
    if heap:
        rows.append(("Python heap per established call (the ALG alone)", "< 2 KiB",
                     f"{heap['heap_bytes_per_call'] / 1024:.2f} KiB",
                     heap["heap_bytes_per_call"] < 2048))
    if data:
        ratio = data["analysis"]["ratios"]["b/a"]["median"]
        rows.append(("fast path / plain forwarding (b/a)", ">= 0.9", f"{ratio:.3f}",
                     ratio >= 0.9))
    if not rows:
        return ""
    lines = ["## Where this run stands", "", "| target | wanted | measured | met |",
             "|---|---:|---:|---|"]
    lines += [f"| {what} | {wanted} | {got} | {'yes' if met else 'no'} |"
              for what, wanted, got, met in rows]
    return "\n".join(lines) + "\n\n" + limits(control, heap, load("heap_pure")) \
        + profiled(load("profile")) + "\n"


def limits(control: dict[str, Any] | None, heap: dict[str, Any] | None,
           heap_pure: dict[str, Any] | None) -> str:
    """What limits the control plane, in this run's own figures."""
    floors = {f["window"]: f for f in (control or {}).get("floor", [])}
    at_100 = pool_at_100(control, "ovs")
    pure_100 = pool_at_100(control, "ovs", "pure")
    if 1 not in floors or 100 not in floors or at_100 is None or heap is None:
        return ""
    batched = floors[100]["controller_cpu_us_per_message"]
    single = floors[1]["controller_cpu_us_per_message"]
    total = at_100["summary"]["controller_cpu_ms_per_setup"]["median"]
    alone = heap["gateway_cpu_us_per_setup"] / 1000
    compared = ""
    if heap_pure and pure_100:
        compared = (
            f" Compiled with mypyc, the ALG's logic takes {alone:.2f} ms per set-up against "
            f"{heap_pure['gateway_cpu_us_per_setup'] / 1000:.2f} ms as Python; the controller "
            f"{total:.2f} ms against "
            f"{pure_100['summary']['controller_cpu_ms_per_setup']['median']:.2f} ms.")
    return (
        "What limits the control plane, in this run's figures: the controller is one "
        "Python process on one core. Ryu and eventlet alone (the echo app, each packet-in "
        f"answered from its event queue) cost {batched:.0f} µs of CPU per packet-in when "
        f"packet-ins queue up and {single:.0f} µs when they come one at a time. A set-up is "
        "6 messages in and 10 out (switch profile ovs; openflow adds 2 barriers each way). "
        f"At 100 in flight a set-up costs the controller {total:.2f} ms; the ALG's own "
        f"logic (`heap.py`: parsing, NAT, call-ID tracking, flow building, encoding) is "
        f"{alone:.2f} ms of it, Ryu's receiving, dispatching and sending the rest (less "
        "than the echo app's, since the app handles packet-ins and barrier replies in "
        f"Ryu's receive loop when nothing is queued ahead).{compared} Closed-loop latency "
        "is queueing: with N set-ups always in flight each waits behind the others (about "
        "N / rate). Open-loop latency at a rate the controller sustains is a few "
        "milliseconds; it grows near saturation, which comes sooner when set-ups arrive "
        "one by one and Ryu cannot batch them. The open-loop runs are seconds long; over "
        "minutes CPython's full garbage collections add a pause of about "
        f"{heap['full_gc_pause_ms']:.0f} ms with {heap['calls']:,} calls up "
        f"({heap['full_gc_pause_unfrozen_ms']:.0f} ms before the app froze its startup "
        f"objects; it grows with the calls: {heap['gc_tracked_objects_per_call']:.0f} "
        "tracked objects each), each time the long-lived objects have grown by a quarter.")


def profiled(profile: dict[str, Any] | None) -> str:
    """The sampled profile in one sentence: Ryu's stages against the ALG's."""
    if not profile:
        return ""
    stages = profile["stages"]
    ryu = [s for s in stages if s["stage"].startswith("Ryu")]
    alg = sorted((s for s in stages if s["stage"].startswith("ALG")),
                 key=lambda s: -s["us_per_setup"])
    cpu_us = 1000 * profile["controller_cpu_ms_per_setup"]
    return (
        f" The sampled profile (`profile.py`, {cpu_us:.0f} µs of CPU per set-up under the "
        f"sampler) puts Ryu's own stages at {sum(s['us_per_setup'] for s in ryu):.0f} µs per "
        f"set-up and the ALG's at {sum(s['us_per_setup'] for s in alg):.0f} µs; the largest, "
        f"{alg[0]['stage'][5:]}, takes {alg[0]['us_per_setup']:.0f} µs.")


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    RESULTS.mkdir(parents=True, exist_ok=True)
    sections = []
    for name, script, extra, env in BENCHMARKS:
        if not (ROOT / script).exists():
            sections.append(f"### {name}\n\n(not run: {script} is missing)\n")
            continue
        markdown = RESULTS / f"{name}.md"
        args = [sys.executable, script, "--json", str(RESULTS / f"{name}.json"),
                "--markdown", str(markdown), *extra]
        if quick and name != "endtoend":
            args.append("--quick")
        print(f"== {name}: {' '.join(args[1:])}", flush=True)
        started = time.monotonic()
        result = subprocess.run(args, cwd=ROOT, env={**os.environ, **env})
        took = time.monotonic() - started
        if result.returncode != 0 or not markdown.exists():
            sections.append(f"### {name}\n\nFAILED (exit {result.returncode}) after "
                            f"{took:.0f} s\n")
            continue
        sections.append(markdown.read_text() + f"\n(took {took:.0f} s)\n")
    info = machine()
    command = "make bench" + (" BENCH_ARGS=--quick" if quick else "")
    (ROOT / "docs" / "benchmarks.md").write_text(
        "# Benchmarks\n\n"
        f"Produced by `{command}` (`bench/all.py`). {info['summary']}\n\n"
        f"{TARGETS}\n\nEvery figure below comes from that one run; the JSON next to\n"
        "each section is in `docs/bench/`.\n\n" + standing() + "\n" + "\n".join(sections))
    print("wrote docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
