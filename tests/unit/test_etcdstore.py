"""The etcd state store (ryu_pptp_alg/etcdstore.py) against real etcd members
(ryu_pptp_alg/testbed/etcd.py): records round-trip as through the file store, batches
span transactions, a lost guard writes nothing, and etcd trouble is a prompt StoreError
that ends by itself when etcd is back."""

from __future__ import annotations

import base64
import itertools
import shutil
import time
from typing import Any

import pytest

from ryu_pptp_alg.config import config_from_dict
from ryu_pptp_alg.etcdstore import MAX_TXN_OPS, EtcdStore, NotMaster, record_key
from ryu_pptp_alg.store import FileStore, StoreError, open_store
from ryu_pptp_alg.testbed.etcd import EtcdCluster
from tests.conftest import REPORT, require

SCHEMA = 3
DPID, OTHER = 0xF0, 0x1_0000_0001
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One etcd member for the tests that do not stop members; each test its own prefix."""
    require(shutil.which("etcd") is not None, "etcd is not installed (apt install etcd-server)")
    with EtcdCluster(tmp_path_factory.mktemp("etcd1"), n=1) as cluster:
        yield cluster


@pytest.fixture
def trio(tmp_path):
    require(shutil.which("etcd") is not None, "etcd is not installed (apt install etcd-server)")
    with EtcdCluster(tmp_path / "etcd", n=3) as cluster:
        yield cluster


@pytest.fixture
def prefix():
    return f"/test-{next(_prefixes)}-{time.monotonic_ns()}/"


def store_for(cluster: EtcdCluster, prefix: str, **kwargs: Any) -> EtcdStore:
    return EtcdStore(cluster.endpoints, prefix, SCHEMA, **kwargs)


CHANGES = [
    ("conn", 1, [1, "10.0.0.2", 1723, b"\x00\xff"]),
    ("conn", 2, {"a": 1, 7: [2, 3]}),
    ("call", 2, 5),
    ("fwd", "203.0.113.5", "10.0.0.9"),
    ("meta", "id_mark", 3),
    ("pair", (1, "x", (2, b"y")), "tuple id"),
    ("conn", 1, None),  # deleted again
    ("call", 9, None),  # deleting what is not there
    ("conn", -4, ""),
]


def test_round_trip_as_through_the_file_store(single, prefix, tmp_path):
    store = store_for(single, prefix)
    assert store.load().status == "cold"
    reference = FileStore(tmp_path / "state", SCHEMA)
    reference.load()
    for target in (store, reference):
        target.append(DPID, CHANGES[:4])
        target.append(OTHER, [("call", 2, 6)])
        target.append(DPID, CHANGES[4:])
        target.append(OTHER, [])
    expected = reference.load().gateways
    assert expected[DPID]["pair"] == {(1, "x", (2, b"y")): "tuple id"}
    assert 1 not in expected[DPID]["conn"]
    loaded = store_for(single, prefix).load()  # a new store: nothing read from memory
    assert loaded.status == "restored"
    assert loaded.gateways == expected
    assert store.load_gateway(OTHER) == {"call": {2: 6}}
    assert store.load_gateway(DPID) == expected[DPID]
    assert store.load_gateway(0x99) == {}
    reference.close()
    store.close()


def test_key_layout_is_readable(single, prefix):
    store = store_for(single, prefix)
    store.load()
    store.append(DPID, [("fwd", "203.0.113.5", "10.0.0.9"), ("conn", 17, 1)])
    keys = {base64.b64decode(kv["key"]).decode()
            for kv in store._post("/kv/range", {"key": base64.b64encode(prefix.encode())
                                                .decode(), "range_end": "AA=="})["kvs"]}
    assert keys == {f"{prefix}schema", f"{prefix}gateways/00000000000000f0/fwd/s203.0.113.5",
                    f"{prefix}gateways/00000000000000f0/conn/i17"}
    assert record_key(prefix, DPID, "conn", 17) == f"{prefix}gateways/00000000000000f0/conn/i17"
    with pytest.raises(TypeError):
        store.append(DPID, [("conn", {"a": 1}, 1)])
    with pytest.raises(ValueError):
        store.append(DPID, [("a/b", 1, 1)])


def test_batches_over_max_txn_ops(single, prefix):
    store = store_for(single, prefix)
    store.load()
    n = 3 * MAX_TXN_OPS + 5
    store.append(DPID, [("conn", i, i * 10) for i in range(n)])
    assert store.load_gateway(DPID) == {"conn": {i: i * 10 for i in range(n)}}
    # Deletes across transactions, and a key changed twice in one batch: the last wins.
    store.append(DPID, [*(("conn", i, None) for i in range(0, n, 2)), ("conn", 1, "first"),
                        ("conn", 1, "second")])
    assert store.load_gateway(DPID) == {"conn": {i: "second" if i == 1 else i * 10
                                                 for i in range(1, n, 2)}}


def test_many_records_load_in_pages(single, prefix):
    store = store_for(single, prefix)
    store.load()
    for start in range(0, 2500, 500):
        store.append(DPID, [("conn", i, i) for i in range(start, start + 500)])
    loaded = store.load()
    assert loaded.gateways == {DPID: {"conn": {i: i for i in range(2500)}}}
    assert "2500 records" in loaded.detail


def lease(store: EtcdStore, ttl: int = 10) -> int:
    return int(store._post("/lease/grant", {"TTL": ttl})["ID"])


def hold(store: EtcdStore, key: str, lease_id: int) -> None:
    store._post("/kv/put", {"key": base64.b64encode(key.encode()).decode(),
                            "value": base64.b64encode(b"controller").decode(),
                            "lease": lease_id})


def test_guard_that_no_longer_holds_writes_nothing(single, prefix):
    store = store_for(single, prefix)
    store.load()
    key = f"{prefix}election/{DPID:016x}"
    mine = lease(store)
    hold(store, key, mine)
    store.set_guard(DPID, key, mine)
    store.append(DPID, [("conn", 1, "master")])
    assert store.load_gateway(DPID) == {"conn": {1: "master"}}

    hold(store, key, lease(store))  # another controller's lease took the key
    big = [("conn", i, "stale") for i in range(2 * MAX_TXN_OPS)]
    for batch in ([("conn", 1, "stale"), ("conn", 2, "stale")], big):
        with pytest.raises(NotMaster, match="no longer held"):
            store.append(DPID, batch)
    assert store.load_gateway(DPID) == {"conn": {1: "master"}}
    store.append(OTHER, [("conn", 1, "unguarded")])  # other switches are not affected

    hold(store, key, mine)
    store.append(DPID, [("conn", 2, "master again")])
    store._post("/lease/revoke", {"ID": mine})  # revoked (or expired): the key is gone
    with pytest.raises(NotMaster):
        store.append(DPID, [("conn", 3, "stale")])
    assert store.load_gateway(DPID) == {"conn": {1: "master", 2: "master again"}}
    assert isinstance(NotMaster("x"), StoreError)

    store.clear_guard(DPID)
    store.append(DPID, [("conn", 3, "single controller")])
    assert store.load_gateway(DPID)["conn"][3] == "single controller"


def test_other_schema_is_refused(single, prefix):
    store_for(single, prefix).load()
    other = EtcdStore(single.endpoints, prefix, SCHEMA + 1)
    with pytest.raises(StoreError, match=f"schema is {SCHEMA}, this controller writes "
                                         f"record schema {SCHEMA + 1}"):
        other.load()


def test_open_store_builds_it(single, prefix):
    config = config_from_dict({"gateways": [{
        "dpid": DPID, "inside_ports": [1], "outside_ports": [2],
        "inside_address": "10.0.0.1/24", "public_addresses": ["203.0.113.1"]}],
        "state": {"backend": "etcd", "endpoints": single.endpoints, "prefix": prefix}})
    store = open_store(config.state, SCHEMA)
    assert isinstance(store, EtcdStore)
    store.load()
    store.append(DPID, [("conn", 1, 1)])
    assert store_for(single, prefix).load().gateways == {DPID: {"conn": {1: 1}}}
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.append(DPID, [("conn", 2, 2)])


def test_unreachable_endpoints_then_fail_at_once():
    from ryu_pptp_alg.testbed.controller import free_port

    store = EtcdStore([f"http://127.0.0.1:{free_port()}" for _ in range(3)], "/x/", SCHEMA,
                      timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StoreError, match="no endpoint answered") as info:
        store.append(DPID, [("conn", 1, 1)])
    assert 0.5 <= time.monotonic() - started < 1  # retried until the timeout
    assert info.value.args[0].count("ConnectionFailedError") == 3
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"etcd is down .*; next try in"):
        store.load()
    assert time.monotonic() - started < 0.05


def leader(cluster: EtcdCluster) -> int:
    """The index of the member that leads the cluster."""
    statuses = []
    for i in range(len(cluster.endpoints)):
        one = EtcdStore([cluster.endpoints[i]], "/", SCHEMA)
        statuses.append(one._post("/maintenance/status", {}))
    ids = [status["header"]["member_id"] for status in statuses]
    return ids.index(statuses[0]["leader"])


def test_one_member_down_changes_nothing(trio, prefix):
    store = store_for(trio, prefix)
    store.load()
    took = {}
    for i in range(3):  # SIGTERM: a leader hands its role over first
        trio.stop_member(i)
        started = time.monotonic()
        store.append(DPID, [("conn", i, "one down")])
        took[f"member {i} stopped"] = time.monotonic() - started
        assert store.load_gateway(DPID)["conn"][i] == "one down"
        trio.start_member(i)
        trio.wait_healthy()
    trio.kill_member(leader(trio))  # requests hang until the others elect a leader
    started = time.monotonic()
    store.append(DPID, [("conn", 9, "leader killed")])
    took["leader killed"] = time.monotonic() - started
    assert took["leader killed"] < store.timeout
    assert store_for(trio, prefix).load().gateways == {
        DPID: {"conn": {0: "one down", 1: "one down", 2: "one down", 9: "leader killed"}}}
    REPORT.append("etcd store, one member of three down, write took: "
                  + ", ".join(f"{what} {seconds:.3f} s" for what, seconds in took.items()))


def test_without_quorum_store_error_then_resumes(trio, prefix):
    store = store_for(trio, prefix)
    store.load()
    store.append(DPID, [("conn", 1, "before")])
    trio.stop_member(1)
    trio.kill_member(2)
    started = time.monotonic()
    with pytest.raises(StoreError, match="no endpoint answered") as info:
        store.append(DPID, [("conn", 2, "without quorum")])
    first = time.monotonic() - started
    assert not isinstance(info.value, NotMaster)
    assert store.timeout <= first < store.timeout + store.attempt_timeout + 0.5
    started = time.monotonic()
    with pytest.raises(StoreError, match="etcd is down"):  # at once: no stall per change
        store.append(DPID, [("conn", 2, "without quorum")])
    with pytest.raises(StoreError):
        store.load_gateway(DPID)
    assert time.monotonic() - started < 0.05
    trio.start_member(1)
    trio.start_member(2)
    trio.wait_healthy()
    back = time.monotonic()
    while True:  # as the controller's ticker would: the same store, nothing reopened
        try:
            store.append(DPID, [("conn", 3, "after")])
            break
        except StoreError:
            assert time.monotonic() - back < 10
            time.sleep(0.1)
    resumed = time.monotonic() - back
    conns = store.load_gateway(DPID)["conn"]
    assert conns[1] == "before" and conns[3] == "after"
    REPORT.append(f"etcd store, two members of three down: first StoreError after "
                  f"{first:.2f} s, then at once; writes resumed {resumed:.2f} s after "
                  "quorum was back")


def test_write_rate(trio, prefix):
    """Changes per second appended to 3 members, in call set-up sized and large batches."""
    store = store_for(trio, prefix)
    store.load()
    rates = {}
    for size, batches in ((3, 300), (MAX_TXN_OPS, 30), (1000, 5)):
        ids = itertools.count()
        started = time.monotonic()
        for _ in range(batches):
            store.append(DPID, [("conn", next(ids), [1, "10.0.0.2", 1723, 0, 0])
                                for _ in range(size)])
        rates[size] = size * batches / (time.monotonic() - started)
    assert rates[3] > 50 and rates[MAX_TXN_OPS] > rates[3]
    REPORT.append("etcd store, 3 local members, changes/s by batch size: "
                  + ", ".join(f"{size}: {rate:.0f}" for size, rate in rates.items()))
