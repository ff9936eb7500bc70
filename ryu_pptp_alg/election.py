"""Which controller of a high-availability group is master of each switch.

Every instance of the group connects to every switch and runs one :class:`Election`
against the group's etcd (through :class:`KeyValue`). Per switch, the instance that
creates ``<prefix>election/<dpid as 16 hex digits>`` with its lease is master; the key goes with the
lease, so a master that dies (or loses etcd for longer than the lease) frees its
switches about ``lease_ttl`` seconds later, and the next instance takes them over.

Generation id: the key's create revision. etcd revisions only grow, over the whole
keyspace, and a key is created again only after the previous holder's key was
deleted, so every win has a larger revision than every earlier win: the switch's
generation-id check (OpenFlow 1.3, 6.3.6) then refuses a deposed master's MASTER
request, and the new master's demotes it to SLAVE at once. A standby asks for SLAVE
with the holder's generation id (not stale, and no larger than the next winner's),
or, with no holder, with the revision of its read: any later win is larger still.

Fencing, twice: the store's writes for a switch are transactions that compare the
election key's lease and create revision with :class:`Guard` (they fail once the
lease is gone), and the switch refuses flow-mods from a SLAVE.

Spreading: for each switch, the instances connected to it (each publishes
``<prefix>connected/<dpid>/<instance>`` with its lease) are ranked by rendezvous
hashing of (dpid, instance). The first campaigns for a free key at once (from the
tick after it published its own, so that instances started together see each other),
the others once it has been free for ``delay`` seconds: with two instances each is
master of about half, and a standby takes over a dead master's switches within
``ttl`` and a tick (the dead one's keys go with its lease). A master hands a switch
over (resigns) when an instance ranked above it has been connected to it for
``settle`` seconds, one switch per tick: a restarted instance gets its share back. With
``settle`` 0 (the default, ``ha.rebalance_after``) it never does: a controller that comes
back stays standby and the calls do not pause a second time.
Only an instance connected to the switch campaigns, and a master the switch stays
disconnected from for ``delay`` seconds resigns.

The lease is kept alive every ``ttl / 3`` seconds. Its local deadline is the start
of the last keepalive that succeeded plus ``ttl``: no later than etcd lets it expire
(etcd counts from when the keepalive arrived, and may raise a short TTL to its
minimum). Past it, :meth:`Election.guard` is None (the lease is unconfirmed), but
masters keep their role while etcd cannot be reached: calls already up go on (through
the controller too) and new set-ups are refused, since nothing can be written. This is
safe because the switch arbitrates: etcd expires no lease while it has no quorum (and
renews them all when quorum is back), and where this instance alone lost etcd, the
instance that takes the switch over sends MASTER with a larger generation id, after
which the switch refuses this one's messages (``switch_error``). Once etcd answers, a
keepalive either confirms the lease (nothing changes) or finds it gone: then every
switch steps down and a new lease campaigns afresh.

What the app does with each action (in the order returned; the switch's connection
may be absent, then it sends nothing):

``BecomeMaster(dpid, generation_id, guard)``
    Load the switch's records from the store (drop any held in memory: they may be
    stale), use ``guard`` for every write of that switch's records, send
    :func:`role_messages` (OFPRoleRequest MASTER ``generation_id``, barrier) and then
    the warm reconnect (``Gateway.datapath_up``: read the flows, fix what differs).
``BecomeSlave(dpid, generation_id)``
    At once stop handling the switch's events and writing its records (``guard``
    answers None from now on); drop its in-memory state (the next master has it in
    the store); send :func:`role_messages` (SLAVE ``generation_id``).
``RequestRole(dpid, role, generation_id)``
    Only send :func:`role_messages`: the role is unchanged (a switch reconnected, or
    a SLAVE request was refused as stale and goes again with a newer id).

Events the app reports: :meth:`Election.connected` when a switch connects (before
``datapath_up``; a master then runs ``datapath_up`` after the returned request),
:meth:`Election.disconnected`, :meth:`Election.switch_error` for every OpenFlow error
(role requests refused as stale, flow-mods refused because we are SLAVE), and
:meth:`Election.tick` every second at least (it keeps the lease alive: run it from a
greenlet of its own when ``ttl / 3`` is shorter than the app's tick). Packet-ins of a
switch for which :meth:`Election.guard` is None are ignored. :meth:`Election.close`
at shutdown revokes the lease, so the others take over at their next tick.
Every :class:`KeyValue` call blocks; keep its timeout well under ``ttl / 3``.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import ofmsg

DEFAULT_DELAY = 2.0  # seconds a lower-ranked instance lets the first one campaign
# Seconds a better-ranked instance is connected before a handover; 0: never (the default:
# a controller that comes back stays standby, so no call pauses twice for one failure).
DEFAULT_SETTLE = 0.0


class Unavailable(Exception):
    """etcd could not be asked (no connection, timeout, no quorum)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a key: the value, its create revision and its lease."""

    value: str
    create_revision: int
    lease: int


class KeyValue(Protocol):
    """The etcd calls the election makes; each may raise :class:`Unavailable`."""

    def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds: its id."""

    def keepalive(self, lease: int) -> bool:
        """Refresh the lease; False if it is gone (expired or revoked)."""

    def revoke(self, lease: int) -> None:
        """End the lease now, deleting its keys."""

    def create(self, key: str, value: str, lease: int) -> Holder:
        """In one transaction: if ``key`` does not exist, put it with ``lease``. Its
        holder afterwards (ours, created at the transaction's revision, if it was free)."""

    def put(self, key: str, value: str, lease: int) -> None:
        """Put ``key`` with ``lease``, whoever held it."""

    def delete(self, key: str, lease: int) -> bool:
        """In one transaction: delete ``key`` if it is held with ``lease``; whether it was."""

    def range(self, prefix: str) -> tuple[dict[str, Holder], int]:
        """The keys under ``prefix`` and the store's revision at the read."""


