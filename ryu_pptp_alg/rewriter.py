"""One direction of a PPTP control connection, forwarded with call IDs rewritten.

Call-ID translation keeps every message's length, so TCP sequence numbers
never change; only the two bytes of a call-ID field do. Those bytes may sit in
any TCP segment: a message can be split anywhere (even byte by byte) or share a
segment with others. The rewriter therefore scans the stream in order, learns
each message's type from its header, asks ``decide`` for the new value of each
call-ID field as soon as the field's two bytes are in, and patches them in
whichever segment carries them.

What it holds back, and why:
- bytes after a gap (out of order) until the gap fills, then forwards them in order;
- the tail of a segment that ends inside a call-ID field (one byte), until the
  next byte arrives. The rest of that segment is forwarded at once, so a sender
  waiting for an acknowledgement (Nagle) never deadlocks on us.
Retransmissions of forwarded bytes are forwarded again with the same patches.

The same scan cuts the stream into complete messages (original bytes) for the
connection's state machine; it keeps only the bytes of the message in progress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mypy_extensions import mypyc_attr

from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.codec.errors import PptpError, ReassemblyOverflow, StreamDesync
from ryu_pptp_alg.codec.reassembly import StreamMessage
from ryu_pptp_alg.records import StreamMark

SEQ_MOD = 1 << 32
HALF_SEQ = 1 << 31
PREFIX_LEN = 18  # every decided field lies within a message's first 18 bytes
MAX_EMIT = 1400  # forwarded segments stay within an Ethernet MTU
COOKIE = pptp.MAGIC_COOKIE.to_bytes(4, "big")
# The two-byte fields decided as they pass, by message type: every call-ID field, and a
# call reply's result and error codes (a call the NAT cannot carry is answered as failed).
DECIDED_OFFSETS: dict[pptp.ControlMessageType, tuple[tuple[str, int], ...]] = {
    t: (*pptp.CALL_ID_OFFSETS.get(t, ()), *pptp.REPLY_RESULT_OFFSETS.get(t, ()))
    for t in (*pptp.CALL_ID_OFFSETS, *pptp.REPLY_RESULT_OFFSETS)}
assert all(offset + 2 <= PREFIX_LEN for fields in DECIDED_OFFSETS.values()
           for _, offset in fields)
# The same by the wire value of the message type: (type, field name, offset).
_CALL_ID_FIELDS = {int(t): tuple((t, name, offset) for name, offset in fields)
                   for t, fields in DECIDED_OFFSETS.items()}


@dataclass(frozen=True)
class CallIdSite:
    """A call-ID field met in the stream."""

    message_seq: int  # TCP sequence number of the message's first byte
    message_type: pptp.ControlMessageType
    field: str
    value: int


Decide = Callable[[Any, CallIdSite], int]  # (context, site) -> the value to write


@dataclass(frozen=True)
class Emit:
    """A segment to forward: ``seq`` and the (patched) payload."""

    seq: int
    payload: bytes
    complete: bool  # False: bytes of the received segment were held back (strip FIN)


@dataclass(frozen=True)
class Rewritten:
    emits: list[Emit]  # forward these, in order
    messages: list[StreamMessage]  # complete original messages, for the state machine
    error: PptpError | None = None  # framing lost (StreamDesync): forwarding goes on untouched


def keep(context: Any, site: CallIdSite) -> int:
    return site.value


@mypyc_attr(allow_interpreted_subclasses=True)  # the tests subclass it to compare paths
class StreamRewriter:
    """One per direction of every control connection: kept small (slots, containers
    created only when needed)."""

    __slots__ = ("_emitted", "_fields_done", "_message", "_msg_len", "_msg_start",
                 "_out_of_order", "_patches", "_pending", "_scanned", "base", "context",
                 "decide", "failed", "max_held")

    def __init__(self, initial_seq: int, decide: Decide = keep, context: Any = None,
                 max_held: int = 65536) -> None:
        self.base = initial_seq % SEQ_MOD
        self.decide = decide
        self.context = context  # passed to ``decide`` (the connection)
        self.max_held = max_held
        self.failed = False  # the stream lost framing: forward untouched from here on
        self._emitted = 0  # stream offset: [0, _emitted) has been forwarded
        self._pending = b""  # in order, not yet forwarded: from _emitted
        self._out_of_order: dict[int, bytes] | None = None
        self._patches: dict[int, int] | None = None  # stream offset -> byte to write there
        self._scanned = 0  # next stream offset the message scanner looks at
        self._msg_start = 0
        self._msg_len = 0  # 0 until the length field is in
        self._message = b""  # bytes of the message in progress: from _msg_start
        self._fields_done = 0  # bit per field offset decided in the current message

    @property
    def next_seq(self) -> int:
        """Sequence number of the next byte not yet received in order."""
        return (self.base + self._emitted + len(self._pending)) % SEQ_MOD

    @property
    def held(self) -> int:
        return len(self._pending) + sum(map(len, (self._out_of_order or {}).values()))

    def parked(self) -> int | None:
        """The next sequence number if that is all the state worth keeping: between
        messages, nothing held, no translated bytes a retransmission would need again.
        A new rewriter from that number carries on exactly as this one would, so idle
        connections keep an int instead of a rewriter. None while there is more."""
        if self._pending or self._out_of_order or self._patches or self._message \
                or self.failed:
            return None
        return self.next_seq

    def has_patches(self) -> bool:
        return bool(self._patches)

    @property
    def forwarded(self) -> int:
        """Sequence number of the first byte not yet forwarded."""
        return (self.base + self._emitted) % SEQ_MOD

    def boundary(self) -> int | None:
        """Where a message could go into the stream: the end of what was forwarded, if that
        is between two messages (None: mid-message, or framing lost)."""
        if self.failed or self._pending or self._message:
            return None
        return self.forwarded

    def mark(self) -> StreamMark:
        """Where a restarted controller picks this stream up: the first byte of the message
        in progress (bytes of it already forwarded are skipped there until the next message
        starts), with every patch a retransmission may still need."""
        patches = tuple(sorted(((self.base + offset) % SEQ_MOD, byte)
                               for offset, byte in (self._patches or {}).items()))
        start = self._emitted if self.failed else self._msg_start
        return StreamMark((self.base + start) % SEQ_MOD, patches)

    @classmethod
    def resume(cls, mark: StreamMark, decide: Decide, context: Any,
               seq: int | None = None) -> StreamRewriter:
        """A rewriter that carries on from ``mark`` (or from ``seq``, a later message
        start) with its patches."""
        stream = cls(mark.seq if seq is None else seq, decide, context)
        if mark.patches:
            stream._patches = {}
            for patch_seq, byte in mark.patches:
                offset = (patch_seq - stream.base) % SEQ_MOD
                stream._patches[offset - SEQ_MOD if offset >= HALF_SEQ else offset] = byte
        return stream

    def segment(self, seq: int, payload: bytes) -> Rewritten:
        """One received segment with data: what to forward now, and the messages it completed.

        Raises ``ReassemblyOverflow`` when an out-of-order segment would exceed the
        bound; that segment is dropped (the sender retransmits it).
        """
        start = self._offset(seq)
        end = start + len(payload)
        received = self._emitted + len(self._pending)
        if end <= self._emitted:  # a retransmission of forwarded bytes
            return Rewritten([Emit(seq, self._patched(start, payload), True)], [])
        if start > received:
            self._hold_out_of_order(start, payload)
            return Rewritten([], [])
        if start == received:
            whole = self._whole_messages(start, payload)
            if whole is not None:
                return whole
        new = bytes(payload[received - start:])
        new += self._pull_out_of_order(received + len(new))
        self._pending += new
        messages, error = self._scan()
        return Rewritten(self._emit(start, payload, end), messages, error)

    def _whole_messages(self, start: int, payload: bytes) -> Rewritten | None:
        """The common case in one pass: an in-order segment of whole, well-framed messages
        arriving at a message boundary with nothing held. None: the general path does it
        (same result, byte for byte; the tests compare the two)."""
        size = len(payload)
        if self._pending or self._out_of_order is not None or self._message or self.failed \
                or size > MAX_EMIT:
            return None
        bounds = []
        at = 0
        while at < size:
            if size - at < pptp.MIN_MESSAGE_LEN or payload[at + 4:at + 8] != COOKIE:
                return None
            length = int.from_bytes(payload[at:at + 2], "big")
            if not pptp.MIN_MESSAGE_LEN <= length <= pptp.MAX_MESSAGE_LEN \
                    or at + length > size:
                return None
            bounds.append((at, length))
            at += length
        data = bytes(payload)
        patched: bytearray | None = None
        messages = []
        for at, length in bounds:
            message_seq = (self.base + start + at) % SEQ_MOD
            fields = _CALL_ID_FIELDS.get(int.from_bytes(data[at + 8:at + 10], "big"), ())
            for msg_type, name, offset in fields:
                if offset + 2 > length:  # a message too short for its type
                    continue
                value = int.from_bytes(data[at + offset:at + offset + 2], "big")
                new = self.decide(self.context, CallIdSite(message_seq, msg_type, name, value))
                if new != value:
                    if patched is None:
                        patched = bytearray(data)
                    patched[at + offset:at + offset + 2] = new.to_bytes(2, "big")
                    self._record_patch(start + at + offset, new)
            messages.append(StreamMessage(message_seq, data[at:at + length]))
        self._emitted = self._scanned = self._msg_start = start + size
        emit = Emit((self.base + start) % SEQ_MOD, data if patched is None else bytes(patched),
                    True)
        return Rewritten([emit], messages)

    # --- holding and releasing -----------------------------------------------------------

    def _offset(self, seq: int) -> int:
        """Stream offset of ``seq``, taken nearest the next expected byte."""
        anchor = self._emitted + len(self._pending)
        delta = (seq - self.base - anchor) % SEQ_MOD
        if delta >= HALF_SEQ:
            delta -= SEQ_MOD
        return anchor + delta

    def _hold_out_of_order(self, start: int, payload: bytes) -> None:
        if self.held + len(payload) > self.max_held:
            raise ReassemblyOverflow(f"holding {self.held} bytes; segment of {len(payload)} "
                                     f"dropped (limit {self.max_held})")
        if self._out_of_order is None:
            self._out_of_order = {}
        if len(payload) > len(self._out_of_order.get(start, b"")):
            self._out_of_order[start] = bytes(payload)

    def _pull_out_of_order(self, upto: int) -> bytes:
        """Held segments that the in-order stream now reaches, as new in-order bytes."""
        pulled = bytearray()
        progress = True
        while progress and self._out_of_order:
            assert self._out_of_order is not None
            progress = False
            for start in sorted(self._out_of_order):
                chunk = self._out_of_order[start]
                if start > upto:
                    break
                del self._out_of_order[start]
                if start + len(chunk) > upto:
                    pulled += chunk[upto - start:]
                    upto = start + len(chunk)
                progress = True
        if not self._out_of_order:
            self._out_of_order = None
        return bytes(pulled)

    def _emit(self, start: int, payload: bytes, end: int) -> list[Emit]:
        upto = self._emittable()
        first = min(start, self._emitted)
        data = bytearray(payload[first - start:self._emitted - start]) if first < self._emitted \
            else bytearray()
        release = upto - self._emitted
        data += self._pending[:release]
        self._pending = self._pending[release:]
        self._emitted = upto
        patched = self._patched(first, bytes(data))
        complete = upto >= end
        emits = [Emit((self.base + first + i) % SEQ_MOD, patched[i:i + MAX_EMIT],
                      complete and i + MAX_EMIT >= len(patched))
                 for i in range(0, len(patched), MAX_EMIT)]
        return emits or [Emit((self.base + upto) % SEQ_MOD, b"", False)]

    def _emittable(self) -> int:
        """Everything received in order, except a call-ID field still missing a byte."""
        received = self._emitted + len(self._pending)
        msg_type = self._prefix_type()
        if self.failed or msg_type is None:
            return received
        for _, offset in DECIDED_OFFSETS.get(msg_type, ()):
            field_start = self._msg_start + offset
            if field_start < received < field_start + 2:
                return field_start
        return received

    def _patched(self, start: int, data: bytes) -> bytes:
        patches = self._patches
        if not patches:
            return data
        out = bytearray(data)
        for i in range(len(out)):
            byte = patches.get(start + i)
            if byte is not None:
                out[i] = byte
        return bytes(out)

    # --- the message scanner -------------------------------------------------------------

    def _prefix_type(self) -> pptp.ControlMessageType | None:
        if len(self._message) < 10:
            return None
        try:
            return pptp.ControlMessageType(int.from_bytes(self._message[8:10], "big"))
        except ValueError:
            return None

    def _scan(self) -> tuple[list[StreamMessage], StreamDesync | None]:
        """Walk the new in-order bytes: decide call-ID fields as they come in, and cut
        complete messages. A bad length or cookie loses framing for good."""
        received = self._emitted + len(self._pending)
        messages: list[StreamMessage] = []
        while self._scanned < received and not self.failed:
            position = self._scanned - self._msg_start
            # The prefix ends at PREFIX_LEN or at a shorter message's end; taken in two
            # steps, as the length is only known from the first bytes.
            prefix_end = min(PREFIX_LEN, self._msg_len) if self._msg_len else PREFIX_LEN
            in_prefix = position < prefix_end
            end = self._msg_start + (pptp.MIN_MESSAGE_LEN if position < pptp.MIN_MESSAGE_LEN
                                     else prefix_end if in_prefix else self._msg_len)
            at = self._scanned - self._emitted
            take = min(end, received) - self._scanned
            self._message += self._pending[at:at + take]
            self._scanned += take
            if in_prefix:
                failure = self._check_prefix()
                if failure is not None:
                    self.failed = True
                    seq = (self.base + self._msg_start) % SEQ_MOD
                    return messages, StreamDesync(f"{failure} at seq {seq}")
            if self._msg_len and self._scanned == self._msg_start + self._msg_len:
                messages.append(StreamMessage((self.base + self._msg_start) % SEQ_MOD,
                                              self._message))
                self._msg_start = self._scanned
                self._msg_len = 0
                self._message = b""
                self._fields_done = 0
        return messages, None

    def _check_prefix(self) -> str | None:
        """Decide the call-ID fields the message's first bytes now hold; why framing is
        lost, if it is."""
        prefix = self._message
        if not self._msg_len and len(prefix) >= 2:
            length = int.from_bytes(prefix[:2], "big")
            if not pptp.MIN_MESSAGE_LEN <= length <= pptp.MAX_MESSAGE_LEN:
                return f"length {length} outside {pptp.MIN_MESSAGE_LEN}..{pptp.MAX_MESSAGE_LEN}"
            self._msg_len = length
        if len(prefix) >= 8 and prefix[4:8] != COOKIE:
            return f"magic cookie 0x{prefix[4:8].hex()}"
        msg_type = self._prefix_type()
        if msg_type is None:
            return None
        for name, offset in DECIDED_OFFSETS.get(msg_type, ()):
            if self._fields_done & (1 << offset) or len(prefix) < offset + 2:
                continue
            self._fields_done |= 1 << offset
            value = int.from_bytes(prefix[offset:offset + 2], "big")
            site = CallIdSite((self.base + self._msg_start) % SEQ_MOD, msg_type, name, value)
            new = self.decide(self.context, site)
            if new != value:
                self._record_patch(self._msg_start + offset, new)
        return None

    def _record_patch(self, field_start: int, value: int) -> None:
        """The call-ID field at ``field_start`` goes out as ``value``, retransmissions too."""
        if self._patches is None:
            self._patches = {}
        self._patches[field_start] = value >> 8
        self._patches[field_start + 1] = value & 0xFF
        self._prune_patches()

    def _prune_patches(self) -> None:
        """Patches far behind the stream are never needed for retransmissions."""
        if self._patches is not None and len(self._patches) > 4096:
            floor = self._emitted - 2 * self.max_held
            self._patches = {k: v for k, v in self._patches.items() if k >= floor}
