"""Cross-check the enhanced GRE codec against scapy's GRE_PPTP and tshark."""

from __future__ import annotations

import pytest
from scapy.layers.l2 import GRE, GRE_PPTP
from scapy.packet import Raw

from ryu_pptp_alg.codec import gre

from .conftest import TsharkFields, gre_frame

PPP_IPCP = b"\xff\x03\x80\x21\x01\x01\x00\x04"  # PPP frame: IPCP Configure-Request
SAMPLES = [
    gre.EnhancedGre(call_id=0x1234, payload=PPP_IPCP, sequence=7, ack=6),
    gre.EnhancedGre(call_id=0xFFFF, payload=PPP_IPCP * 3, sequence=0xFFFFFFFF),
    gre.EnhancedGre(call_id=1, ack=0xFFFFFFFE),  # ack-only
    gre.EnhancedGre(call_id=0, payload=PPP_IPCP),  # neither
    gre.EnhancedGre(call_id=40000, payload=b"", sequence=0, ack=0),
]
ids = ["seq+ack", "seq-max", "ack-only", "bare", "zeros"]
each_sample = pytest.mark.parametrize("g", SAMPLES, ids=ids)


@each_sample
def test_scapy_decodes_our_encoding(g: gre.EnhancedGre) -> None:
    wire = gre.build_gre(g)
    pkt = GRE(wire)
    assert isinstance(pkt, GRE_PPTP)
    assert (pkt.chksum_present, pkt.routing_present, pkt.key_present) == (0, 0, 1)
    assert (pkt.strict_route_source, pkt.recursion_control, pkt.flags, pkt.version) == (0, 0, 0, 1)
    assert pkt.proto == gre.PPTP_GRE_PROTOCOL
    assert pkt.payload_len == len(g.payload)
    assert pkt.call_id == g.call_id
    assert pkt.seqnum_present == (g.sequence is not None)
    assert pkt.acknum_present == (g.ack is not None)
    if g.sequence is not None:
        assert pkt.sequence_number == g.sequence
    if g.ack is not None:
        assert pkt.ack_number == g.ack
    assert bytes(pkt.payload) == g.payload
    assert bytes(pkt) == wire


@each_sample
def test_we_decode_scapys_encoding(g: gre.EnhancedGre) -> None:
    layer = GRE_PPTP(
        call_id=g.call_id,
        seqnum_present=int(g.sequence is not None),
        sequence_number=g.sequence,
        acknum_present=int(g.ack is not None),
        ack_number=g.ack,
    )
    wire = bytes(layer / Raw(g.payload)) if g.payload else bytes(layer)
    assert gre.parse_gre(wire) == g


def test_tshark_decodes_our_encoding(tshark_fields: TsharkFields) -> None:
    wanted = [
        "gre.flags_and_version", "gre.proto", "gre.flags.key", "gre.flags.sequence_number",
        "gre.flags.ack", "gre.flags.version", "gre.key.payload_length", "gre.key.call_id",
        "gre.sequence_number", "gre.ack_number",
    ]
    rows = tshark_fields([gre_frame(gre.build_gre(g)) for g in SAMPLES], wanted)
    for g, row in zip(SAMPLES, rows, strict=True):
        has_seq, has_ack = g.sequence is not None, g.ack is not None
        assert int(row["gre.proto"], 0) == gre.PPTP_GRE_PROTOCOL
        assert int(row["gre.flags.version"]) == 1
        assert row["gre.flags.key"] in ("1", "True")
        assert row["gre.flags.sequence_number"] in (("1", "True") if has_seq else ("0", "False"))
        assert row["gre.flags.ack"] in (("1", "True") if has_ack else ("0", "False"))
        expected_flags = 0x2001 | (0x1000 if has_seq else 0) | (0x0080 if has_ack else 0)
        assert int(row["gre.flags_and_version"], 0) == expected_flags
        assert int(row["gre.key.payload_length"]) == len(g.payload)
        assert int(row["gre.key.call_id"]) == g.call_id
        assert row["gre.sequence_number"] == ("" if not has_seq else str(g.sequence))
        assert row["gre.ack_number"] == ("" if not has_ack else str(g.ack))


def test_tshark_sees_rewritten_call_id(tshark_fields: TsharkFields) -> None:
    original = gre.build_gre(SAMPLES[0])
    rewritten = gre.with_call_id(original, 0xBEEF)
    rows = tshark_fields([gre_frame(rewritten)], ["gre.key.call_id", "gre.sequence_number"])
    assert rows == [{"gre.key.call_id": str(0xBEEF), "gre.sequence_number": "7"}]
