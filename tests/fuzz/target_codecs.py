"""Fuzz target ``codecs``: PPTP control messages, enhanced GRE, Ethernet/ARP/IPv4/TCP, and
the control stream (the reassembler and the call-ID rewriter).

Only each codec's own errors may escape (``PptpError``, ``GreError``, ``FrameError``), and
what parses must build back to the same bytes and parse again to the same value. The
stream part cuts a stream of messages into segments (split anywhere, shuffled,
duplicated, overlapping, across the 32-bit sequence wrap) and feeds them to the
reference reassembler and to the rewriter (translating every call-ID field): both must
frame the same messages, and every byte the rewriter forwards must be the stream's,
translated exactly at the call-ID fields, retransmissions included.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.codec import gre, pptp
from ryu_pptp_alg.codec.errors import PptpError, ReassemblyOverflow, StreamDesync
from ryu_pptp_alg.codec.reassembly import StreamReassembler
from ryu_pptp_alg.rewriter import DECIDED_OFFSETS, CallIdSite, StreamRewriter
from tests.fuzz.engine import Finding, Reader

SEQ = 1 << 32
WIDTHS = {"B": 1, "H": 2, "I": 4}


def _value(r: Reader, code: str | int) -> Any:
    """A field value: mostly one that fits, sometimes one that does not (or the wrong
    type), so ``build`` must refuse it with its own error."""
    kind = r.u8()
    if kind >= 250:
        return r.pick((-1, None, "x", 1.5, True, b"\0", 1 << 40))
    if isinstance(code, int):
        data = r.blob(code + 2 if kind >= 240 else code)
        return data if kind >= 230 else data.rstrip(b"\0")
    width = WIDTHS[code]
    return r.uint(width + (1 if kind >= 240 else 0))


def _message(r: Reader) -> Any:
    cls = pptp.MESSAGE_CLASSES[pptp.ControlMessageType(1 + r.u8() % 15)]
    codes = dict(cls._LAYOUT)
    return cls(**{f.name: _value(r, codes[f.name]) for f in dataclasses.fields(cls)})


def _valid_message(r: Reader) -> Any:
    cls = pptp.MESSAGE_CLASSES[pptp.ControlMessageType(1 + r.u8() % 15)]
    codes = dict(cls._LAYOUT)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        code = codes[f.name]
        values[f.name] = r.blob(code).rstrip(b"\0") if isinstance(code, int) \
            else r.uint(WIDTHS[code]) if f.name in cls.CALL_ID_FIELDS else 0
    return cls(**values)


def pptp_bytes(r: Reader, found: list[Finding]) -> None:
    data = r.rest()
    for probe in (pptp.peek_type, pptp.message_length):
        with contextlib.suppress(PptpError):
            probe(data)
    try:
        msg = pptp.parse(data)
    except PptpError:
        return
    if pptp.build(msg) != data:
        found.append(Finding("pptp: build(parse(b)) != b", data.hex()))
    elif pptp.parse(pptp.build(msg)) != msg:
        found.append(Finding("pptp: parse(build(m)) != m", repr(msg)))


def pptp_message(r: Reader, found: list[Finding]) -> None:
    msg = _message(r)
    try:
        data = pptp.build(msg)
    except PptpError:
        return
    if len(data) != type(msg).LENGTH:
        found.append(Finding("pptp: build gives the wrong length", repr(msg)))
    elif pptp.parse(data) != msg:
        found.append(Finding("pptp: parse(build(m)) != m", repr(msg)))


def gre_bytes(r: Reader, found: list[Finding]) -> None:
    call_id = r.uint(3)  # may not fit 16 bits: with_call_id must refuse it
    data = r.rest()
    with contextlib.suppress(gre.GreError):
        gre.peek_call_id(data)
    with contextlib.suppress(gre.GreError):
        gre.with_call_id(data, call_id)
    try:
        packet = gre.parse_gre(data)
    except gre.GreError:
        return
    if gre.build_gre(packet) != data:
        found.append(Finding("gre: build(parse(b)) != b", data.hex()))
    elif gre.peek_call_id(data) != packet.call_id:
        found.append(Finding("gre: peek_call_id differs from parse", data.hex()))
    elif call_id <= 0xFFFF and gre.parse_gre(gre.with_call_id(data, call_id)) \
            != dataclasses.replace(packet, call_id=call_id):
        found.append(Finding("gre: with_call_id changes more than the call ID", data.hex()))


def gre_packet(r: Reader, found: list[Finding]) -> None:
    flags = r.u8()
    packet = gre.EnhancedGre(
        r.uint(3) if flags & 1 else r.u16(), r.blob() if flags & 2 else b"",
        r.uint(5) if flags & 4 else None, r.uint(5) if flags & 8 else None)
    if flags & 16:
        packet = gre.EnhancedGre(-1, packet.payload)
    try:
        data = gre.build_gre(packet)
    except gre.GreError:
        return
    if gre.parse_gre(data) != packet:
        found.append(Finding("gre: parse(build(g)) != g", repr(packet)))


def frame_bytes(r: Reader, found: list[Finding]) -> None:
    """Any bytes as a frame: Ethernet, then ARP or IPv4, then TCP."""
    data = r.rest()
    try:
        eth = fr.parse_ethernet(data)
    except fr.FrameError:
        return
    if fr.build_ethernet(eth, pad=False) != data:
        found.append(Finding("frame: Ethernet does not build back", data.hex()))
    try:
        arp = fr.parse_arp(eth.payload)
        if fr.build_arp(arp) != eth.payload[:28]:
            found.append(Finding("frame: ARP does not build back", data.hex()))
    except fr.FrameError:
        pass
    _ip_tcp(eth.payload, found)


def _ip_tcp(data: bytes, found: list[Finding]) -> None:
    try:
        ip = fr.parse_ipv4(data)
    except fr.FrameError:
        return
    total = int.from_bytes(data[2:4], "big")
    if fr.build_ipv4(ip) != data[:total]:
        found.append(Finding("frame: IPv4 does not build back", data.hex()))
    try:
        tcp = fr.parse_tcp(ip.payload, ip.src, ip.dst)
    except fr.FrameError:
        return
    if fr.build_tcp(tcp, ip.src, ip.dst) != ip.payload:
        found.append(Finding("frame: TCP does not build back", ip.payload.hex()))


def frame_built(r: Reader, found: list[Finding]) -> None:
    """A well-formed IPv4/TCP packet (any options, flags, fragment bits), perhaps mutated:
    checksums right, so parsing gets past them."""
    src, dst = fr.address(r.take(4).ljust(4, b"\0")), fr.address(r.take(4).ljust(4, b"\0"))
    tcp = fr.Tcp(r.u16(), r.u16(), r.u32(), r.u32(), r.u8(), r.blob(), r.u16(), r.u16(),
                 r.blob(40)[:4 * (r.u8() % 11)])
    ip = fr.Ipv4(src, dst, fr.IP_PROTO_TCP, b"", r.u8(), r.u8(), r.u16(), r.u16(),
                 r.blob(40)[:4 * (r.u8() % 11)])
    try:
        segment = fr.build_tcp(tcp, src, dst)
        packet = fr.build_ipv4(ip._replace(payload=segment))
    except fr.FrameError:
        return
    mutation = r.u8() % 4
    if mutation == 1 and packet:
        i = r.below(len(packet))
        packet = packet[:i] + bytes([packet[i] ^ (1 << r.u8() % 8)]) + packet[i + 1:]
    elif mutation == 2:
        packet = packet[:r.below(len(packet) + 1)]
    elif mutation == 3:
        packet += r.blob()  # Ethernet padding
    else:
        parsed = fr.parse_ipv4(packet)
        if parsed != ip._replace(payload=segment) \
                or fr.parse_tcp(parsed.payload, src, dst) != tcp:
            found.append(Finding("frame: parse(build(p)) != p", packet.hex()))
        return
    _ip_tcp(packet, found)


def translate(context: Any, site: CallIdSite) -> int:
    return site.value ^ 0x5A5A


def stream(r: Reader, found: list[Finding]) -> None:
    """Both stream readers on one stream, delivered in fuzzer-chosen segments."""
    messages = [pptp.build(_valid_message(r)) for _ in range(1 + r.u8() % 5)]
    junk_at = r.u8() % 8
    junk = r.blob(24) if junk_at < len(messages) and r.u8() & 1 else b""
    if junk:
        messages.insert(junk_at, junk)
    data = b"".join(messages)
    expected = bytearray(data)  # what the rewriter should forward, up to any junk
    good_until = len(data)
    at = 0
    for message in messages:
        if message is junk:
            good_until = at
            break
        for _, offset in DECIDED_OFFSETS.get(pptp.peek_type(message), ()):
            value = int.from_bytes(message[offset:offset + 2], "big") ^ 0x5A5A
            expected[at + offset:at + offset + 2] = value.to_bytes(2, "big")
        at += len(message)
    isn = r.u32() if r.u8() & 1 else SEQ - 1 - r.u8()  # often across the wrap
    segments = []
    while r.more() and len(segments) < 24:
        start = r.below(len(data))
        segments.append((start, min(len(data), start + 1 + r.below(len(data)))))
    segments.append((0, len(data)))  # finally all of it, so the stream completes

    reference = StreamReassembler(isn)
    framed: list[Any] = []
    rewriter = StreamRewriter(isn, translate, None)
    rewritten: list[Any] = []
    forwarded = bytearray(len(data))
    covered = bytearray(len(data))
    for start, stop in segments:
        seq, payload = (isn + start) % SEQ, data[start:stop]
        if not reference.failed:
            try:
                framed += reference.feed(seq, payload)
            except StreamDesync as err:
                framed += getattr(err, "messages", [])
        try:
            result = rewriter.segment(seq, payload)
        except ReassemblyOverflow:
            continue
        rewritten += result.messages
        for emit in result.emits:
            offset = (emit.seq - isn) % SEQ
            if offset + len(emit.payload) > len(data):
                found.append(Finding("stream: the rewriter forwards bytes past the stream",
                                     f"seq offset {offset}, {len(emit.payload)} bytes"))
                return
            forwarded[offset:offset + len(emit.payload)] = emit.payload
            covered[offset:offset + len(emit.payload)] = b"\1" * len(emit.payload)
    end = good_until if junk else len(data)  # past junk, framing is lost: not judged
    if any(covered[i] and forwarded[i] != expected[i] for i in range(end)):
        found.append(Finding("stream: the rewriter forwards bytes other than the stream's, "
                             "translated at the call-ID fields", data.hex()))
    if not junk and not all(covered):
        found.append(Finding("stream: the rewriter never forwards part of a complete stream",
                             f"{covered.count(0)} of {len(data)} bytes held"))
    good = [m for m in framed if (m.offset - isn) % SEQ + len(m.data) <= end]
    mine = [m for m in rewritten if (m.offset - isn) % SEQ + len(m.data) <= end]
    if [(m.offset, m.data) for m in good] != [(m.offset, m.data) for m in mine]:
        found.append(Finding("stream: the rewriter and the reassembler frame different messages",
                             data.hex()))


PARTS = (pptp_bytes, pptp_message, gre_bytes, gre_packet, frame_bytes, frame_built, stream)


def run(data: bytes) -> list[Finding]:
    r = Reader(data)
    found: list[Finding] = []
    PARTS[r.u8() % len(PARTS)](r, found)
    return found
