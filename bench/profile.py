#!/usr/bin/env python3
"""Where the controller's CPU goes during call set-ups: a sampled profile, by stage.

Runs the control-plane benchmark at 100 set-ups in flight (switch profile ovs)
with py-spy sampling the controller, then sorts every sample into the stage of
the hot path it was taken in, from the most specific frame down:

    .venv/bin/python bench/profile.py --json out.json --markdown out.md

Each stage's share of the samples, times the controller CPU per set-up measured
in the same runs, gives its cost per set-up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import controlplane
from bench.report import machine, save

# (stage, markers, context): a sample counts for the first stage that one of its frames
# has a marker of, and (when a context is given) one of its frames a context marker of.
# The controller runs its packet-in path compiled (mypyc), as setup installs it: those
# functions are C and invisible to the sampler, so their samples land on the nearest
# Python frame, the app's handler; what they call in Python (Ryu's message constructors,
# the PPTP codec, the standard library) still shows.
APP = ("(ryu_pptp_alg/",)
STAGES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("Ryu: queue and write to the socket", ("Datapath._send_loop", "Datapath.send ("), ()),
    ("ALG: PPTP control message codec (pptp.py, not compiled)",
     ("(ryu_pptp_alg/codec/pptp.py",), ()),
    ("ALG: building Ryu message objects (Ryu's constructors)",
     ("ryu/ofproto/ofproto_v1_3_parser.py", "ryu/ofproto/ofproto_parser.py"), APP),
    ("ALG: Python library code (ipaddress, namedtuple, dataclass, logging, enum)",
     ("(ipaddress.py", "(collections/__init__.py", "(logging/__init__.py", "(enum.py",
      "(<string>"), APP),
    ("ALG: its compiled code (frames, NAT, control stream, gateway logic, encoding)", APP, ()),
    ("Ryu: read the socket, parse OpenFlow, queue the event", ("Datapath._recv_loop",), ()),
    ("Ryu: hand events to the app (queue, handler lookup)", ("RyuApp._event_loop",), ()),
]
OTHER = "eventlet hub and the rest"


def stage_of(frames: list[str]) -> str:
    for stage, markers, context in STAGES:
        if any(marker in frame for frame in frames for marker in markers) and \
                (not context or any(m in frame for frame in frames for m in context)):
            return stage
    return OTHER


def summarize(paths: Iterable[Path]) -> Counter[str]:
    """Samples per stage, from py-spy's raw (collapsed) stacks."""
    samples: Counter[str] = Counter()
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                samples[stage_of(stack.split(";"))] += int(count)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="profiled runs (default 3)")
    parser.add_argument("--quick", action="store_true", help="one run")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        stacks, runs = Path(tmp) / "stacks", Path(tmp) / "runs.json"
        status = controlplane.main([
            "--concurrency", "100", "--repeat", str(repeat), "--openflow-concurrency", "",
            "--pure-concurrency", "",
            "--shared-concurrency", "0", "--offered-rates", "0", "--floor-messages", "0",
            "--memory-window", "", "--profile", str(stacks), "--json", str(runs)])
        if status != 0:
            return status
        measured = json.loads(runs.read_text())["concurrency"][0]
        samples = summarize(sorted(stacks.glob("*.txt")))
    total = sum(samples.values())
    if not total:
        print("profile: py-spy recorded no samples", file=sys.stderr)
        return 1
    cpu_ms = measured["summary"]["controller_cpu_ms_per_setup"]["median"]
    rows = [{"stage": stage, "share": samples[stage] / total,
             "us_per_setup": 1000 * cpu_ms * samples[stage] / total}
            for stage in [s for s, _, _ in STAGES] + [OTHER]]
    result = {
        "benchmark": "profile", "command": command, "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "runs": repeat, "samples": total, "controller_cpu_ms_per_setup": cpu_ms,
        "setups_per_s": measured["summary"]["setups_per_s"]["median"], "stages": rows,
    }
    for row in rows:
        print(f"{100 * row['share']:5.1f}%  {row['us_per_setup']:6.0f} us  {row['stage']}")
    save(result, args.json, args.markdown, markdown)
    return 0


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "## Where a set-up's CPU goes (sampled profile)", "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date']}  ",
        f"{result['machine']['summary']}", "",
        f"py-spy sampling the controller (200 Hz) through {result['runs']} run(s) of 2,000 "
        f"set-ups at 100 in flight, switch profile ovs, packet-in path compiled: "
        f"{result['samples']} samples, "
        f"{result['setups_per_s']:,.0f} set-ups/s and {result['controller_cpu_ms_per_setup']:.2f}"
        " ms of controller CPU per set-up in those runs (the sampler slows it a little). "
        "A sample counts for the first stage, in this order, that any frame of its stack "
        "belongs to.", "",
        "| stage | share of samples | µs per set-up |", "|---|---:|---:|",
    ]
    for row in result["stages"]:
        lines.append(f"| {row['stage']} | {100 * row['share']:.1f}% | "
                     f"{row['us_per_setup']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
