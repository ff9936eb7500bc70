"""Control-stream reassembly: framing, retransmission, reordering, wraparound."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.codec.errors import PptpError, ReassemblyOverflow, StreamDesync
from ryu_pptp_alg.codec.reassembly import StreamMessage, StreamReassembler

from .strategies import ALL_CLASSES, any_message, distinct_message

MOD = 1 << 32
MESSAGES = [pptp.build(distinct_message(cls)) for cls in ALL_CLASSES]
STREAM = b"".join(MESSAGES)


def expected(isn: int) -> list[StreamMessage]:
    out, offset = [], 0
    for m in MESSAGES:
        out.append(StreamMessage((isn + offset) % MOD, m))
        offset += len(m)
    return out


def feed_all(r: StreamReassembler, segments: list[tuple[int, bytes]]) -> list[StreamMessage]:
    out: list[StreamMessage] = []
    for seq, data in segments:
        out += r.feed(seq, data)
    return out


def test_whole_stream_in_one_segment() -> None:
    r = StreamReassembler(1000)
    assert r.feed(1000, STREAM) == expected(1000)
    assert r.next_seq == (1000 + len(STREAM)) % MOD
    assert r.buffered == 0


def test_byte_by_byte_with_wraparound() -> None:
    isn = MOD - 100
    r = StreamReassembler(isn)
    out = feed_all(r, [((isn + i) % MOD, STREAM[i : i + 1]) for i in range(len(STREAM))])
    assert out == expected(isn)
    assert r.next_seq == (isn + len(STREAM)) % MOD


def test_initial_seq_taken_from_first_segment() -> None:
    r = StreamReassembler()
    assert r.next_seq is None
    assert r.feed(5, MESSAGES[0][:3]) == []
    assert r.next_seq == 8 and r.buffered == 3
    assert r.feed(8, MESSAGES[0][3:]) == [StreamMessage(5, MESSAGES[0])]


def test_retransmissions_yield_nothing_twice() -> None:
    r = StreamReassembler(0)
    first, second = MESSAGES[0], MESSAGES[1]
    assert r.feed(0, first) == [StreamMessage(0, first)]
    assert r.feed(0, first) == []  # full retransmit
    assert r.feed(10, first[10:] + second[:5]) == []  # partial overlap, new tail kept
    assert r.buffered == 5
    assert r.feed(len(first), second) == [StreamMessage(len(first), second)]
    assert r.feed(0, first + second) == []


def test_out_of_order_segments_wait_for_the_gap() -> None:
    r = StreamReassembler(MOD - 10)
    a, b, c = STREAM[:50], STREAM[50:200], STREAM[200:400]
    assert r.feed((MOD - 10 + 200) % MOD, c) == []
    assert r.feed((MOD - 10 + 50) % MOD, b) == []
    assert r.buffered == 350
    assert r.next_seq == MOD - 10
    out = r.feed(MOD - 10, a)
    assert b"".join(m.data for m in out) == STREAM[: sum(len(m.data) for m in out)]
    assert r.next_seq == (MOD - 10 + 400) % MOD
    assert r.buffered == 400 - sum(len(m.data) for m in out)


def test_overlapping_out_of_order_segments_merge() -> None:
    r = StreamReassembler(0)
    r.feed(100, STREAM[100:160])
    r.feed(140, STREAM[140:220])  # overlaps the first
    r.feed(220, STREAM[220:230])  # adjacent
    r.feed(150, STREAM[150:170])  # inside
    assert r.buffered == 130
    out = r.feed(0, STREAM[:100])
    assert [m.data for m in out] == [MESSAGES[0]]  # 156 bytes; the 2nd needs up to 312
    assert r.buffered == 230 - 156


def test_overflow_drops_the_segment_and_keeps_state() -> None:
    r = StreamReassembler(0, max_buffered=100)
    r.feed(10, STREAM[10:90])
    with pytest.raises(ReassemblyOverflow):
        r.feed(95, STREAM[95:130])
    assert r.buffered == 80
    assert r.feed(0, STREAM[:10]) == []
    assert r.buffered == 90


@pytest.mark.parametrize("length", [0, 1, 11, 221, 0xFFFF])
def test_bad_length_desyncs_for_good(length: int) -> None:
    r = StreamReassembler(0)
    good = MESSAGES[4]
    with pytest.raises(StreamDesync) as info:
        r.feed(0, good + length.to_bytes(2, "big") + good[2:])
    assert info.value.messages == [StreamMessage(0, good)]  # completed before the desync
    assert r.failed
    with pytest.raises(StreamDesync):
        r.feed(len(good) * 2, good)


def test_bad_cookie_desyncs() -> None:
    bad = bytearray(MESSAGES[4])
    bad[7] ^= 1
    r = StreamReassembler(0)
    assert r.feed(0, bytes(bad[:7])) == []  # cookie not complete yet
    with pytest.raises(StreamDesync, match="cookie"):
        r.feed(7, bytes(bad[7:8]))
    assert issubclass(StreamDesync, PptpError)


def test_far_old_segment_is_ignored_not_misplaced() -> None:
    r = StreamReassembler(10)
    r.feed(10, STREAM[:100])
    assert r.feed((10 - 1000) % MOD, b"\x00" * 50) == []
    assert r.next_seq == 110


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(any_message, min_size=1, max_size=8),
    isn=st.integers(MOD - 2000, MOD - 1) | st.integers(0, MOD - 1),
    data=st.data(),
)
def test_random_segmentation_reorder_and_retransmit(
    messages: list[pptp.Message], isn: int, data: st.DataObject
) -> None:
    wires = [pptp.build(m) for m in messages]
    stream = b"".join(wires)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=30)))
    bounds = [0, *cuts, len(stream)]
    segments = [(bounds[i], stream[bounds[i] : bounds[i + 1]]) for i in range(len(bounds) - 1)]
    # Retransmissions: duplicates and overlapping spans of the stream.
    for _ in range(data.draw(st.integers(0, 5))):
        lo = data.draw(st.integers(0, len(stream) - 1))
        hi = data.draw(st.integers(lo + 1, len(stream)))
        segments.append((lo, stream[lo:hi]))
    segments = data.draw(st.permutations(segments))
    r = StreamReassembler(isn)
    out = feed_all(r, [((isn + off) % MOD, seg) for off, seg in segments])

    assert [m.data for m in out] == wires
    offsets, pos = [], 0
    for w in wires:
        offsets.append((isn + pos) % MOD)
        pos += len(w)
    assert [m.offset for m in out] == offsets
    assert [pptp.parse(m.data) for m in out] == messages
    assert r.buffered == 0
    assert r.next_seq == (isn + len(stream)) % MOD
