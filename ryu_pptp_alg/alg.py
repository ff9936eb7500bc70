"""The ALG across all configured gateways: routes events by dpid.

Events for a dpid that is not configured are counted and logged, never fatal:
the switch may belong to another application.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from ipaddress import IPv4Address
from typing import Any

from ryu_pptp_alg import ofmsg
from ryu_pptp_alg.config import AlgConfig, ConfigError, GatewayConfig, parse_port_forward, shown
from ryu_pptp_alg.etcdstore import NotMaster
from ryu_pptp_alg.flowtable import FlowEntry
from ryu_pptp_alg.gateway import Clock, Gateway
from ryu_pptp_alg.records import Conn
from ryu_pptp_alg.session import parse_session_id, session_id
from ryu_pptp_alg.store import Records, StateStore, StoreError

LOG = logging.getLogger("ryu_pptp_alg.alg")


class UnknownDatapath(KeyError):
    """A dpid that no gateway in the configuration describes."""

    def __init__(self, dpid: int) -> None:
        super().__init__(dpid)
        self.dpid = dpid

    def __str__(self) -> str:
        return f"no gateway is configured for dpid {self.dpid:#x}"


class RequestError(ValueError):
    """A request the API must refuse: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotMasterHere(RequestError):
    """A change asked of an instance that is not the switch's master (high availability)."""


