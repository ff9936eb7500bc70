"""High availability as the app runs it (ryu_pptp_alg/ha.py): two controllers' Algs, a
fake etcd, a fake guarded store and a switch that enforces roles and generation ids.
Per-switch take-over and release of the Alg, fencing of a deposed master's writes."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import pytest
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg.alg import Alg, NotMasterHere
from ryu_pptp_alg.config import PortForward, config_from_dict
from ryu_pptp_alg.election import Election, Guard
from ryu_pptp_alg.etcdstore import NotMaster
from ryu_pptp_alg.ha import HighAvailability
from ryu_pptp_alg.store import Change, Loaded, Records, StoreError
from tests.unit.fake_roles import FakeEtcd, FakeEtcdClient, RoleSwitch
from tests.unit.fakeswitch import FakeClock
from tests.unit.test_config import VALID

DPID = VALID["gateways"][0]["dpid"]
PREFIX = "/alg/"
TTL = 3
FORWARD = {"public": "203.0.113.1", "inside": "10.0.0.9"}


class SharedStore:
    """The etcd store as one instance sees it: records shared by all, each write guarded
    by the election key's lease as the real one's transactions are."""

    def __init__(self, records: dict[int, Records], kv: FakeEtcdClient) -> None:
        self.records = records
        self.kv = kv
        self.guards: dict[int, tuple[str, int]] = {}
        self.down = False
        self.reachable = True  # as the election last reported

    def set_guard(self, dpid: int, key: str, lease_id: int) -> None:
        self.guards[dpid] = (key, lease_id)

    def clear_guard(self, dpid: int) -> None:
        self.guards.pop(dpid, None)

    def set_reachable(self, reachable: bool, why: str = "") -> None:
        self.reachable = reachable

    def load_gateway(self, dpid: int) -> Records:
        if self.down:
            raise StoreError("etcd store: no endpoint answered")
        return {kind: dict(table) for kind, table in self.records.get(dpid, {}).items()}

    def load(self) -> Loaded:
        raise AssertionError("an elected controller loads one switch at a time")

    def append(self, dpid: int, changes: Sequence[Change]) -> None:
        if not (self.kv.etcd.up and self.kv.reachable):
            raise StoreError("etcd store: no endpoint answered")
        guard = self.guards.get(dpid)
        if guard is not None:
            holder = self.kv.etcd.holder(guard[0])
            if holder is None or holder.lease != guard[1]:
                raise NotMaster(f"dpid {dpid:#x}: not held")
        for kind, record_id, value in changes:
            table = self.records.setdefault(dpid, {}).setdefault(kind, {})
            if value is None:
                table.pop(record_id, None)
            else:
                table[record_id] = value

    def health(self) -> dict[str, Any]:
        return {"backend": "fake", "ok": not self.down, "error": None}

    def compaction_due(self) -> bool:
        return False

    def compact(self, gateways: Any) -> None:
        pass

    def maybe_sync(self, now: float) -> None:
        pass

    def close(self) -> None:
        pass


class Instance:
    def __init__(self, name: str, etcd: FakeEtcd, records: dict[int, Records],
                 switch: RoleSwitch, clock: FakeClock) -> None:
        self.name, self.switch, self.clock = name, switch, clock
        self.kv = etcd.client()
        self.store = SharedStore(records, self.kv)
        self.alg = Alg(config_from_dict(VALID), clock=clock, store=self.store, restore=False)
        self.election = Election(self.kv, name, PREFIX, TTL, [DPID], delay=1.0)
        self.sent: list[Any] = []
        self.errors: list[tuple[int, int]] = []
        self.ha = HighAvailability(self.election, self.alg, self.store, self.send,
                                   lambda dpid: name in switch.roles, clock=clock)
        switch.connect(name)
        self.ha.connected(DPID)
        self.alg.datapath_up(DPID)

    def send(self, dpid: int, msgs: list[Any]) -> None:
        for msg in msgs:
            self.sent.append(msg)
            error = self.switch.receive(self.name, msg)
            if error is not None:
                self.errors.append(error)
                self.ha.switch_error(dpid, *error)

    def roles_sent(self) -> list[tuple[int, int]]:
        return [(m.role, m.generation_id) for m in self.sent
                if isinstance(m, parser.OFPRoleRequest)]


@pytest.fixture
def group() -> tuple[FakeClock, FakeEtcd, RoleSwitch, Instance, Instance]:
    clock = FakeClock(1000.0)
    etcd = FakeEtcd(clock)
    switch = RoleSwitch()
    records: dict[int, Records] = {}
    a = Instance("a", etcd, records, switch, clock)
    b = Instance("b", etcd, records, switch, clock)
    return clock, etcd, switch, a, b


def run(clock: FakeClock, instances: list[Instance], seconds: float, step: float = 0.5) -> None:
    for _ in range(int(seconds / step)):
        clock.now += step
        for instance in instances:
            instance.ha.tick()


def elected(group: Any) -> tuple[Instance, Instance]:
    clock, _etcd, switch, a, b = group
    run(clock, [a, b], 3)
    master = a if switch.master() == "a" else b
    standby = b if master is a else a
    assert switch.master() == master.name
    return master, standby


def test_one_master_handles_the_switch_the_other_ignores_it(group) -> None:
    master, standby = elected(group)
    assert master.alg.mastered == {DPID} and standby.alg.mastered == set()
    assert master.alg.is_master(DPID) and not standby.alg.is_master(DPID)
    assert master.roles_sent()[-1][0] == ofp.OFPCR_ROLE_MASTER
    assert standby.roles_sent()[-1][0] == ofp.OFPCR_ROLE_SLAVE
    # the warm reconnect followed the MASTER request
    request = next(i for i, m in enumerate(master.sent) if isinstance(m, parser.OFPRoleRequest)
                   and m.role == ofp.OFPCR_ROLE_MASTER)
    assert any(isinstance(m, parser.OFPFlowStatsRequest) for m in master.sent[request:])
    assert standby.alg.packet_in(DPID, 1, b"\x00" * 60, 0) == []
    assert standby.alg.gateways[DPID].counters["ha_events_ignored"] == 1
    assert standby.alg.tick(DPID) == []
    with pytest.raises(NotMasterHere) as refused:
        standby.alg.add_forward(FORWARD)
    assert refused.value.status == 409
    master.alg.add_forward(FORWARD)  # written to the shared store, guarded
    rows = {row["dpid"]: row["ha"] for row in master.alg.status()}
    assert rows[DPID]["role"] == "master"
    assert {row["dpid"]: row["ha"]["role"] for row in standby.alg.status()} == {DPID: "slave"}
    assert standby.ha.health()["store"]["ok"]


def test_the_standby_takes_over_with_the_records(group) -> None:
    clock, _etcd, switch, _a, _b = group
    master, standby = elected(group)
    master.alg.add_forward(FORWARD)
    generation = master.election.status(DPID, clock())["generation_id"]
    switch.disconnect(master.name)  # kill -9: no more ticks, no more messages
    run(clock, [standby], TTL + 3)
    assert switch.master() == standby.name
    assert standby.alg.mastered == {DPID}
    new_generation = standby.election.status(DPID, clock())["generation_id"]
    assert new_generation > generation
    assert [row["public"] for row in standby.alg.forwards()] == [FORWARD["public"]]
    assert standby.alg.gateways[DPID].counters["ha_takeovers"] == 1


def test_a_deposed_master_writes_nothing_sends_nothing_and_steps_down(group) -> None:
    clock, _etcd, switch, _a, _b = group
    master, standby = elected(group)
    master.kv.reachable = False  # cut off from etcd: it ticks, but keeps nothing alive
    run(clock, [standby], TTL + 3)
    assert switch.master() == standby.name
    # The old master did not tick since: it still believes, until it writes.
    assert master.alg.mastered == {DPID}
    master.kv.reachable = True
    sent = len(master.sent)
    with pytest.raises(NotMasterHere):  # the write failed: nothing to answer with
        master.alg.add_forward({"public": "203.0.113.1", "inside": "10.0.0.8"})
    assert master.alg.mastered == set()
    assert master.alg.gateways[DPID].counters["ha_writes_refused"] == 1
    assert all(isinstance(m, parser.OFPRoleRequest | parser.OFPBarrierRequest)
               for m in master.sent[sent:])
    run(clock, [master, standby], 2)
    assert switch.master() == standby.name
    assert master.roles_sent()[-1][0] == ofp.OFPCR_ROLE_SLAVE
    assert standby.alg.forwards() == []  # the deposed master's write never landed


def test_records_that_cannot_be_read_are_read_again(group) -> None:
    clock, _etcd, switch, a, b = group
    a.store.down = b.store.down = True
    run(clock, [a, b], 3)
    assert a.alg.mastered == set() and b.alg.mastered == set()
    assert switch.master() is None
    a.store.down = b.store.down = False
    run(clock, [a, b], 2)
    assert {switch.master()} <= {"a", "b"} and switch.master() is not None


def test_release_and_take_over_keep_counters_and_connection() -> None:
    clock = FakeClock(1000.0)
    alg = Alg(config_from_dict(VALID), clock=clock)
    assert alg.mastered is None and alg.is_master(DPID)
    alg.datapath_up(DPID)
    alg.add_forward(FORWARD)
    alg.gateways[DPID].counters["packet_in"] = 7
    alg.release(DPID)
    gateway = alg.gateways[DPID]
    assert alg.mastered == set() and gateway.connected
    assert gateway.counters["packet_in"] == 7 and alg.forwards() == []
    alg.take_over(DPID, {})  # (with records: test_the_standby_takes_over_with_the_records)
    assert alg.mastered == {DPID} and alg.gateways[DPID].connected
    assert alg.gateways[DPID].counters["ha_takeovers"] == 1


def test_guard_of_the_fake_matches_the_real_store() -> None:
    """The fake's guard compares the lease, as EtcdStore's transaction does."""
    clock = FakeClock(0.0)
    etcd = FakeEtcd(clock)
    kv = etcd.client()
    lease = kv.grant(TTL)
    holder = kv.create("/alg/election/1", "a", lease)
    store = SharedStore({}, kv)
    guard = Guard("/alg/election/1", lease, holder.create_revision)
    store.set_guard(1, guard.key, guard.lease)
    store.append(1, [("fwd", "x", "y")])
    kv.revoke(lease)
    with pytest.raises(NotMaster):
        store.append(1, [("fwd", "x", None)])


def test_without_quorum_the_master_keeps_the_switch_refuses_set_ups_and_resumes(group) -> None:
    clock, etcd, switch, _a, _b = group
    master, standby = elected(group)
    generation = master.election.status(DPID, clock())["generation_id"]
    sent = len(master.sent)
    etcd.up = False
    run(clock, [master, standby], 3 * TTL)
    master.alg.add_forward(FORWARD)  # it goes on, unwritten for now
    assert master.alg.counters["state_store_errors"] == 1
    assert DPID not in master.store.records
    assert switch.master() == master.name and master.alg.mastered == {DPID}
    assert standby.alg.mastered == set()
    assert not master.store.reachable and master.alg.gateways[DPID].store_down
    status = master.alg.status()[0]["ha"]
    assert (status["role"], status["lease_confirmed"]) == ("master", False)
    assert master.ha.health()["etcd"] == "unavailable"
    assert not any(isinstance(m, parser.OFPRoleRequest) for m in master.sent[sent:])
    etcd.up = True  # quorum back: the same lease, the same master, set-ups again
    run(clock, [master, standby], 2)
    assert switch.master() == master.name and master.alg.mastered == {DPID}
    assert master.election.status(DPID, clock())["generation_id"] == generation
    assert master.store.reachable and not master.alg.gateways[DPID].store_down
    assert master.alg.status()[0]["ha"]["lease_confirmed"] is True
    assert master.alg.gateways[DPID].counters["ha_takeovers"] == 1
    master.alg.housekeeping()  # what could not be written goes now
    assert master.store.records[DPID]["fwd"] == {FORWARD["public"]: FORWARD["inside"]}


class SlowStore(SharedStore):
    """The etcd store as greenlets see it: a write waits on the network (and yields), the
    first one longest."""

    def __init__(self, kv: FakeEtcdClient) -> None:
        super().__init__({}, kv)
        self.waits = [0.05]

    def append(self, dpid: int, changes: Sequence[Change]) -> None:
        import eventlet
        eventlet.sleep(self.waits.pop(0) if self.waits else 0.0)
        super().append(dpid, changes)


@pytest.mark.parametrize("locked", [True, False])
def test_writes_from_two_greenlets_commit_in_the_order_their_changes_were_made(locked):
    """A forward added (its write slow) and removed from another greenlet meanwhile: the
    removal must land last. Without the app's lock it lands first (the check fails)."""
    import eventlet
    from eventlet.semaphore import BoundedSemaphore
    store = SlowStore(FakeEtcd(FakeClock(0.0)).client())
    alg = Alg(config_from_dict(VALID), clock=FakeClock(0.0), store=store, restore=False)
    alg.take_over(DPID, {})
    if locked:
        alg.store_lock = BoundedSemaphore(1)
    adding = eventlet.spawn(alg.add_forward, FORWARD)
    eventlet.sleep(0)  # the add has taken its changes and waits on the store
    removing = eventlet.spawn(alg.remove_forward, FORWARD["public"])
    adding.wait()
    removing.wait()
    assert alg.forwards() == []
    stored = store.records.get(DPID, {}).get("fwd", {})
    assert (stored == {}) is locked, stored