class Role(IntEnum):
    MASTER = ofp.OFPCR_ROLE_MASTER
    SLAVE = ofp.OFPCR_ROLE_SLAVE


@dataclass(frozen=True)
class Guard:
    """What a write of a switch's records must find in etcd: ``key`` held with ``lease``,
    created at ``generation_id``."""

    key: str
    lease: int
    generation_id: int


@dataclass(frozen=True)
class BecomeMaster:
    dpid: int
    generation_id: int
    guard: Guard


@dataclass(frozen=True)
class BecomeSlave:
    dpid: int
    generation_id: int


@dataclass(frozen=True)
class RequestRole:
    dpid: int
    role: Role
    generation_id: int


Action = BecomeMaster | BecomeSlave | RequestRole


def role_messages(role: Role, generation_id: int) -> list[Any]:
    """The role request, and a barrier: a switch may reorder what follows ahead of it."""
    return [parser.OFPRoleRequest(None, int(role), generation_id), ofmsg.barrier()]


def rank(dpid: int, instances: set[str]) -> list[str]:
    """Rendezvous hashing: the instances in the order they should master ``dpid``."""
    def score(name: str) -> bytes:
        return hashlib.blake2b(f"{dpid:016x}/{name}".encode(), digest_size=8).digest()
    return sorted(instances, key=score, reverse=True)


def instance_name(configured: str, hostname: str, port: int) -> str:
    """``ha.instance``, else hostname:port (the OpenFlow port this instance listens on)."""
    return configured or f"{hostname}:{port}"


def election_key(prefix: str, dpid: int) -> str:
    return f"{prefix}election/{dpid:016x}"


def connected_key(prefix: str, dpid: int, instance: str) -> str:
    return f"{prefix}connected/{dpid:016x}/{instance}"


class _Switch:
    def __init__(self) -> None:
        self.connected = False
        # when connected_key was written with the current lease (None: not yet)
        self.published_at: float | None = None
        self.master = False
        self.generation_id = 0  # ours while master, else the newest known
        self.holder = ""  # the master's instance name, as last read
        self.request_due = False  # a SLAVE request is to go with the newest id
        self.free_since: float | None = None
        self.disconnected_at = 0.0
        self.handover_after = 0.0  # no handover before: one try per settle period
        self.seen: dict[str, float] = {}  # connected instances -> first seen


