"""Records written before a field was appended still load (an upgrade keeps the calls)."""

from __future__ import annotations

from ipaddress import IPv4Address

from ryu_pptp_alg import records as rec
from ryu_pptp_alg.records import Conn, Injection, SeqShift


def test_a_connection_stored_before_the_sequence_shifts_loads_without_them() -> None:
    conn = Conn(7, IPv4Address("10.0.0.11"), 40000, IPv4Address("198.51.100.10"), 1723,
                IPv4Address("203.0.113.1"), 40000, created=1.0, last_seen=2.0)
    stored = rec.encode_conn(conn)
    assert stored[-2:] == [None, None]  # the two shifts, appended last
    old = rec.decode_conn(7, stored[:-2])
    assert (old.to_server_shift, old.to_client_shift) == (None, None)
    assert rec.encode_conn(old) == stored


def test_shifts_round_trip() -> None:
    conn = Conn(7, IPv4Address("10.0.0.11"), 40000, IPv4Address("198.51.100.10"), 1723,
                IPv4Address("203.0.113.1"), 40000, created=1.0, last_seen=2.0,
                to_server_shift=SeqShift(16, (Injection(5, b"x" * 16, 9, 2),)))
    again = rec.decode_conn(7, rec.encode_conn(conn))
    assert again.to_server_shift == conn.to_server_shift and again.to_client_shift is None
