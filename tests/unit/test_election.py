"""The election and its fencing, against a fake etcd and switches that enforce roles."""

from __future__ import annotations

import itertools
import random

import pytest
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import ofmsg
from ryu_pptp_alg.election import (
    BecomeMaster,
    BecomeSlave,
    Election,
    Guard,
    Holder,
    RequestRole,
    Role,
    Unavailable,
    election_key,
    instance_name,
    rank,
    role_messages,
)
from tests.unit.fake_roles import FakeEtcd, FakeEtcdClient, RoleSwitch, stale
from tests.unit.fakeswitch import FakeClock

PREFIX = "/alg/"
TTL = 3
TICK = 1.0


def flow_mod() -> parser.OFPFlowMod:
    return parser.OFPFlowMod(None, table_id=0, command=ofp.OFPFC_ADD, match=ofmsg.match())


class Node:
    """One controller instance as the app would run it: it ticks the election, carries
    out its actions on the switches, and reports the switches' errors back."""

    def __init__(self, name: str, etcd: FakeEtcd, switches: dict[int, RoleSwitch],
                 clock: FakeClock, connect: bool = True, **options: float) -> None:
        self.name, self.etcd, self.switches, self.clock = name, etcd, switches, clock
        self.kv = etcd.client()
        self.election = Election(self.kv, name, PREFIX, TTL, sorted(switches), **options)
        self.alive = True
        self.loaded: dict[int, int] = {}  # dpid -> generation id its records were loaded for
        self.log: list[object] = []
        if connect:
            for dpid in switches:
                self.connect(dpid)

    def connect(self, dpid: int) -> None:
        self.switches[dpid].connect(self.name)
        self.apply(self.election.connected(dpid, self.clock()))

    def disconnect(self, dpid: int) -> None:
        self.switches[dpid].disconnect(self.name)
        self.election.disconnected(dpid, self.clock())

    def tick(self) -> None:
        if self.alive:
            self.apply(self.election.tick(self.clock()))

    def apply(self, actions: list) -> None:
        self.log.extend(actions)
        for action in actions:
            if isinstance(action, BecomeMaster):
                self.loaded[action.dpid] = action.generation_id
                self.send(action.dpid, role_messages(Role.MASTER, action.generation_id))
            elif isinstance(action, BecomeSlave):
                self.loaded.pop(action.dpid, None)
                self.send(action.dpid, role_messages(Role.SLAVE, action.generation_id))
            else:
                self.send(action.dpid, role_messages(action.role, action.generation_id))

    def send(self, dpid: int, msgs: list) -> list[tuple[int, int]]:
        switch = self.switches[dpid]
        if self.name not in switch.roles:
            return []
        errors = [error for msg in msgs if (error := switch.receive(self.name, msg))]
        for error in errors:
            self.apply(self.election.switch_error(dpid, *error, self.clock()))
        return errors

    def guard(self, dpid: int) -> Guard | None:
        return self.election.guard(dpid, self.clock())

    def write(self, dpid: int, guard: Guard | None = None) -> bool:
        """A store write for the switch, with its current guard (or an old one)."""
        guard = guard or self.guard(dpid)
        try:
            return guard is not None and self.kv.guarded_put(guard)
        except Unavailable:
            return False

    def masters(self) -> set[int]:
        return {dpid for dpid in self.switches if self.guard(dpid)}


