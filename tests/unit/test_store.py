"""The state store (ryu_pptp_alg/store.py): what goes in comes back out, across kill -9,
torn writes, corrupt or foreign files and crashes in the middle of a compaction."""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ryu_pptp_alg import store as store_module
from ryu_pptp_alg.config import StateBackend, StateConfig
from ryu_pptp_alg.store import (
    FRAME_HEADER,
    HEADER_SIZE,
    LENGTH_CHECK,
    FileStore,
    NullStore,
    StoreError,
    open_store,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = 3
LOGGER = "ryu_pptp_alg.store"


def state_path(directory: Path) -> Path:
    return directory / "state" / "state.msgpack"


def opened(path: Path, **kwargs: Any) -> FileStore:
    store = FileStore(path, kwargs.pop("schema", SCHEMA), **kwargs)
    store.load()
    return store


def reloaded(path: Path, **kwargs: Any):
    store = FileStore(path, kwargs.pop("schema", SCHEMA), **kwargs)
    try:
        return store.load()
    finally:
        store.close()


class Model:
    """What the store should hold: dpid -> kind -> id -> value, empties dropped."""

    def __init__(self) -> None:
        self.gateways: dict[int, dict[str, dict[Any, Any]]] = {}

    def apply(self, dpid: int, changes) -> None:
        records = self.gateways.setdefault(dpid, {})
        for kind, record_id, value in changes:
            table = records.setdefault(kind, {})
            if value is None:
                table.pop(record_id, None)
            else:
                table[record_id] = value
            if not table:
                del records[kind]
        if not records:
            del self.gateways[dpid]

    def copy(self) -> dict[int, dict[str, dict[Any, Any]]]:
        return {d: {k: dict(t) for k, t in r.items()} for d, r in self.gateways.items()}


def call(i: int) -> tuple[str, Any, Any]:
    return ("call", i, [i, "10.0.0.11", 1723, b"\x01\x02", 1.5, True])


def populate(path: Path, model: Model, **kwargs: Any) -> list[int]:
    """A journal with a few records over two gateways, deletes included; the journal's
    size after each append."""
    store = opened(path, **kwargs)
    sizes = []
    steps = [(1, [call(1), call(2), ("conn", "a", {"x": 1})]),
             (2, [call(7)]),
             (1, [("call", 2, None), call(3)]),
             (2, [("pair", (5, 6), [1, 2, 3])]),
             (1, [call(4)])]
    for dpid, changes in steps:
        store.append(dpid, changes)
        model.apply(dpid, changes)
        sizes.append(store.journal_path.stat().st_size)
    store.close()
    return sizes


def aside_files(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir()
                  if p.name.startswith(path.name) and "-20" in p.name)


# -- round trips ---------------------------------------------------------------------------


def test_cold_start_creates_the_files_and_reopens_empty(tmp_path):
    path = state_path(tmp_path)  # the directory does not exist yet
    store = FileStore(path, SCHEMA)
    loaded = store.load()
    assert (loaded.status, loaded.gateways, loaded.changes_replayed) == ("cold", {}, 0)
    assert str(path) in loaded.detail
    assert path.is_file() and store.journal_path.is_file() and store.lock_path.is_file()
    store.close()
    again = reloaded(path)
    assert (again.status, again.gateways) == ("restored", {})


def test_appends_load_back_exactly(tmp_path):
    path = state_path(tmp_path)
    model = Model()
    populate(path, model)
    loaded = reloaded(path)
    assert loaded.status == "restored"
    assert loaded.gateways == model.gateways
    assert loaded.gateways[1]["call"] == {1: call(1)[2], 3: call(3)[2], 4: call(4)[2]}
    assert loaded.changes_replayed == 8
    assert loaded.bytes_read == path.stat().st_size + Path(f"{path}.journal").stat().st_size
    assert "journal: 8 changes replayed" in loaded.detail


def test_deleting_every_record_leaves_no_empty_kinds_or_gateways(tmp_path):
    path = state_path(tmp_path)
    store = opened(path)
    store.append(5, [call(1), ("conn", 1, "c")])
    store.append(5, [("call", 1, None), ("conn", 1, None), ("conn", 9, None)])
    store.append(6, [call(2)])
    store.close()
    assert reloaded(path).gateways == {6: {"call": {2: call(2)[2]}}}


def test_many_gateways(tmp_path):
    path = state_path(tmp_path)
    model = Model()
    store = opened(path)
    for dpid in range(1, 200):
        changes = [call(dpid), ("conn", f"c{dpid}", dpid)]
        store.append(dpid * 0x1_0000_0001, changes)
        model.apply(dpid * 0x1_0000_0001, changes)
    store.append(2**64 - 1, [call(0)])
    model.apply(2**64 - 1, [call(0)])
    store.close()
    assert reloaded(path).gateways == model.gateways


def test_ids_and_values_round_trip(tmp_path):
    path = state_path(tmp_path)
    store = opened(path)
    store.append(1, [
        ("k", 7, "int id"),
        ("k", "seven", "str id"),
        ("k", b"\x07", "bytes id"),
        ("k", (1, "a", (2, b"b")), "tuple id, nested"),
        ("k", [3, [4]], "list id"),
        ("v", 1, (1, 2, (3,))),
        ("v", 2, {1: "int key", "s": b"bytes", "f": -0.25, "b": False, "n": None}),
        ("v", 3, -(2**63)),
        ("v", 4, 2**64 - 1),
        ("v", 5, ""),
    ])
    store.close()
    records = reloaded(path).gateways[1]
    assert records["k"] == {7: "int id", "seven": "str id", b"\x07": "bytes id",
                            (1, "a", (2, b"b")): "tuple id, nested", (3, (4,)): "list id"}
    assert all(type(key) is not list for key in records["k"])
    # values come back as msgpack makes them: tuples as lists
    assert records["v"] == {1: [1, 2, [3]], 2: {1: "int key", "s": b"bytes", "f": -0.25,
                                                 "b": False, "n": None},
                            3: -(2**63), 4: 2**64 - 1, 5: ""}


def test_compaction_then_appends_then_load(tmp_path):
    path = state_path(tmp_path)
    model = Model()
    populate(path, model)
    store = opened(path)
    store.compact(model.gateways)
    assert store.journal_path.stat().st_size == HEADER_SIZE
    store.append(1, [("call", 1, None), call(9)])
    model.apply(1, [("call", 1, None), call(9)])
    store.compact(model.gateways)
    store.append(3, [call(10)])
    model.apply(3, [call(10)])
    store.close()
    loaded = reloaded(path)
    assert loaded.gateways == model.gateways
    assert loaded.changes_replayed == 1
    assert "snapshot generation 2" in loaded.detail


def test_compaction_due_once_the_journal_outgrows_threshold_and_snapshot(tmp_path):
    path = state_path(tmp_path)
    store = opened(path, compact_bytes=500)
    model = Model()
    appends = 0
    while not store.compaction_due():
        store.append(1, [call(appends)])
        model.apply(1, [call(appends)])
        appends += 1
    assert 500 <= store.journal_path.stat().st_size < 600
    for i in range(appends, 100):
        store.append(1, [call(i)])
        model.apply(1, [call(i)])
    store.compact(model.gateways)
    assert not store.compaction_due()
    # the snapshot is bigger than compact_bytes: due once the journal outgrows it
    snapshot_size = store.path.stat().st_size
    assert snapshot_size > 3000
    while not store.compaction_due():
        store.append(1, [call(1)])
    assert snapshot_size <= store.journal_path.stat().st_size < snapshot_size + 100
    store.close()


def test_bad_changes_are_refused_and_nothing_is_written(tmp_path):
    path = state_path(tmp_path)
    store = opened(path)
    store.append(1, [call(1)])
    size = store.journal_path.stat().st_size
    with pytest.raises(TypeError):
        store.append(1, [("call", 2, object())])  # msgpack cannot write it
    with pytest.raises(TypeError):
        store.append(1, [("call", {"a": 1}, 1)])  # an id that cannot be a dict key
    with pytest.raises(TypeError):
        store.append(1, [(3, 1, 1)])  # kind not a str
    with pytest.raises(TypeError):
        store.append("1", [call(1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.append(1, [("call", 1)])  # type: ignore[list-item]
    with pytest.raises(OverflowError):
        store.append(1, [("call", 1, 2**64)])
    store.append(1, [])
    assert store.journal_path.stat().st_size == size
    store.close()
    assert reloaded(path).gateways == {1: {"call": {1: call(1)[2]}}}


def test_append_outside_load_and_close_is_refused(tmp_path):
    path = state_path(tmp_path)
    store = FileStore(path, SCHEMA)
    with pytest.raises(StoreError, match="load"):
        store.append(1, [call(1)])
    store.load()
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.append(1, [call(1)])
    with pytest.raises(StoreError, match="closed"):
        store.load()


def test_one_process_at_a_time(tmp_path):
    path = state_path(tmp_path)
    first = opened(path)
    with pytest.raises(StoreError, match=f"in use by another process \\(pid {os.getpid()}"):
        FileStore(path, SCHEMA)
    first.close()
    opened(path).close()


def test_unusable_paths_raise_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the directory"):
        FileStore(blocker / "state.msgpack", SCHEMA)
    (tmp_path / "dir.msgpack").mkdir()
    with pytest.raises(StoreError, match="not a regular file"):
        FileStore(tmp_path / "dir.msgpack", SCHEMA)
    with pytest.raises(ValueError):
        FileStore(tmp_path / "s", SCHEMA, fsync_interval=-1)
    with pytest.raises(ValueError):
        FileStore(tmp_path / "s", -1)


# -- kill -9 -------------------------------------------------------------------------------

CHILD = """
import os, signal, sys
from ryu_pptp_alg.store import FileStore
store = FileStore(sys.argv[1], {schema}, fsync_interval=3600)
store.load()
for i in range(int(sys.argv[2])):
    store.append(1 + i % 3, [("call", i, [i, "x" * 90]), ("conn", i % 7, i)])
    if sys.argv[3] == "ack":
        print(i, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def child(path: Path, count: int, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD.format(schema=SCHEMA), str(path),
                             str(count), mode], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def expected(count: int) -> dict[int, dict[str, dict[Any, Any]]]:
    model = Model()
    for i in range(count):
        model.apply(1 + i % 3, [("call", i, [i, "x" * 90]), ("conn", i % 7, i)])
    return model.gateways


def test_kill_9_right_after_appends_loses_nothing(tmp_path):
    path = state_path(tmp_path)
    proc = child(path, 500, "quiet")
    _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, stderr
    loaded = reloaded(path)
    assert loaded.status == "restored"
    assert loaded.gateways == expected(500)


def test_kill_9_at_an_arbitrary_moment_keeps_every_acknowledged_append(tmp_path):
    path = state_path(tmp_path)
    proc = child(path, 10**7, "ack")
    assert proc.stdout is not None
    acknowledged = -1
    while acknowledged < 2000:  # killed while it appends as fast as it can
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        acknowledged = int(line)
    proc.kill()
    proc.communicate()
    loaded = reloaded(path)
    calls = {i for records in loaded.gateways.values() for i in records["call"]}
    assert set(range(acknowledged + 1)) <= calls  # everything a peer could have seen
    assert calls == set(range(len(calls)))  # and nothing out of order
    assert loaded.gateways == expected(len(calls))


# -- torn tails ----------------------------------------------------------------------------


def rewrite(path: Path, snapshot: bytes, journal: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(snapshot)
    Path(f"{path}.journal").write_bytes(journal)


def test_a_journal_cut_anywhere_in_its_last_record_keeps_the_rest(tmp_path, caplog):
    source = state_path(tmp_path / "source")
    model = Model()
    sizes = populate(source, model)
    snapshot = source.read_bytes()
    journal = Path(f"{source}.journal").read_bytes()
    assert len(journal) == sizes[-1]
    before = Model()
    before.gateways = model.copy()
    before.apply(1, [("call", 4, None)])  # the last append, undone
    path = state_path(tmp_path / "cut")
    for cut in range(sizes[-2], sizes[-1]):
        rewrite(path, snapshot, journal[:cut])
        caplog.clear()
        with caplog.at_level(logging.INFO, LOGGER):
            store = opened(path)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert store.journal_path.stat().st_size == sizes[-2]  # the tail is cut off
        store.append(9, [call(cut)])
        store.close()
        loaded = reloaded(path)
        assert loaded.status == "restored"
        assert loaded.gateways == {**before.gateways, 9: {"call": {cut: call(cut)[2]}}}
        if cut == sizes[-2]:
            assert not warnings  # a clean end: nothing torn
        else:
            (warning,) = warnings
            assert str(store.journal_path) in warning.getMessage()
            assert "cut short" in warning.getMessage()
            assert f"{cut - sizes[-2]} bytes dropped" in warning.getMessage()
        assert not any(r.levelno >= logging.ERROR for r in caplog.records)
        assert aside_files(path) == []


@pytest.mark.parametrize("damage", ["zeros", "last-checksum"])
def test_power_loss_tails_are_dropped_with_a_warning(tmp_path, caplog, damage):
    path = state_path(tmp_path)
    model = Model()
    sizes = populate(path, model)
    journal_path = Path(f"{path}.journal")
    journal = journal_path.read_bytes()
    if damage == "zeros":
        journal_path.write_bytes(journal + bytes(5000))
    else:  # a page of the last record never reached the disk
        model.apply(1, [("call", 4, None)])
        journal_path.write_bytes(journal[:-3] + b"\xff\xfe\xfd")
    with caplog.at_level(logging.WARNING, LOGGER):
        loaded = reloaded(path)
    assert (loaded.status, loaded.gateways) == ("restored", model.gateways)
    assert journal_path.stat().st_size == (sizes[-1] if damage == "zeros" else sizes[-2])
    assert any(str(journal_path) in r.getMessage() for r in caplog.records)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


# -- corrupt, foreign, newer, older --------------------------------------------------------


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x40]) + data[offset + 1:]


def frame(payload: bytes) -> bytes:
    return struct.pack("<III", len(payload), len(payload) ^ LENGTH_CHECK,
                       zlib.crc32(payload)) + payload


def with_header(data: bytes, **fields: int) -> bytes:
    """``data`` with header fields changed and its checksum made right again."""
    magic, file_format, schema, generation = struct.unpack_from("<8sHIQ", data)
    values = {"format": file_format, "schema": schema, "generation": generation, **fields}
    header = struct.pack("<8sHIQ", magic, values["format"], values["schema"],
                         values["generation"])
    return header + struct.pack("<I", zlib.crc32(header)) + data[HEADER_SIZE:]


def second_record(journal: bytes) -> int:
    (size,) = struct.unpack_from("<I", journal, HEADER_SIZE)
    return HEADER_SIZE + FRAME_HEADER + size


# name: (which file, how it is damaged, reason, words in the problem)
CORRUPTIONS: dict[str, tuple[str, Any, str, str]] = {
    "journal checksum mid-file": (
        "journal", lambda d: flip(d, HEADER_SIZE + FRAME_HEADER + 5), "corrupt",
        "checksum mismatch"),
    "journal record length mid-file": (
        "journal", lambda d: flip(d, second_record(d)), "corrupt", "damaged record header"),
    "journal record not msgpack": (
        "journal", lambda d: d[:second_record(d)] + frame(b"\xc1") + d[second_record(d):],
        "corrupt", "undecodable record"),
    "journal record of another shape": (
        "journal", lambda d: d[:second_record(d)] + frame(msgpack.packb({"a": 1}))
        + d[second_record(d):], "corrupt", "unexpected shape"),
    "journal of a later generation": (
        "journal", lambda d: with_header(d, generation=5), "corrupt", "generation 5"),
    "journal header damaged": ("journal", lambda d: flip(d, 12), "corrupt", "damaged header"),
    "journal is garbage": (
        "journal", lambda d: random.Random(1).randbytes(3000), "foreign", "not a ryu-pptp-alg"),
    "journal is a snapshot": ("journal", "snapshot", "corrupt", "not a journal"),
    "snapshot empty": ("snapshot", lambda d: b"", "corrupt", "empty file"),
    "snapshot is garbage": (
        "snapshot", lambda d: random.Random(2).randbytes(5000), "foreign", "not a ryu-pptp-alg"),
    "snapshot is JSON": (
        "snapshot", lambda d: b'{"gateways": [{"dpid": 1}]}\n', "foreign", "not a ryu-pptp-alg"),
    "snapshot header cut short": ("snapshot", lambda d: d[:20], "corrupt", "cut short"),
    "snapshot without its end record": (
        "snapshot", lambda d: d[:HEADER_SIZE], "corrupt", "no end record"),
    "snapshot of a newer file format": (
        "snapshot", lambda d: with_header(d, format=2), "newer", "file format 2, newer"),
    "snapshot of a newer schema": (
        "snapshot", lambda d: with_header(d, schema=SCHEMA + 1), "newer",
        f"record schema {SCHEMA + 1}, newer"),
    "snapshot of an older schema": (
        "snapshot", lambda d: with_header(d, schema=SCHEMA - 1), "older",
        f"record schema {SCHEMA - 1}, older than this controller's {SCHEMA}, and no migration"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_unusable_files_are_moved_aside_and_the_store_starts_cold(tmp_path, caplog, name):
    which, damage, reason, words = CORRUPTIONS[name]
    path = state_path(tmp_path)
    model = Model()
    populate(path, model)
    store = opened(path)
    store.compact(model.gateways)  # a snapshot with records in it
    store.append(1, [call(20)])
    store.append(1, [call(21)])
    store.close()
    journal_path = Path(f"{path}.journal")
    originals = {"snapshot": path.read_bytes(), "journal": journal_path.read_bytes()}
    damaged = dict(originals)
    damaged[which] = originals["snapshot"] if damage == "snapshot" else damage(originals[which])
    rewrite(path, damaged["snapshot"], damaged["journal"])
    bad = path if which == "snapshot" else journal_path

    with caplog.at_level(logging.INFO, LOGGER):
        loaded = reloaded(path)

    assert (loaded.status, loaded.gateways, loaded.changes_replayed) == ("moved-aside", {}, 0)
    assert words in loaded.detail
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert f"{bad}: " in error.getMessage() and words in error.getMessage()
    moved = aside_files(path)
    assert [p.name.rsplit(".", 1)[1].split("-")[0] for p in moved] == [reason, reason]
    moved_snapshot, moved_journal = sorted(moved, key=lambda p: ".journal." in p.name)
    assert moved_snapshot.read_bytes() == damaged["snapshot"]  # never deleted, never changed
    assert moved_journal.read_bytes() == damaged["journal"]
    assert str(moved_snapshot) in error.getMessage()

    # a fresh pair is in place and works as usual
    store = opened(path)
    store.append(4, [call(1)])
    store.close()
    again = reloaded(path)
    assert (again.status, again.gateways) == ("restored", {4: {"call": {1: call(1)[2]}}})
    assert len(aside_files(path)) == 2


def test_a_second_move_aside_does_not_overwrite_the_first(tmp_path):
    path = state_path(tmp_path)
    opened(path).close()
    path.write_bytes(b"first")
    assert reloaded(path).status == "moved-aside"
    path.write_bytes(b"second")
    assert reloaded(path).status == "moved-aside"
    contents = sorted(p.read_bytes() for p in aside_files(path) if ".journal." not in p.name)
    assert contents == [b"first", b"second"]


def test_a_journal_without_snapshot_of_generation_0_loads(tmp_path):
    path = state_path(tmp_path)
    model = Model()
    populate(path, model)
    path.unlink()  # as a crash between a fresh start's two renames leaves it
    assert reloaded(path).gateways == model.gateways


def test_a_snapshot_without_journal_loads_with_a_warning(tmp_path, caplog):
    path = state_path(tmp_path)
    model = Model()
    populate(path, model)
    store = opened(path)
    store.compact(model.gateways)
    store.append(1, [call(30)])
    store.close()
    Path(f"{path}.journal").unlink()
    with caplog.at_level(logging.WARNING, LOGGER):
        loaded = reloaded(path)
    assert (loaded.status, loaded.gateways) == ("restored", model.gateways)
    assert "missing" in caplog.text


# -- crashes and failures during compaction ------------------------------------------------

OLD_STEPS = [(1, [call(1), call(2), ("conn", 1, "c1")]), (1, [("call", 2, None)])]
NEW_STATE = {1: {"call": {3: call(3)[2]}}, 2: {"pair": {(1, 2): "p"}}}


class Crash(BaseException):
    """The process dying at this point: no handler of the store runs."""


def open_in(directory: Path) -> list[int]:
    """This process's file descriptors open on files in ``directory``."""
    fds = []
    for entry in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            continue
        if target.startswith(f"{directory}/"):
            fds.append(int(entry))
    return fds


class Injector:
    """Makes the n-th file-system step fail (OSError) or kill the process (Crash)."""

    STEPS = ("open", "write", "fsync", "fdatasync", "replace", "rename", "ftruncate")

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int, crash: bool) -> None:
        self.n = n
        self.crash = crash
        self.count = 0
        self.fired = False
        for name in self.STEPS:
            monkeypatch.setattr(os, name, self.wrap(getattr(os, name)))

    def wrap(self, real):
        def step(*args, **kwargs):
            if self.count == self.n:
                self.fired = True
                self.count += 1
                if self.crash:
                    raise Crash
                raise OSError(errno.EIO, "injected I/O error")
            self.count += 1
            return real(*args, **kwargs)
        return step


def old_state() -> dict[int, Any]:
    model = Model()
    for dpid, changes in OLD_STEPS:
        model.apply(dpid, changes)
    return model.gateways


@pytest.mark.parametrize("crash", [False, True], ids=["error", "crash"])
def test_compaction_interrupted_at_every_step_leaves_old_or_new_never_mixed(
        tmp_path, monkeypatch, crash):
    seen = set()
    n = 0
    while True:
        path = state_path(tmp_path / f"{n}")
        store = opened(path)
        for dpid, changes in OLD_STEPS:
            store.append(dpid, changes)
        with monkeypatch.context() as patch:
            injector = Injector(patch, n, crash)
            try:
                store.compact(NEW_STATE)
            except (Crash, StoreError):
                assert injector.fired
        if not injector.fired:
            break  # every step has been interrupted once
        appended = False
        if not crash:
            try:  # the store goes on if it safely can, and refuses if it cannot
                store.append(1, [call(99)])
                appended = True
            except StoreError as err:
                assert "failed" in str(err)
        if crash:  # the kernel closes what the killed process had open
            for fd in open_in(path.parent):
                os.close(fd)
        else:
            store.close()
            assert open_in(path.parent) == []  # the failure leaked nothing
        loaded = reloaded(path)
        old = Model()
        old.gateways = old_state()
        if appended:
            old.apply(1, [call(99)])
        assert loaded.gateways in (old.gateways, NEW_STATE), n
        if appended:  # an append the store accepted is never lost
            assert loaded.gateways == old.gateways
        seen.add("old" if loaded.gateways == old.gateways else "new")
        assert not list(path.parent.glob("*.tmp"))  # leftovers cleaned at load
        n += 1
    assert seen == {"old", "new"}  # the interruptions did fall on both sides
    assert n > 8
    store.close()
    assert reloaded(path).gateways == NEW_STATE


def test_journal_rename_failing_stops_appends_until_load(tmp_path, monkeypatch, caplog):
    path = state_path(tmp_path)
    store = opened(path)
    for dpid, changes in OLD_STEPS:
        store.append(dpid, changes)
    real_replace = os.replace

    def replace(source, target):
        if str(target).endswith(".journal"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace)
        with pytest.raises(StoreError, match="No space left"):
            store.compact(NEW_STATE)
    # the new snapshot is in place and the old journal is stale: appending there would
    # lose the change at the next load
    with pytest.raises(StoreError, match="failed"):
        store.append(1, [call(5)])
    caplog.clear()
    with caplog.at_level(logging.WARNING, LOGGER):
        loaded = store.load()
    assert (loaded.status, loaded.gateways) == ("restored", NEW_STATE)
    assert "compaction was cut short" in caplog.text
    store.append(1, [call(5)])
    store.close()
    assert reloaded(path).gateways == {**NEW_STATE, 1: {"call": {3: call(3)[2],
                                                                 5: call(5)[2]}}}


def test_a_failed_append_is_undone(tmp_path, monkeypatch):
    path = state_path(tmp_path)
    store = opened(path)
    store.append(1, [call(1)])
    size = store.journal_path.stat().st_size
    real_write = os.write

    def short_then_full(fd, data):  # half the record goes out, then the disk is full
        if len(data) > 40:
            return real_write(fd, bytes(data)[:20])
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", short_then_full)
        with pytest.raises(StoreError, match="No space left"):
            store.append(1, [call(2)])
    assert store.journal_path.stat().st_size == size  # no torn record before later ones
    store.append(1, [call(3)])
    store.close()
    assert reloaded(path).gateways == {1: {"call": {1: call(1)[2], 3: call(3)[2]}}}


# -- fsync ---------------------------------------------------------------------------------


@pytest.fixture
def syncs(monkeypatch):
    calls: list[int] = []
    for name in ("fsync", "fdatasync"):
        real = getattr(os, name)

        def counted(fd, real=real):
            calls.append(fd)
            return real(fd)
        monkeypatch.setattr(os, name, counted)
    return calls


def test_fsync_interval_0_syncs_every_append(tmp_path, syncs):
    store = opened(state_path(tmp_path), fsync_interval=0)
    syncs.clear()
    for i in range(5):
        store.append(1, [call(i)])
        assert len(syncs) == i + 1
    store.maybe_sync(1e9)
    store.close()
    assert len(syncs) == 5


def test_fsync_interval_syncs_only_from_maybe_sync_and_close(tmp_path, syncs):
    store = opened(state_path(tmp_path), fsync_interval=1.0)
    syncs.clear()
    for i in range(5):
        store.append(1, [call(i)])
    assert syncs == []
    store.maybe_sync(100.0)
    assert len(syncs) == 1
    store.append(1, [call(5)])
    store.maybe_sync(100.5)  # too soon
    assert len(syncs) == 1
    store.maybe_sync(101.0)
    assert len(syncs) == 2
    store.maybe_sync(200.0)  # nothing appended since: nothing to sync
    assert len(syncs) == 2
    store.append(1, [call(7)])
    store.maybe_sync(150.0)  # the clock stepped back: sync rather than wait for it
    assert len(syncs) == 3
    store.append(1, [call(8)])
    store.maybe_sync(150.5)
    assert len(syncs) == 3
    store.close()  # pending: synced at close
    assert len(syncs) == 4
    store2 = opened(state_path(tmp_path), fsync_interval=1.0)
    syncs.clear()
    store2.close()  # nothing pending
    assert syncs == []


# -- backends ------------------------------------------------------------------------------


def test_open_store_follows_the_configuration(tmp_path):
    path = state_path(tmp_path)
    store = open_store(StateConfig(path=path, fsync_interval=0.5), SCHEMA)
    assert isinstance(store, FileStore)
    assert (store.path, store.fsync_interval, store.schema) == (path, 0.5, SCHEMA)
    assert store.load().status == "cold"
    store.close()
    null = open_store(StateConfig(backend=StateBackend.NONE, path=path), SCHEMA)
    assert isinstance(null, NullStore)
    loaded = null.load()
    assert (loaded.status, loaded.gateways) == ("cold", {})
    null.append(1, [call(1)])
    null.compact({})
    null.maybe_sync(1.0)
    assert not null.compaction_due()
    null.close()
    assert set(store_module.BACKENDS) == set(StateBackend)


def test_open_store_names_the_path_it_cannot_use(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=re.escape(str(tmp_path / "file"))):
        open_store(StateConfig(path=tmp_path / "file" / "state.msgpack"), SCHEMA)


# -- property: any sequence of appends, compactions and reopenings ------------------------

ids = st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(max_size=8),
                st.tuples(st.integers(0, 2**32), st.text(max_size=4)))
leaves = st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(max_size=20),
                   st.binary(max_size=20), st.booleans(),
                   st.floats(allow_nan=False), st.none())
values = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.integers(0, 1000), st.text(max_size=4)), inner, max_size=4)),
    max_leaves=10).filter(lambda v: v is not None)
changes = st.lists(st.tuples(st.sampled_from(["conn", "call", "pair"]), ids,
                             st.one_of(st.none(), values)), min_size=1, max_size=5)
operations = st.lists(st.one_of(
    st.tuples(st.just("append"), st.sampled_from([1, 2, 2**64 - 1]), changes),
    st.tuples(st.just("compact")),
    st.tuples(st.just("reopen"))), max_size=25)


@given(operations)
def test_any_history_loads_as_the_model(ops):
    with tempfile.TemporaryDirectory() as directory:
        path = state_path(Path(directory))
        model = Model()
        store = opened(path)
        try:
            for op in ops:
                if op[0] == "append":
                    store.append(op[1], op[2])
                    model.apply(op[1], op[2])
                elif op[0] == "compact":
                    store.compact(model.gateways)
                else:
                    store.close()
                    store = FileStore(path, SCHEMA)
                    assert store.load().gateways == model.gateways
            store.close()
            assert reloaded(path).gateways == model.gateways
        finally:
            store.close()
