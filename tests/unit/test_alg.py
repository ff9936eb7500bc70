from __future__ import annotations

import logging

from ryu.ofproto import ofproto_v1_3 as ofp

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.alg import Alg
from ryu_pptp_alg.config import config_from_dict
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


def test_connect_resets_only_our_flows_then_installs_pipeline_then_barrier():
    alg = Alg(config_from_dict(VALID))
    msgs = alg.datapath_up(1)
    reset, *flows, barrier = msgs
    assert reset.command == ofp.OFPFC_DELETE and reset.table_id == ofp.OFPTT_ALL
    assert (reset.cookie, reset.cookie_mask) == (pipeline.COOKIE_TAG, pipeline.COOKIE_TAG_MASK)
    assert type(barrier).__name__ == "OFPBarrierRequest"
    assert all(pipeline.decode_cookie(f.cookie) is not None for f in flows)
    assert alg.gateways[1].connected
    alg.datapath_down(1)
    assert not alg.gateways[1].connected