class Group:
    def __init__(self, names: list[str], dpids: list[int], **options: float) -> None:
        self.clock = FakeClock(1000.0)
        self.etcd = FakeEtcd(self.clock)
        self.switches = {dpid: RoleSwitch() for dpid in dpids}
        self.options = options
        self.nodes = {name: self.start(name) for name in names}
        self.writes: dict[int, list[int]] = {dpid: [] for dpid in dpids}  # accepted terms

    def start(self, name: str) -> Node:
        return Node(name, self.etcd, self.switches, self.clock, **self.options)

    def run(self, seconds: float, step: float = TICK) -> None:
        """Advance the clock tick by tick; at every instant no two instances hold a switch,
        and every write the store accepts is of the newest term yet."""
        end = self.clock.now + seconds
        while self.clock.now < end - 1e-9:
            self.clock.now += step
            for node in self.nodes.values():
                node.tick()
            self.check()

    def check(self) -> None:
        for dpid, switch in self.switches.items():
            holders = [n for n in self.nodes.values() if n.guard(dpid)]  # paused ones too
            assert len(holders) <= 1, f"dpid {dpid}: {[n.name for n in holders]} all master"
            for node in holders:
                if node.write(dpid):
                    terms = self.writes[dpid]
                    assert not terms or terms[-1] <= node.guard(dpid).generation_id
                    terms.append(node.guard(dpid).generation_id)
            # Generation ids only grow; one repeats only as its master asks again (it
            # reconnected, its lease unconfirmed or not).
            for (name1, id1), (name2, id2) in itertools.pairwise(switch.masters):
                assert id2 > id1 or (id2 == id1 and name2 == name1), switch.masters

    def master_of(self, dpid: int) -> Node | None:
        holders = [n for n in self.nodes.values() if n.alive and n.guard(dpid)]
        return holders[0] if holders else None

    def settled(self) -> None:
        """Each switch has one master, and the switch agrees on who it is."""
        for dpid, switch in self.switches.items():
            master = self.master_of(dpid)
            assert master is not None, f"dpid {dpid} has no master"
            assert switch.master() == master.name
            assert master.loaded[dpid] == master.guard(dpid).generation_id
            for node in self.nodes.values():
                if node is not master and node.alive and node.name in switch.roles:
                    assert switch.roles[node.name] == ofp.OFPCR_ROLE_SLAVE, node.name
                    assert dpid not in node.loaded
            assert switch.packet_in() == {master.name}


def preferred_dpid(first: str, others: list[str]) -> int:
    """A dpid that rendezvous hashing gives to ``first``."""
    return next(d for d in range(1, 100) if rank(d, {first, *others})[0] == first)


# --- the fake switch ------------------------------------------------------------------------

def test_fake_switch_compares_generation_ids_as_signed_64_bit_differences():
    assert stale(5, 6) and not stale(6, 6) and not stale(7, 6)
    assert not stale(3, 2**64 - 5)  # wrapped round: newer
    assert stale(2**64 - 5, 3)


def test_fake_switch_enforces_roles():
    switch = RoleSwitch()
    for name in "abc":
        switch.connect(name)
    assert switch.packet_in() == {"a", "b", "c"}  # EQUAL until they ask
    assert switch.receive("a", role_messages(Role.MASTER, 10)[0]) is None
    assert switch.receive("b", role_messages(Role.SLAVE, 9)[0]) == (
        ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE)
    assert switch.receive("b", role_messages(Role.SLAVE, 10)[0]) is None
    assert switch.packet_in() == {"a", "c"}
    assert switch.receive("b", flow_mod()) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)
    assert switch.receive("c", role_messages(Role.MASTER, 12)[0]) is None
    assert switch.roles["a"] == ofp.OFPCR_ROLE_SLAVE  # demoted, and not told
    assert switch.receive("a", flow_mod()) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)
    assert switch.receive("a", role_messages(Role.MASTER, 10)[0]) == (
        ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE)
    assert switch.receive("c", flow_mod()) is None
    assert (switch.master(), switch.packet_in(), switch.flow_mods) == ("c", {"c"}, ["c"])


def test_role_messages_are_a_request_then_a_barrier():
    request, barrier = role_messages(Role.SLAVE, 2**40)
    assert isinstance(request, parser.OFPRoleRequest)
    assert (request.role, request.generation_id) == (ofp.OFPCR_ROLE_SLAVE, 2**40)
    assert isinstance(barrier, parser.OFPBarrierRequest)


# --- one master, failover, fencing ----------------------------------------------------------

def test_the_preferred_instance_becomes_master_and_the_other_asks_for_slave():
    dpid = preferred_dpid("a", ["b"])
    group = Group(["a", "b"], [dpid])
    group.run(TICK)  # both publish their connection; the key is free: both ask for SLAVE
    a, b = group.nodes["a"], group.nodes["b"]
    [request] = b.log
    assert [type(x) for x in a.log] == [RequestRole] and request.role is Role.SLAVE
    group.run(TICK)  # the first-ranked campaigns, seeing the other connected too
    become = a.log[-1]
    assert isinstance(become, BecomeMaster) and become.dpid == dpid
    assert become.guard == Guard(election_key(PREFIX, dpid), a.election.lease,
                                 become.generation_id)
    assert become.generation_id > request.generation_id  # b's SLAVE request is not stale
    group.settled()
    group.run(10 * TTL)  # the lease is kept alive: nothing changes
    assert len(a.log) == 2 and len(b.log) == 1
    assert a.election.status(dpid, group.clock()) == {
        "role": "master", "lease_confirmed": True, "generation_id": become.generation_id,
        "master": "a"}
    assert b.election.status(dpid, group.clock()) == {
        "role": "slave", "lease_confirmed": False, "generation_id": become.generation_id,
        "master": "a"}
    assert group.writes[dpid] and set(group.writes[dpid]) == {become.generation_id}


