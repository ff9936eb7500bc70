"""The ``etcd`` state backend: every record a key in an etcd cluster.

Record ``(kind, id) = value`` of switch ``dpid`` is the key
``<prefix>gateways/<dpid as 16 hex digits>/<kind>/<id>`` holding ``msgpack(value)``;
deleting a record deletes its key. The id is tagged so that it reads back as it was
written: ``i17`` (int), ``s203.0.113.5`` (str), ``m<hex of msgpack>`` (anything else:
tuples come back as tuples, as from :class:`~ryu_pptp_alg.store.FileStore`). So a
standby can read one switch's records (:meth:`EtcdStore.load_gateway`) when it takes
that switch over. ``<prefix>schema`` holds the records' schema; a store holding
another one is refused (other controllers may still be using it: nothing is moved).

:meth:`EtcdStore.append` writes a batch in transactions of at most ``MAX_TXN_OPS``
operations (etcd's default ``--max-txn-ops``); a batch larger than that is not
atomic as a whole. With a guard set for the switch (:meth:`EtcdStore.set_guard`:
the switch's election key and the lease this controller holds it with) each
transaction commits only while that key is still held with that lease, and raises
:class:`NotMaster` (nothing of that transaction written) otherwise: a controller
that lost mastership cannot overwrite its successor's records.

Each request goes to the endpoint that answered last; one that refuses, errs or
takes longer than ``attempt_timeout`` (etcd stalls, not fails, without quorum) is left
for the next, round and round until ``timeout``, which outlasts an etcd leader election
(about 1.2-2.5 s with etcd's default timings: the requests of that moment hang). Then
:class:`~ryu_pptp_alg.store.StoreError`, and etcd counts as down: for the next
``retry_interval`` seconds (doubling up to ``MAX_RETRY_INTERVAL``) every call raises
StoreError at once, so that the controller's event loop does not stall on each change;
then a call tries each endpoint once (``attempt_timeout``), and the first answer ends it.
A write that timed out may still commit later, in rare cases after a later write of the
same record through another member; the next change of that record puts it right.
A record is one key, its latest revision its value: there is no journal to compact,
so :meth:`EtcdStore.compact` does nothing (etcd's own ``--auto-compaction-retention``
bounds the old revisions it keeps).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import etcd3gw
import msgpack
from etcd3gw import exceptions as etcd_errors

from ryu_pptp_alg.store import Change, Loaded, Records, StoreError, _frozen, _prune

LOG = logging.getLogger("ryu_pptp_alg.store")

MAX_TXN_OPS = 128  # etcd's default --max-txn-ops
PAGE = 1000  # keys per range request when loading: each answer quick
MAX_RETRY_INTERVAL = 8.0
MIN_ATTEMPT = 0.2  # seconds: the shortest request timeout, even near the deadline
RETRY_PAUSE = 0.05  # seconds between rounds over the endpoints
API_PATH = "/v3/"  # etcd >= 3.4's HTTP gateway


class NotMaster(StoreError):
    """A guarded write was refused: this controller no longer holds the switch's
    election key with its lease, so another controller is (or will be) its master."""


def gateway_prefix(prefix: str, dpid: int) -> str:
    """Where switch ``dpid``'s records live under ``prefix``."""
    return f"{prefix}gateways/{dpid:016x}/"


def record_key(prefix: str, dpid: int, kind: str, record_id: Any) -> str:
    if "/" in kind or not kind:
        raise ValueError(f"record kind must be a non-empty str without '/', got {kind!r}")
    if type(record_id) is int:
        tagged = f"i{record_id}"
    elif type(record_id) is str:
        tagged = f"s{record_id}"
    else:
        hash(_frozen(record_id))  # TypeError for what cannot come back as a dict key
        tagged = f"m{msgpack.packb(record_id).hex()}"
    return f"{gateway_prefix(prefix, dpid)}{kind}/{tagged}"


def _record_id(tagged: str) -> Any:
    tag, text = tagged[:1], tagged[1:]
    if tag == "i":
        return int(text)
    if tag == "s":
        return text
    if tag == "m":
        return _frozen(msgpack.unpackb(bytes.fromhex(text)))
    raise ValueError(f"unknown record id tag {tag!r}")


def etcd_clients(endpoints: Sequence[str]) -> list[etcd3gw.Etcd3Client]:
    """One etcd3gw client per client URL, each on etcd's HTTP gateway."""
    clients = []
    for url in endpoints:
        parts = urlsplit(url)
        clients.append(etcd3gw.Etcd3Client(
            host=parts.hostname or "127.0.0.1", port=parts.port or 2379,
            protocol=parts.scheme or "http", api_path=API_PATH))
    return clients


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _range_end(prefix: str) -> str:
    """The key after every key starting with ``prefix`` (etcd's prefix range)."""
    raw = prefix.encode()
    return _b64(raw[:-1] + bytes([raw[-1] + 1]))


