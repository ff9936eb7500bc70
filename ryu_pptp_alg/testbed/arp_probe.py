"""Does the gateway still answer a host's ARP? A prober run inside the host's namespace.

``python -m ryu_pptp_alg.testbed.arp_probe --ifname eth0 --sender-ip A --target B``
sends an ARP request for B (from the interface's MAC and A) every ``--interval`` seconds
for ``--seconds`` and prints one JSON line per probe: ``{"sent": t, "rtt": seconds or
null}`` (``t`` on CLOCK_MONOTONIC, ``null``: no reply within ``--timeout``), flushed at
once, so a reader sees probes as they are judged. It never touches the namespace's
ARP cache. :class:`ArpProber` runs it in a :class:`Namespace` and gathers the lines.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ryu_pptp_alg.testbed.netns import Namespace

ETH_P_ARP = 0x0806
SO_ATTACH_FILTER = 26
# Classic BPF: keep ARP replies only, so a flood of ARP requests on the link never
# queues ahead of the answer (ldh [12]; jeq 0x806; ldh [20]; jeq 2; ret all; ret 0).
REPLIES_ONLY = ((0x28, 0, 0, 12), (0x15, 0, 3, ETH_P_ARP), (0x28, 0, 0, 20),
                (0x15, 0, 1, 2), (0x06, 0, 0, 0xFFFF), (0x06, 0, 0, 0))


def _mac_bytes(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def request_frame(mac: bytes, sender_ip: str, target_ip: str) -> bytes:
    eth = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac,
                      socket.inet_aton(sender_ip), b"\0" * 6, socket.inet_aton(target_ip))
    return (eth + arp).ljust(60, b"\0")


def is_reply(frame: bytes, mac: bytes, sender_ip: str, target_ip: str) -> bool:
    """An ARP reply from ``target_ip`` to us (our MAC and address)."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x06":
        return False
    op = struct.unpack("!H", frame[20:22])[0]
    return (op == 2 and frame[28:32] == socket.inet_aton(target_ip)
            and frame[32:38] == mac and frame[38:42] == socket.inet_aton(sender_ip))


def probe_loop(ifname: str, sender_ip: str, target_ip: str, interval: float, timeout: float,
               seconds: float) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    program = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn)
                                                   for insn in REPLIES_ONLY))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER,
                    struct.pack("HL", len(REPLIES_ONLY), ctypes.addressof(program)))
    sock.bind((ifname, ETH_P_ARP))
    mac = _mac_bytes(Path(f"/sys/class/net/{ifname}/address").read_text().strip())
    frame = request_frame(mac, sender_ip, target_ip)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sent = time.monotonic()
        sock.send(frame)
        rtt = None
        while rtt is None:
            left = sent + timeout - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([sock], [], [], left)
            if ready and is_reply(sock.recv(2048), mac, sender_ip, target_ip):
                rtt = time.monotonic() - sent
        print(json.dumps({"sent": round(sent, 4), "rtt": None if rtt is None
                          else round(rtt, 6)}), flush=True)
        time.sleep(max(0.0, sent + interval - time.monotonic()))


@dataclass(frozen=True)
class ArpReport:
    probes: int
    answered: int
    rtts: list[float]
    unanswered_at: list[float]  # monotonic send times of probes without a reply
    # Longest time in the window without an answer (window edges included): a host's
    # kernel gives up resolving after 3 unanswered requests 1 s apart.
    longest_silence: float = 0.0

    @property
    def answered_share(self) -> float:
        return self.answered / self.probes if self.probes else 0.0

    def describe(self, origin: float | None = None) -> str:
        if not self.probes:
            return "no ARP probes"
        rtts = sorted(self.rtts)
        median = f", median reply {rtts[len(rtts) // 2] * 1000:.1f} ms" if rtts else ""
        worst = f", slowest {rtts[-1] * 1000:.1f} ms" if rtts else ""
        zero = origin if origin is not None else 0.0
        missing = ""
        if self.unanswered_at and origin is not None:
            missing = " (unanswered at " + ", ".join(
                f"{t - zero:+.1f}s" for t in self.unanswered_at[:8]) + \
                (" ..." if len(self.unanswered_at) > 8 else "") + ")"
        return (f"{self.answered} of {self.probes} ARP requests answered{median}{worst}"
                f"{missing}, longest time without an answer {self.longest_silence:.1f}s")


class ArpProber:
    """Runs :func:`probe_loop` in ``ns``; :meth:`report` judges the probes so far (or of a
    window of monotonic time)."""

    def __init__(self, ns: Namespace, sender_ip: str, target_ip: str, ifname: str = "eth0",
                 interval: float = 0.5, timeout: float = 1.0, seconds: float = 60.0) -> None:
        self.ns, self.sender_ip, self.target_ip, self.ifname = ns, sender_ip, target_ip, ifname
        self.interval, self.timeout, self.seconds = interval, timeout, seconds
        self.process: subprocess.Popen[str] | None = None
        self.probes: list[tuple[float, float | None]] = []
        self._reader: threading.Thread | None = None

    def start(self) -> ArpProber:
        root = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": f"{root}:{os.environ.get('PYTHONPATH', '')}"}
        self.process = self.ns.popen(
            [sys.executable, "-m", "ryu_pptp_alg.testbed.arp_probe", "--ifname", self.ifname,
             "--sender-ip", self.sender_ip, "--target", self.target_ip, "--interval",
             str(self.interval), "--timeout", str(self.timeout), "--seconds",
             str(self.seconds)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, env=env)
        process = self.process

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                self.probes.append((float(data["sent"]), data["rtt"]))
        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        return self

    def report(self, since: float = 0.0, until: float = float("inf")) -> ArpReport:
        window = [(t, rtt) for t, rtt in list(self.probes) if since <= t <= until]
        rtts = [rtt for _t, rtt in window if rtt is not None]
        end = min(until, window[-1][0] + self.timeout) if window else since
        start = window[0][0] if window else since
        points = [start, *sorted(t + rtt for t, rtt in window if rtt is not None), end]
        silence = max((b - a for a, b in itertools.pairwise(points)), default=0.0)
        return ArpReport(len(window), len(rtts), rtts,
                         [t for t, rtt in window if rtt is None], round(max(0.0, silence), 3))

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        if process is not None and process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> ArpProber:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ifname", default="eth0")
    parser.add_argument("--sender-ip", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 600 or args.interval < 0.05:
        parser.error("--seconds in (0, 600], --interval >= 0.05")
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        probe_loop(args.ifname, args.sender_ip, args.target, args.interval, args.timeout,
                   args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