def test_a_standby_takes_over_within_ttl_and_a_tick_when_the_master_dies():
    dpid = preferred_dpid("a", ["b", "c"])
    group = Group(["a", "b", "c"], [dpid])
    group.run(5 * TICK)
    old = group.master_of(dpid).guard(dpid)
    group.nodes["a"].alive = False  # killed: no keepalive, no revoke
    group.switches[dpid].disconnect("a")
    died = group.clock.now
    while group.master_of(dpid) is None:
        group.run(TICK / 4, step=TICK / 4)
    assert group.clock.now <= died + TTL + TICK
    new = group.master_of(dpid)
    assert new.guard(dpid).generation_id > old.generation_id
    group.run(2 * TICK)
    del group.nodes["a"]
    group.settled()


def test_a_paused_master_is_fenced_by_lease_and_generation_id_and_stays_slave():
    dpid = preferred_dpid("a", ["b"])
    group = Group(["a", "b"], [dpid])
    group.run(3 * TICK)
    a, b = group.nodes["a"], group.nodes["b"]
    old_guard, seen = a.guard(dpid), len(a.log)
    a.alive = False  # paused (a long GC pause, a partition): its connection stays up
    group.run(TTL + 2 * TICK)
    assert group.master_of(dpid) is b
    a.alive = True
    # Before its next tick it still believes it is master: both fences hold.
    assert not a.write(dpid, old_guard)
    assert a.send(dpid, [flow_mod()]) == [(ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)]
    assert isinstance(a.log[-1], BecomeSlave) and dpid not in a.loaded
    assert a.send(dpid, role_messages(Role.MASTER, old_guard.generation_id)) == [
        (ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE)]
    assert group.switches[dpid].flow_mods == []
    group.run(5 * TICK)
    assert a.guard(dpid) is None and not any(
        isinstance(action, BecomeMaster) for action in a.log[seen:])
    group.settled()
    group.run(20 * TICK)  # ranked first, but no rebalancing by default: it stays standby
    assert group.master_of(dpid) is b
    group.settled()


def test_a_master_cut_off_from_etcd_keeps_its_role_unconfirmed_until_etcd_says_otherwise():
    dpid = preferred_dpid("a", ["b"])
    group = Group(["a", "b"], [dpid])
    group.run(2 * TICK)
    a, b = group.nodes["a"], group.nodes["b"]
    generation = a.guard(dpid).generation_id
    seen = len(a.log)
    a.kv.reachable = False  # a alone: etcd expires its lease, b takes the switch
    group.clock.now += TTL  # no tick came in time: the lease is past its deadline
    assert a.guard(dpid) is None  # unconfirmed: nothing it writes counts on it
    a.tick()
    assert a.log[seen:] == [] and a.election.is_master(dpid)  # the switch still has it
    assert a.election.status(dpid, group.clock())["lease_confirmed"] is False
    assert a.election.health(group.clock())["etcd"] == "unavailable"
    group.run(3 * TICK)
    assert group.master_of(dpid) is b and group.switches[dpid].master() == "b"
    # The switch fences a: its flow-mods are refused, and that steps it down.
    assert a.send(dpid, [flow_mod()]) == [(ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)]
    assert a.log[seen:] == [BecomeSlave(dpid, generation)] and dpid not in a.loaded
    a.kv.reachable = True
    group.run(3 * TICK)
    group.settled()


def test_a_master_back_in_touch_with_etcd_steps_down_if_its_lease_is_gone():
    dpid = preferred_dpid("a", ["b"])
    group = Group(["a", "b"], [dpid])
    group.run(2 * TICK)
    a = group.nodes["a"]
    generation = a.guard(dpid).generation_id
    seen = len(a.log)
    a.kv.reachable = False
    group.run(TTL + 3 * TICK)  # b took over; a sent nothing, so nothing fenced it yet
    assert a.election.is_master(dpid) and a.log[seen:] == []
    a.kv.reachable = True
    a.tick()  # the keepalive finds the lease gone
    assert a.log[seen] == BecomeSlave(dpid, generation) and not a.election.is_master(dpid)
    group.run(3 * TICK)
    group.settled()