class Election:
    def __init__(self, kv: KeyValue, instance: str, prefix: str, ttl: int,
                 dpids: list[int], delay: float = DEFAULT_DELAY,
                 settle: float = DEFAULT_SETTLE) -> None:
        if "/" in instance or not instance:
            raise ValueError(f"instance name {instance!r} must be non-empty, without /")
        self.kv = kv
        self.instance = instance
        self.prefix = prefix
        self.ttl = ttl
        self.delay = delay
        self.settle = settle
        self.switches = {dpid: _Switch() for dpid in dpids}
        self.lease: int | None = None
        self.deadline = 0.0  # the lease surely lives in etcd before this
        self.next_keepalive = 0.0
        self.error = ""  # the last etcd failure, "" once etcd answers again

    # --- events ----------------------------------------------------------------------------

    def connected(self, dpid: int, now: float) -> list[Action]:
        switch = self.switches.get(dpid)
        if switch is None:
            return []
        switch.connected, switch.published_at = True, None
        if switch.master:
            return [RequestRole(dpid, Role.MASTER, switch.generation_id)]
        switch.request_due = True  # with the newest id, at the next tick
        return []

    def disconnected(self, dpid: int, now: float) -> None:
        switch = self.switches.get(dpid)
        if switch is not None and switch.connected:
            switch.connected, switch.published_at = False, None
            switch.disconnected_at = now

    def switch_error(self, dpid: int, err_type: int, code: int, now: float) -> list[Action]:
        """A stale role request or a flow-mod refused as from a SLAVE: a newer master
        exists. Step down now; a SLAVE request goes with the newest id at the next tick."""
        stale = err_type == ofp.OFPET_ROLE_REQUEST_FAILED and code == ofp.OFPRRFC_STALE
        demoted = err_type == ofp.OFPET_BAD_REQUEST and code == ofp.OFPBRC_IS_SLAVE
        if not (stale or demoted):
            return []
        return self.step_down(dpid, now)

    def step_down(self, dpid: int, now: float) -> list[Action]:
        """The app cannot go on as master (the store refused a write as from a deposed
        master, or the switch's records could not be read): step down now, a SLAVE
        request going at the next tick. If the key is still ours after all, that tick
        makes this instance master again afresh (the records read once more)."""
        switch = self.switches.get(dpid)
        if switch is None:
            return []
        switch.request_due = True
        if not switch.master:
            return []
        switch.master = False
        return [BecomeSlave(dpid, switch.generation_id)]

    def close(self) -> list[Action]:
        """Shutdown: step down everywhere and free every key at once."""
        actions = self._step_down_all()
        if self.lease is not None:
            with contextlib.suppress(Unavailable):  # else it expires by itself
                self.kv.revoke(self.lease)
            self.lease = None
        return actions

    # --- queries ---------------------------------------------------------------------------

    def guard(self, dpid: int, now: float) -> Guard | None:
        """What this switch's writes must be guarded with; None: not master, or the lease
        unconfirmed (``lease_confirmed``): no write can count on it."""
        switch = self.switches.get(dpid)
        if switch is None or not switch.master or self.lease is None or now >= self.deadline:
            return None
        return Guard(election_key(self.prefix, dpid), self.lease, switch.generation_id)

    def lease_confirmed(self, now: float) -> bool:
        """Whether etcd surely still holds our lease (a keepalive answered within ttl)."""
        return self.lease is not None and now < self.deadline

    def is_master(self, dpid: int) -> bool:
        """Whether this instance acts as the switch's master (its lease may be unconfirmed
        while etcd cannot be reached: ``guard`` tells)."""
        switch = self.switches.get(dpid)
        return switch is not None and switch.master

    def status(self, dpid: int, now: float) -> dict[str, Any]:
        switch = self.switches[dpid]
        return {"role": "master" if switch.master else "slave",
                "lease_confirmed": switch.master and self.guard(dpid, now) is not None,
                "generation_id": switch.generation_id or None,
                "master": self.instance if switch.master else (switch.holder or None)}

    def health(self, now: float) -> dict[str, Any]:
        valid = self.lease_confirmed(now)
        return {"instance": self.instance, "etcd": "unavailable" if self.error else "ok",
                "error": self.error or None, "lease": self.lease if valid else None,
                "lease_valid_for": round(self.deadline - now, 3) if valid else 0}

    # --- the tick --------------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        actions: list[Action] = []
        try:
            self._keep_lease(now, actions)
            if self.lease is not None:
                self._elect(now, actions)
            self.error = ""
        except Unavailable as err:  # masters keep their role: the switch arbitrates
            self.error = str(err) or type(err).__name__
        return actions

    def _keep_lease(self, now: float, actions: list[Action]) -> None:
        if self.lease is not None and now >= self.next_keepalive:
            if self.kv.keepalive(self.lease):
                self.deadline = now + self.ttl
                self.next_keepalive = now + self.ttl / 3
            else:
                self._lose_lease(actions)
        if self.lease is None:
            self.lease = self.kv.grant(self.ttl)
            self.deadline = now + self.ttl
            self.next_keepalive = now + self.ttl / 3

    def _lose_lease(self, actions: list[Action]) -> None:
        actions.extend(self._step_down_all())
        self.lease = None
        for switch in self.switches.values():
            switch.published_at = None

    def _step_down_all(self) -> list[Action]:
        actions: list[Action] = []
        for dpid, switch in self.switches.items():
            if switch.master:
                switch.master = False
                actions.append(BecomeSlave(dpid, switch.generation_id))
        return actions

    def _elect(self, now: float, actions: list[Action]) -> None:
        assert self.lease is not None
        lease = self.lease
        for dpid, switch in self.switches.items():
            key = connected_key(self.prefix, dpid, self.instance)
            if switch.connected and switch.published_at is None:
                self.kv.put(key, self.instance, lease)
                switch.published_at = now
            elif not switch.connected and not switch.master and switch.disconnected_at:
                self.kv.delete(key, lease)
                switch.disconnected_at = 0.0
        holders, revision = self.kv.range(f"{self.prefix}election/")
        present, _ = self.kv.range(f"{self.prefix}connected/")
        handed_over = False
        for dpid, switch in self.switches.items():
            key = election_key(self.prefix, dpid)
            holder = holders.get(key)
            if holder is not None:
                switch.free_since = None
            elif switch.free_since is None:
                switch.free_since = now
            prefix = f"{self.prefix}connected/{dpid:016x}/"
            switch.seen = {name: switch.seen.get(name, now)
                           for name in (k[len(prefix):] for k in present if k.startswith(prefix))}
            ranked = rank(dpid, set(switch.seen) | ({self.instance} if switch.connected else set()))
            if switch.master:
                if holder is None or holder.create_revision != switch.generation_id:
                    # deleted by hand, or our lease expired in etcd before our deadline
                    switch.master = False
                    actions.append(BecomeSlave(dpid, switch.generation_id))
                elif self._should_resign(switch, ranked, now, handed_over):
                    handed_over = True
                    if self.kv.delete(key, lease):
                        switch.master = False
                        switch.handover_after = now + self.settle
                        actions.append(BecomeSlave(dpid, switch.generation_id))
                continue
            if holder is None and switch.connected and switch.free_since is not None and (
                    self._first(ranked, switch, now)
                    or now - switch.free_since >= self.delay):
                holder = self.kv.create(key, self.instance, lease)
            if holder is not None and holder.lease == lease:  # won (now, or unanswered)
                switch.master, switch.request_due = True, False
                switch.generation_id, switch.holder = holder.create_revision, self.instance
                switch.handover_after = now + self.settle
                actions.append(BecomeMaster(dpid, holder.create_revision,
                                            Guard(key, lease, holder.create_revision)))
                continue
            switch.holder = holder.value if holder else ""
            switch.generation_id = holder.create_revision if holder else revision
            if switch.request_due and switch.connected:
                switch.request_due = False
                actions.append(RequestRole(dpid, Role.SLAVE, switch.generation_id))

    def _first(self, ranked: list[str], switch: _Switch, now: float) -> bool:
        """Ranked first, and not just connected: the others connected at the same time
        have had a tick to publish theirs."""
        return ranked[:1] == [self.instance] and switch.published_at is not None \
            and switch.published_at < now

    def _should_resign(self, switch: _Switch, ranked: list[str], now: float,
                       handed_over: bool) -> bool:
        if not switch.connected:
            return now - switch.disconnected_at >= self.delay
        if not self.settle:
            return False
        better = ranked[:ranked.index(self.instance)]
        return not handed_over and now >= switch.handover_after \
            and any(now - switch.seen[name] >= self.settle for name in better)


__all__ = [
    "Action",
    "BecomeMaster",
    "BecomeSlave",
    "Election",
    "Guard",
    "Holder",
    "KeyValue",
    "RequestRole",
    "Role",
    "Unavailable",
    "connected_key",
    "election_key",
    "instance_name",
    "rank",
    "role_messages",
]
