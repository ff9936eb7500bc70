#!/usr/bin/env python3
"""The state store's costs (ryu_pptp_alg/store.py): µs per append, per load, per
compaction, and bytes per record on disk. Not part of ``make bench``; prints plain figures.

An append here is what a call set-up journals at a time: 3 records of about 100 bytes
(msgpack) each. A set-up makes about 6 appends and costs about 460 µs of CPU, so the
store's share is 6 x the append figure / 460 µs. Loads and compactions are of states of
N such records, from the snapshot alone and from the journal alone.

    .venv/bin/python bench/store.py [--dir DIR] [--appends N] [--records N ...]

DIR (default: a temporary directory under /var/tmp, i.e. on disk, not tmpfs) decides the
file system the figures are for.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ryu_pptp_alg.store import Change, FileStore, Records

SCHEMA = 1


def record(i: int) -> Change:
    """About 100 bytes of msgpack, shaped like a call record: ints, addresses, a state."""
    return ("call", i, [i, 1, 167772171 + i % 250, 1723, 3325256714, 40000 + i % 20000,
                        i & 0xFFFF, (i * 7) & 0xFFFF, "established", "fast", 1_700_000_000.25,
                        1_700_000_100.5, 17, 4242, [i % 254, 3], "10.0.0.11", b"\x0e\x00\x00\x01",
                        "edge-1/pool-a"])


def set_up(i: int) -> list[Change]:
    return [record(3 * i), record(3 * i + 1), record(3 * i + 2)]


def best_of(runs: int, work: Callable[[], Any]) -> float:
    """The fastest of ``runs`` runs, in seconds: the least disturbed by the machine."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def fresh(directory: Path, name: str) -> FileStore:
    store = FileStore(directory / name / "state.msgpack", SCHEMA, fsync_interval=3600,
                      compact_bytes=1 << 40)
    store.load()
    return store


def bench_append(directory: Path, appends: int) -> None:
    changes = [set_up(i) for i in range(appends)]
    payload = len(msgpack.packb((1, changes[0])))
    per_append = []
    for run in range(5):
        store = fresh(directory, f"append-{run}")
        start = time.perf_counter()
        for batch in changes:
            store.append(1, batch)
        per_append.append((time.perf_counter() - start) / appends)
        store.close()
    best, median = min(per_append) * 1e6, statistics.median(per_append) * 1e6
    print(f"append: 3 records, {payload} bytes of msgpack: {best:.2f} µs best, "
          f"{median:.2f} µs median of 5 runs x {appends:,} appends (no fsync)")
    floor = []
    for run in range(5):  # the design's floor: one packb and one write, nothing else
        fd = os.open(directory / f"floor-{run}", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        start = time.perf_counter()
        for batch in changes:
            os.write(fd, msgpack.packb((1, batch)))
        floor.append((time.perf_counter() - start) / appends)
        os.close(fd)
    print(f"  of which msgpack.packb + os.write alone: {statistics.median(floor) * 1e6:.2f} µs "
          "median (the rest: framing, crc32, checks)")
    print(f"  per call set-up (6 appends): {6 * median:.1f} µs = "
          f"{6 * median / 460 * 100:.1f} % of 460 µs")
    store = FileStore(directory / "sync" / "state.msgpack", SCHEMA, fsync_interval=0)
    store.load()
    count = 200
    start = time.perf_counter()
    for batch in changes[:count]:
        store.append(1, batch)
    synced = (time.perf_counter() - start) / count * 1e6
    store.close()
    print(f"append with fsync_interval 0 (fdatasync each): {synced:,.0f} µs")
    store = fresh(directory, "tick")
    for batch in changes[:2000]:
        store.append(1, batch)
    tick = best_of(1, lambda: store.maybe_sync(time.monotonic())) * 1e6
    store.close()
    print(f"maybe_sync after 2,000 appends (one fdatasync): {tick:,.0f} µs")


def bench_state(directory: Path, records: int) -> None:
    state: dict[int, Records] = {1: {"call": {}}}
    store = fresh(directory, f"journal-{records}")
    for i in range(records // 3):
        batch = set_up(i)
        store.append(1, batch)
        for kind, record_id, value in batch:
            state[1][kind][record_id] = value
    journal_bytes = store.journal_path.stat().st_size
    store.close()
    journal_load = best_of(5, lambda: reload(directory / f"journal-{records}", records))

    store = fresh(directory, f"snapshot-{records}")
    compaction = best_of(3, lambda: store.compact(state))
    snapshot_bytes = store.path.stat().st_size
    store.close()
    snapshot_load = best_of(5, lambda: reload(directory / f"snapshot-{records}", records))
    count = len(state[1]["call"])
    print(f"{count:,} records: load from the snapshot {snapshot_load * 1e6:,.0f} µs "
          f"({snapshot_load * 1e6 / count:.2f} µs/record), from the journal "
          f"{journal_load * 1e6:,.0f} µs ({journal_load * 1e6 / count:.2f} µs/record); "
          f"compaction {compaction * 1e6:,.0f} µs")
    print(f"  bytes per record on disk: snapshot {snapshot_bytes / count:.1f}, "
          f"journal {journal_bytes / count:.1f} (3 records per append)")


def reload(directory: Path, records: int) -> None:
    store = FileStore(directory / "state.msgpack", SCHEMA)
    loaded = store.load()
    store.close()
    assert loaded.status == "restored" and len(loaded.gateways[1]["call"]) == records // 3 * 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--appends", type=int, default=20_000)
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 50_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-",
                                     dir=args.dir or "/var/tmp") as name:
        directory = Path(name)
        fs = os.statvfs(directory)
        print(f"directory {directory} (block size {fs.f_bsize}), Python {sys.version.split()[0]}"
              f", msgpack {'.'.join(map(str, msgpack.version))}")
        bench_append(directory, args.appends)
        for records in args.records:
            bench_state(directory, records)


if __name__ == "__main__":
    main()
