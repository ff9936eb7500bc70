#!/usr/bin/env python3
"""``make bench``: every benchmark, one after the other, into docs/benchmarks.md.

Each benchmark writes its own JSON (docs/bench/*.json) and Markdown section; this
script runs them in turn (never concurrently: they share 2 cores) and assembles
docs/benchmarks.md with the command, the machine and the date.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "bench"
BENCHMARKS = [  # (name, script, extra arguments)
    ("controlplane", "bench/controlplane.py", []),
    ("heap", "bench/heap.py", []),
    ("dataplane", "bench/dataplane.py", []),
    ("endtoend", "bench/endtoend.py", ["--rounds", "7"]),
]
TARGETS = """Targets (issue 6): >= 2,000 call set-ups per second and p99 set-up latency under
10 ms at 100 concurrent calls; under 2 KiB of controller memory per call; fast path
>= 0.9 x plain forwarding."""


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    RESULTS.mkdir(parents=True, exist_ok=True)
    sections = []
    for name, script, extra in BENCHMARKS:
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
        result = subprocess.run(args, cwd=ROOT)
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
        "each section is in `docs/bench/`.\n\n" + "\n".join(sections))
    print("wrote docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