def test_generation_ids_only_grow_across_failovers():
    dpids = [1, 2, 3]
    group = Group(["a", "b"], dpids)
    group.run(2 * TICK)
    for round_ in range(8):
        victim = group.nodes["ab"[round_ % 2]]
        victim.alive = False
        group.run(TTL + 3 * TICK)
        victim.alive = True  # back after a pause: steps down, campaigns afresh
        group.run(3 * TICK)
    group.settled()
    for dpid, switch in group.switches.items():
        accepted = [generation_id for _, generation_id in switch.masters]
        assert len(accepted) >= 5 and accepted == sorted(set(accepted))
        terms = group.writes[dpid]
        assert terms == sorted(terms) and len(set(terms)) >= 5


def test_etcd_without_quorum_masters_keep_their_role_and_nothing_changes_when_it_is_back():
    dpids = [1, 2, 3, 4]
    group = Group(["a", "b", "c"], dpids)
    group.run(3 * TICK)
    before = {dpid: group.master_of(dpid).name for dpid in dpids}
    generations = {dpid: group.switches[dpid].largest for dpid in dpids}
    seen = {name: len(node.log) for name, node in group.nodes.items()}
    group.etcd.up = False
    group.run(5 * TTL, step=TICK / 2)  # far past every deadline
    for dpid in dpids:
        holder = group.nodes[before[dpid]]
        assert holder.election.is_master(dpid) and holder.guard(dpid) is None
        assert group.switches[dpid].master() == before[dpid]  # calls go on through it
        assert group.switches[dpid].packet_in() == {before[dpid]}
    for node in group.nodes.values():
        assert node.election.health(group.clock())["etcd"] == "unavailable"
        assert not node.write(1)  # nothing can be written: new set-ups are refused
    group.etcd.up = True  # etcd renews every lease: the same masters, confirmed again
    group.run(2 * TICK)
    assert {dpid: group.master_of(dpid).name for dpid in dpids} == before
    assert {dpid: group.switches[dpid].largest for dpid in dpids} == generations
    assert all(node.log[seen[name]:] == [] for name, node in group.nodes.items())
    group.settled()
    assert all(n.election.health(group.clock())["etcd"] == "ok" for n in group.nodes.values())


def test_one_master_per_switch_through_random_failures():
    rng = random.Random(15)
    dpids = [1, 2, 3, 4, 5]
    group = Group(["a", "b", "c"], dpids)
    for _ in range(150):
        node = group.nodes[rng.choice("abc")]
        event = rng.randrange(8)
        if event == 0:
            node.alive = not node.alive
        elif event == 1:
            node.kv.reachable = not node.kv.reachable
        elif event == 2:
            group.etcd.up = rng.random() < 0.7
        elif event == 3:
            dpid = rng.choice(dpids)
            (node.disconnect if node.name in group.switches[dpid].roles
             else node.connect)(dpid)
        group.run(rng.choice([0.5, 1.0, 2.0]), step=0.5)  # checks every instant
    group.etcd.up = True
    for node in group.nodes.values():
        node.alive = node.kv.reachable = True
        for dpid in dpids:
            if node.name not in group.switches[dpid].roles:
                node.connect(dpid)
    group.run(2 * TTL + 4 * TICK)
    group.settled()
    terms = sum(isinstance(x, BecomeMaster) for n in group.nodes.values() for x in n.log)
    assert terms >= 3 * len(dpids)  # it did fail over, many times


def test_a_master_whose_key_is_deleted_steps_down_and_a_new_term_begins():
    dpid = preferred_dpid("a", ["b"])
    group = Group(["a", "b"], [dpid])
    group.run(2 * TICK)
    a = group.nodes["a"]
    old = a.guard(dpid)
    del group.etcd.keys[old.key]  # etcdctl del
    group.etcd.revision += 1
    a.tick()
    assert a.log[-1] == BecomeSlave(dpid, old.generation_id) and a.guard(dpid) is None
    group.run(TICK)
    assert group.master_of(dpid).guard(dpid).generation_id > old.generation_id
    group.settled()


