"""Enhanced GRE (RFC 2637 section 4.1) codec and fast call-id helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ryu_pptp_alg.codec import gre
from ryu_pptp_alg.codec.errors import (
    BadGreFlags,
    BadPayloadLength,
    GreError,
    GreFieldOutOfRange,
    NotEnhancedGre,
    TruncatedGre,
)

u32 = st.integers(0, 0xFFFFFFFF)
enhanced_gre = st.builds(
    gre.EnhancedGre,
    call_id=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=64),
    sequence=st.none() | u32,
    ack=st.none() | u32,
)

SAMPLES = [
    gre.EnhancedGre(call_id=0x1234, payload=b"\xff\x03\x00\x21E", sequence=7, ack=6),
    gre.EnhancedGre(call_id=1, payload=b"\x21" * 10, sequence=0xFFFFFFFF),
    gre.EnhancedGre(call_id=0xFFFF, ack=0),  # ack-only keepalive
    gre.EnhancedGre(call_id=0),
]
sample_ids = ["seq+ack", "seq", "ack", "bare"]


def test_constants() -> None:
    assert gre.PPTP_GRE_PROTOCOL == 0x880B
    assert gre.IP_PROTO_GRE == 47


def test_known_answer_with_seq_and_ack() -> None:
    wire = gre.build_gre(SAMPLES[0])
    # K, S, A set, version 1: 0011 0000 1000 0001
    assert wire == bytes.fromhex("3081 880b 0005 1234 00000007 00000006") + b"\xff\x03\x00\x21E"
    assert gre.parse_gre(wire) == SAMPLES[0]


def test_known_answer_flag_words() -> None:
    assert gre.build_gre(SAMPLES[1])[:2] == bytes.fromhex("3001")  # K S
    assert gre.build_gre(SAMPLES[2]) == bytes.fromhex("2081 880b 0000 ffff 00000000")  # K A
    assert gre.build_gre(SAMPLES[3]) == bytes.fromhex("2001 880b 0000 0000")  # K only


@given(enhanced_gre)
def test_parse_inverts_build(g: gre.EnhancedGre) -> None:
    wire = gre.build_gre(g)
    assert len(wire) == 8 + 4 * (g.sequence is not None) + 4 * (g.ack is not None) + len(g.payload)
    assert gre.parse_gre(wire) == g
    assert gre.peek_call_id(wire) == g.call_id


@given(st.booleans(), st.booleans(), st.integers(0, 0xFFFF), st.binary(max_size=40), st.data())
def test_build_inverts_parse(has_seq: bool, has_ack: bool, call_id: int, payload: bytes,
                             data: st.DataObject) -> None:
    flags = 0x2001 | (0x1000 if has_seq else 0) | (0x0080 if has_ack else 0)
    extra = data.draw(st.binary(min_size=4 * (has_seq + has_ack), max_size=4 * (has_seq + has_ack)))
    wire = (flags.to_bytes(2, "big") + b"\x88\x0b" + len(payload).to_bytes(2, "big")
            + call_id.to_bytes(2, "big") + extra + payload)
    assert gre.build_gre(gre.parse_gre(wire)) == wire


def test_max_payload() -> None:
    g = gre.EnhancedGre(call_id=5, payload=b"\xaa" * 0xFFFF)
    assert gre.parse_gre(gre.build_gre(g)) == g
    with pytest.raises(BadPayloadLength):
        gre.build_gre(gre.EnhancedGre(call_id=5, payload=b"\xaa" * 0x10000))


@pytest.mark.parametrize(
    "g",
    [
        gre.EnhancedGre(call_id=-1),
        gre.EnhancedGre(call_id=0x10000),
        gre.EnhancedGre(call_id=1, sequence=-1),
        gre.EnhancedGre(call_id=1, sequence=1 << 32),
        gre.EnhancedGre(call_id=1, ack=1 << 32),
    ],
)
def test_build_rejects_out_of_range(g: gre.EnhancedGre) -> None:
    with pytest.raises(GreFieldOutOfRange):
        gre.build_gre(g)


def test_a_payload_that_is_not_bytes_is_refused() -> None:
    """By the build (Python source) or already when the header is made (compiled)."""
    with pytest.raises((GreFieldOutOfRange, TypeError)):
        gre.build_gre(gre.EnhancedGre(call_id=1, payload="text"))  # type: ignore[arg-type]


@pytest.mark.parametrize("g", SAMPLES, ids=sample_ids)
def test_every_truncation(g: gre.EnhancedGre) -> None:
    wire = gre.build_gre(g)
    for cut in range(len(wire)):
        with pytest.raises(TruncatedGre):
            gre.parse_gre(wire[:cut])


@pytest.mark.parametrize("g", SAMPLES, ids=sample_ids)
def test_extra_bytes_are_a_payload_length_error(g: gre.EnhancedGre) -> None:
    with pytest.raises(BadPayloadLength):
        gre.parse_gre(gre.build_gre(g) + b"\x00")


def _with_flags(wire: bytes, set_bits: int = 0, clear_bits: int = 0) -> bytes:
    flags = (int.from_bytes(wire[:2], "big") | set_bits) & ~clear_bits
    return flags.to_bytes(2, "big") + wire[2:]


@pytest.mark.parametrize("version", [0, 2, 7])
def test_wrong_version(version: int) -> None:
    wire = _with_flags(gre.build_gre(SAMPLES[0]), version, 0x0007)
    for fn in (gre.parse_gre, gre.peek_call_id, lambda w: gre.with_call_id(w, 1)):
        with pytest.raises(NotEnhancedGre, match="version"):
            fn(wire)


def test_wrong_protocol() -> None:
    wire = gre.build_gre(SAMPLES[0])
    wire = wire[:2] + b"\x08\x00" + wire[4:]
    for fn in (gre.parse_gre, gre.peek_call_id):
        with pytest.raises(NotEnhancedGre, match="protocol"):
            fn(wire)


@pytest.mark.parametrize(
    "bit", [0x8000, 0x4000, 0x0800, 0x0100, 0x0400, 0x0040, 0x0008],
    ids=["C", "R", "s", "recur1", "recur4", "flags-hi", "flags-lo"],
)
def test_must_be_zero_flags(bit: int) -> None:
    wire = _with_flags(gre.build_gre(SAMPLES[0]), bit)
    for fn in (gre.parse_gre, gre.peek_call_id):
        with pytest.raises(BadGreFlags):
            fn(wire)


def test_missing_key_bit() -> None:
    wire = _with_flags(gre.build_gre(SAMPLES[0]), clear_bits=0x2000)
    for fn in (gre.parse_gre, gre.peek_call_id):
        with pytest.raises(BadGreFlags, match="K"):
            fn(wire)


def test_payload_length_mismatch() -> None:
    wire = bytearray(gre.build_gre(SAMPLES[0]))  # payload is 5 bytes
    wire[4:6] = (6).to_bytes(2, "big")
    with pytest.raises(TruncatedGre):
        gre.parse_gre(bytes(wire))
    wire[4:6] = (4).to_bytes(2, "big")
    with pytest.raises(BadPayloadLength):
        gre.parse_gre(bytes(wire))


@given(enhanced_gre, st.integers(0, 0xFFFF))
def test_with_call_id_only_touches_the_call_id(g: gre.EnhancedGre, call_id: int) -> None:
    wire = gre.build_gre(g)
    rewritten = gre.with_call_id(wire, call_id)
    assert gre.parse_gre(rewritten) == gre.EnhancedGre(call_id, g.payload, g.sequence, g.ack)
    assert rewritten[:6] == wire[:6] and rewritten[8:] == wire[8:]


def test_helpers_reject_short_input_and_bad_call_id() -> None:
    wire = gre.build_gre(SAMPLES[0])
    assert gre.peek_call_id(wire[:8]) == 0x1234  # only the fixed header is needed
    with pytest.raises(TruncatedGre):
        gre.peek_call_id(wire[:7])
    with pytest.raises(TruncatedGre):
        gre.with_call_id(wire[:7], 1)
    with pytest.raises(GreFieldOutOfRange):
        gre.with_call_id(wire, 0x10000)


@given(st.binary(max_size=40))
def test_random_bytes_raise_only_gre_errors(data: bytes) -> None:
    try:
        g = gre.parse_gre(data)
    except GreError:
        return
    assert gre.build_gre(g) == data


@given(enhanced_gre, st.data())
def test_corrupted_packets_raise_only_gre_errors(g: gre.EnhancedGre, data: st.DataObject) -> None:
    wire = bytearray(gre.build_gre(g))
    pos = data.draw(st.integers(0, len(wire) - 1))
    wire[pos] = data.draw(st.integers(0, 255))
    wire = bytes(wire[: data.draw(st.integers(0, len(wire)))])
    try:
        parsed = gre.parse_gre(wire)
    except GreError:
        parsed = None
    else:
        assert gre.build_gre(parsed) == wire
    try:
        call_id = gre.peek_call_id(wire)
    except GreError:
        assert parsed is None  # peek is never stricter than a full parse
    else:
        assert call_id == int.from_bytes(wire[6:8], "big")
