"""Sequence numbers of a control stream the gateway injected bytes into.

Ending one call while its connection goes on (``Gateway.end_call``) puts a message into
each direction of the stream. Each receiver then counts those bytes as the sender's:
the sender's later bytes go out further on by the injected length, and the receiver's
acknowledgements come back lower by it (one inside the injected bytes acknowledges
nothing of the sender's past the injection point). SACK blocks would need the same
mapping: they are blanked to NOPs instead (TCP works without them). Pure functions
over ``records.SeqShift``; the gateway keeps the records.
"""

from __future__ import annotations

from itertools import pairwise

from ryu_pptp_alg.records import Injection, SeqShift

SEQ_MOD = 1 << 32
HALF_SEQ = 1 << 31
TCP_OPT_EOL = 0
TCP_OPT_NOP = 1
TCP_OPT_SACK = 5


def _at_or_after(seq: int, point: int) -> bool:
    return (seq - point) % SEQ_MOD < HALF_SEQ


def inject(shift: SeqShift | None, seq: int, data: bytes, ack: int) -> SeqShift:
    """``data`` goes into the stream before the sender's byte ``seq``."""
    shift = shift or SeqShift()
    return SeqShift(shift.total, (*shift.pending, Injection(seq % SEQ_MOD, data, ack)))


def injected_at(shift: SeqShift, index: int) -> int:
    """Where pending injection ``index`` starts in the receiver's sequence space."""
    before = sum(len(i.data) for i in shift.pending[:index])
    return (shift.pending[index].seq + shift.total + before) % SEQ_MOD


def out_seq(shift: SeqShift | None, seq: int) -> int:
    """The sender's ``seq`` as the receiver counts it."""
    if shift is None:
        return seq
    moved = shift.total + sum(len(i.data) for i in shift.pending if _at_or_after(seq, i.seq))
    return (seq + moved) % SEQ_MOD


def split(shift: SeqShift | None, seq: int, length: int) -> list[tuple[int, int, int]]:
    """A segment of the sender's ``[seq, seq + length)`` as pieces (offset in the segment,
    length, the receiver's seq): cut where bytes were injected (a retransmission that
    spans an injection point)."""
    if shift is None or not shift.pending or length == 0:
        return [(0, length, out_seq(shift, seq))]
    cuts = sorted({d for d in ((i.seq - seq) % SEQ_MOD for i in shift.pending)
                   if 0 < d < length})
    bounds = [0, *cuts, length]
    return [(start, end - start, out_seq(shift, seq + start))
            for start, end in pairwise(bounds)]


def ack_back(shift: SeqShift | None, ack: int) -> tuple[int, SeqShift | None]:
    """The receiver's ``ack`` in the sender's sequence space, and the shift with the
    injections it acknowledges settled (the same object if none)."""
    if shift is None:
        return ack, None
    moved = shift.total
    for index, injection in enumerate(shift.pending):
        start = (injection.seq + moved) % SEQ_MOD
        if not _at_or_after(ack, start):  # short of this injection
            return _settled(shift, index, (ack - moved) % SEQ_MOD, moved)
        if (ack - start) % SEQ_MOD < len(injection.data):  # part of it
            return _settled(shift, index, injection.seq, moved)
        moved += len(injection.data)
    return _settled(shift, len(shift.pending), (ack - moved) % SEQ_MOD, moved)


def _settled(shift: SeqShift, acked: int, ack: int, moved: int) -> tuple[int, SeqShift]:
    if not acked:
        return ack, shift
    return ack, SeqShift(moved, shift.pending[acked:])


def blank_sack(options: bytes) -> bytes:
    """TCP options with SACK blocks turned into NOPs (same length)."""
    out = bytearray(options)
    at = 0
    while at < len(out):
        kind = out[at]
        if kind == TCP_OPT_EOL:
            break
        if kind == TCP_OPT_NOP:
            at += 1
            continue
        if at + 1 >= len(out) or out[at + 1] < 2:
            break  # malformed: leave the rest as it is
        length = out[at + 1]
        if kind == TCP_OPT_SACK:
            out[at:at + length] = bytes([TCP_OPT_NOP]) * len(out[at:at + length])
        at += length
    return bytes(out)