def test_an_unanswered_create_that_won_is_taken_up_at_the_next_tick():
    clock = FakeClock()
    etcd = FakeEtcd(clock)

    class LostAnswer(FakeEtcdClient):
        def create(self, key: str, value: str, lease: int) -> Holder:
            super().create(key, value, lease)
            raise Unavailable("timed out")

    election = Election(LostAnswer(etcd), "a", PREFIX, TTL, [7])
    election.connected(7, clock())
    assert election.tick(clock()) == [RequestRole(7, Role.SLAVE, etcd.revision)]
    clock.now += TICK
    assert election.tick(clock()) == []  # created, but the answer was lost
    clock.now += TICK
    [become] = election.tick(clock())
    assert become == BecomeMaster(7, etcd.keys[election_key(PREFIX, 7)].create_revision,
                                  election.guard(7, clock()))


# --- spreading and handing over -------------------------------------------------------------

@pytest.mark.parametrize("names", [["a", "b"], ["ctl-1:6653", "ctl-2:6653", "ctl-3:6653"]])
def test_switches_spread_about_evenly(names):
    group = Group(names, list(range(1, 121)))
    group.run(3 * TICK)
    group.settled()
    share = 120 / len(names)
    for node in group.nodes.values():
        assert 0.7 * share <= len(node.masters()) <= 1.3 * share, node.name
    assert sum(len(n.masters()) for n in group.nodes.values()) == 120


def test_a_restarted_instance_gets_its_share_back_one_switch_per_tick():
    dpids = list(range(1, 41))
    group = Group(["a"], dpids, settle=5.0)
    group.run(2 * TICK)
    assert len(group.nodes["a"].masters()) == 40
    group.nodes["b"] = group.start("b")
    group.run(4 * TICK)
    assert len(group.nodes["b"].masters()) == 0  # not before it has settled
    moved = []
    for _ in range(30):
        group.run(TICK)
        moved.append(len(group.nodes["b"].masters()))
    assert all(later - earlier <= 1 for earlier, later in itertools.pairwise(moved))
    share = sum(rank(dpid, {"a", "b"})[0] == "b" for dpid in dpids)
    assert moved[-1] == share and 10 <= share <= 30
    group.run(20 * TICK)  # and nothing moves back and forth
    assert len(group.nodes["b"].masters()) == share
    group.settled()


def test_only_an_instance_connected_to_the_switch_campaigns():
    dpid = preferred_dpid("a", ["b"])
    group = Group(["a", "b"], [dpid])
    group.run(2 * TICK)
    a, b = group.nodes["a"], group.nodes["b"]
    a.disconnect(dpid)  # the switch loses the master's connection
    group.run(TICK)
    assert a.guard(dpid) is not None  # it may come straight back
    group.run(2 * TICK)  # it does not: a resigns, b takes the switch
    assert group.master_of(dpid) is b
    assert not a.loaded
    a.connect(dpid)  # back, ranked first: it stays standby (no rebalancing by default)
    group.run(20 * TICK)
    assert group.master_of(dpid) is b
    group.settled()


def test_with_rebalancing_the_first_ranked_gets_its_switch_back_once_settled():
    dpid = preferred_dpid("a", ["b"])
    group = Group(["a", "b"], [dpid], settle=10.0)
    group.run(2 * TICK)
    a, b = group.nodes["a"], group.nodes["b"]
    old = a.guard(dpid)
    a.disconnect(dpid)
    group.run(3 * TICK)
    assert group.master_of(dpid) is b
    a.connect(dpid)
    group.run(TICK)
    assert group.master_of(dpid) is b
    group.run(12 * TICK)  # connected for settle seconds: b hands it over, a new term
    assert group.master_of(dpid) is a
    assert a.guard(dpid).generation_id > b.log[-1].generation_id > old.generation_id
    group.settled()


def test_close_revokes_the_lease_so_the_standby_takes_over_at_its_next_tick():
    dpid = preferred_dpid("a", ["b"])
    group = Group(["a", "b"], [dpid])
    group.run(2 * TICK)
    a = group.nodes["a"]
    a.apply(a.election.close())
    a.alive = False
    assert a.log[-1] == BecomeSlave(dpid, a.log[1].generation_id)
    group.run(TICK)
    assert group.master_of(dpid) is group.nodes["b"]
    del group.nodes["a"]
    group.settled()


def test_instance_names_must_be_usable_in_keys():
    etcd = FakeEtcd(FakeClock())
    for name in ("", "a/b"):
        with pytest.raises(ValueError):
            Election(etcd.client(), name, PREFIX, TTL, [1])


def test_instance_name_is_configured_or_hostname_and_port():
    assert instance_name("ctl-a", "host1", 6653) == "ctl-a"
    assert instance_name("", "host1", 6653) == "host1:6653"
