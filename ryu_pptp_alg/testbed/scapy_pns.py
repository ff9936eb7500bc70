"""A PPTP client (PNS) that owns its TCP segments, for what real clients never do.

Messages are built with scapy's PPTP layers (an encoder independent of ours) and
sent over raw sockets, so the test decides segmentation: ``--split bytes`` (one
byte per segment), ``--split coalesce`` (every message in one segment) or
``--split messages``; ``--retransmit`` sends every segment twice and swaps
neighbours (out of order). The kernel's own RSTs must be dropped in the namespace
(``iptables -A OUTPUT -p tcp --tcp-flags RST RST -j DROP``).

Prints one JSON line: the control messages the server's side sent back, decoded.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import socket
import time

from scapy.layers.inet import IP, TCP
from scapy.layers.pptp import (
    PPTPCallClearRequest,
    PPTPIncomingCallReply,
    PPTPOutgoingCallRequest,
    PPTPStartControlConnectionRequest,
)

from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.codec.frame import parse_ipv4, parse_tcp


class RawTcp:
    def __init__(self, local: str, server: str, sport: int) -> None:
        self.local, self.server, self.sport = local, server, sport
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        self.rx.settimeout(0.2)
        self.isn = random.randrange(2**32)
        self.rcv_next = 0
        self.received: dict[int, bytes] = {}
        self.server_isn = 0
        self.sent = 0  # payload bytes sent: what our ACKs acknowledge the server's data with

    def send(self, seq: int, flags: str, payload: bytes = b"") -> None:
        packet = IP(src=self.local, dst=self.server) / TCP(
            sport=self.sport, dport=pptp.PPTP_PORT, seq=seq % 2**32, ack=self.rcv_next,
            flags=flags, window=65535) / payload
        self.tx.sendto(bytes(packet), (self.server, 0))

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.rx.recv(65535)
            except TimeoutError:
                continue
            ip = parse_ipv4(data)
            tcp = parse_tcp(ip.payload, ip.src, ip.dst)
            if tcp.dst_port != self.sport or tcp.src_port != pptp.PPTP_PORT:
                continue
            if tcp.has(0x02):  # SYN-ACK
                self.server_isn = tcp.seq
                self.rcv_next = (tcp.seq + 1) % 2**32
            elif tcp.payload:
                self.received[(tcp.seq - self.server_isn - 1) % 2**32] = tcp.payload
                self.rcv_next = max(self.rcv_next, (tcp.seq + len(tcp.payload)) % 2**32)
                self.send(self.isn + 1 + self.sent, "A")

    def stream(self) -> bytes:
        out = b""
        for offset in sorted(self.received):
            chunk = self.received[offset]
            if offset <= len(out):
                out += chunk[len(out) - offset:]
        return out


def segments(payload: bytes, split: str, boundaries: list[int]) -> list[tuple[int, bytes]]:
    if split == "bytes":
        return [(i, payload[i:i + 1]) for i in range(len(payload))]
    if split == "coalesce":
        return [(0, payload)]
    points = [0, *boundaries, len(payload)]
    return [(a, payload[a:b]) for a, b in itertools.pairwise(points)]


def decode(stream: bytes) -> list[dict]:
    replies = []
    while len(stream) >= 2 and len(stream) >= pptp.message_length(stream):
        length = pptp.message_length(stream)
        msg, stream = pptp.parse(stream[:length]), stream[length:]
        replies.append({"type": type(msg).__name__,
                        **{name: getattr(msg, name) for name in msg.CALL_ID_FIELDS}})
    return replies


def wait_for_reply(conn: RawTcp, message_type: str) -> dict:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for reply in decode(conn.stream()):
            if reply["type"] == message_type:
                return reply
        conn.poll(0.2)
    raise SystemExit(f"no {message_type}: {decode(conn.stream())}")


def answer_incoming(conn: RawTcp, call_id: int) -> None:
    """Start the control connection, then accept the server's incoming call."""
    start = bytes(PPTPStartControlConnectionRequest())
    conn.send(conn.isn + 1, "PA", start)
    conn.sent = len(start)
    request = wait_for_reply(conn, "IncomingCallRequest")
    # scapy's Incoming-Call-Reply defaults to a wrong length (148); RFC 2637 says 24.
    reply = bytes(PPTPIncomingCallReply(len=24, call_id=call_id,
                                        peer_call_id=request["call_id"]))
    conn.send(conn.isn + 1 + len(start), "PA", reply)
    conn.sent += len(reply)
    wait_for_reply(conn, "IncomingCallConnected")
    print(json.dumps({"replies": decode(conn.stream())}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--local", required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--sport", type=int, default=42000)
    parser.add_argument("--call-ids", default="7,8")
    parser.add_argument("--split", choices=("bytes", "coalesce", "messages"), default="messages")
    parser.add_argument("--retransmit", action="store_true")
    parser.add_argument("--clear", action="store_true", help="clear the calls at the end")
    parser.add_argument("--keep-open", action="store_true",
                        help="leave the control connection (and its calls) up")
    parser.add_argument("--incoming", type=lambda x: int(x, 0), metavar="CALL_ID",
                        help="no outgoing calls: answer the server's Incoming-Call-Request")
    args = parser.parse_args()
    call_ids = [int(x, 0) for x in args.call_ids.split(",")]
    conn = RawTcp(args.local, args.server, args.sport)
    conn.send(conn.isn, "S")
    conn.poll(1.0)
    if not conn.server_isn:
        raise SystemExit("no SYN-ACK")
    conn.send(conn.isn + 1, "A")
    if args.incoming is not None:
        answer_incoming(conn, args.incoming)
        return
    messages = [bytes(PPTPStartControlConnectionRequest())]
    messages += [bytes(PPTPOutgoingCallRequest(call_id=c, call_serial_number=i))
                 for i, c in enumerate(call_ids)]
    if args.clear:
        messages += [bytes(PPTPCallClearRequest(call_id=c)) for c in call_ids]
    payload = b"".join(messages)
    boundaries, total = [], 0
    for message in messages[:-1]:
        total += len(message)
        boundaries.append(total)
    plan = segments(payload, args.split, boundaries)
    if args.retransmit:
        plan = [s for s in plan for _ in (0, 1)]
        for i in range(0, len(plan) - 3, 4):
            plan[i + 1], plan[i + 2] = plan[i + 2], plan[i + 1]
    for offset, chunk in plan:
        conn.send(conn.isn + 1 + offset, "PA", chunk)
        time.sleep(0.002)
    conn.sent = len(payload)
    expected = 1 + len(call_ids) * (2 if args.clear else 1)
    deadline = time.monotonic() + 15
    while len(replies := decode(conn.stream())) < expected and time.monotonic() < deadline:
        conn.poll(0.2)
    if not args.keep_open:
        conn.send(conn.isn + 1 + len(payload), "FA")  # our RSTs are dropped in the namespace
    print(json.dumps({"replies": replies}), flush=True)


if __name__ == "__main__":
    main()
