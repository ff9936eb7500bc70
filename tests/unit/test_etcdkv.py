"""The election's etcd adapter (ryu_pptp_alg/etcdkv.py) against a real etcd member:
it behaves as the fake the election's tests use, and etcd trouble is a prompt
Unavailable."""

from __future__ import annotations

import itertools
import shutil
import time

import pytest

from ryu_pptp_alg.election import Election, Unavailable, election_key
from ryu_pptp_alg.etcdkv import EtcdKeyValue, call_timeouts
from ryu_pptp_alg.testbed.controller import free_port
from ryu_pptp_alg.testbed.etcd import EtcdCluster
from tests.conftest import require

_prefixes = itertools.count()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    require(shutil.which("etcd") is not None, "etcd is not installed (apt install etcd-server)")
    with EtcdCluster(tmp_path_factory.mktemp("etcdkv"), n=1) as cluster:
        yield cluster


@pytest.fixture
def prefix():
    return f"/kv-{next(_prefixes)}-{time.monotonic_ns()}/"


def kv_for(endpoints: list[str], ttl: int = 2) -> EtcdKeyValue:
    return EtcdKeyValue(endpoints, *call_timeouts(ttl, len(endpoints)))


def test_timeouts_stay_well_under_the_keepalive_interval() -> None:
    for ttl in (1, 2, 3, 10):
        whole, attempt = call_timeouts(ttl, 3)
        assert whole <= ttl / 4 < ttl / 3
        assert attempt <= whole


def test_keys_leases_and_revisions(single, prefix) -> None:
    kv = kv_for(single.endpoints)
    lease = kv.grant(5)
    other = kv.grant(5)
    key = f"{prefix}election/00000000000000f0"
    won = kv.create(key, "a", lease)
    assert (won.value, won.lease) == ("a", lease)
    lost = kv.create(key, "b", other)
    assert lost == won  # the holder, unchanged
    holders, revision = kv.range(f"{prefix}election/")
    assert holders == {key: won}
    assert revision >= won.create_revision
    assert kv.keepalive(lease)
    assert not kv.delete(key, other)
    kv.put(f"{prefix}connected/x", "me", other)
    assert set(kv.range(prefix)[0]) == {key, f"{prefix}connected/x"}
    kv.revoke(lease)
    assert not kv.keepalive(lease)
    assert set(kv.range(prefix)[0]) == {f"{prefix}connected/x"}
    again = kv.create(key, "b", other)
    assert again.create_revision > won.create_revision  # generation ids only grow
    assert kv.delete(key, other)
    kv.revoke(lease)  # gone already: no error
    with pytest.raises(Unavailable):
        kv.put(key, "x", lease)  # a lease that is gone


def test_no_etcd_is_a_prompt_unavailable() -> None:
    kv = kv_for([f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"])
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"127\.0\.0\.1"):
        kv.grant(2)
    assert time.monotonic() - started < 2 / 3


def test_two_elections_share_a_switch_over_real_etcd(single, prefix) -> None:
    a = Election(kv_for(single.endpoints), "a", prefix, 2, [0xF0], delay=0.5)
    b = Election(kv_for(single.endpoints), "b", prefix, 2, [0xF0], delay=0.5)
    now = time.monotonic()
    for election in (a, b):
        election.connected(0xF0, now)
    masters = []
    deadline = now + 5
    while not masters and time.monotonic() < deadline:
        for election in (a, b):
            masters += [(election.instance, act) for act in election.tick(time.monotonic())
                        if type(act).__name__ == "BecomeMaster"]
        time.sleep(0.1)
    assert len(masters) == 1
    winner = a if masters[0][0] == "a" else b
    loser = b if winner is a else a
    generation = masters[0][1].generation_id
    loser.tick(time.monotonic())  # it may have ticked before the other won
    assert loser.status(0xF0, time.monotonic())["master"] == winner.instance
    winner.close()  # revokes the lease: the other takes over at its next ticks
    taken = []
    deadline = time.monotonic() + 5
    while not taken and time.monotonic() < deadline:
        taken = [act for act in loser.tick(time.monotonic())
                 if type(act).__name__ == "BecomeMaster"]
        time.sleep(0.1)
    assert taken and taken[0].generation_id > generation
    assert taken[0].guard.key == election_key(prefix, 0xF0)
    loser.close()