class Alg:
    """Every event that changes a gateway's records has them written to the store
    (``_stored``) before its messages are handed back to be sent.

    High availability (``mastered`` not None): only the switches in ``mastered`` are
    handled; the others' events are ignored and their gateways hold nothing (the master
    has their records). :meth:`take_over` and :meth:`release` move a switch in and out.
    A write the store refuses with ``NotMaster`` releases the switch at once, sends
    nothing that depended on it, and tells ``on_not_master``."""

    def __init__(self, config: AlgConfig, clock: Clock | None = None,
                 store: StateStore | None = None, restore: bool = True) -> None:
        self.config = config
        self.clock = time.time if clock is None else clock
        self.gateways = {g.dpid: self._new_gateway(g) for g in config.gateways}
        self.counters: Counter[str] = Counter()
        self.store = store
        self.store_ok = True
        # The app's is a greenlet semaphore (ryu.lib.hub): the etcd store's requests yield.
        self.store_lock: AbstractContextManager[Any] = nullcontext()
        # Events' changes wait for ``commit`` (the app's, before it sends their messages)
        # instead of one write each: with etcd, a write is a network round trip.
        self.group_commit = False
        # None: this instance handles every switch (no election); else those it masters.
        self.mastered: set[int] | None = None if restore else set()
        self.on_not_master: Callable[[int], None] | None = None
        # High availability: each switch's role here, and the group's health (ha.py).
        self.ha_status: Callable[[int], dict[str, Any]] | None = None
        self.ha_health: Callable[[], dict[str, Any]] | None = None
        if store is not None and restore:
            self._restore(store)

    def _new_gateway(self, config: GatewayConfig) -> Gateway:
        return Gateway(config, self.config.timeouts, self.clock, limits=self.config.limits,
                       rates=self.config.rates)

    # --- high availability: one switch in or out -------------------------------------------

    def is_master(self, dpid: int) -> bool:
        return self.mastered is None or dpid in self.mastered

    def _replace(self, dpid: int) -> Gateway:
        """A fresh gateway for ``dpid`` (nothing transient kept but its counters, its
        connection and the metrics' hook)."""
        old = self.gateway(dpid)
        new = self._new_gateway(old.config)
        new.counters = old.counters
        new.call_ids.counters = old.counters
        new.on_call_setup = old.on_call_setup
        new.connected, new.connected_since = old.connected, old.connected_since
        self.gateways[dpid] = new
        return new

    def take_over(self, dpid: int, records: Records, source: str = "") -> Gateway:
        """Become the switch's master with ``records`` (read from the store just now):
        whatever was held for it before is dropped. Then ``datapath_up`` reconciles."""
        gateway = self._replace(dpid)
        if records:
            gateway.restore(records, source)
        gateway.counters["ha_takeovers"] += 1
        if self.mastered is not None:
            self.mastered.add(dpid)
        return gateway

    def release(self, dpid: int) -> None:
        """No longer the switch's master: drop its state (its master has it), handle none
        of its events, write none of its records."""
        if self.mastered is None:
            self.mastered = {d for d in self.gateways if d != dpid}
        elif dpid not in self.mastered:
            return
        self.mastered.discard(dpid)
        self._replace(dpid).counters["ha_releases"] += 1

    def set_store_down(self, down: bool, why: str = "") -> None:
        """High availability: whether the store can write (etcd has quorum). While it
        cannot, every switch refuses new control connections and calls (counted), and
        the calls already up go on."""
        changed = False
        for gateway in self.gateways.values():
            changed = changed or gateway.store_down != down
            gateway.store_down = down
        if changed and down:
            LOG.error("state store cannot write (%s): new control connections and calls "
                      "are refused until it can; calls already up go on", why or "etcd")
        elif changed:
            LOG.warning("state store writes again: new calls are accepted")

    def _restore(self, store: StateStore) -> None:
        loaded = store.load()
        for dpid, records in loaded.gateways.items():
            gateway = self.gateways.get(dpid)
            if gateway is None:
                LOG.warning("state store holds dpid %#x, which is no longer configured: "
                            "its records are dropped", dpid)
                continue
            gateway.restore(records, loaded.detail)
        LOG.info("state store: %s (%s)", loaded.status, loaded.detail)

    def _stored(self, gateway: Gateway, msgs: list[ofmsg.Message],
                lazy: bool = False) -> list[ofmsg.Message]:
        """``msgs`` once the changes they depend on are written; with ``group_commit`` they
        are written by the next :meth:`commit`, which the app runs before sending them."""
        if self.group_commit and not lazy:
            return msgs
        # One write at a time, from taking the changes to their commit: a write that waits
        # on etcd yields to other greenlets (the ticker, REST), whose later changes must
        # not commit before it does.
        with self.store_lock:
            return msgs if self._append(gateway, lazy) else []

    def _written(self, gateway: Gateway, msgs: list[ofmsg.Message]) -> list[ofmsg.Message]:
        """As ``_stored``, but written now even with group commit (REST answers after)."""
        with self.store_lock:
            return msgs if self._append(gateway, False) else []

    def commit(self) -> set[int]:
        """Group commit: write what every mastered switch changed since the last write, a
        transaction (or a few) per switch, one round trip to etcd for however many events
        came meanwhile. The switches whose writes etcd refused as from a deposed master:
        the messages produced for them before this commit must not be sent."""
        with self.store_lock:
            return {gateway.dpid for gateway in self._mastered()
                    if not self._append(gateway, False)}

    def _append(self, gateway: Gateway, lazy: bool) -> bool:
        """Write the gateway's changes; False if the store found this instance deposed
        (the switch is released: nothing that depended on them may be sent)."""
        changes = gateway.take_changes(lazy)
        if changes and self.store is not None:
            try:
                self.store.append(gateway.dpid, changes)
            except NotMaster as err:  # another controller is master: send nothing
                gateway.counters["ha_writes_refused"] += 1
                LOG.warning("%s: stepping down, nothing sent", err)
                self.release(gateway.dpid)
                if self.on_not_master is not None:
                    self.on_not_master(gateway.dpid)
                return False
            except StoreError as err:  # a full disk must not stop every call: go on, loudly
                gateway.state.unwritten(changes)  # written with the next change that is
                self.counters["state_store_errors"] += 1
                if self.counters["state_store_errors"] == 1 or self.store_ok:
                    LOG.error("state store: %s; calls go on but would not survive a "
                              "restart until it works again", err)
                self.store_ok = False
                return True
            self.store_ok = True
        return True

    def compact(self) -> None:
        """Write the whole state afresh (the store's journal grows until then)."""
        if self.store is not None:
            for gateway in self._mastered():
                self._stored(gateway, [], lazy=True)
            self.store.compact({gateway.dpid: gateway.state.snapshot()
                                for gateway in self._mastered()})

    def close(self) -> None:
        if self.store is not None:
            self.compact()
            self.store.close()

    def _mastered(self) -> list[Gateway]:
        return [g for dpid, g in self.gateways.items() if self.is_master(dpid)]

    def _handled(self, gateway: Gateway | None) -> Gateway | None:
        """``gateway`` if this instance handles its switch's events (it is its master)."""
        if gateway is None or self.is_master(gateway.dpid):
            return gateway
        gateway.counters["ha_events_ignored"] += 1
        return None

    def _changed(self, gateway: Gateway, msgs: list[ofmsg.Message]) -> list[ofmsg.Message]:
        """A change asked through the API, stored; 409 if the store found this instance
        deposed (nothing written, nothing sent)."""
        msgs = self._written(gateway, msgs)
        self._writable(gateway)
        return msgs

    def _writable(self, gateway: Gateway) -> Gateway:
        if not self.is_master(gateway.dpid):
            raise NotMasterHere(409, f"this controller is not master of dpid "
                                     f"{gateway.dpid:#x}: ask its master")
        return gateway

    def gateway(self, dpid: int) -> Gateway:
        try:
            return self.gateways[dpid]
        except KeyError:
            raise UnknownDatapath(dpid) from None

    def _known(self, dpid: int, event: str) -> Gateway | None:
        gateway = self.gateways.get(dpid)
        if gateway is None:
            self.counters[f"unknown_dpid_{event}"] += 1
            LOG.warning("ignoring %s from dpid %#x: not a configured gateway", event, dpid)
        return gateway

    def datapath_up(self, dpid: int) -> list[ofmsg.Message]:
        """The switch connected (or this instance just became its master): a master reads
        its flows and reconciles them; a standby only notes the connection."""
        gateway = self._known(dpid, "connect")
        if gateway is None:
            return []
        if not self.is_master(dpid):
            gateway.connected, gateway.connected_since = True, self.clock()
            return []
        return self._stored(gateway, gateway.datapath_up())

    def datapath_down(self, dpid: int) -> None:
        gateway = self.gateways.get(dpid)
        if gateway is not None:
            gateway.datapath_down()

    def packet_in(self, dpid: int, in_port: int, data: bytes,
                  cookie: int) -> list[ofmsg.Message]:
        gateway = self._handled(self._known(dpid, "packet_in"))
        return [] if gateway is None \
            else self._stored(gateway, gateway.packet_in(in_port, data, cookie))

    def barrier_reply(self, dpid: int, xid: int) -> list[ofmsg.Message]:
        gateway = self._handled(self.gateways.get(dpid))
        return [] if gateway is None else gateway.barrier_reply(xid)

    def flow_removed(self, dpid: int, cookie: int, reason: int, packets: int,
                     octets: int) -> list[ofmsg.Message]:
        gateway = self._handled(self.gateways.get(dpid))
        return [] if gateway is None \
            else self._stored(gateway, gateway.flow_removed(cookie, reason, packets, octets))

    def flow_stats(self, dpid: int, entries: list[FlowEntry], xid: int | None = None,
                   more: bool = False) -> list[ofmsg.Message]:
        gateway = self._handled(self.gateways.get(dpid))
        return [] if gateway is None \
            else self._stored(gateway, gateway.flow_stats(entries, xid, more))

    def error(self, dpid: int, xid: int, err_type: int, code: int) -> list[ofmsg.Message]:
        gateway = self._handled(self.gateways.get(dpid))
        return [] if gateway is None \
            else self._stored(gateway, gateway.error(xid, err_type, code))

    def tick(self, dpid: int) -> list[ofmsg.Message]:
        gateway = self._handled(self.gateways.get(dpid))
        return [] if gateway is None else self._stored(gateway, gateway.tick())

    def housekeeping(self) -> None:
        """Once a second: the store's fsync interval and compaction."""
        if self.store is None:
            return
        for gateway in self._mastered():  # what waited to go with another change
            self._stored(gateway, [], lazy=True)
        if self.store.compaction_due():
            self.compact()
        self.store.maybe_sync(self.clock())

    def counters_of(self, dpid: int) -> Counter[str]:
        """Where messages for ``dpid`` are counted: its gateway's counters (the Alg's own
        for a switch no gateway is configured for)."""
        gateway = self.gateways.get(dpid)
        return self.counters if gateway is None else gateway.counters

    def sessions(self, dpid: int | None = None) -> list[dict[str, Any]]:
        gateways = self.gateways.values() if dpid is None else [self.gateway(dpid)]
        return [row for gateway in gateways for row in gateway.sessions()]

    def status(self) -> list[dict[str, Any]]:
        rows = [gateway.status() for gateway in self.gateways.values()]
        if self.ha_status is not None:
            for row in rows:
                row["ha"] = self.ha_status(row["dpid"])
        return rows

    # --- port forwards (REST) --------------------------------------------------------------

    def forwards(self, dpid: int | None = None) -> list[dict[str, Any]]:
        gateways = self.gateways.values() if dpid is None else [self.gateway(dpid)]
        return [row for gateway in gateways for row in gateway.forward_rows()]

    def _owner(self, public_text: Any, dpid: int | None) -> tuple[Gateway, IPv4Address]:
        """The gateway for a public address: the given dpid's, or the one that owns it."""
        if not isinstance(public_text, str):  # (ipaddress would quote it whole)
            raise RequestError(400, f"public: expected an IPv4 address, got "
                                    f"{type(public_text).__name__} {shown(public_text)}")
        try:
            public = IPv4Address(public_text)
        except ValueError:
            raise RequestError(
                400, f"public: {shown(public_text)} is not an IPv4 address") from None
        if dpid is not None:
            try:
                return self.gateway(dpid), public
            except UnknownDatapath as err:
                raise RequestError(404, str(err)) from None
        owners = [g for g in self.gateways.values() if public in g.config.public_addresses]
        if len(owners) != 1:
            problem = "no gateway has" if not owners else "several gateways have"
            raise RequestError(400, f"{problem} public address {public}; give dpid")
        return owners[0], public

    def add_forward(self, body: Any, dpid: int | None = None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise RequestError(400, "expected a JSON object {\"public\": ..., \"inside\": ...}")
        unknown = set(body) - {"public", "inside", "dpid"}
        if unknown:
            raise RequestError(400, f"unknown key {shown(sorted(unknown)[0])}")
        for key in ("public", "inside"):
            if key not in body:
                raise RequestError(400, f"{key}: missing")
        if "dpid" in body:
            if isinstance(body["dpid"], bool) or not isinstance(body["dpid"], int):
                raise RequestError(400, "dpid: expected an integer")
            dpid = body["dpid"]
        gateway, _ = self._owner(body["public"], dpid)
        self._writable(gateway)
        config = gateway.config
        try:
            forward = parse_port_forward(body, "", config.public_addresses,
                                         config.inside_address)
        except ConfigError as err:
            raise RequestError(400, f"{err.key.lstrip('.')}: {err.problem}") from None
        try:
            gateway.add_forward(forward)
        except ValueError as err:
            raise RequestError(409, str(err)) from None
        # Its row as added: by the time the write returns, another request may have
        # removed it (the etcd store's write yields to other greenlets).
        row = next(r for r in gateway.forward_rows() if r["public"] == str(forward.public))
        self._changed(gateway, [])
        return row

    def remove_forward(self, public_text: str,
                       dpid: int | None = None) -> tuple[int, list[ofmsg.Message], int]:
        """Returns (dpid, messages for its switch, control connections torn down)."""
        if dpid is None:
            try:
                public = IPv4Address(public_text)
            except ValueError:
                raise RequestError(400, f"{shown(public_text)} is not an IPv4 address") from None
            owners = [g for g in self.gateways.values() if public in g.forwards]
            if not owners:
                raise RequestError(404, f"{public} is not forwarded")
            gateway = owners[0]
        else:
            gateway, public = self._owner(public_text, dpid)
        self._writable(gateway)
        before = gateway.counters["forward_sessions_torn_down"]
        try:
            msgs = self._changed(gateway, gateway.remove_forward(public))
        except KeyError:
            raise RequestError(404, f"{public} is not forwarded") from None
        return gateway.dpid, msgs, gateway.counters["forward_sessions_torn_down"] - before

    # --- sessions (REST) -------------------------------------------------------------------

    def _session(self, ident: str) -> tuple[Gateway, Conn]:
        """The gateway and control connection of a session id (``session.session_id``)."""
        try:
            dpid, conn_id = parse_session_id(ident)
        except ValueError:
            raise RequestError(400, f"session id {shown(ident)} is not DPID-N, as "
                                    "GET /pptp/sessions lists them") from None
        gateway = self.gateway(dpid)
        conn = gateway.state.conns.get(conn_id)
        if conn is None:
            raise RequestError(404, f"no session {session_id(dpid, conn_id)}")
        return gateway, conn

    def session(self, ident: str) -> dict[str, Any]:
        gateway, conn = self._session(ident)
        return gateway.session_row(conn)

    def teardown_session(self, ident: str) -> tuple[int, list[ofmsg.Message], dict[str, Any]]:
        """End a session and all its calls: (dpid, messages for its switch, what ended)."""
        gateway, conn = self._session(ident)
        self._writable(gateway)
        head = self._summary_head(gateway, conn)
        msgs, summary = gateway.teardown(conn.id)
        return gateway.dpid, self._changed(gateway, msgs), {**head, **summary}

    def end_call(self, ident: str,
                 client_call_id: int | str) -> tuple[int, list[ofmsg.Message], dict[str, Any]]:
        """End one call of a session, the session going on: as ``teardown_session``."""
        gateway, conn = self._session(ident)
        self._writable(gateway)
        text = str(client_call_id)
        if not (text.isascii() and text.isdecimal() and int(text) <= 0xFFFF):
            raise RequestError(400, f"call ID {shown(text)} is not 0-65535")
        head = self._summary_head(gateway, conn)
        try:
            msgs, summary = gateway.end_call(conn.id, int(text))
        except KeyError:
            raise RequestError(404, f"session {head['id']} has no call with client call "
                                    f"ID {int(text)}") from None
        return gateway.dpid, self._changed(gateway, msgs), {**head, **summary}

    @staticmethod
    def _summary_head(gateway: Gateway, conn: Conn) -> dict[str, Any]:
        return {"id": session_id(gateway.dpid, conn.id), "dpid": gateway.dpid,
                "client": f"{conn.client_ip}:{conn.client_port}"}
