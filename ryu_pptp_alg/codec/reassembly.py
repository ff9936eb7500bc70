"""Per-direction TCP stream reassembly for the PPTP control connection.

Segments are placed on an unbounded "stream offset" axis (bytes since the
first expected byte) so that 32-bit sequence wraparound never matters
internally.  In-order bytes go to a framing buffer that is cut into messages
by the 2-byte Length prefix; out-of-order bytes wait in merged intervals until
the gap before them is filled.  Bytes before the next expected byte
(retransmissions) are dropped, so every message is yielded exactly once.

The ALG's rewriter (``rewriter.py``) cuts its stream into messages itself, in the
same pass that translates call IDs; this standalone reassembler is the reference
its framing is tested against, and the tool for anything that only reads messages.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from .errors import ReassemblyOverflow, StreamDesync
from .pptp import HEADER_LEN, MAGIC_COOKIE, MAX_MESSAGE_LEN, message_length

__all__ = ["ReassemblyOverflow", "StreamDesync", "StreamMessage", "StreamReassembler"]

_SEQ_MOD: Final = 1 << 32
_HALF_SEQ: Final = 1 << 31
_COOKIE: Final = MAGIC_COOKIE.to_bytes(4, "big")
_NO_CHUNKS: Final[MappingProxyType[int, bytes]] = MappingProxyType({})


@dataclass(frozen=True)
class StreamMessage:
    """One framed control message; offset is the TCP seq (mod 2**32) of its first byte."""

    offset: int
    data: bytes


class StreamReassembler:
    """Reassembles one direction of a PPTP control connection into messages."""

    __slots__ = ("_base_seq", "_chunks", "_failure", "_framing", "_framing_offset",
                 "_max_buffered", "_next_offset", "_starts")

    def __init__(self, initial_seq: int | None = None, max_buffered: int = 65536) -> None:
        self._base_seq: int | None = None if initial_seq is None else initial_seq % _SEQ_MOD
        self._max_buffered = max_buffered
        self._next_offset = 0  # stream offset of the next byte not yet framed-in
        # Kept small for the many idle connections: immutable empties until needed.
        self._framing = b""  # in-order bytes not yet forming a full message
        self._framing_offset = 0  # stream offset of _framing[0]
        self._starts: list[int] | tuple[()] = ()  # sorted starts of out-of-order intervals
        self._chunks: dict[int, bytes] | MappingProxyType[int, bytes] = _NO_CHUNKS
        self._failure: str | None = None

    @property
    def next_seq(self) -> int | None:
        """Sequence number of the next expected byte (None before any data)."""
        if self._base_seq is None:
            return None
        return (self._base_seq + self._next_offset) % _SEQ_MOD

    @property
    def buffered(self) -> int:
        """Bytes held: an incomplete message plus out-of-order data."""
        return len(self._framing) + sum(len(c) for c in self._chunks.values())

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def feed(self, seq: int, payload: bytes) -> list[StreamMessage]:
        """Add one TCP segment; return the messages it completed, in stream order."""
        if self._failure is not None:
            raise StreamDesync(f"stream already desynchronised: {self._failure}")
        if not payload:
            return []
        if self._base_seq is None:
            self._base_seq = seq % _SEQ_MOD
        start = self._offset_of(seq)
        end = start + len(payload)
        if end <= self._next_offset:
            return []  # pure retransmission
        if start < self._next_offset:
            payload = payload[self._next_offset - start :]
            start = self._next_offset
        if start > self._next_offset:
            self._store_out_of_order(start, bytes(payload))
            return []
        self._framing += payload
        self._next_offset = end
        self._pull_contiguous()
        return self._frame()

    def _offset_of(self, seq: int) -> int:
        """Stream offset of seq, taken as the nearest one to the next expected byte."""
        assert self._base_seq is not None
        delta = (seq - self._base_seq - self._next_offset) % _SEQ_MOD
        if delta >= _HALF_SEQ:
            delta -= _SEQ_MOD
        return self._next_offset + delta

    def _store_out_of_order(self, start: int, data: bytes) -> None:
        if not isinstance(self._starts, list):
            self._starts, self._chunks = [], {}
        assert isinstance(self._chunks, dict)
        end = start + len(data)
        # Collect intervals overlapping or touching [start, end) and merge them.
        i = bisect_left(self._starts, start)
        if i > 0 and self._starts[i - 1] + len(self._chunks[self._starts[i - 1]]) >= start:
            i -= 1
        j = i
        while j < len(self._starts) and self._starts[j] <= end:
            j += 1
        merged_starts = self._starts[i:j]
        new_start = min([start, *merged_starts])
        new_end = max([end, *(s + len(self._chunks[s]) for s in merged_starts)])
        growth = (new_end - new_start) - sum(len(self._chunks[s]) for s in merged_starts)
        if self.buffered + growth > self._max_buffered:
            raise ReassemblyOverflow(
                f"holding {self.buffered} bytes, segment would add {growth}, "
                f"limit {self._max_buffered}; segment dropped"
            )
        buf = bytearray(new_end - new_start)
        buf[start - new_start : end - new_start] = data
        for s in merged_starts:  # bytes that arrived first win
            chunk = self._chunks.pop(s)
            buf[s - new_start : s - new_start + len(chunk)] = chunk
        self._starts[i:j] = [new_start]
        self._chunks[new_start] = bytes(buf)

    def _pull_contiguous(self) -> None:
        """Move out-of-order intervals that the stream has reached into framing."""
        while self._starts and self._starts[0] <= self._next_offset:
            assert isinstance(self._starts, list) and isinstance(self._chunks, dict)
            start = self._starts.pop(0)
            chunk = self._chunks.pop(start)
            end = start + len(chunk)
            if end > self._next_offset:
                self._framing += chunk[self._next_offset - start :]
                self._next_offset = end

    def _frame(self) -> list[StreamMessage]:
        messages: list[StreamMessage] = []
        assert self._base_seq is not None
        while len(self._framing) >= 2:
            length = message_length(self._framing)
            if not HEADER_LEN <= length <= MAX_MESSAGE_LEN:
                raise self._desync(
                    f"length {length} outside {HEADER_LEN}..{MAX_MESSAGE_LEN}", messages
                )
            if len(self._framing) >= 8 and self._framing[4:8] != _COOKIE:
                raise self._desync(f"magic cookie 0x{self._framing[4:8].hex()}", messages)
            if len(self._framing) < length:
                break
            seq = (self._base_seq + self._framing_offset) % _SEQ_MOD
            messages.append(StreamMessage(seq, self._framing[:length]))
            self._framing = self._framing[length:]
            self._framing_offset += length
        return messages

    def _desync(self, reason: str, completed: list[StreamMessage]) -> StreamDesync:
        """Enter the failed state.  The error's ``messages`` attribute holds the
        messages this feed completed before the bad header, so none are lost."""
        seq = (self._base_seq or 0) + self._framing_offset
        self._failure = f"{reason} at seq {seq % _SEQ_MOD}"
        error = StreamDesync(self._failure)
        error.messages = completed  # type: ignore[attr-defined]
        return error
