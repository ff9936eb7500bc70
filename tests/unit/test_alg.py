from __future__ import annotations

import logging

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from ryu_pptp_alg import flowtable, pipeline
from ryu_pptp_alg.alg import Alg
from ryu_pptp_alg.config import config_from_dict
from ryu_pptp_alg.flowtable import FlowEntry
from tests.unit.test_config import VALID


def test_unknown_dpid_is_counted_and_logged_not_fatal(caplog):
    alg = Alg(config_from_dict(VALID))
    with caplog.at_level(logging.WARNING):
        assert alg.datapath_up(99) == []
        assert alg.packet_in(99, 1, b"\x00" * 60, 0) == []
        alg.datapath_down(99)
    assert alg.counters["unknown_dpid_connect"] == 1
    assert alg.counters["unknown_dpid_packet_in"] == 1
    assert "dpid 0x63" in caplog.text
    assert alg.gateways[1].connected is False


def test_connect_reads_our_flows_then_fixes_only_what_differs():
    alg = Alg(config_from_dict(VALID))
    (request,) = alg.datapath_up(1)
    assert isinstance(request, parser.OFPFlowStatsRequest) and request.xid is not None
    assert request.table_id == ofp.OFPTT_ALL
    assert (request.cookie, request.cookie_mask) == (pipeline.COOKIE_TAG, pipeline.COOKIE_TAG_MASK)
    static = pipeline.static_flows(alg.config.gateways[0])
    kept = flowtable.entry_of(static[0])
    stale = FlowEntry(1, 3000, pipeline.cookie(pipeline.CookieKind.GRE_PAIR, 9),
                      (("eth_type", 0x800),), b"")
    foreign = FlowEntry(2, 5, 0x1234, (), b"")  # another application's: never touched
    assert alg.flow_stats(1, [kept, stale], request.xid, more=True) == []  # part one
    *adds, delete, barrier = alg.flow_stats(1, [foreign], request.xid)
    assert [flowtable.entry_of(a) for a in adds] == [flowtable.entry_of(f) for f in static[1:]]
    assert delete.command == ofp.OFPFC_DELETE_STRICT and delete.cookie == stale.cookie
    assert delete.cookie_mask == 0xFFFFFFFFFFFFFFFF
    assert isinstance(barrier, parser.OFPBarrierRequest)
    assert alg.gateways[1].last_sync == {**alg.gateways[1].last_sync, "flows_kept": 1,
                                         "flows_added": len(static) - 1, "flows_deleted": 1}
    assert alg.flow_stats(1, [], request.xid) == []  # answered once
    assert alg.gateways[1].connected
    alg.datapath_down(1)
    assert not alg.gateways[1].connected


class FullDisk:
    """A store whose disk refuses every write."""

    def load(self):
        from ryu_pptp_alg.store import Loaded
        return Loaded({}, "cold", "", 0, 0)

    def append(self, dpid, changes):
        from ryu_pptp_alg.store import StoreError
        raise StoreError("state.msgpack: cannot append: No space left on device")


def test_a_store_that_refuses_writes_is_counted_and_logged_and_calls_go_on(caplog):
    alg = Alg(config_from_dict(VALID), store=FullDisk())
    arp = bytes.fromhex("ffffffffffff" "020000000009" "0806" "0001080006040001"
                        "020000000009" "0a000009" "000000000000" "0a000001")
    with caplog.at_level(logging.ERROR):
        alg.gateways[1].state.touch("conn", 1)  # a change to write
        assert alg.packet_in(1, 1, arp, 0) != []  # the ARP reply still goes
    assert alg.counters["state_store_errors"] == 1
    assert "No space left" in caplog.text and not alg.store_ok


def test_records_written_through_the_file_store_come_back_in_a_new_controller(tmp_path):
    from ryu_pptp_alg.records import SCHEMA
    from ryu_pptp_alg.store import FileStore

    config = config_from_dict(VALID)
    public = str(config.gateways[0].public_addresses[-1])
    first = Alg(config, store=FileStore(tmp_path / "state.msgpack", SCHEMA))
    first.add_forward({"public": public, "inside": "10.0.0.10"})
    first.store.close()  # killed: no compaction, the journal alone holds the change
    second = Alg(config, store=FileStore(tmp_path / "state.msgpack", SCHEMA))
    assert [f["inside"] for f in second.forwards(1) if f["public"] == public] == ["10.0.0.10"]
    assert second.gateways[1].last_restore is not None
    second.close()  # compacted, then reopened: the same
    third = Alg(config, store=FileStore(tmp_path / "state.msgpack", SCHEMA))
    assert [f["inside"] for f in third.forwards(1) if f["public"] == public] == ["10.0.0.10"]
