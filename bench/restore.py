"""The state store's cost: CPU per call set-up, bytes per call on disk, restore time.

The set-ups of ``heap.py`` (SYN, SYN-ACK, SCCRQ, SCCRP, OCRQ, OCRP) go straight into
one ``Gateway`` in this process, as there. Rows, in interleaved rounds:
- ``none``: the records' changes are dropped (what the gateway costs with no store);
- ``file``: each packet-in's changes are encoded and appended to the file store's
  journal before its messages would leave, as ``Alg`` does (fsync once a second).
Then, with N calls up: the journal and the compacted snapshot per call, and a
restart's restore time: load the store, rebuild the gateway's records and indexes,
and compare the switch's flows (all still there) with the records.

    .venv/bin/python bench/restore.py --calls 10000 50000
"""

from __future__ import annotations

import argparse
import datetime
import gc
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import report
from heap import Driver

from ryu_pptp_alg import compiled, pipeline
from ryu_pptp_alg.app import freeze_startup_objects
from ryu_pptp_alg.flowtable import diff, entry_of
from ryu_pptp_alg.gateway import Gateway
from ryu_pptp_alg.records import SCHEMA
from ryu_pptp_alg.store import FileStore

DPID = 1


class StoringDriver(Driver):
    """``Driver`` whose gateway's changes go to a store (or nowhere) after each event,
    inside the timed region, as the app does."""

    def __init__(self, pool: int, servers: int, store: FileStore | None) -> None:
        self.store = store
        super().__init__(pool, servers)

    def packet_in(self, port: int, frame: bytes, cookie: int) -> list[Any]:
        started = time.process_time()
        msgs = self.gateway.packet_in(port, frame, cookie)
        changes = self.gateway.take_changes() if self.store is not None else None
        if changes:  # (the app fsyncs once a second, from its ticker: not per event)
            assert self.store is not None
            self.store.append(DPID, changes)
        elif self.store is None:
            self.gateway.state.dirty.clear()
        out = self._deliver(msgs)
        self.busy += time.process_time() - started
        return out


def setup_cost(calls: int, rounds: int, pool: int, servers: int) -> dict[str, Any]:
    """CPU per set-up of the gateway without and with the file store."""
    per_row: dict[str, list[float]] = {"none": [], "file": []}
    for _ in range(rounds):
        for row in ("none", "file"):
            with tempfile.TemporaryDirectory() as tmp:
                store = None
                if row == "file":
                    store = FileStore(Path(tmp) / "state.msgpack", SCHEMA, fsync_interval=1.0)
                    store.load()
                driver = StoringDriver(pool, servers, store)
                warm = calls // 10
                for i in range(warm):
                    driver.call(i)
                busy0 = driver.busy
                for i in range(warm, calls):
                    driver.call(i)
                per_row[row].append(1e6 * (driver.busy - busy0) / (calls - warm))
                if store is not None:
                    store.close()
            gc.collect()
    none = statistics.median(per_row["none"])
    file = statistics.median(per_row["file"])
    return {"calls": calls, "rounds": rounds,
            "none_us_per_setup": round(none, 1), "file_us_per_setup": round(file, 1),
            "store_us_per_setup": round(file - none, 1),
            "none_runs": [round(v, 1) for v in per_row["none"]],
            "file_runs": [round(v, 1) for v in per_row["file"]]}


