"""Ethernet, ARP, IPv4 and TCP: the frames the controller receives and re-emits.

Pure and symmetric like the PPTP codecs: ``build_*(parse_*(b)) == b`` for a
valid ``b`` (IPv4 and TCP checksums are verified on parse, computed on build).
Headers are named tuples: immutable, cheap to make on every packet-in, and
``_replace`` gives the rewritten copy a NAT needs.
Only what a NAT needs: no VLAN tags, no IP fragment reassembly.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from ipaddress import IPv4Address
from typing import Final, NamedTuple

ETH_TYPE_IPV4: Final = 0x0800
ETH_TYPE_ARP: Final = 0x0806
IP_PROTO_TCP: Final = 6
IP_PROTO_GRE: Final = 47
ARP_REQUEST: Final = 1
ARP_REPLY: Final = 2

TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
TCP_PSH: Final = 0x08
TCP_ACK: Final = 0x10

BROADCAST_MAC: Final = "ff:ff:ff:ff:ff:ff"
ZERO_MAC: Final = "00:00:00:00:00:00"

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_MIN_FRAME = 60  # Ethernet minimum without FCS; shorter frames are padded


class FrameError(ValueError):
    """A frame the controller cannot use; the message says why."""


@lru_cache(maxsize=1024)  # the same few MACs recur in every frame the gateway builds
def mac_to_bytes(mac: str) -> bytes:
    raw = bytes.fromhex(mac.replace(":", ""))
    if len(raw) != 6:
        raise FrameError(f"bad MAC address {mac!r}")
    return raw


def mac_to_str(raw: bytes) -> str:
    return raw.hex(":")


def _fold(value: int) -> int:
    """One's-complement sum of the 16-bit words spelling ``value``: ``value`` modulo
    0xFFFF (2**16 is 1 there), with 0xFFFF standing for the zero of non-zero data."""
    return value % 0xFFFF or (0xFFFF if value else 0)


def _words(data: bytes) -> int:
    """``data`` as one number of whole 16-bit words (an odd length is padded with 0)."""
    value = int.from_bytes(data, "big")
    return value << 8 if len(data) % 2 else value


def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement checksum, in one big-integer operation."""
    return ~_fold(_words(data)) & 0xFFFF


@lru_cache(maxsize=1024)
def address(raw: bytes) -> IPv4Address:
    """The address of 4 raw bytes; the same few addresses recur, so they are shared."""
    return IPv4Address(raw)


class Ethernet(NamedTuple):
    dst: str
    src: str
    ethertype: int
    payload: bytes


def parse_ethernet(data: bytes) -> Ethernet:
    if len(data) < _ETH.size:
        raise FrameError(f"Ethernet: {len(data)} bytes, header needs {_ETH.size}")
    dst, src, ethertype = _ETH.unpack_from(data)
    if ethertype == 0x8100:
        raise FrameError("Ethernet: VLAN-tagged frames are not handled")
    return Ethernet(mac_to_str(dst), mac_to_str(src), ethertype, bytes(data[_ETH.size:]))


def build_ethernet(frame: Ethernet, pad: bool = True) -> bytes:
    data = _ETH.pack(mac_to_bytes(frame.dst), mac_to_bytes(frame.src), frame.ethertype) \
        + frame.payload
    if pad and len(data) < _MIN_FRAME:
        data += bytes(_MIN_FRAME - len(data))
    return data


class Arp(NamedTuple):
    op: int
    sender_mac: str
    sender_ip: IPv4Address
    target_mac: str
    target_ip: IPv4Address


def parse_arp(data: bytes) -> Arp:
    if len(data) < _ARP.size:
        raise FrameError(f"ARP: {len(data)} bytes, needs {_ARP.size}")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(data)
    if (htype, ptype, hlen, plen) != (1, ETH_TYPE_IPV4, 6, 4):
        raise FrameError(f"ARP: not Ethernet/IPv4 (htype {htype}, ptype {ptype:#x})")
    return Arp(op, mac_to_str(sha), address(spa), mac_to_str(tha), address(tpa))


def build_arp(arp: Arp) -> bytes:
    return _ARP.pack(1, ETH_TYPE_IPV4, 6, 4, arp.op, mac_to_bytes(arp.sender_mac),
                     arp.sender_ip.packed, mac_to_bytes(arp.target_mac), arp.target_ip.packed)


