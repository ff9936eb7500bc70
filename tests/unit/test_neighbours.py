"""Neighbours are learned only on the side they belong to, and the table is bounded."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from ryu_pptp_alg.codec import frame as fr
from ryu_pptp_alg.neighbours import Neighbours, Side
from tests.unit.fakeswitch import FakeSwitch, Host
from tests.unit.test_outbound import (
    CLIENTS,
    GW_MAC,
    OUTSIDE,
    PUBLIC,
    SERVER,
    SERVER_IP,
    TIMEOUTS,
    gateway_config,
)

INSIDE_IP = IPv4Address("10.0.0.11")


def neighbours(max_entries: int = 100) -> Neighbours:
    return Neighbours(GW_MAC, {"inside": Side("inside", (1, 2), (IPv4Address("10.0.0.1"),)),
                               "outside": Side("outside", (3,), (PUBLIC,))},
                      1.0, 5.0, IPv4Network("10.0.0.0/24"), max_entries)


def test_an_address_is_learned_only_from_its_own_side():
    table = neighbours()
    table.learn(INSIDE_IP, "02:00:00:00:00:66", 3)  # an outside host claims an inside one
    table.learn(SERVER_IP, "02:00:00:00:00:67", 1)  # and the reverse
    table.learn(INSIDE_IP, "02:00:00:00:00:68", 7)  # a port on neither side
    assert table.table == {} and table.counters["neighbour_wrong_side"] == 3
    table.learn(INSIDE_IP, "02:00:00:00:00:11", 1)
    table.learn(SERVER_IP, "02:00:00:00:00:99", 3)
    assert set(table.table) == {INSIDE_IP, SERVER_IP}


def test_the_table_is_bounded_and_keeps_the_recently_seen():
    table = neighbours(max_entries=3)
    for i in range(10):
        table.learn(IPv4Address("192.0.2.1") + i, "02:00:00:00:01:00", 3)
        table.learn(SERVER_IP, "02:00:00:00:00:99", 3)  # seen all along
    assert len(table.table) == 3 and SERVER_IP in table.table
    assert table.counters["neighbours_evicted"] == 8


def test_arp_of_another_opcode_is_ignored_and_arp_from_nowhere_unanswered():
    table = neighbours()
    odd = fr.Arp(9, "02:00:00:00:00:99", SERVER_IP, GW_MAC, PUBLIC)
    assert table.handle_arp(odd, OUTSIDE) == []
    assert table.table == {} and table.counters["arp_bad_opcode"] == 1
    request = fr.Arp(fr.ARP_REQUEST, SERVER.mac, SERVER_IP, fr.ZERO_MAC, PUBLIC)
    assert table.handle_arp(request, 7) == []  # port 7 is on neither side
    assert len(table.handle_arp(request, OUTSIDE)) == 1


def test_the_gateway_ignores_a_spoofed_inside_source_from_outside(clock):
    switch = FakeSwitch.create(gateway_config(), clock, TIMEOUTS)
    spoof = Host("02:00:00:00:00:66", CLIENTS[1].ip, GW_MAC)
    switch.send(OUTSIDE, spoof.arp_request(PUBLIC))
    assert CLIENTS[1].ip not in switch.gateway.neighbours.table


def test_the_gateways_own_addresses_are_never_learned():
    """Found by the fuzzer: an ARP claiming the gateway's LAN address was learned."""
    table = neighbours()
    table.learn(IPv4Address("10.0.0.1"), "02:00:00:00:00:13", 1)
    table.learn(PUBLIC, "02:00:00:00:00:13", 3)
    assert table.table == {} and table.counters["neighbour_wrong_side"] == 2