def restore_at(calls: int, pool: int, servers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.msgpack"
        store = FileStore(path, SCHEMA, fsync_interval=1.0)
        store.load()
        driver = StoringDriver(pool, servers, store)
        for i in range(calls):
            driver.call(i)
        journal_bytes = Path(f"{path}.journal").stat().st_size
        # What the switch holds: every flow the records want (a restart keeps them all).
        present = [entry_of(m) for m in driver.gateway.wanted_flows()]
        store.compact({DPID: driver.gateway.state.snapshot()})
        snapshot_bytes = path.stat().st_size
        store.close()
        config = driver.gateway.config
        timeouts = driver.gateway.timeouts
        del driver
        gc.collect()
        started = time.perf_counter()
        store = FileStore(path, SCHEMA)
        loaded = store.load()
        loaded_at = time.perf_counter()
        gateway = Gateway(config, timeouts)
        gateway.restore(loaded.gateways[DPID])
        restored_at = time.perf_counter()
        changes = diff(gateway.wanted_flows(), [e for e in present if pipeline.ours(e.cookie)])
        done = time.perf_counter()
        store.close()
        assert len(gateway.state.calls) == calls, "every call restored"
        assert not changes.adds and not changes.deletes, "no flow touched"
    return {"calls": calls, "journal_bytes_per_call": round(journal_bytes / calls, 1),
            "snapshot_bytes_per_call": round(snapshot_bytes / calls, 1),
            "load_s": round(loaded_at - started, 3),
            "rebuild_s": round(restored_at - loaded_at, 3),
            "flow_compare_s": round(done - restored_at, 3),
            "restore_s": round(done - started, 3), "flows_kept": changes.kept}


def main(argv: list[str] | None = None) -> int:
    parser_ = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser_.add_argument("--calls", type=int, nargs="+", default=[10000, 50000],
                         help="calls up for the restore rows")
    parser_.add_argument("--cost-calls", type=int, default=5000)
    parser_.add_argument("--rounds", type=int, default=5)
    parser_.add_argument("--pool", type=int, default=254)
    parser_.add_argument("--servers", type=int, default=254)
    parser_.add_argument("--quick", action="store_true", help="small and fast")
    parser_.add_argument("--json", type=Path)
    parser_.add_argument("--markdown", type=Path)
    args = parser_.parse_args(argv)
    if args.quick:
        args.calls, args.cost_calls, args.rounds = [2000], 1000, 2
    freeze_startup_objects()
    started = time.perf_counter()
    cost = setup_cost(args.cost_calls, args.rounds, args.pool, args.servers)
    print(f"gateway CPU per set-up ({compiled.BUILD}): {cost['none_us_per_setup']:.0f} us "
          f"without a store, {cost['file_us_per_setup']:.0f} us with the file store "
          f"(+{cost['store_us_per_setup']:.0f} us)")
    restores = []
    for calls in args.calls:
        row = restore_at(calls, args.pool, args.servers)
        restores.append(row)
        print(f"{calls} calls: journal {row['journal_bytes_per_call']:.0f} B/call, snapshot "
              f"{row['snapshot_bytes_per_call']:.0f} B/call; restore {row['restore_s']:.2f} s "
              f"(load {row['load_s']:.2f}, rebuild {row['rebuild_s']:.2f}, "
              f"flows {row['flow_compare_s']:.2f}), {row['flows_kept']} flows kept")
    result = {
        "benchmark": "restore", "machine": report.machine(), "build": compiled.BUILD,
        "cost": cost, "restores": restores,
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(time.perf_counter() - started, 1)}
    report.save(result, args.json, args.markdown, markdown)
    return 0


def markdown(result: dict[str, Any]) -> str:
    cost = result["cost"]
    lines = [
        f"## State store: cost per set-up, bytes per call, restore time ({result['build']})",
        "", f"Command: `{result['command']}`  ",
        f"Date: {result['date']}; took {result['elapsed_s']} s  ",
        f"{result['machine']['summary']}", "",
        f"{cost['calls']} outbound set-ups driven into one `Gateway` in-process (as "
        f"`heap.py`), median of {cost['rounds']} interleaved rounds: the gateway's CPU per "
        "set-up with its records' changes dropped, and encoded and appended to the file "
        "store's journal before the messages would leave (fsync once a second).", "",
        "| no store | file store | the store's share |", "|---:|---:|---:|",
        f"| {cost['none_us_per_setup']:.0f} µs | {cost['file_us_per_setup']:.0f} µs "
        f"| {cost['store_us_per_setup']:.0f} µs |", "",
        "A restart with N calls up: load the snapshot (compacted) and the journal, rebuild "
        "records and indexes, and compare the switch's flows (all kept) with the records.",
        "", "| calls | journal per call | snapshot per call | load | rebuild | flow compare "
        "| restore | flows kept |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["restores"]:
        lines.append(f"| {row['calls']:,} | {row['journal_bytes_per_call']:.0f} B "
                     f"| {row['snapshot_bytes_per_call']:.0f} B | {row['load_s']:.2f} s "
                     f"| {row['rebuild_s']:.2f} s | {row['flow_compare_s']:.2f} s "
                     f"| {row['restore_s']:.2f} s | {row['flows_kept']:,} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