def test_group_commit_writes_what_events_changed_once_and_refuses_a_deposed_master(group):
    clock, _etcd, switch, _a, _b = group
    master, standby = elected(group)
    alg = master.alg
    alg.group_commit = True
    gateway = alg.gateways[DPID]
    public, inside = ipaddress.IPv4Address(FORWARD["public"]), "10.0.0.9"
    gateway.add_forward(PortForward(public, ipaddress.IPv4Address(inside)))  # an event's
    assert alg.tick(DPID) is not None  # events return their messages at once, unwritten
    assert "fwd" not in master.store.records.get(DPID, {})
    appends = []
    real_append = master.store.append
    master.store.append = lambda dpid, changes: (appends.append(len(changes)),
                                                 real_append(dpid, changes))[1]
    assert alg.commit() == set()  # one write for everything since the last
    assert master.store.records[DPID]["fwd"] == {FORWARD["public"]: inside}
    assert len(appends) == 1 and alg.commit() == set() and len(appends) == 1
    # REST changes are written at once, group commit or not: they answer after.
    alg.remove_forward(FORWARD["public"])
    assert master.store.records[DPID]["fwd"] == {} and len(appends) == 2
    # Deposed meanwhile: the commit is refused, the switch released, its messages dropped.
    master.kv.reachable = False
    run(clock, [standby], TTL + 3)
    master.kv.reachable = True
    assert switch.master() == standby.name
    gateway.add_forward(PortForward(public, ipaddress.IPv4Address(inside)))
    assert alg.commit() == {DPID}
    assert alg.mastered == set() and gateway.counters["ha_writes_refused"] == 1
