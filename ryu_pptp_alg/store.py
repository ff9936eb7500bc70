"""Controller state across restarts: per-gateway records in a local snapshot + journal.

The gateway describes its state as records: ``kind -> {record id -> plain value}`` per
dpid, and hands every change to :meth:`StateStore.append` before the messages that
depend on it leave the controller. :class:`FileStore` keeps two files (and
``<path>.lock``, which keeps a second controller off them):

``<path>`` (the snapshot)
    the full state at some generation, written whole by :meth:`~FileStore.compact`
    (temporary file, fsync, rename, directory fsync), so it is never seen half-written;
``<path>.journal``
    the changes since that snapshot, one framed msgpack record per ``append``, written
    with a single ``os.write``: once ``append`` returns the record is in the kernel, so
    killing the process at any instant loses nothing already appended. Power loss may
    lose what was written since the last fsync: every ``fsync_interval`` seconds
    (:meth:`~FileStore.maybe_sync`, from the 1 s ticker, and at close), or after every
    append when the interval is 0.

Both files start with a header: magic, file format, the caller's record ``schema``,
and the snapshot *generation*. A journal holds changes on top of the snapshot of its
own generation. Compaction writes snapshot G+1 and renames it in before it renames in
the empty journal G+1, so a crash in between leaves snapshot G+1 with journal G,
which is recognised as stale (everything in it is in the snapshot) and ignored; a
journal newer than its snapshot cannot arise and is treated as corruption.

Loading tolerates the damage a crash leaves: a journal whose last record is cut
short (kill -9 mid-write), fails its checksum as the very last record, or trails off
in zero bytes (power loss) keeps everything before it; the tail is cut off with a
warning. Anything else (a damaged record with more after it, a foreign file, a
newer or older file format or record schema) moves both files aside as
``<file>.<reason>-<UTC time>`` (never deleted), logs an error naming the file and
the problem, and starts cold. Only an unusable path (not a directory, no permission,
I/O errors) makes loading raise :class:`StoreError`; so does a write the disk refuses.

Record ids round-trip as dict keys. msgpack has no tuples: a tuple id is written as
an array and comes back as a tuple again (lists are turned into tuples, recursively),
so ids should be ints, strs, bytes or tuples of those; a list id also comes back as
a tuple. Values come back as msgpack made them: tuples as lists, dict keys inside a
value must be ints, strs or bytes. ``None`` as a value deletes the record. Kinds
without records and gateways without records are left out of what ``load`` returns.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol

import msgpack

from ryu_pptp_alg.config import StateBackend, StateConfig

Change = tuple[str, Any, Any]  # (kind, record id, plain value); value None: record deleted
Records = dict[str, dict[Any, Any]]  # kind -> {record id -> plain value}

LOG = logging.getLogger("ryu_pptp_alg.store")

FORMAT = 1  # the file layout of this module (the records' schema is the caller's)
SNAPSHOT_MAGIC = b"RPPTPSNP"
JOURNAL_MAGIC = b"RPPTPJNL"
_HEADER = struct.Struct("<8sHIQ")  # magic, format, schema, generation
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size + _CRC.size  # + crc32 of the header
# A record: length, length ^ LENGTH_CHECK, crc32(payload), payload. The redundant length
# tells a damaged header from a record cut short by the end of the file.
_FRAME = struct.Struct("<III")
FRAME_HEADER = _FRAME.size
LENGTH_CHECK = 0xFFFFFFFF
SNAPSHOT_CHUNK = 4096  # changes per snapshot record: bounded memory for big states
MAX_SCHEMA = 0xFFFFFFFF
_MODE = 0o600  # the records name clients and their addresses


class StoreError(Exception):
    """The store cannot be used: the path is unusable, or the disk failed a write."""


@dataclass
class Loaded:
    gateways: dict[int, Records]  # dpid -> records; empty when cold
    status: str  # "cold" (no file), "restored", "moved-aside" (unusable file: started cold)
    detail: str  # for logs and REST
    changes_replayed: int  # changes applied from the journal (the snapshot's are in detail)
    bytes_read: int


class StateStore(Protocol):
    def load(self) -> Loaded: ...

    def append(self, dpid: int, changes: Sequence[Change]) -> None: ...

    def compaction_due(self) -> bool: ...

    def compact(self, gateways: Mapping[int, Records]) -> None: ...

    def maybe_sync(self, now: float) -> None: ...

    def close(self) -> None: ...


class NullStore:
    """``backend: none``: keeps nothing; every start is cold."""

    def load(self) -> Loaded:
        return Loaded({}, "cold", "state is not kept (state.backend: none)", 0, 0)

    def append(self, dpid: int, changes: Sequence[Change]) -> None:
        pass

    def compaction_due(self) -> bool:
        return False

    def compact(self, gateways: Mapping[int, Records]) -> None:
        pass

    def maybe_sync(self, now: float) -> None:
        pass

    def close(self) -> None:
        pass


class _Aside(Exception):
    """A file that cannot be used as it is: move both aside, start cold."""

    def __init__(self, path: Path, problem: str, reason: str = "corrupt") -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.reason = reason  # the moved file's suffix: corrupt, foreign, newer, older


@dataclass
class _Scan:
    payloads: list[tuple[int, Any]]  # (offset, decoded record)
    end: int  # offset after the last good record
    torn: str  # why the tail after ``end`` was dropped, or ""


class FileStore:
    """The ``file`` backend: ``<path>`` snapshot, ``<path>.journal``, ``<path>.lock``.

    One process at a time: the constructor takes an exclusive lock (``flock``) on
    ``<path>.lock`` and raises :class:`StoreError` if another holds it, or if the path
    cannot be used. ``load`` once, then ``append`` / ``compact`` / ``maybe_sync``.
    """

    def __init__(self, path: str | Path, schema: int, fsync_interval: float = 1.0,
                 compact_bytes: int = 16 << 20, logger: logging.Logger | None = None) -> None:
        if isinstance(schema, bool) or not isinstance(schema, int) \
                or not 0 <= schema <= MAX_SCHEMA:
            raise ValueError(f"schema must be an integer 0..{MAX_SCHEMA}, got {schema!r}")
        if not fsync_interval >= 0:
            raise ValueError(f"fsync_interval must be >= 0, got {fsync_interval!r}")
        if compact_bytes <= 0:
            raise ValueError(f"compact_bytes must be > 0, got {compact_bytes!r}")
        self.path = Path(path)
        self.journal_path = Path(f"{self.path}.journal")
        self.lock_path = Path(f"{self.path}.lock")
        self._snapshot_tmp = Path(f"{self.path}.tmp")
        self._journal_tmp = Path(f"{self.journal_path}.tmp")
        self.schema = schema
        self.fsync_interval = float(fsync_interval)
        self.compact_bytes = compact_bytes
        self.log = logger or LOG
        self._sync_every = self.fsync_interval == 0
        self._fd: int | None = None  # the journal, open for appending once loaded
        self._generation = 0
        self._journal_size = 0  # bytes in the journal: where an undone append cuts back to
        self._compact_at = compact_bytes
        self._dirty = False  # appended since the last fsync
        self._synced_at: float | None = None
        self._failed = ""  # why appends stopped (a compaction failed half-way)
        self._lock_fd: int | None = self._lock()

    # -- the interface ---------------------------------------------------------------------

    def load(self) -> Loaded:
        """Read the snapshot and replay the journal; leave the journal open for appends."""
        if self._lock_fd is None:
            raise StoreError(f"{self.path}: the store is closed")
        self._close_journal()
        self._failed = ""
        for stale in (self._snapshot_tmp, self._journal_tmp):  # a compaction cut short
            self._unlink(stale)
        snapshot = self._read(self.path)
        journal = self._read(self.journal_path)
        bytes_read = len(snapshot or b"") + len(journal or b"")
        try:
            if snapshot is None and journal is None:
                self._start_fresh()
                detail = f"no state at {self.path}: starting cold"
                self.log.info("state: %s", detail)
                return Loaded({}, "cold", detail, 0, 0)
            return self._restore(snapshot, journal, bytes_read)
        except _Aside as problem:
            self._close_journal()
            moved = self._move_aside(problem.reason)
            self._start_fresh()
            detail = (f"{problem}; moved aside to {', '.join(map(str, moved))}; "
                      "starting cold")
            self.log.error("state: %s", detail)
            return Loaded({}, "moved-aside", detail, 0, bytes_read)
        except OSError as err:
            self._close_journal()
            raise StoreError(f"{self.path}: cannot set up the state files: "
                             f"{err.strerror or err}") from err

    def append(self, dpid: int, changes: Sequence[Change]) -> None:
        """Journal one gateway's changes; in the kernel (safe from kill -9) on return.

        Raises TypeError/ValueError for what msgpack cannot write (nothing is written)
        and StoreError if the disk refuses it (the journal is cut back to before it).
        """
        fd = self._fd
        if fd is None:
            raise StoreError(self._unusable())
        if type(changes) is not list and type(changes) is not tuple:
            changes = list(changes)
        if not changes:
            return
        if type(dpid) is not int:
            raise TypeError(f"dpid must be an int, got {dpid!r}")
        for kind, record_id, _value in changes:
            if type(kind) is not str:
                raise TypeError(f"record kind must be a str, got {kind!r}")
            if type(record_id) is not int and type(record_id) is not str:
                _check_id(record_id)
        payload = msgpack.packb((dpid, changes))
        size = len(payload)
        frame = _FRAME.pack(size, size ^ LENGTH_CHECK, zlib.crc32(payload)) + payload
        try:
            written = os.write(fd, frame)
            while written < len(frame):  # only a full disk or a signal cuts a file write
                written += os.write(fd, frame[written:])
            if self._sync_every:
                os.fdatasync(fd)
        except OSError as err:
            self._cut_back(fd, err)
            raise StoreError(f"{self.journal_path}: cannot append: "
                             f"{err.strerror or err}") from err
        self._journal_size += len(frame)
        self._dirty = not self._sync_every

    def compaction_due(self) -> bool:
        """The journal has grown past ``compact_bytes`` and past the snapshot's size
        (so rewriting the snapshot costs at most about as much as the journal did)."""
        return self._fd is not None and self._journal_size >= self._compact_at

    def compact(self, gateways: Mapping[int, Records]) -> None:
        """Replace snapshot and journal with ``gateways``: the full current state,
        every change appended so far included. A crash at any point leaves either the
        old or the new state on disk. Raises StoreError on a disk error: before the
        new snapshot is in place the store goes on as it was; after, appends fail
        (they would land in a journal the next load ignores) until ``load`` again."""
        fd = self._fd
        if fd is None:
            raise StoreError(self._unusable())
        generation = self._generation + 1
        snapshot = self._snapshot_bytes(gateways, generation)
        try:
            self._write_file(self._snapshot_tmp, snapshot)
            new_fd = self._new_journal(self._journal_tmp, generation)
        except OSError as err:
            self._compaction_failed(err)
        try:
            os.replace(self._snapshot_tmp, self.path)
        except OSError as err:
            if os.path.lexists(self._snapshot_tmp):  # not renamed: the old pair stands
                os.close(new_fd)
                self._compaction_failed(err)
            self._compaction_failed(err, new_fd)
        try:
            self._sync_dir()  # the snapshot's rename is durable before the journal's
            os.replace(self._journal_tmp, self.journal_path)
            self._sync_dir()
        except OSError as err:
            self._compaction_failed(err, new_fd)
        os.close(fd)  # nothing to sync: everything in it is in the snapshot
        self._fd = new_fd
        self._generation = generation
        self._journal_size = HEADER_SIZE
        self._dirty = False
        self._compact_at = HEADER_SIZE + max(self.compact_bytes, len(snapshot))

    def _compaction_failed(self, err: OSError, new_fd: int | None = None) -> NoReturn:
        """Clean up and raise StoreError. ``new_fd`` given: the new snapshot is in place,
        so the current journal is stale and appending to it would lose changes."""
        why = err.strerror or str(err)
        if new_fd is None:
            self._unlink(self._snapshot_tmp)
            self._unlink(self._journal_tmp)
            self._compact_at = self._journal_size + self.compact_bytes  # retry later
            self.log.error("state: %s: compaction failed, the journal goes on: %s",
                           self.path, why)
        else:
            os.close(new_fd)
            self._fail(f"compaction failed after the new snapshot was in place: {why}")
        raise StoreError(f"{self.path}: compaction failed: {why}") from err

    def maybe_sync(self, now: float) -> None:
        """fsync the journal if anything was appended and ``fsync_interval`` seconds
        have passed since the last fsync (``now``: seconds on any clock; one that stepped
        back counts as the interval passed, so a wall clock set back cannot stall it)."""
        if not self._dirty or self._fd is None:
            return
        if self._synced_at is not None and 0 <= now - self._synced_at < self.fsync_interval:
            return
        self._synced_at = now
        self._sync_journal()

    def close(self) -> None:
        """fsync what is pending, close the files, release the lock. Idempotent."""
        try:
            if self._fd is not None and self._dirty:
                self._sync_journal()
        finally:
            self._close_journal()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- loading ---------------------------------------------------------------------------

    def _restore(self, snapshot: bytes | None, journal: bytes | None,
                 bytes_read: int) -> Loaded:
        gateways: dict[int, Records] = {}
        generation = 0
        notes = []
        if snapshot is not None:
            generation = self._header(self.path, snapshot, SNAPSHOT_MAGIC)
            in_snapshot = self._replay_snapshot(snapshot, gateways)
            notes.append(f"snapshot generation {generation}: {in_snapshot:,} records")
        replayed = 0
        if journal is None:
            # only someone else removes it: the snapshot alone is consistent, but old
            self.log.warning("state: %s is missing: changes made after the snapshot "
                             "are lost", self.journal_path)
            notes.append("journal missing")
            self._generation = generation
            self._replace_journal()
        else:
            journal_generation = self._header(self.journal_path, journal, JOURNAL_MAGIC)
            if journal_generation > generation:
                raise _Aside(self.journal_path,
                             f"journal of generation {journal_generation}, but "
                             + (f"the snapshot is generation {generation}"
                                if snapshot is not None else "the snapshot is missing"))
            self._generation = generation
            if journal_generation < generation:
                # a compaction stopped between its two renames: all of it is in the snapshot
                self.log.warning("state: %s is from generation %d, older than the snapshot "
                                 "(a compaction was cut short): ignored", self.journal_path,
                                 journal_generation)
                notes.append(f"journal of generation {journal_generation} ignored "
                             "(compaction cut short)")
                self._replace_journal()
            else:
                scan = self._scan(journal, self.journal_path, tolerate_tail=True)
                for offset, payload in scan.payloads:
                    replayed += self._apply(gateways, payload, self.journal_path, offset)
                note = f"journal: {replayed:,} changes replayed"
                if scan.torn:
                    dropped = len(journal) - scan.end
                    self.log.warning("state: %s: %s: %d bytes dropped (what a crash "
                                     "mid-write leaves)", self.journal_path, scan.torn, dropped)
                    note += f", torn tail of {dropped:,} bytes dropped"
                notes.append(note)
                self._open_journal(scan.end)
        _prune(gateways)
        self._compact_at = max(self.compact_bytes, len(snapshot or b"")) + HEADER_SIZE
        count = sum(len(table) for kinds in gateways.values() for table in kinds.values())
        detail = (f"{count:,} records of {len(gateways)} gateways from {self.path} "
                  f"({'; '.join(notes)})")
        self.log.info("state: restored %s", detail)
        return Loaded(gateways, "restored", detail, replayed, bytes_read)

    def _header(self, path: Path, data: bytes, magic: bytes) -> int:
        """Check a file's header; its generation."""
        what = "snapshot" if magic == SNAPSHOT_MAGIC else "journal"
        if not data:
            raise _Aside(path, "empty file")
        head = data[:len(magic)]
        if head != magic:
            if head in (SNAPSHOT_MAGIC, JOURNAL_MAGIC):
                raise _Aside(path, f"not a {what}: its header names the other kind of file")
            raise _Aside(path, f"not a ryu-pptp-alg state file (it starts with "
                               f"{data[:16]!r})", "foreign")
        if len(data) < HEADER_SIZE:
            raise _Aside(path, f"header cut short ({len(data)} bytes)")
        (crc,) = _CRC.unpack_from(data, _HEADER.size)
        if zlib.crc32(data[:_HEADER.size]) != crc:
            raise _Aside(path, "damaged header (checksum mismatch)")
        _, file_format, schema, generation = _HEADER.unpack_from(data)
        if file_format > FORMAT:
            raise _Aside(path, f"file format {file_format}, newer than this controller's "
                               f"{FORMAT}", "newer")
        if file_format < FORMAT:
            raise _Aside(path, f"file format {file_format}, older than this controller's "
                               f"{FORMAT}, and no conversion exists", "older")
        if schema > self.schema:
            raise _Aside(path, f"record schema {schema}, newer than this controller's "
                               f"{self.schema}", "newer")
        if schema < self.schema:
            raise _Aside(path, f"record schema {schema}, older than this controller's "
                               f"{self.schema}, and no migration exists", "older")
        return int(generation)

    def _scan(self, data: bytes, path: Path, tolerate_tail: bool) -> _Scan:
        """The records after the header, as (offset, decoded payload).

        With ``tolerate_tail`` (the journal) a last record cut short, a last record
        that fails its checksum, or a tail of zero bytes ends the scan there: that is
        what a crash or a power loss mid-write leaves. Anything else raises _Aside.
        """
        payloads: list[tuple[int, Any]] = []
        view = memoryview(data)
        end = len(data)
        pos = HEADER_SIZE
        while pos < end:
            torn = False  # what a write cut short leaves, if it is the end of the file
            if end - pos < FRAME_HEADER:
                problem = f"last record cut short at offset {pos} (header incomplete)"
                torn = True
            else:
                size, check, crc = _FRAME.unpack_from(data, pos)
                body = pos + FRAME_HEADER
                if size ^ LENGTH_CHECK != check:
                    problem = f"damaged record header at offset {pos}"
                elif body + size > end:
                    problem = (f"last record cut short at offset {pos} ({end - body} of "
                               f"{size} bytes)")
                    torn = True
                elif zlib.crc32(view[body:body + size]) != crc:
                    problem = f"damaged record at offset {pos} (checksum mismatch)"
                    torn = body + size == end
                else:
                    try:
                        payloads.append((pos, msgpack.unpackb(view[body:body + size],
                                                              strict_map_key=False)))
                    except Exception as err:  # whatever msgpack raises: the file is bad
                        raise _Aside(path, f"undecodable record at offset {pos}: "
                                           f"{err}") from err
                    pos = body + size
                    continue
            if tolerate_tail and not torn and data.count(0, pos) == end - pos:
                problem = f"zero bytes from offset {pos} to the end (a power loss)"
                torn = True
            if tolerate_tail and torn:
                return _Scan(payloads, pos, problem)
            raise _Aside(path, problem)
        return _Scan(payloads, end, "")

    def _replay_snapshot(self, data: bytes, gateways: dict[int, Records]) -> int:
        scan = self._scan(data, self.path, tolerate_tail=False)
        if not scan.payloads or type(scan.payloads[-1][1]) is not int:
            raise _Aside(self.path, "no end record (the snapshot is cut short)")
        count = 0
        for offset, payload in scan.payloads[:-1]:
            count += self._apply(gateways, payload, self.path, offset)
        if count != scan.payloads[-1][1]:
            raise _Aside(self.path, f"{count} records where the end record says "
                                    f"{scan.payloads[-1][1]}")
        return count

    @staticmethod
    def _apply(gateways: dict[int, Records], payload: Any, path: Path, offset: int) -> int:
        """Apply one record ``[dpid, [[kind, id, value], ...]]``; how many changes."""
        if type(payload) is not list or len(payload) != 2 or type(payload[0]) is not int \
                or type(payload[1]) is not list:
            raise _Aside(path, f"record of unexpected shape at offset {offset}")
        dpid, changes = payload
        records = gateways.get(dpid)
        if records is None:
            records = gateways[dpid] = {}
        for change in changes:
            if type(change) is not list or len(change) != 3 or type(change[0]) is not str:
                raise _Aside(path, f"change of unexpected shape at offset {offset}")
            kind, record_id, value = change
            if type(record_id) is list:
                record_id = _frozen(record_id)
            table = records.get(kind)
            try:
                if value is None:
                    if table is not None:
                        table.pop(record_id, None)
                elif table is None:
                    records[kind] = {record_id: value}
                else:
                    table[record_id] = value
            except TypeError as err:  # an id that cannot be a key: not written by us
                raise _Aside(path, f"unusable record id at offset {offset}: {err}") from err
        return len(changes)

    # -- writing ---------------------------------------------------------------------------

    def _snapshot_bytes(self, gateways: Mapping[int, Records], generation: int) -> bytes:
        parts = [self._header_bytes(SNAPSHOT_MAGIC, generation)]
        count = 0
        for dpid, records in gateways.items():
            chunk: list[Change] = []
            for kind, table in records.items():
                for record_id, value in table.items():
                    if value is None:
                        continue
                    chunk.append((kind, record_id, value))
                    if len(chunk) == SNAPSHOT_CHUNK:
                        parts.append(_frame(msgpack.packb((dpid, chunk))))
                        count += len(chunk)
                        chunk = []
            if chunk:
                parts.append(_frame(msgpack.packb((dpid, chunk))))
                count += len(chunk)
        parts.append(_frame(msgpack.packb(count)))  # the end record: the snapshot is whole
        return b"".join(parts)

    def _header_bytes(self, magic: bytes, generation: int) -> bytes:
        header = _HEADER.pack(magic, FORMAT, self.schema, generation)
        return header + _CRC.pack(zlib.crc32(header))

    def _write_file(self, path: Path, data: bytes) -> None:
        """Create ``path`` with ``data``, on disk when this returns."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, _MODE)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _new_journal(self, path: Path, generation: int) -> int:
        """An empty journal of ``generation`` at ``path``, on disk; open for appending."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC,
                     _MODE)
        try:
            _write_all(fd, self._header_bytes(JOURNAL_MAGIC, generation))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _replace_journal(self) -> None:
        """Put an empty journal of the current generation in place and append to it."""
        fd = self._new_journal(self._journal_tmp, self._generation)
        try:
            os.replace(self._journal_tmp, self.journal_path)
            self._sync_dir()
        except BaseException:
            os.close(fd)
            raise
        self._set_journal(fd, HEADER_SIZE)

    def _start_fresh(self) -> None:
        """Empty journal and snapshot of generation 0; the journal first, so a crash in
        between leaves a journal without snapshot, which loads as the empty state."""
        self._generation = 0
        self._replace_journal()
        self._write_file(self._snapshot_tmp, self._snapshot_bytes({}, 0))
        os.replace(self._snapshot_tmp, self.path)
        self._sync_dir()
        self._compact_at = self.compact_bytes + HEADER_SIZE

    def _open_journal(self, end: int) -> None:
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_size != end:  # drop a torn tail before appending after it
                os.ftruncate(fd, end)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._set_journal(fd, end)

    def _set_journal(self, fd: int, size: int) -> None:
        self._fd = fd
        self._journal_size = size
        self._dirty = False

    def _move_aside(self, reason: str) -> list[Path]:
        """Rename the snapshot and the journal to ``<name>.<reason>-<UTC time>``."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        moved = []
        try:
            for source in (self.path, self.journal_path):
                if not os.path.lexists(source):
                    continue
                target = Path(f"{source}.{reason}-{stamp}")
                n = 1
                while os.path.lexists(target):
                    target = Path(f"{source}.{reason}-{stamp}-{n}")
                    n += 1
                os.rename(source, target)
                moved.append(target)
            self._sync_dir()
        except OSError as err:
            raise StoreError(f"{self.path}: cannot move the unusable state file aside: "
                             f"{err.strerror or err}") from err
        return moved

    # -- plumbing --------------------------------------------------------------------------

    def _lock(self) -> int:
        """Check the path can hold the state files and take the lock; its fd."""
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"{self.path}: cannot create the directory {parent}: "
                             f"{err.strerror or err}") from err
        if not parent.is_dir():
            raise StoreError(f"{self.path}: {parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(f"{self.path}: cannot create files in {parent}: "
                             "permission denied")
        for path in (self.path, self.journal_path):
            if os.path.lexists(path):
                if not path.is_file():
                    raise StoreError(f"{self.path}: {path} exists and is not a regular file")
                if not os.access(path, os.R_OK | os.W_OK):
                    raise StoreError(f"{self.path}: cannot read and write {path}: "
                                     "permission denied")
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _MODE)
        except OSError as err:
            raise StoreError(f"{self.path}: cannot open {self.lock_path}: "
                             f"{err.strerror or err}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(f"{self.path}: in use by another process (pid {holder}; "
                             f"lock {self.lock_path})") from err
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StoreError(f"{path}: cannot read: {err.strerror or err}") from err

    def _sync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _sync_journal(self) -> None:
        assert self._fd is not None
        try:
            os.fdatasync(self._fd)
        except OSError as err:  # what was written is still in the kernel: keep going
            raise StoreError(f"{self.journal_path}: fsync failed: "
                             f"{err.strerror or err}") from err
        self._dirty = False

    def _cut_back(self, fd: int, err: OSError) -> None:
        """Undo a failed append, so no partial record sits before later ones."""
        try:
            os.ftruncate(fd, self._journal_size)
        except OSError as again:
            self._fail(f"an append failed ({err.strerror or err}) and could not be "
                       f"undone ({again.strerror or again})")

    def _fail(self, reason: str) -> None:
        self._failed = reason
        self._close_journal()
        self.log.error("state: %s: %s; changes are no longer saved", self.path, reason)

    def _unusable(self) -> str:
        if self._failed:
            return f"{self.path}: the store failed: {self._failed}"
        if self._lock_fd is None:
            return f"{self.path}: the store is closed"
        return f"{self.path}: load() first"

    def _close_journal(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as err:
            self.log.warning("state: cannot remove %s: %s", path, err.strerror or err)


def _frame(payload: bytes) -> bytes:
    size = len(payload)
    return _FRAME.pack(size, size ^ LENGTH_CHECK, zlib.crc32(payload)) + payload


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _check_id(record_id: Any) -> None:
    """TypeError unless the id can come back from the file as a dict key."""
    try:
        hash(record_id)
    except TypeError:
        hash(_frozen(record_id))  # lists come back as tuples; a dict inside never can


def _frozen(record_id: Any) -> Any:
    """A record id as it comes back from msgpack: lists (and tuples) as tuples."""
    if type(record_id) is list or type(record_id) is tuple:
        return tuple(_frozen(item) for item in record_id)
    return record_id


def _prune(gateways: dict[int, Records]) -> None:
    """Drop kinds without records and gateways without kinds."""
    for dpid in list(gateways):
        records = gateways[dpid]
        for kind in [kind for kind, table in records.items() if not table]:
            del records[kind]
        if not records:
            del gateways[dpid]


def _etcd_store(config: StateConfig, schema: int, logger: logging.Logger | None) -> StateStore:
    from ryu_pptp_alg.etcdstore import EtcdStore  # it builds on this module

    return EtcdStore(config.endpoints, config.prefix, schema, logger=logger)


BACKENDS: dict[StateBackend, Callable[[StateConfig, int, logging.Logger | None], StateStore]] = {
    StateBackend.FILE: lambda config, schema, logger: FileStore(
        config.path, schema, config.fsync_interval, logger=logger),
    StateBackend.ETCD: _etcd_store,
    StateBackend.NONE: lambda config, schema, logger: NullStore(),
}


def open_store(config: StateConfig, schema: int,
               logger: logging.Logger | None = None) -> StateStore:
    """The store ``config`` names; StoreError if its path cannot be used."""
    return BACKENDS[config.backend](config, schema, logger)


__all__ = [
    "BACKENDS",
    "Change",
    "FileStore",
    "Loaded",
    "NullStore",
    "Records",
    "StateStore",
    "StoreError",
    "open_store",
]
