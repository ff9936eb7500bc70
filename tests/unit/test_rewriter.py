"""Call-ID rewriting in the control stream, however the stream is cut into segments."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.codec.errors import StreamDesync
from ryu_pptp_alg.codec.reassembly import StreamReassembler
from ryu_pptp_alg.rewriter import DECIDED_OFFSETS, CallIdSite, StreamRewriter
from tests.unit.codec.strategies import ALL_CLASSES, message_strategy

messages_st = st.lists(st.sampled_from(ALL_CLASSES).flatmap(message_strategy), min_size=1,
                       max_size=8)


def translate(_context: object, site: CallIdSite) -> int:
    """A recognisable rewrite: every decided field (call IDs, a call reply's result and
    error codes) gets its bits flipped."""
    return site.value ^ 0xFFFF


def expected_stream(messages: list[pptp.Message]) -> bytes:
    out = b""
    for msg in messages:
        changes = {name: getattr(msg, name) ^ 0xFFFF for name in msg.CALL_ID_FIELDS}
        if pptp.REPLY_RESULT_OFFSETS.get(msg.TYPE):
            changes.update(result_code=msg.result_code ^ 0xFF,
                           error_code=msg.error_code ^ 0xFF)
        out += pptp.build(dataclasses.replace(msg, **changes))
    return out


def cut(data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [(a, data[a:b]) for a, b in itertools.pairwise(points) if b > a]


def arrival_order(segments: list[tuple[int, bytes]], rnd) -> list[tuple[int, bytes]]:
    """The segments as the network delivers them: a few neighbours swapped, some
    retransmitted at the end."""
    order = list(segments)
    for i in range(len(order) - 1):
        if rnd.random() < 0.2:
            order[i], order[i + 1] = order[i + 1], order[i]
    return order + [s for s in segments if rnd.random() < 0.3]


class Wire:
    """What the receiver reassembles from the forwarded segments."""

    def __init__(self, isn: int) -> None:
        self.isn = isn
        self.bytes: dict[int, int] = {}

    def take(self, emits) -> None:
        for emit in emits:
            base = (emit.seq - self.isn) % 2**32
            for i, byte in enumerate(emit.payload):
                previous = self.bytes.setdefault(base + i, byte)
                assert previous == byte, "a retransmission was forwarded differently"

    def stream(self) -> bytes:
        return bytes(self.bytes[i] for i in range(len(self.bytes)))


@settings(max_examples=200, deadline=None)
@given(messages_st, st.lists(st.integers(0, 2000), max_size=40), st.randoms(),
       st.integers(0, 2**32 - 1))
def test_any_segmentation_forwards_the_translated_stream(messages, cuts, rnd, isn):
    data = b"".join(pptp.build(m) for m in messages)
    segments = cut(data, cuts)
    order = arrival_order(segments, rnd)
    sites: list[CallIdSite] = []
    rewriter = StreamRewriter(isn, lambda _, site: (sites.append(site), translate(None, site))[1])
    wire, seen = Wire(isn), []
    for offset, chunk in order:
        result = rewriter.segment((isn + offset) % 2**32, chunk)
        assert result.error is None
        wire.take(result.emits)
        seen.extend(result.messages)
    assert wire.stream() == expected_stream(messages)
    assert [pptp.parse(m.data) for m in seen] == messages  # originals, each once, in order
    assert len(sites) == sum(len(DECIDED_OFFSETS.get(m.TYPE, ()))
                             for m in messages)  # each decided once
    assert rewriter.held == 0


def ocrq(call_id: int) -> bytes:
    return pptp.build(pptp.OutgoingCallRequest(call_id=call_id))


def test_byte_by_byte_holds_back_only_a_split_field():
    data = ocrq(0x1234)
    rewriter = StreamRewriter(100, lambda _, site: 0xBEEF)
    forwarded = []
    for i, byte in enumerate(data):
        (emit,) = rewriter.segment(100 + i, bytes([byte])).emits
        forwarded.append(emit)
    held = [i for i, e in enumerate(forwarded) if not e.complete]
    assert held == [12]  # the first byte of the call ID waits for the second
    assert forwarded[12].payload == b"" and forwarded[13].payload == b"\xbe\xef"
    assert forwarded[13].seq == 112


def test_segment_ending_inside_a_field_forwards_all_but_that_byte():
    data = pptp.build(pptp.EchoRequest()) + ocrq(7)
    rewriter = StreamRewriter(0, lambda _, site: 9)
    (first,) = rewriter.segment(0, data[:16 + 13]).emits
    assert len(first.payload) == 16 + 12 and not first.complete
    (second,) = rewriter.segment(29, data[29:]).emits
    assert second.seq == 28 and second.payload[:2] == b"\x00\x09"


def test_coalesced_messages_are_all_translated():
    data = ocrq(1) + pptp.build(pptp.CallClearRequest(call_id=1)) + ocrq(2)
    rewriter = StreamRewriter(0, translate)
    result = rewriter.segment(0, data)
    (emit,) = result.emits
    assert emit.payload == ocrq(0xFFFE) + pptp.build(pptp.CallClearRequest(call_id=0xFFFE)) \
        + ocrq(0xFFFD)
    assert len(result.messages) == 3


def test_retransmission_gets_the_same_translation_without_a_new_decision():
    decisions = []
    rewriter = StreamRewriter(0, lambda _, site: (decisions.append(site), 77)[1])
    first = rewriter.segment(0, ocrq(5)).emits[0].payload
    again = rewriter.segment(0, ocrq(5))
    assert again.emits[0].payload == first and again.messages == []
    assert len(decisions) == 1


def test_lost_framing_is_reported_and_bytes_still_flow():
    rewriter = StreamRewriter(0, translate)
    garbage = b"\x00\x05" + b"x" * 20
    result = rewriter.segment(0, garbage)
    assert result.emits[0].payload == garbage
    assert result.error is not None and rewriter.failed
    later = rewriter.segment(len(garbage), ocrq(3))
    assert later.emits[0].payload == ocrq(3)  # untouched once framing is lost


def test_out_of_order_bytes_are_bounded():
    rewriter = StreamRewriter(0, max_held=100)
    rewriter.segment(50, b"x" * 60)
    with pytest.raises(pptp.PptpError):
        rewriter.segment(200, b"y" * 60)


def test_messages_before_lost_framing_are_still_delivered():
    good = ocrq(4)
    result = StreamRewriter(0, translate).segment(0, good + b"\x00\x05" + b"x" * 20)
    assert [m.data for m in result.messages] == [good]
    assert isinstance(result.error, StreamDesync) and "length 5" in str(result.error)


@settings(max_examples=200, deadline=None)
@given(messages_st, st.lists(st.integers(0, 2000), max_size=40), st.integers(0, 2**32 - 1))
def test_framing_agrees_with_the_reference_reassembler(messages, cuts, isn):
    """The rewriter cuts messages itself; the codec's reassembler is the oracle."""
    data = b"".join(pptp.build(m) for m in messages)
    rewriter, reference = StreamRewriter(isn), StreamReassembler(isn)
    ours, theirs = [], []
    for offset, chunk in cut(data, cuts):
        ours.extend(rewriter.segment((isn + offset) % 2**32, chunk).messages)
        theirs.extend(reference.feed((isn + offset) % 2**32, chunk))
    assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(messages_st, st.lists(st.integers(0, 2000), max_size=40), st.randoms(),
       st.integers(0, 2**32 - 1))