class Ipv4(NamedTuple):
    src: IPv4Address
    dst: IPv4Address
    protocol: int
    payload: bytes
    ttl: int = 64
    tos: int = 0
    identification: int = 0
    flags_fragment: int = 0x4000  # DF, offset 0
    options: bytes = b""

    @property
    def is_fragment(self) -> bool:
        """More-fragments set or a non-zero offset: not a whole datagram."""
        return bool(self.flags_fragment & 0x3FFF)


def parse_ipv4(data: bytes) -> Ipv4:
    """One IPv4 datagram; bytes past its total length (Ethernet padding) are ignored."""
    if len(data) < _IPV4.size:
        raise FrameError(f"IPv4: {len(data)} bytes, header needs {_IPV4.size}")
    ver_ihl, tos, total, ident, frag, ttl, proto, _csum, src, dst = _IPV4.unpack_from(data)
    if ver_ihl >> 4 != 4:
        raise FrameError(f"IPv4: version {ver_ihl >> 4}")
    header_len = (ver_ihl & 0xF) * 4
    if header_len < _IPV4.size:
        raise FrameError(f"IPv4: header length {header_len}")
    if not header_len <= total <= len(data):
        raise FrameError(f"IPv4: total length {total}, header {header_len}, have {len(data)}")
    if internet_checksum(data[:header_len]) != 0:
        raise FrameError("IPv4: bad header checksum")
    return Ipv4(address(src), address(dst), proto, bytes(data[header_len:total]),
                ttl, tos, ident, frag, bytes(data[_IPV4.size:header_len]))


def build_ipv4(packet: Ipv4) -> bytes:
    if len(packet.options) % 4:
        raise FrameError("IPv4: options must be a multiple of 4 bytes")
    header_len = _IPV4.size + len(packet.options)
    header = _IPV4.pack(0x40 | header_len // 4, packet.tos, header_len + len(packet.payload),
                        packet.identification, packet.flags_fragment, packet.ttl,
                        packet.protocol, 0, packet.src.packed, packet.dst.packed) \
        + packet.options
    checksum = internet_checksum(header)
    return header[:10] + checksum.to_bytes(2, "big") + header[12:] + packet.payload


class Tcp(NamedTuple):
    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    payload: bytes = b""
    window: int = 65535
    urgent: int = 0
    options: bytes = b""

    def has(self, flag: int) -> bool:
        return bool(self.flags & flag)


def _tcp_sum(src: IPv4Address, dst: IPv4Address, segment: bytes) -> int:
    """One's-complement sum of the pseudo-header and ``segment`` (words add as numbers)."""
    return _fold(int(src) + int(dst) + IP_PROTO_TCP + len(segment) + _words(segment))


def parse_tcp(data: bytes, src: IPv4Address, dst: IPv4Address) -> Tcp:
    """A TCP segment carried from ``src`` to ``dst``; the checksum must be right."""
    if len(data) < _TCP.size:
        raise FrameError(f"TCP: {len(data)} bytes, header needs {_TCP.size}")
    sport, dport, seq, ack, offset, flags, window, _csum, urgent = _TCP.unpack_from(data)
    header_len = (offset >> 4) * 4
    if not _TCP.size <= header_len <= len(data):
        raise FrameError(f"TCP: header length {header_len}, have {len(data)}")
    if offset & 0x0F:
        raise FrameError("TCP: reserved bits set")
    if _tcp_sum(src, dst, data) != 0xFFFF:
        raise FrameError("TCP: bad checksum")
    return Tcp(sport, dport, seq, ack, flags, bytes(data[header_len:]), window, urgent,
               bytes(data[_TCP.size:header_len]))


def build_tcp(segment: Tcp, src: IPv4Address, dst: IPv4Address) -> bytes:
    if len(segment.options) % 4:
        raise FrameError("TCP: options must be a multiple of 4 bytes")
    header_len = _TCP.size + len(segment.options)
    data = _TCP.pack(segment.src_port, segment.dst_port, segment.seq, segment.ack,
                     (header_len // 4) << 4, segment.flags, segment.window, 0,
                     segment.urgent) + segment.options + segment.payload
    checksum = ~_tcp_sum(src, dst, data) & 0xFFFF
    return data[:16] + checksum.to_bytes(2, "big") + data[18:]
