"""Fakes for the election's tests: an in-memory etcd with a clock, and a switch that
enforces controller roles and generation ids as OpenFlow 1.3 specifies (6.3.6).

:class:`FakeEtcd` keeps revisions (one per write transaction, over the whole
keyspace), leases that expire when the clock passes their TTL (deleting their keys
in one revision) and keys with their create revision and lease. Each instance
talks to it through its own :class:`FakeEtcdClient`, which can be cut off alone;
``FakeEtcd.up = False`` cuts off everyone (quorum lost). As in etcd, no lease expires
while there is no quorum (no leader), and when quorum is back every lease has its whole
TTL again (the new leader's lessor promotion).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg.election import Guard, Holder, Unavailable


@dataclass
class FakeEtcd:
    clock: Callable[[], float]
    _up: bool = True
    revision: int = 1
    keys: dict[str, Holder] = field(default_factory=dict)
    leases: dict[int, tuple[float, int]] = field(default_factory=dict)  # id -> (expiry, ttl)
    next_lease: int = 0x7E57_0000

    @property
    def up(self) -> bool:
        return self._up

    @up.setter
    def up(self, up: bool) -> None:
        if up and not self._up:  # quorum back: a leader again, every lease renewed
            self.leases = {lease: (self.clock() + ttl, ttl)
                           for lease, (_, ttl) in self.leases.items()}
        elif self._up and not up:
            self.expire()  # what expired before quorum was lost
        self._up = up

    def client(self) -> FakeEtcdClient:
        return FakeEtcdClient(self)

    def expire(self) -> None:
        if not self._up:
            return
        now = self.clock()
        for lease, (expiry, _) in sorted(self.leases.items(), key=lambda item: item[1]):
            if expiry <= now:
                self.drop(lease)

    def drop(self, lease: int) -> None:
        del self.leases[lease]
        gone = [key for key, holder in self.keys.items() if holder.lease == lease]
        for key in gone:
            del self.keys[key]
        if gone:
            self.revision += 1

    def holder(self, key: str) -> Holder | None:
        self.expire()
        return self.keys.get(key)


class FakeEtcdClient:
    def __init__(self, etcd: FakeEtcd) -> None:
        self.etcd = etcd
        self.reachable = True
        self.calls = 0

    def _reach(self) -> FakeEtcd:
        if not (self.etcd.up and self.reachable):
            raise Unavailable("etcd: connection refused")
        self.calls += 1
        self.etcd.expire()
        return self.etcd

    def _lease(self, etcd: FakeEtcd, lease: int) -> None:
        if lease not in etcd.leases:
            raise Unavailable("etcdserver: requested lease not found")

    def grant(self, ttl: int) -> int:
        etcd = self._reach()
        etcd.next_lease += 1
        etcd.leases[etcd.next_lease] = (etcd.clock() + ttl, ttl)
        return etcd.next_lease

    def keepalive(self, lease: int) -> bool:
        etcd = self._reach()
        if lease not in etcd.leases:
            return False
        ttl = etcd.leases[lease][1]
        etcd.leases[lease] = (etcd.clock() + ttl, ttl)
        return True

    def revoke(self, lease: int) -> None:
        etcd = self._reach()
        if lease in etcd.leases:
            etcd.drop(lease)

    def create(self, key: str, value: str, lease: int) -> Holder:
        etcd = self._reach()
        self._lease(etcd, lease)
        if key not in etcd.keys:
            etcd.revision += 1
            etcd.keys[key] = Holder(value, etcd.revision, lease)
        return etcd.keys[key]

    def put(self, key: str, value: str, lease: int) -> None:
        etcd = self._reach()
        self._lease(etcd, lease)
        etcd.revision += 1
        old = etcd.keys.get(key)
        etcd.keys[key] = Holder(value, old.create_revision if old else etcd.revision, lease)

    def delete(self, key: str, lease: int) -> bool:
        etcd = self._reach()
        holder = etcd.keys.get(key)
        if holder is None or holder.lease != lease:
            return False
        del etcd.keys[key]
        etcd.revision += 1
        return True

    def range(self, prefix: str) -> tuple[dict[str, Holder], int]:
        etcd = self._reach()
        return {k: h for k, h in etcd.keys.items() if k.startswith(prefix)}, etcd.revision

    def guarded_put(self, guard: Guard) -> bool:
        """A store write as the etcd store makes it: only while ``guard`` holds."""
        etcd = self._reach()
        holder = etcd.keys.get(guard.key)
        if holder is None or (holder.lease, holder.create_revision) != (guard.lease,
                                                                         guard.generation_id):
            return False
        etcd.revision += 1
        return True


def stale(generation_id: int, largest: int) -> bool:
    """OpenFlow 1.3, 6.3.6: stale if the signed 64-bit difference is negative."""
    difference = (generation_id - largest) & 0xFFFF_FFFF_FFFF_FFFF
    return difference >= 1 << 63


class RoleSwitch:
    """One switch's view of its controllers: a new connection is EQUAL; MASTER and SLAVE
    requests with a stale generation id are refused (and others raise the largest id);
    a new MASTER demotes the old one to SLAVE (OpenFlow 1.3 tells it nothing); flow-mods
    of a SLAVE are refused; packet-ins go to MASTER and EQUAL connections only."""

    def __init__(self) -> None:
        self.roles: dict[str, int] = {}
        self.largest: int | None = None
        self.masters: list[tuple[str, int]] = []  # (controller, generation id) accepted
        self.flow_mods: list[str] = []  # who installed each accepted flow-mod

    def connect(self, name: str) -> None:
        self.roles[name] = ofp.OFPCR_ROLE_EQUAL

    def disconnect(self, name: str) -> None:
        self.roles.pop(name, None)

    def master(self) -> str | None:
        masters = [n for n, role in self.roles.items() if role == ofp.OFPCR_ROLE_MASTER]
        assert len(masters) <= 1
        return masters[0] if masters else None

    def packet_in(self) -> set[str]:
        return {name for name, role in self.roles.items()
                if role in (ofp.OFPCR_ROLE_MASTER, ofp.OFPCR_ROLE_EQUAL)}

    def receive(self, name: str, msg: Any) -> tuple[int, int] | None:
        """Handle one message from controller ``name``: an error (type, code) or None."""
        assert name in self.roles, f"{name} is not connected"
        if isinstance(msg, parser.OFPRoleRequest):
            role, generation_id = msg.role, msg.generation_id
            if role in (ofp.OFPCR_ROLE_MASTER, ofp.OFPCR_ROLE_SLAVE):
                if self.largest is not None and stale(generation_id, self.largest):
                    return ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE
                self.largest = generation_id
            if role == ofp.OFPCR_ROLE_MASTER:
                for other, other_role in self.roles.items():
                    if other_role == ofp.OFPCR_ROLE_MASTER:
                        self.roles[other] = ofp.OFPCR_ROLE_SLAVE
                self.masters.append((name, generation_id))
            if role != ofp.OFPCR_ROLE_NOCHANGE:
                self.roles[name] = role
        elif isinstance(msg, parser.OFPFlowMod):
            if self.roles[name] == ofp.OFPCR_ROLE_SLAVE:
                return ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE
            self.flow_mods.append(name)
        return None
