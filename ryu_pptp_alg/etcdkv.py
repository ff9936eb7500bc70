"""The election's :class:`~ryu_pptp_alg.election.KeyValue` over etcd's HTTP gateway.

Each call goes to the endpoint that answered last; one that refuses, errs or does
not answer within ``attempt_timeout`` is left for the next, until every endpoint has
been tried once or ``timeout`` has passed: then :class:`~ryu_pptp_alg.election.Unavailable`.
Both are kept well under ``ttl / 3`` (the keepalive interval), so that a tick that
cannot reach etcd ends before the next keepalive is due. etcd without quorum does not
refuse, it stalls: that is a timeout here too.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from typing import Any

from etcd3gw import exceptions as etcd_errors

from ryu_pptp_alg.election import Holder, Unavailable
from ryu_pptp_alg.etcdstore import _b64, _range_end, etcd_clients

MIN_ATTEMPT = 0.05


def _text(data: str) -> str:
    return base64.b64decode(data).decode(errors="replace")


def call_timeouts(ttl: int, endpoints: int) -> tuple[float, float]:
    """(whole call, one attempt) for a lease of ``ttl`` s: a call ends within ttl / 4,
    each endpoint getting an equal share but at least ``MIN_ATTEMPT``."""
    whole = ttl / 4
    return whole, max(MIN_ATTEMPT, whole / max(1, endpoints))


class EtcdKeyValue:
    """The etcd calls of the election; every failure is :class:`Unavailable`."""

    def __init__(self, endpoints: Sequence[str], timeout: float,
                 attempt_timeout: float) -> None:
        if not endpoints:
            raise ValueError("endpoints must name at least one etcd client URL")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self._clients = etcd_clients(self.endpoints)
        self._current = 0

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        problems: list[str] = []
        for _ in range(len(self._clients)):
            left = deadline - time.monotonic()
            if left <= 0 and problems:
                break
            i = self._current
            client = self._clients[i]
            client.timeout = max(MIN_ATTEMPT, min(self.attempt_timeout, left))
            try:
                return client.post(client.get_url(path), json=body)  # type: ignore[no-any-return]
            except etcd_errors.Etcd3Exception as err:
                text = getattr(err, "detail_text", "") or " ".join(map(str, err.args))
                problems.append(f"{self.endpoints[i]}: {type(err).__name__} "
                                f"{text.strip()[:120]}")
                if "lease not found" in text:  # etcd answered: asking others is no use
                    break
                self._current = (i + 1) % len(self._clients)
        raise Unavailable("; ".join(problems))

    # --- KeyValue ----------------------------------------------------------------------

    def grant(self, ttl: int) -> int:
        answer = self._post("/lease/grant", {"TTL": ttl})
        return int(answer["ID"])

    def keepalive(self, lease: int) -> bool:
        answer = self._post("/lease/keepalive", {"ID": lease})
        return int(answer.get("result", {}).get("TTL", 0) or 0) > 0

    def revoke(self, lease: int) -> None:
        try:
            self._post("/kv/lease/revoke", {"ID": lease})
        except Unavailable as err:
            if "lease not found" not in str(err):
                raise

    def create(self, key: str, value: str, lease: int) -> Holder:
        k = _b64(key)
        answer = self._post("/kv/txn", {
            "compare": [{"key": k, "target": "CREATE", "result": "EQUAL",
                         "create_revision": 0}],
            "success": [{"request_put": {"key": k, "value": _b64(value), "lease": lease}}],
            "failure": [{"request_range": {"key": k}}]})
        if answer.get("succeeded", False):
            return Holder(value, int(answer["header"]["revision"]), lease)
        kvs = answer["responses"][0]["response_range"].get("kvs", [])
        if not kvs:  # deleted between the compare and the range: it is free, try later
            raise Unavailable(f"{key}: changed during the transaction")
        return _holder(kvs[0])

    def put(self, key: str, value: str, lease: int) -> None:
        self._post("/kv/put", {"key": _b64(key), "value": _b64(value), "lease": lease})

    def delete(self, key: str, lease: int) -> bool:
        k = _b64(key)
        answer = self._post("/kv/txn", {
            "compare": [{"key": k, "target": "LEASE", "result": "EQUAL", "lease": lease}],
            "success": [{"request_delete_range": {"key": k}}]})
        return bool(answer.get("succeeded", False))

    def range(self, prefix: str) -> tuple[dict[str, Holder], int]:
        answer = self._post("/kv/range", {"key": _b64(prefix), "range_end": _range_end(prefix)})
        holders = {_text(kv["key"]): _holder(kv) for kv in answer.get("kvs", [])}
        return holders, int(answer["header"]["revision"])

    def close(self) -> None:
        for client in self._clients:
            client.session.close()


def _holder(kv: dict[str, Any]) -> Holder:
    return Holder(_text(kv.get("value", "")), int(kv.get("create_revision", 0)),
                  int(kv.get("lease", 0)))


__all__ = ["EtcdKeyValue", "call_timeouts"]