def test_parking_between_messages_changes_nothing(messages, cuts, rnd, isn):
    """A rewriter replaced by its next sequence number whenever it can be behaves
    exactly like one kept all along (reordering and retransmissions included)."""
    data = b"".join(pptp.build(m) for m in messages)
    segments = cut(data, cuts)
    order = arrival_order(segments, rnd)
    decide = translate if rnd.random() < 0.5 else (lambda _, site: site.value)
    kept = StreamRewriter(isn, decide)
    state: StreamRewriter | int = isn
    parks = 0
    for offset, chunk in order:
        seq = (isn + offset) % 2**32
        stream = StreamRewriter(state, decide) if isinstance(state, int) else state
        assert stream.segment(seq, chunk) == kept.segment(seq, chunk)
        parked = stream.parked()
        parks += parked is not None
        state = stream if parked is None else parked


def test_a_stream_parks_only_between_messages_with_nothing_to_repeat():
    data = ocrq(7)
    keep_ids = StreamRewriter(0, lambda _, site: site.value)
    assert keep_ids.segment(0, data[:20]).messages == [] and keep_ids.parked() is None
    keep_ids.segment(20, data[20:])
    assert keep_ids.parked() == len(data)  # between messages, nothing held
    keep_ids.segment(len(data) + 10, b"x" * 5)
    assert keep_ids.parked() is None  # out-of-order bytes are held
    translating = StreamRewriter(0, translate)
    translating.segment(0, data)
    assert translating.parked() is None  # a retransmission must get the same translation


@settings(max_examples=200, deadline=None)
@given(messages_st, st.lists(st.integers(0, 2000), max_size=40), st.randoms(),
       st.integers(0, 2**32 - 1))
def test_whole_message_path_matches_the_general_path(messages, cuts, rnd, isn):
    """The one-pass path for segments of whole messages gives exactly what the
    byte-wise scanner gives, decisions included."""
    data = b"".join(pptp.build(m) for m in messages)
    segments = cut(data, cuts)
    order = arrival_order(segments, rnd)
    sites: dict[str, list[CallIdSite]] = {"fast": [], "general": []}

    def decider(name):
        return lambda _, site: (sites[name].append(site), translate(None, site))[1]
    fast = StreamRewriter(isn, decider("fast"))
    general = ScannerOnly(isn, decider("general"))
    for offset, chunk in order:
        seq = (isn + offset) % 2**32
        assert fast.segment(seq, chunk) == general.segment(seq, chunk)
    assert sites["fast"] == sites["general"]


class ScannerOnly(StreamRewriter):
    """Never takes the whole-message path."""

    __slots__ = ()

    def _whole_messages(self, start, payload):
        return None


def test_whole_message_path_is_taken_for_whole_messages():
    calls = []

    class Spy(StreamRewriter):
        __slots__ = ()

        def _whole_messages(self, start, payload):
            result = super()._whole_messages(start, payload)
            calls.append(result is not None)
            return result
    rewriter = Spy(0, translate)
    data = ocrq(1) + ocrq(2)
    rewriter.segment(0, data)
    rewriter.segment(len(data), ocrq(3)[:5])
    assert calls == [True, False]
