"""Ethernet / ARP / IPv4 / TCP codec, checked against scapy as an independent encoder."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import checksum as scapy_checksum

from ryu_pptp_alg.codec.frame import (
    Arp,
    Ethernet,
    FrameError,
    Tcp,
    build_arp,
    build_ethernet,
    build_ipv4,
    build_tcp,
    internet_checksum,
    parse_arp,
    parse_ethernet,
    parse_ipv4,
    parse_tcp,
)

CLIENT = IPv4Address("10.0.0.2")
SERVER = IPv4Address("198.51.100.10")


def scapy_tcp_frame(payload: bytes = b"hello", flags: str = "PA", options=()) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:02", dst="0e:00:00:00:00:01")
                 / IP(src=str(CLIENT), dst=str(SERVER), ttl=63, id=77)
                 / TCP(sport=40000, dport=1723, seq=1000, ack=2000, flags=flags,
                       window=512, options=list(options)) / payload)


def test_parses_what_scapy_builds_and_rebuilds_it_byte_for_byte():
    raw = scapy_tcp_frame(options=[("MSS", 1460), ("NOP", None), ("NOP", None)])
    eth = parse_ethernet(raw)
    assert (eth.src, eth.dst, eth.ethertype) == ("02:00:00:00:00:02", "0e:00:00:00:00:01",
                                                 0x0800)
    ip = parse_ipv4(eth.payload)
    assert (ip.src, ip.dst, ip.ttl, ip.protocol, ip.identification) == (CLIENT, SERVER, 63, 6,
                                                                        77)
    tcp = parse_tcp(ip.payload, ip.src, ip.dst)
    assert (tcp.src_port, tcp.dst_port, tcp.seq, tcp.ack, tcp.window) == (40000, 1723, 1000,
                                                                          2000, 512)
    assert tcp.payload == b"hello" and tcp.has(0x08) and tcp.has(0x10) and not tcp.has(0x02)
    rebuilt = build_ethernet(Ethernet(eth.dst, eth.src, eth.ethertype,
                                      build_ipv4(ip._replace(
                                          payload=build_tcp(tcp, ip.src, ip.dst)))))
    assert rebuilt == raw


def test_rewritten_frame_has_checksums_scapy_accepts():
    ip = parse_ipv4(parse_ethernet(scapy_tcp_frame()).payload)
    tcp = parse_tcp(ip.payload, ip.src, ip.dst)
    public = IPv4Address("203.0.113.1")
    new_tcp = tcp._replace(src_port=1024)
    new_ip = ip._replace(src=public, ttl=ip.ttl - 1, payload=build_tcp(new_tcp, public, ip.dst))
    frame = Ether(build_ethernet(Ethernet("02:00:00:00:00:aa", "0e:00:00:00:00:01", 0x0800,
                                          build_ipv4(new_ip))))
    sent_ip, sent_tcp = frame[IP].chksum, frame[TCP].chksum
    del frame[IP].chksum, frame[TCP].chksum
    recomputed = Ether(bytes(frame))
    assert (recomputed[IP].chksum, recomputed[TCP].chksum) == (sent_ip, sent_tcp)
    assert recomputed[IP].src == "203.0.113.1" and recomputed[TCP].sport == 1024


def test_arp_round_trip_against_scapy():
    raw = bytes(ARP(op=1, hwsrc="02:00:00:00:00:02", psrc="10.0.0.2", pdst="10.0.0.1"))
    arp = parse_arp(raw)
    assert arp == Arp(1, "02:00:00:00:00:02", CLIENT, "00:00:00:00:00:00",
                      IPv4Address("10.0.0.1"))
    assert build_arp(arp) == raw


def test_short_frames_are_padded_and_padding_ignored():
    arp = Arp(2, "0e:00:00:00:00:01", IPv4Address("10.0.0.1"), "02:00:00:00:00:02", CLIENT)
    frame = build_ethernet(Ethernet("02:00:00:00:00:02", "0e:00:00:00:00:01", 0x0806,
                                    build_arp(arp)))
    assert len(frame) == 60
    assert parse_arp(parse_ethernet(frame).payload) == arp
    ip = parse_ipv4(parse_ethernet(scapy_tcp_frame(payload=b"", flags="S")).payload + b"\0" * 6)
    assert parse_tcp(ip.payload, ip.src, ip.dst).payload == b""


@pytest.mark.parametrize("mutate,fragment", [
    (lambda b: b[:13], "Ethernet"),
    (lambda b: b[:12] + b"\x81\x00" + b[14:], "VLAN"),
    (lambda b: b[:14] + b"\x65" + b[15:], "version"),
    (lambda b: b[:14] + b"\x44" + b[15:], "header length"),
    (lambda b: b[:16] + b"\xff\xff" + b[18:], "total length"),
    (lambda b: b[:22] + bytes([b[22] ^ 1]) + b[23:], "header checksum"),
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "TCP: bad checksum"),
    (lambda b: b[:14 + 20 + 12] + b"\x10" + b[14 + 20 + 13:], "TCP: header length"),
])
def test_malformed_frames_raise_frame_error(mutate, fragment):
    raw = mutate(scapy_tcp_frame())
    with pytest.raises(FrameError, match=fragment):
        eth = parse_ethernet(raw)
        ip = parse_ipv4(eth.payload)
        parse_tcp(ip.payload, ip.src, ip.dst)


@given(st.binary(max_size=120))
def test_random_bytes_never_escape_as_other_errors(data):
    try:
        eth = parse_ethernet(data)
        ip = parse_ipv4(eth.payload)
        parse_tcp(ip.payload, ip.src, ip.dst)
    except FrameError:
        pass
    with contextlib.suppress(FrameError):
        parse_arp(data)


@given(st.builds(Tcp, st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 2**32 - 1),
                 st.integers(0, 2**32 - 1), st.integers(0, 255), st.binary(max_size=300),
                 st.integers(0, 65535), st.integers(0, 65535),
                 st.binary(max_size=40).map(lambda b: b[: len(b) // 4 * 4])))
def test_tcp_round_trip(segment):
    assert parse_tcp(build_tcp(segment, CLIENT, SERVER), CLIENT, SERVER) == segment


def word_sum_checksum(data: bytes) -> int:
    """RFC 1071 the long way: add 16-bit words, fold the carries, complement."""
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@given(st.binary(max_size=300) | st.lists(st.sampled_from([b"\x00\x00", b"\xff\xff"]),
                                          max_size=40).map(b"".join))
def test_checksum_is_rfc_1071(data: bytes) -> None:
    assert internet_checksum(data) == word_sum_checksum(data) == scapy_checksum(data)


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"\xff\xff", b"\xff\xff\xff\xff",
                                  b"\x00\x01\xff\xfe", b"\xff"])
def test_checksum_edge_cases(data: bytes) -> None:
    """All-zero and all-ones sums, where modulo arithmetic could pick the wrong zero."""
    assert internet_checksum(data) == word_sum_checksum(data)