class EtcdStore:
    """The ``etcd`` backend; one per controller, shared by its switches."""

    def __init__(self, endpoints: Sequence[str], prefix: str, schema: int,
                 timeout: float = 3.0, attempt_timeout: float = 1.0,
                 retry_interval: float = 1.0, logger: logging.Logger | None = None) -> None:
        if not endpoints:
            raise ValueError("endpoints must name at least one etcd client URL")
        if not prefix.endswith("/"):
            raise ValueError(f"prefix must end in /, got {prefix!r}")
        self.endpoints = list(endpoints)
        self.prefix = prefix
        self.schema = schema
        self.log = logger or LOG
        self._clients = etcd_clients(self.endpoints)
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.retry_interval = retry_interval
        self._current = 0  # the endpoint that answered last
        self._down = ""  # why etcd counts as down, or ""
        self._backoff = retry_interval
        self._retry_at = 0.0  # monotonic; while down, calls before it fail at once
        self._guards: dict[int, tuple[str, int]] = {}  # dpid -> (election key, lease id)
        self._closed = False

    # -- guards (set by the election) ------------------------------------------------------

    def set_guard(self, dpid: int, key: str, lease_id: int) -> None:
        """From now on write ``dpid``'s records only while ``key`` is held with
        ``lease_id``."""
        self._guards[dpid] = (key, lease_id)

    def clear_guard(self, dpid: int) -> None:
        """Write ``dpid``'s records unguarded (a single controller, no election)."""
        self._guards.pop(dpid, None)

    def set_reachable(self, reachable: bool, why: str = "") -> None:
        """What the election just found, before any write of ours: etcd cannot be
        reached (writes fail at once instead of stalling the packet-in path for a
        timeout), or can again (the next write goes through without the back-off)."""
        if not reachable and not self._down:
            self._down = why or "the election cannot reach etcd"
            self._retry_at = time.monotonic() + self._backoff
        elif reachable and self._down:
            self._retry_at = 0.0

    def health(self) -> dict[str, Any]:
        """Whether etcd answered the store's last request."""
        return {"backend": "etcd", "ok": not self._down, "error": self._down or None}

    # -- the StateStore interface ----------------------------------------------------------

    def load(self) -> Loaded:
        """Every switch's records (a controller that starts as master of all)."""
        self._check_schema()
        gateways, count, size = self._read(f"{self.prefix}gateways/")
        return self._loaded(gateways, count, size, "every switch")

    def load_gateway(self, dpid: int) -> Records:
        """Switch ``dpid``'s records, as a standby taking it over reads them."""
        self._check_schema()
        gateways, _count, _size = self._read(gateway_prefix(self.prefix, dpid))
        return gateways.get(dpid, {})

    def append(self, dpid: int, changes: Sequence[Change]) -> None:
        """Write one switch's changes; in etcd (on a quorum's disks) on return.

        Raises TypeError/ValueError for what cannot be written (nothing is written),
        NotMaster when the guard no longer holds, StoreError when etcd cannot be reached
        or has no quorum. On either error the transactions before the failing one
        (batches over MAX_TXN_OPS) stay written."""
        if self._closed:
            raise StoreError("etcd store: closed")
        if type(dpid) is not int:
            raise TypeError(f"dpid must be an int, got {dpid!r}")
        ops: dict[str, dict[str, Any]] = {}  # by key: a txn may not touch a key twice
        for kind, record_id, value in changes:
            if type(kind) is not str:
                raise TypeError(f"record kind must be a str, got {kind!r}")
            key = _b64(record_key(self.prefix, dpid, kind, record_id))
            ops.pop(key, None)  # the last change of a key wins, in its place
            ops[key] = ({"request_delete_range": {"key": key}} if value is None
                        else {"request_put": {"key": key, "value": _b64(msgpack.packb(value))}})
        guard = self._guards.get(dpid)
        compare = [] if guard is None else [
            {"key": _b64(guard[0]), "target": "LEASE", "result": "EQUAL", "lease": guard[1]}]
        batch = list(ops.values())
        for start in range(0, len(batch), MAX_TXN_OPS):
            answer = self._post("/kv/txn", {"compare": compare,
                                            "success": batch[start:start + MAX_TXN_OPS]})
            if compare and not answer.get("succeeded", False):
                assert guard is not None
                raise NotMaster(f"etcd store: dpid {dpid:#x}: {guard[0]} is no longer held "
                                f"with lease {guard[1]:x}; not written")

    def compaction_due(self) -> bool:
        return False

    def compact(self, gateways: Mapping[int, Records]) -> None:
        """Nothing to do: etcd holds each record's current value only."""

    def maybe_sync(self, now: float) -> None:
        """Nothing to do: a write returns once it is on a quorum's disks."""

    def close(self) -> None:
        self._closed = True
        for client in self._clients:
            client.session.close()

    # -- etcd ------------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request, retried over the endpoints until one answers (see above)."""
        now = time.monotonic()
        if self._down and now < self._retry_at:
            raise StoreError(f"etcd store: etcd is down ({self._down}); next try in "
                             f"{self._retry_at - now:.1f} s")
        deadline = now + (0.0 if self._down else self.timeout)  # down: one round
        problems: dict[str, str] = {}  # endpoint -> its latest problem
        while True:
            for _ in range(len(self._clients)):
                i = self._current
                client = self._clients[i]
                client.timeout = max(MIN_ATTEMPT, min(self.attempt_timeout,
                                                      deadline - time.monotonic()))
                try:
                    answer = client.post(client.get_url(path), json=body)
                except etcd_errors.Etcd3Exception as err:
                    problems[self.endpoints[i]] = _why(err)
                    self._current = (i + 1) % len(self._clients)
                    continue
                if self._down:
                    self.log.warning("state: etcd answers again (%s)", self.endpoints[i])
                    self._down, self._backoff = "", self.retry_interval
                return answer  # type: ignore[no-any-return]
            if time.monotonic() >= deadline:
                break
            time.sleep(RETRY_PAUSE)
        why = "; ".join(f"{url}: {problem}" for url, problem in problems.items())
        if self._down:
            self._backoff = min(2 * self._backoff, MAX_RETRY_INTERVAL)
        else:
            self.log.error("state: etcd does not answer: %s", why)
        self._down = why
        self._retry_at = time.monotonic() + self._backoff
        raise StoreError(f"etcd store: no endpoint answered ({why})")

    def _check_schema(self) -> None:
        """Record the schema if etcd holds none; StoreError if it holds another."""
        key = _b64(f"{self.prefix}schema")
        answer = self._post("/kv/txn", {
            "compare": [{"key": key, "target": "CREATE", "result": "EQUAL",
                         "create_revision": 0}],
            "success": [{"request_put": {"key": key, "value": _b64(str(self.schema))}}],
            "failure": [{"request_range": {"key": key}}]})
        if answer.get("succeeded", False):
            return
        kvs = answer["responses"][0]["response_range"].get("kvs", [])
        stored = base64.b64decode(kvs[0].get("value", "")).decode(errors="replace") \
            if kvs else "nothing"
        if stored != str(self.schema):
            raise StoreError(f"etcd store: {self.prefix}schema is {stored}, this controller "
                             f"writes record schema {self.schema}")

    def _read(self, prefix: str) -> tuple[dict[int, Records], int, int]:
        """The records under ``prefix`` at one revision: (gateways, records, bytes)."""
        gateways: dict[int, Records] = {}
        count = size = 0
        body: dict[str, Any] = {"key": _b64(prefix), "range_end": _range_end(prefix),
                                "limit": PAGE}
        skip = len(f"{self.prefix}gateways/")
        while True:
            answer = self._post("/kv/range", body)
            kvs = answer.get("kvs", [])
            for kv in kvs:
                raw_key = base64.b64decode(kv["key"])
                raw_value = base64.b64decode(kv.get("value", ""))
                size += len(raw_key) + len(raw_value)
                try:
                    dpid_text, kind, tagged = raw_key.decode()[skip:].split("/", 2)
                    value = msgpack.unpackb(raw_value, strict_map_key=False)
                    gateways.setdefault(int(dpid_text, 16), {}).setdefault(kind, {})[
                        _record_id(tagged)] = value
                except (ValueError, TypeError, msgpack.UnpackException) as err:
                    self.log.warning("state: etcd key %r is not a record (%s): ignored",
                                     raw_key, err)
                    continue
                count += 1
            if not answer.get("more", False) or not kvs:
                break
            # The next page starts after the last key, at the first page's revision.
            body["key"] = _b64(base64.b64decode(kvs[-1]["key"]) + b"\0")
            body["revision"] = answer["header"]["revision"]
        _prune(gateways)
        return gateways, count, size

    def _loaded(self, gateways: dict[int, Records], count: int, size: int,
                what: str) -> Loaded:
        where = f"etcd {','.join(self.endpoints)} {self.prefix}"
        if not gateways:
            detail = f"no state at {where}: starting cold"
            self.log.info("state: %s", detail)
            return Loaded({}, "cold", detail, 0, size)
        detail = f"{count} records of {len(gateways)} switches from {where} ({what})"
        return Loaded(gateways, "restored", detail, 0, size)


def _why(err: etcd_errors.Etcd3Exception) -> str:
    """What went wrong, in one line (etcd3gw puts it in detail_text or the args)."""
    text = getattr(err, "detail_text", "") or " ".join(str(arg) for arg in err.args)
    return f"{type(err).__name__}: {text.strip()[:200]}" if text.strip() \
        else type(err).__name__


__all__ = ["MAX_TXN_OPS", "EtcdStore", "NotMaster", "gateway_prefix", "record_key"]
