"""Failover time of a high-availability pair: kill -9 the master again and again.

test_failover's set-up (three local etcd members, controllers a and b, one OVS bridge
connected to both, real pptp/pptpd peers: two calls on the fast path, two sharing a key
on the slow path, LCP echo every 0.5 s). Each round kills the current master with
SIGKILL and measures the time until the other reports itself master (REST, polled every
20 ms) and, over the 6 s after the kill, the longest gap between echo replies of the
slow-path calls and the replies the fast-path calls missed. The killed controller is then
started again (it stays standby: no rebalancing) and the next round waits ``--settle``
seconds, for it to be connected and known to the election.

    .venv/bin/python bench/failover.py --kills 10 --markdown docs/bench/failover.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.ppp_standin import echo_report
from ryu_pptp_alg.testbed.proc import wait_for
from tests.integration.test_failover import (
    DPID,
    LEASE_TTL,
    build_group,
    master_of,
    role,
)
from tests.integration.test_restart import start_calls

WINDOW = 6.0


def run(kills: int, settle: float, workdir: Path) -> dict[str, Any]:
    ovs.ensure_running()
    rounds: list[dict[str, Any]] = []
    with ExitStack() as stack:
        group = build_group(stack, secrets.token_hex(2), workdir)
        sc, controllers = group.sc, group.controllers
        calls = start_calls(sc)
        time.sleep(2)
        for i in range(kills):
            master = wait_for(lambda: master_of(controllers), 30, "a master", interval=0.05)
            standby = next(c for c in controllers if c is not master)
            began = time.monotonic()
            master.kill(signal.SIGKILL)
            wait_for(lambda s=standby: role(s) == "master", 15, "failover", interval=0.02)
            took = time.monotonic() - began
            time.sleep(max(0.0, began + WINDOW - time.monotonic()))
            slow_gap, fast_missing = 0.0, 0
            for call in calls:
                for get in (call.client.stats, call.server_status):
                    report = echo_report(get(), began - 1.0, began + WINDOW - 1.0)
                    if call.path == "slow":
                        slow_gap = max(slow_gap, report.longest_gap)
                    else:
                        fast_missing += len(report.missing)
            rounds.append({"killed": master.config["ha"]["instance"],
                           "to_new_master_s": round(took, 3),
                           "slow_path_longest_gap_s": round(slow_gap, 3),
                           "fast_path_replies_missed": fast_missing})
            print(f"kill {i + 1}: {rounds[-1]}", flush=True)
            master.restart()
            master.wait_connected(DPID, 30)
            time.sleep(settle)
    took_all = [r["to_new_master_s"] for r in rounds]
    gaps = [r["slow_path_longest_gap_s"] for r in rounds]
    return {"kills": kills, "lease_ttl": LEASE_TTL, "rounds": rounds,
            "to_new_master_s": {"median": statistics.median(took_all), "worst": max(took_all),
                                "best": min(took_all)},
            "slow_path_longest_gap_s": {"median": statistics.median(gaps), "worst": max(gaps)},
            "fast_path_replies_missed": sum(r["fast_path_replies_missed"] for r in rounds)}


def markdown(result: dict[str, Any], command: str) -> str:
    t, g = result["to_new_master_s"], result["slow_path_longest_gap_s"]
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return "\n".join([
        "## Failover of a high-availability pair (issue 15)", "",
        f"Command: `{command}` (as root)", "",
        f"Measured {when} on {os.cpu_count()} cores. {result['kills']} kills -9 of the "
        f"master, lease TTL {result['lease_ttl']} s, three local etcd members, real PPTP "
        "peers (LCP echo every 0.5 s).", "",
        "| | median | worst | best |", "|---|---:|---:|---:|",
        f"| kill to the standby reporting master | {t['median']:.2f} s | {t['worst']:.2f} s "
        f"| {t['best']:.2f} s |",
        f"| slow-path calls: longest gap between echo replies | {g['median']:.2f} s | "
        f"{g['worst']:.2f} s | |",
        "",
        f"Fast-path calls missed {result['fast_path_replies_missed']} echo replies over all "
        "kills (the switch forwards their GRE; the controllers are not in the path).", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds after the killed one is back, before the next kill")
    parser.add_argument("--quick", action="store_true", help="three kills")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    kills = min(args.kills, 3) if args.quick else args.kills
    with tempfile.TemporaryDirectory(prefix="failover-") as workdir:
        result = run(kills, args.settle, Path(workdir))
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(result, " ".join(["bench/failover.py",
                                                             *sys.argv[1:]])))


if __name__ == "__main__":
    main()
