"""A gateway's records and the indexes derived from them.

``GatewayState`` holds the records (``records.py``) by id and keeps a set of indexes
up to date as records are added, changed and removed. ``rebuild`` derives every
index from the records alone: a restart uses it to restore, and ``check`` (run by
the fake switch after every step of every unit test) compares the kept indexes with
rebuilt ones, so an index that drifts or an entry that leaks fails a test.

It also notes which records changed (``touch``); ``take_changes`` hands them to the
state store, encoded, before the messages that depend on them leave the controller.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from ryu_pptp_alg import records as rec
from ryu_pptp_alg.records import Call, CallState, Conn, Pair

Key = tuple[IPv4Address, IPv4Address]  # (outside host, public address)
ConnKey = tuple[IPv4Address, int, IPv4Address, int]
Change = tuple[str, Any, Any]


ID_BLOCK = 1024  # ids handed out per write of the stored id mark

# Inward GRE flows of one key in the switch: to the controller, or rewritten to the
# inside host of its one fast pair (its id: pair ids start at 1); none is no entry.
VIA_CONTROLLER = 0


@dataclass(slots=True)
class Indexes:
    by_inside: dict[ConnKey, Conn] = field(default_factory=dict)
    by_outside: dict[ConnKey, Conn] = field(default_factory=dict)
    conn_calls: dict[int, list[Call]] = field(default_factory=dict)  # live calls by Conn.id
    pair_calls: dict[int, list[Call]] = field(default_factory=dict)  # by Pair.id
    key_pairs: dict[Key, list[Pair]] = field(default_factory=dict)
    # (inside, outside) -> their pairs: outward GRE is matched by these two alone.
    host_pairs: dict[tuple[IPv4Address, IPv4Address], list[Pair]] = \
        field(default_factory=dict)
    # (outside, public, call ID) -> the call inward GRE with that ID belongs to (the
    # oldest, if several claim it).
    inward: dict[tuple[IPv4Address, IPv4Address, int], Call] = field(default_factory=dict)
    # (client, server) -> the public address an outbound client uses there, and its
    # control connection count; (server, public) -> how many clients use that key.
    client_public: dict[tuple[IPv4Address, IPv4Address], tuple[IPv4Address, int]] = \
        field(default_factory=dict)
    key_users: dict[Key, int] = field(default_factory=dict)
    # (server, public, call ID) decided in a stream whose call does not exist yet -> Conn.id
    pending_ids: dict[tuple[IPv4Address, IPv4Address, int], int] = field(default_factory=dict)
    # What the switch holds for a key's inward GRE: VIA_CONTROLLER or the fast pair's id.
    key_flows: dict[Key, int] = field(default_factory=dict)
    # Control connections per client (the PNS: an inside host outbound, an outside host
    # inbound), for the per-host cap; and those the server has not answered yet (no
    # SYN-ACK), oldest first: the first to go when the table is full.
    client_conns: dict[IPv4Address, int] = field(default_factory=dict)
    unanswered: dict[int, Conn] = field(default_factory=dict)


class GatewayState:
    def __init__(self) -> None:
        self.conns: dict[int, Conn] = {}
        self.calls: dict[int, Call] = {}
        self.pairs: dict[int, Pair] = {}
        # Port forwards changed at run time, by public address: the inside host, or None
        # for a configured forward that was removed.
        self.forwards: dict[IPv4Address, IPv4Address | None] = {}
        self.idx = Indexes()
        self.dirty: set[tuple[str, Any]] = set()
        # Changes no peer's next packet depends on (a connection's state shown in the
        # session table): written with the next write, or within a second.
        self.lazy: set[tuple[str, Any]] = set()
        self._next_id = 1
        self._id_mark = 1  # stored: no id below it is given out again, even after a restart
        self._next_pair = 1

    # --- ids and change notes ------------------------------------------------------------

    def new_id(self) -> int:
        """Connection and call ids: never the same twice for one gateway (a session's id
        names it in the REST API), so the store keeps a mark ahead of them, moved on a
        block at a time."""
        ident = self._next_id
        self._next_id += 1
        if ident >= self._id_mark:  # written with the record that first keeps such an id
            self._id_mark = ident + ID_BLOCK
            self.touch_lazy(rec.META, rec.ID_MARK)
        return ident

    def new_pair_id(self, limit: int) -> int:
        """Pair ids become cookies: they wrap at ``limit`` and skip ids in use."""
        while True:
            ident = self._next_pair
            self._next_pair = ident % limit + 1
            if ident not in self.pairs:
                return ident

    def touch(self, kind: str, ident: Any) -> None:
        self.dirty.add((kind, ident))

    def touch_lazy(self, kind: str, ident: Any) -> None:
        self.lazy.add((kind, ident))

    def take_changes(self, lazy: bool = False) -> list[Change]:
        """Every record changed since the last call, encoded (None: removed); those
        touched lazily only along with others, or when ``lazy``."""
        if not self.dirty and not (lazy and self.lazy):
            return []
        self.dirty |= self.lazy
        self.lazy.clear()
        changes = [(kind, ident, self._encoded(kind, ident)) for kind, ident in self.dirty]
        self.dirty.clear()
        return changes

    def unwritten(self, changes: list[Change]) -> None:
        """``changes`` (from ``take_changes``) could not be written: they go again with the
        next write, or the next lazy one (their values as they are then)."""
        self.lazy.update((kind, ident) for kind, ident, _ in changes)

    def _encoded(self, kind: str, ident: Any) -> Any:
        if kind == rec.CONN:
            conn = self.conns.get(ident)
            return None if conn is None else rec.encode_conn(conn)
        if kind == rec.CALL:
            call = self.calls.get(ident)
            return None if call is None else rec.encode_call(call)
        if kind == rec.PAIR:
            pair = self.pairs.get(ident)
            return None if pair is None else rec.encode_pair(pair)
        if kind == rec.META:
            return self._id_mark
        if kind == rec.FORWARD:
            address = IPv4Address(ident)
            if address not in self.forwards:
                return None
            inside = self.forwards[address]
            return "" if inside is None else str(inside)
        raise ValueError(f"unknown record kind {kind!r}")

    def snapshot(self) -> dict[str, dict[Any, Any]]:
        """Every record, encoded: what a compacted store holds."""
        return {
            rec.CONN: {i: rec.encode_conn(c) for i, c in self.conns.items()},
            rec.CALL: {i: rec.encode_call(c) for i, c in self.calls.items()},
            rec.PAIR: {i: rec.encode_pair(p) for i, p in self.pairs.items()},
            rec.FORWARD: {str(a): "" if i is None else str(i) for a, i in self.forwards.items()},
            rec.META: {rec.ID_MARK: self._id_mark},
        }

    def load(self, stored: dict[str, dict[Any, Any]]) -> None:
        """Records from the store (``snapshot``'s shape); the indexes are rebuilt."""
        self.conns = {int(i): rec.decode_conn(int(i), v)
                      for i, v in stored.get(rec.CONN, {}).items()}
        self.calls = {int(i): rec.decode_call(int(i), v)
                      for i, v in stored.get(rec.CALL, {}).items()}
        self.pairs = {int(i): rec.decode_pair(int(i), v)
                      for i, v in stored.get(rec.PAIR, {}).items()}
        self.forwards = {IPv4Address(a): IPv4Address(i) if i else None
                         for a, i in stored.get(rec.FORWARD, {}).items()}
        mark = int(stored.get(rec.META, {}).get(rec.ID_MARK, 0))
        self._next_id = self._id_mark = max([*self.conns, *self.calls, mark - 1], default=0) + 1
        self._next_pair = max(self.pairs, default=0) + 1
        self.dirty.clear()
        self.lazy.clear()

    # --- records that keep the indexes ---------------------------------------------------

    def add_conn(self, conn: Conn) -> None:
        """A connection on its SYN: written with the server's answer (``answered``) at the
        latest. Lost before that, the server's SYN-ACK finds no mapping and the client's
        retransmitted SYN makes it again."""
        self.conns[conn.id] = conn
        self._index_conn(self.idx, conn)
        self.touch_lazy(rec.CONN, conn.id)

    def remove_conn(self, conn: Conn) -> None:
        """The connection goes (its calls went before it)."""
        idx = self.idx
        del self.conns[conn.id]
        del idx.by_inside[conn.inside_key]
        del idx.by_outside[conn.outside_key]
        idx.unanswered.pop(conn.id, None)
        if idx.client_conns[conn.client_ip] > 1:
            idx.client_conns[conn.client_ip] -= 1
        else:
            del idx.client_conns[conn.client_ip]
        idx.conn_calls.pop(conn.id, None)
        for public_id in (conn.id_map or {}).values():  # decided, but no call came of it
            slot = (conn.server_ip, conn.public_ip, public_id)
            if idx.pending_ids.get(slot) == conn.id:
                del idx.pending_ids[slot]
        if not conn.inbound:
            client = (conn.client_ip, conn.server_ip)
            public, conns = idx.client_public[client]
            if conns > 1:
                idx.client_public[client] = (public, conns - 1)
            else:
                del idx.client_public[client]
                key = (conn.server_ip, public)
                if idx.key_users[key] > 1:
                    idx.key_users[key] -= 1
                else:
                    del idx.key_users[key]
        self.touch(rec.CONN, conn.id)

    def answered(self, conn: Conn) -> None:
        """The server answered the connection's SYN."""
        if self.idx.unanswered.pop(conn.id, None) is not None:
            self.touch(rec.CONN, conn.id)

    def reserve_id(self, conn: Conn, client_id: int, public_id: int) -> None:
        """``public_id`` is what the server sees for the client's ``client_id``, before
        the call exists."""
        if conn.id_map is None:
            conn.id_map = {}
        conn.id_map[client_id] = public_id
        self.idx.pending_ids[(conn.server_ip, conn.public_ip, public_id)] = conn.id
        if public_id != client_id:  # a translation is written at once; an ID kept as
            self.touch(rec.CONN, conn.id)  # it is, with its call

    def add_call(self, call: Call) -> None:
        idx = self.idx
        conn = self.conns[call.conn]
        self.calls[call.id] = call
        _append(idx.conn_calls, call.conn, call)
        slot = (conn.server_ip, conn.public_ip, call.public_call_id)
        if idx.pending_ids.get(slot) == conn.id:
            del idx.pending_ids[slot]
        if conn.id_map is not None and conn.id_map.get(call.client_call_id) \
                == call.client_call_id:  # untranslated: the call itself says it now
            del conn.id_map[call.client_call_id]
            if not conn.id_map:
                conn.id_map = None
            else:
                self.touch(rec.CONN, conn.id)
        self._index_inward(idx, conn, call)
        self.touch(rec.CALL, call.id)

    def set_server_call_id(self, call: Call, server_call_id: int) -> None:
        conn = self.conns[call.conn]
        if call.inbound:
            self._unindex_inward(conn, call)
        call.server_call_id = server_call_id
        if call.inbound:
            self._index_inward(self.idx, conn, call)
        self.touch(rec.CALL, call.id)

    def remove_call(self, call: Call) -> None:
        """The call is over: it leaves its connection, its pair and its key, and its
        translation goes."""
        idx = self.idx
        conn = self.conns[call.conn]
        del self.calls[call.id]
        calls = idx.conn_calls[call.conn]
        calls.remove(call)
        if not calls:
            del idx.conn_calls[call.conn]
        self._unindex_inward(conn, call)
        if call.pair is not None:
            self._unlink_pair(call)
        if conn.id_map is not None and call.client_call_id in conn.id_map:
            del conn.id_map[call.client_call_id]
            if not conn.id_map:
                conn.id_map = None
        self.touch(rec.CALL, call.id)
        self.touch(rec.CONN, conn.id)

    def add_pair(self, pair: Pair) -> None:
        self.pairs[pair.id] = pair
        self._index_pair(self.idx, pair)
        self.touch(rec.PAIR, pair.id)

    def remove_pair(self, pair: Pair) -> None:
        idx = self.idx
        del self.pairs[pair.id]
        idx.pair_calls.pop(pair.id, None)
        for index, at in ((idx.key_pairs, pair.key),
                          (idx.host_pairs, (pair.inside_ip, pair.outside_ip))):
            pairs = index[at]
            pairs.remove(pair)
            if not pairs:
                del index[at]
        self.touch(rec.PAIR, pair.id)

    def link_pair(self, call: Call, pair: Pair) -> None:
        call.pair = pair.id
        _append(self.idx.pair_calls, pair.id, call)
        self.touch(rec.CALL, call.id)

    def _unlink_pair(self, call: Call) -> None:
        assert call.pair is not None
        calls = self.idx.pair_calls[call.pair]
        calls.remove(call)
        if not calls:
            del self.idx.pair_calls[call.pair]

    def set_key_flows(self, key: Key, flows: int | None) -> None:
        if flows is None:
            self.idx.key_flows.pop(key, None)
        else:
            self.idx.key_flows[key] = flows

    # --- lookups -------------------------------------------------------------------------

    def calls_of(self, conn: Conn) -> list[Call]:
        return self.idx.conn_calls.get(conn.id, [])

    def call_by(self, conn: Conn, attribute: str, value: int) -> Call | None:
        for call in self.idx.conn_calls.get(conn.id, ()):
            if getattr(call, attribute) == value:
                return call
        return None

    def pair_at(self, inside: IPv4Address, key: Key) -> Pair | None:
        """The pair of ``inside`` under ``key`` (keys have one pair, or a few)."""
        for pair in self.idx.key_pairs.get(key, ()):
            if pair.inside_ip == inside:
                return pair
        return None

    def pair_of(self, call: Call) -> Pair | None:
        return None if call.pair is None else self.pairs[call.pair]

    def key_call(self, key: Key, inward_id: int) -> Call | None:
        return self.idx.inward.get((key[0], key[1], inward_id))

    # --- the indexes, step by step and from scratch --------------------------------------

    @staticmethod
    def _index_conn(idx: Indexes, conn: Conn) -> None:
        idx.by_inside[conn.inside_key] = conn
        idx.by_outside[conn.outside_key] = conn
        idx.client_conns[conn.client_ip] = idx.client_conns.get(conn.client_ip, 0) + 1
        if conn.to_client is None:  # no SYN-ACK yet
            idx.unanswered[conn.id] = conn
        if not conn.inbound:
            client = (conn.client_ip, conn.server_ip)
            known = idx.client_public.get(client)
            if known is not None:  # a client keeps one public address per server
                idx.client_public[client] = (known[0], known[1] + 1)
            else:
                idx.client_public[client] = (conn.public_ip, 1)
                key = (conn.server_ip, conn.public_ip)
                idx.key_users[key] = idx.key_users.get(key, 0) + 1

    @staticmethod
    def _index_pair(idx: Indexes, pair: Pair) -> None:
        _append(idx.key_pairs, pair.key, pair)
        _append(idx.host_pairs, (pair.inside_ip, pair.outside_ip), pair)

    @staticmethod
    def _index_inward(idx: Indexes, conn: Conn, call: Call) -> None:
        """Inward GRE names the call by its inward ID once that is known; of several
        calls claiming one ID on a key (only a misbehaving peer does that), the oldest."""
        inward_id = call.inward_id
        if inward_id is None:
            return
        slot = (conn.outside[0], conn.public_ip, inward_id)
        holder = idx.inward.get(slot)
        if holder is None or holder.id > call.id:
            idx.inward[slot] = call

    def _unindex_inward(self, conn: Conn, call: Call) -> None:
        inward_id = call.inward_id
        if inward_id is None:
            return
        slot = (conn.outside[0], conn.public_ip, inward_id)
        if self.idx.inward.get(slot) is not call:
            return
        del self.idx.inward[slot]
        for other in self.calls.values():  # another claimant takes over (rare)
            if other is not call and other.inward_id == inward_id \
                    and self.conns[other.conn].gre_key == slot[:2]:
                self._index_inward(self.idx, self.conns[other.conn], other)

    def rebuild(self) -> Indexes:
        """Every index, derived from the records alone (``key_flows`` as ``desired``
        would set them is the caller's: see ``pairs.GrePaths``)."""
        idx = Indexes()
        for conn in sorted(self.conns.values(), key=lambda c: c.id):
            self._index_conn(idx, conn)
        for pair in sorted(self.pairs.values(), key=lambda p: p.id):
            self._index_pair(idx, pair)
        live_ids: set[tuple[int, int]] = set()
        for call in sorted(self.calls.values(), key=lambda c: c.id):
            conn = self.conns[call.conn]
            _append(idx.conn_calls, call.conn, call)
            if call.pair is not None:
                _append(idx.pair_calls, call.pair, call)
            self._index_inward(idx, conn, call)
            live_ids.add((conn.id, call.client_call_id))
        for conn in self.conns.values():
            for client_id, public_id in (conn.id_map or {}).items():
                if (conn.id, client_id) not in live_ids:
                    idx.pending_ids[(conn.server_ip, conn.public_ip, public_id)] = conn.id
        return idx

    def problems(self, desired_key_flows: dict[Key, int]) -> list[str]:
        """How the kept indexes differ from rebuilt ones, and records that refer to
        nothing: empty when all is well."""
        rebuilt = self.rebuild()
        rebuilt.key_flows = desired_key_flows
        found = []
        for index in dataclasses.fields(Indexes):
            name = index.name
            kept, fresh = getattr(self.idx, name), getattr(rebuilt, name)
            if kept != fresh:
                found.append(f"index {name}: kept {kept!r}, rebuilt {fresh!r}")
        for call in self.calls.values():
            if call.conn not in self.conns:
                found.append(f"call {call.id} names missing connection {call.conn}")
            if call.pair is not None and call.pair not in self.pairs:
                found.append(f"call {call.id} names missing pair {call.pair}")
            if call.state == CallState.CLOSED:
                found.append(f"call {call.id} is closed but kept")
        for pair in self.pairs.values():
            if pair.id not in rebuilt.pair_calls:
                found.append(f"pair {pair.id} has no call")
        return found

    def counts(self) -> dict[str, int]:
        return {"control_connections": len(self.conns), "calls": len(self.calls),
                "gre_pairs": len(self.pairs)}


def _append(index: dict[Any, list[Any]], key: Any, item: Any) -> None:
    """Lists of an index start at their one item (no room kept for more: most stay so)."""
    items = index.get(key)
    if items is None:
        index[key] = [item]
    else:
        items.append(item)
