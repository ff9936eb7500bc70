"""Neighbour resolution (ARP) for one gateway: pure logic, no I/O.

The gateway answers ARP for its own addresses, learns neighbours from ARP and
from the packets it handles, and resolves next hops it has not seen by
flooding ARP requests on one side of the switch. Frames waiting for a next hop
are queued (bounded) and released, or dropped and counted, by ``tick``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from ryu_pptp_alg import ofmsg
from ryu_pptp_alg.codec.frame import (
    ARP_REPLY,
    ARP_REQUEST,
    BROADCAST_MAC,
    ETH_TYPE_ARP,
    ZERO_MAC,
    Arp,
    Ethernet,
    build_arp,
    build_ethernet,
)
from ryu_pptp_alg.records import Hop

LOG = logging.getLogger("ryu_pptp_alg.neighbours")

MAX_QUEUED_PER_HOP = 32
MAX_NEIGHBOURS = 65536  # the least recently seen go first: junk sources cannot grow it

# Builds the messages that send a waiting packet once its next hop is known.
Sender = Callable[[Hop], list[Any]]


@dataclass
class _Pending:
    side: str
    first_request: float
    last_request: float
    waiting: list[Sender] = field(default_factory=list)


@dataclass(frozen=True)
class Side:
    """One side of the gateway: its ports and its addresses (ARP is sent from the first)."""

    name: str
    ports: tuple[int, ...]
    addresses: tuple[IPv4Address, ...]


class Neighbours:
    """``inside``: the LAN. Its addresses are learned only from inside ports, every other
    address only from outside ports, so a spoofed source cannot pull an inside host's
    traffic out of the wrong side (or the reverse)."""

    def __init__(self, gateway_mac: str, sides: dict[str, Side], retry: float,
                 give_up: float, inside: IPv4Network | None = None,
                 max_entries: int = MAX_NEIGHBOURS,
                 log: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> None:
        self.gateway_mac = gateway_mac
        self.log = LOG if log is None else log  # the gateway's: its lines name it
        self.sides = sides
        self.retry = retry
        self.give_up = give_up
        self.inside = inside
        self.max_entries = max_entries
        self._inside_ports = frozenset(sides["inside"].ports) if "inside" in sides \
            else frozenset()
        self._known_ports = frozenset(p for side in sides.values() for p in side.ports)
        self._own = frozenset(a for side in sides.values() for a in side.addresses)
        self.table: dict[IPv4Address, Hop] = {}
        self.pending: dict[IPv4Address, _Pending] = {}
        self.counters: Counter[str] = Counter()

    def lookup(self, address: IPv4Address) -> Hop | None:
        return self.table.get(address)

    def learn(self, address: IPv4Address, mac: str, port: int) -> list[Any]:
        """Record a neighbour seen on the side it belongs to; returns messages for packets
        that were waiting for it."""
        if port not in self._known_ports or address in self._own or (
                self.inside is not None
                and (address in self.inside) != (port in self._inside_ports)):
            self.counters["neighbour_wrong_side"] += 1
            return []
        table = self.table
        hop = table.pop(address, None)
        if hop is None or hop.mac != mac or hop.port != port:
            hop = Hop(mac, port)
        table[address] = hop  # most recently seen last
        if len(table) > self.max_entries:
            del table[next(iter(table))]
            self.counters["neighbours_evicted"] += 1
        pending = self.pending.pop(address, None)
        if pending is None:
            return []
        return [msg for sender in pending.waiting for msg in sender(hop)]

    def send_via(self, address: IPv4Address, side: str, sender: Sender,
                 now: float) -> list[Any]:
        """Send now if ``address`` is known, else queue and ask for it."""
        hop = self.table.get(address)
        if hop is not None:
            return sender(hop)
        pending = self.pending.get(address)
        if pending is None:
            pending = self.pending[address] = _Pending(side, now, now)
            pending.waiting.append(sender)
            return self._request(address, side)
        if len(pending.waiting) >= MAX_QUEUED_PER_HOP:
            self.counters["arp_queue_full_drops"] += 1
        else:
            pending.waiting.append(sender)
        return []

    def tick(self, now: float) -> list[Any]:
        msgs: list[Any] = []
        for address, pending in list(self.pending.items()):
            if now - pending.first_request >= self.give_up:
                del self.pending[address]
                self.counters["arp_unresolved_drops"] += len(pending.waiting)
                self.log.warning("no ARP answer from %s after %.0fs: dropped %d packets",
                                 address, self.give_up, len(pending.waiting))
            elif now - pending.last_request >= self.retry:
                pending.last_request = now
                msgs.extend(self._request(address, pending.side))
        return msgs

    def handle_arp(self, arp: Arp, in_port: int) -> list[Any]:
        """An ARP packet for one of our addresses: learn the sender, answer requests."""
        if arp.op not in (ARP_REQUEST, ARP_REPLY):
            self.counters["arp_bad_opcode"] += 1
            return []
        msgs = self.learn(arp.sender_ip, arp.sender_mac, in_port) \
            if arp.sender_ip != IPv4Address(0) else []
        if arp.op == ARP_REQUEST and self._ours(arp.target_ip, in_port):
            self.counters["arp_replies_sent"] += 1
            reply = Arp(ARP_REPLY, self.gateway_mac, arp.target_ip, arp.sender_mac,
                        arp.sender_ip)
            frame = build_ethernet(Ethernet(arp.sender_mac, self.gateway_mac, ETH_TYPE_ARP,
                                            build_arp(reply)))
            msgs.append(ofmsg.packet_out(frame, [ofmsg.output(ofmsg.OFPP_IN_PORT)], in_port))
        return msgs

    def _ours(self, address: IPv4Address, in_port: int) -> bool:
        """We answer for an address only on the side it belongs to."""
        return any(in_port in side.ports and address in side.addresses
                   for side in self.sides.values())

    def _request(self, address: IPv4Address, side_name: str) -> list[Any]:
        side = self.sides[side_name]
        self.counters["arp_requests_sent"] += 1
        request = Arp(ARP_REQUEST, self.gateway_mac, side.addresses[0], ZERO_MAC, address)
        frame = build_ethernet(Ethernet(BROADCAST_MAC, self.gateway_mac, ETH_TYPE_ARP,
                                        build_arp(request)))
        return [ofmsg.packet_out(frame, [ofmsg.output(port) for port in side.ports])]

