"""A userspace PPP stand-in for the real PPTP peers (no kernel PPP needed).

It speaks async-HDLC-framed PPP (RFC 1662) on a tty: LCP Configure-Request /
Ack until the link is open, then LCP Echo-Request every ``--echo-interval``
seconds and Echo-Reply to the peer's. Counters go to a JSON status file,
written atomically (tmp + rename) on every change and at least every 0.5 s.

Echo timing: every Echo-Request sent is kept in a bounded ring (``echo_log``: the
last ``ECHO_LOG_SIZE`` requests as ``[sent, ident, replied or null]``, times from
``time.monotonic()``, which is CLOCK_MONOTONIC and so comparable between processes
on one host) and matched with its Echo-Reply by identifier. A request unanswered
after ``--echo-timeout`` seconds counts as ``lcp_echo_replies_missing``;
``longest_echo_reply_gap`` is the longest time between two consecutive Echo-Replies
since the link opened. :func:`echo_report` judges a window of ``echo_log``.

Two ways to run it:

- client side: ``python -m ryu_pptp_alg.testbed.ppp_standin --fd N --status FILE``
  with ``pptp --nolaunchpppd`` on the pty master;
- server side: as pptpd's ``ppp`` program (through :func:`write_wrapper`).
  ``pptpctrl`` puts the pty slave on fd 0/1 and passes pppd-style arguments;
  unknown ones are ignored; the status file is ``<status-dir>/<IP>-<pid>.json``
  with ``ipparam IP`` (the client's address as pptpd saw it), else ``<pid>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import itertools
import json
import os
import select
import signal
import struct
import sys
import termios
import time
import tty
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FLAG = 0x7E
ESC = 0x7D
PROTO_LCP = 0xC021
LCP_CONF_REQ, LCP_CONF_ACK, LCP_CONF_NAK, LCP_CONF_REJ = 1, 2, 3, 4
LCP_TERM_REQ, LCP_TERM_ACK, LCP_CODE_REJ, LCP_PROTO_REJ = 5, 6, 7, 8
LCP_ECHO_REQ, LCP_ECHO_REP, LCP_DISCARD_REQ = 9, 10, 11
OPT_MAGIC = 5
STATUS_ENV = "PPP_STANDIN_STATUS"
ECHO_LOG_SIZE = 256  # 128 s of echoes at 0.5 s; the status JSON stays ~10 KB
ECHO_TIMEOUT = 2.0

# --- FCS-16 (RFC 1662 appendix C) -------------------------------------------------------

def _fcs_table() -> list[int]:
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0x8408 if value & 1 else value >> 1
        table.append(value)
    return table


FCS_TABLE = _fcs_table()
FCS_INIT = 0xFFFF
FCS_GOOD = 0xF0B8


def fcs16(data: bytes, fcs: int = FCS_INIT) -> int:
    for byte in data:
        fcs = (fcs >> 8) ^ FCS_TABLE[(fcs ^ byte) & 0xFF]
    return fcs


def hdlc_encode(frame: bytes) -> bytes:
    """One async-HDLC frame: flag, escaped frame + FCS, flag (every byte < 0x20 escaped)."""
    fcs = fcs16(frame) ^ 0xFFFF
    raw = frame + struct.pack("<H", fcs)
    out = bytearray([FLAG])
    for byte in raw:
        if byte < 0x20 or byte in (FLAG, ESC):
            out += bytes([ESC, byte ^ 0x20])
        else:
            out.append(byte)
    out.append(FLAG)
    return bytes(out)


class HdlcDecoder:
    """Splits a byte stream into frames; drops frames with a bad FCS (counted)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.escaped = False
        self.bad_fcs = 0

    def feed(self, data: bytes) -> list[bytes]:
        frames = []
        for byte in data:
            if byte == FLAG:
                if len(self.buf) >= 4:
                    if fcs16(bytes(self.buf)) == FCS_GOOD:
                        frames.append(bytes(self.buf[:-2]))
                    else:
                        self.bad_fcs += 1
                self.buf.clear()
                self.escaped = False
            elif byte == ESC:
                self.escaped = True
            else:
                self.buf.append(byte ^ 0x20 if self.escaped else byte)
                self.escaped = False
        return frames


def split_ppp(frame: bytes) -> tuple[int, bytes]:
    """(protocol, information) of a frame with or without address/control compression."""
    if frame[:2] == b"\xff\x03":
        frame = frame[2:]
    if not frame:
        return 0, b""
    if frame[0] & 1:  # protocol field compressed to one byte
        return frame[0], frame[1:]
    if len(frame) < 2:
        return 0, b""
    return (frame[0] << 8) | frame[1], frame[2:]


def ppp_frame(protocol: int, info: bytes) -> bytes:
    return b"\xff\x03" + struct.pack("!H", protocol) + info


def lcp_packet(code: int, ident: int, data: bytes) -> bytes:
    return ppp_frame(PROTO_LCP, struct.pack("!BBH", code, ident, 4 + len(data)) + data)


@dataclass
class Counters:
    frames_sent: int = 0
    frames_received: int = 0
    bad_fcs: int = 0
    lcp_conf_req_sent: int = 0
    lcp_conf_ack_received: int = 0
    lcp_conf_req_received: int = 0
    lcp_echo_requests_sent: int = 0
    lcp_echo_replies_received: int = 0
    lcp_echo_requests_answered: int = 0
    lcp_echo_replies_matched: int = 0  # to one of our requests, by identifier
    lcp_echo_replies_missing: int = 0  # requests unanswered after the echo timeout
    lcp_echo_replies_late: int = 0  # matched after being counted missing
    other_frames_received: int = 0


@dataclass
class Status:
    pid: int
    role: str
    ipparam: str | None
    argv: list[str]
    state: str = "starting"  # starting, req-sent, opened, closed (by Terminate-Request)
    exited: bool = False
    opened_at: float | None = None
    magic: int = 0
    peer_magic: int | None = None
    started: float = field(default_factory=time.time)
    updated: float = 0.0
    updated_monotonic: float = 0.0
    echo_interval: float = 0.5
    echo_timeout: float = ECHO_TIMEOUT
    last_echo_reply: float | None = None  # monotonic
    longest_echo_reply_gap: float = 0.0  # between consecutive replies, since opened
    counters: Counters = field(default_factory=Counters)
    # [sent, ident, replied or None] of the last ECHO_LOG_SIZE requests (monotonic).
    echo_log: list[list[Any]] = field(default_factory=list)


class StandIn:
    """The PPP endpoint on one tty fd (reads and writes the same fd, or fd 0 / fd 1)."""

    def __init__(self, rfd: int, wfd: int, status_path: Path | None, status: Status,
                 echo_interval: float = 0.5, conf_interval: float = 1.0,
                 echo_timeout: float = ECHO_TIMEOUT) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.status_path = status_path
        self.status = status
        self.echo_interval = echo_interval
        self.conf_interval = conf_interval
        self.echo_timeout = echo_timeout
        status.echo_interval, status.echo_timeout = echo_interval, echo_timeout
        self.echo_log: deque[list[Any]] = deque(maxlen=ECHO_LOG_SIZE)
        self.echo_pending: dict[int, list[Any]] = {}  # ident -> its echo_log entry
        self.echo_unjudged: deque[list[Any]] = deque()  # entries not yet replied or missing
        self.decoder = HdlcDecoder()
        self.ident = 0
        self.our_acked = False
        self.peer_acked = False
        self.next_conf = 0.0
        self.next_echo = 0.0
        self.next_write = 0.0
        self.dirty = True
        self.running = True

    @property
    def c(self) -> Counters:
        return self.status.counters

    def _next_ident(self) -> int:
        self.ident = (self.ident + 1) & 0xFF
        return self.ident

    def send(self, frame: bytes) -> None:
        data = hdlc_encode(frame)
        while data:
            try:
                written = os.write(self.wfd, data)
            except BlockingIOError:
                select.select([], [self.wfd], [], 0.5)
                continue
            data = data[written:]
        self.c.frames_sent += 1
        self.dirty = True

    def send_conf_req(self) -> None:
        option = struct.pack("!BBI", OPT_MAGIC, 6, self.status.magic)
        self.send(lcp_packet(LCP_CONF_REQ, self._next_ident(), option))
        self.c.lcp_conf_req_sent += 1
        if self.status.state == "starting":
            self.status.state = "req-sent"

    def send_echo(self) -> None:
        ident = self._next_ident()
        self.send(lcp_packet(LCP_ECHO_REQ, ident, struct.pack("!I", self.status.magic)))
        self.c.lcp_echo_requests_sent += 1
        entry = [round(time.monotonic(), 4), ident, None]
        self.echo_log.append(entry)
        self.echo_pending[ident] = entry  # an older request with this ident is forgotten
        self.echo_unjudged.append(entry)

    def echo_replied(self, ident: int) -> None:
        self.c.lcp_echo_replies_received += 1
        now = time.monotonic()
        self.judge_echoes(now)  # first: a reply after the timeout was counted missing
        entry = self.echo_pending.pop(ident, None)
        if entry is not None:
            self.c.lcp_echo_replies_matched += 1
            if now - entry[0] > self.echo_timeout:
                self.c.lcp_echo_replies_late += 1
            entry[2] = round(now, 4)
        last = self.status.last_echo_reply
        if last is not None:
            self.status.longest_echo_reply_gap = max(self.status.longest_echo_reply_gap,
                                                     round(now - last, 4))
        self.status.last_echo_reply = round(now, 4)

    def judge_echoes(self, now: float) -> None:
        """Count requests unanswered after the echo timeout as missing (oldest first)."""
        while self.echo_unjudged and (self.echo_unjudged[0][2] is not None
                                      or now - self.echo_unjudged[0][0] > self.echo_timeout):
            entry = self.echo_unjudged.popleft()
            if entry[2] is None:
                self.c.lcp_echo_replies_missing += 1
                self.dirty = True

    def handle_frame(self, frame: bytes) -> None:
        self.c.frames_received += 1
        self.dirty = True
        protocol, info = split_ppp(frame)
        if protocol != PROTO_LCP or len(info) < 4:
            self.c.other_frames_received += 1
            if protocol and protocol != PROTO_LCP and self.status.state == "opened":
                # Protocol-Reject: we speak LCP only.
                self.send(lcp_packet(LCP_PROTO_REJ, self._next_ident(),
                                     struct.pack("!H", protocol) + info[:1400]))
            return
        code, ident, length = struct.unpack("!BBH", info[:4])
        data = info[4:length]
        if code == LCP_CONF_REQ:
            self.c.lcp_conf_req_received += 1
            self._handle_conf_req(ident, data)
        elif code == LCP_CONF_ACK:
            self.c.lcp_conf_ack_received += 1
            self.our_acked = True
        elif code in (LCP_CONF_NAK, LCP_CONF_REJ):
            self.status.magic = int.from_bytes(os.urandom(4), "big") or 1
            self.send_conf_req()
        elif code == LCP_ECHO_REQ:
            if self.status.state == "opened":
                self.send(lcp_packet(LCP_ECHO_REP, ident, struct.pack("!I", self.status.magic)
                                     + data[4:]))
                self.c.lcp_echo_requests_answered += 1
        elif code == LCP_ECHO_REP:
            self.echo_replied(ident)
        elif code == LCP_TERM_REQ:
            self.send(lcp_packet(LCP_TERM_ACK, ident, b""))
            self.status.state = "closed"
            self.our_acked = self.peer_acked = False
        elif code not in (LCP_TERM_ACK, LCP_CODE_REJ, LCP_PROTO_REJ, LCP_DISCARD_REQ):
            self.send(lcp_packet(LCP_CODE_REJ, self._next_ident(), info[:length]))
        if self.our_acked and self.peer_acked and self.status.state != "opened":
            self.status.state = "opened"
            self.status.opened_at = time.time()
            self.next_echo = time.monotonic()

    def _handle_conf_req(self, ident: int, options: bytes) -> None:
        """Ack a magic-number-only request (ours are such); reject any other option."""
        rejected = bytearray()
        pos = 0
        while pos + 2 <= len(options):
            kind, length = options[pos], options[pos + 1]
            if length < 2:
                break
            if kind == OPT_MAGIC and length == 6:
                self.status.peer_magic = struct.unpack("!I", options[pos + 2:pos + 6])[0]
            else:
                rejected += options[pos:pos + length]
            pos += length
        if rejected:
            self.send(lcp_packet(LCP_CONF_REJ, ident, bytes(rejected)))
            return
        self.send(lcp_packet(LCP_CONF_ACK, ident, options))
        if self.status.state == "closed":
            self.status.state = "req-sent"
            self.send_conf_req()
        self.peer_acked = True

    def write_status(self) -> None:
        self.dirty = False
        self.next_write = time.monotonic() + 0.5
        if self.status_path is None:
            return
        self.status.updated = time.time()
        self.status.updated_monotonic = round(time.monotonic(), 4)
        self.status.echo_log = list(self.echo_log)
        tmp = self.status_path.with_name(f".{self.status_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(self.status)))
        os.replace(tmp, self.status_path)

    def run(self) -> None:
        self.status.magic = int.from_bytes(os.urandom(4), "big") or 1
        self.write_status()
        while self.running:
            now = time.monotonic()
            if not self.our_acked and now >= self.next_conf:
                self.send_conf_req()
                self.next_conf = now + self.conf_interval
            if self.status.state == "opened" and now >= self.next_echo:
                self.send_echo()
                self.next_echo = now + self.echo_interval
            self.judge_echoes(now)
            if self.dirty or now >= self.next_write:
                self.write_status()
            timeout = max(0.0, min(self.next_write, self.next_echo if self.status.state ==
                                   "opened" else self.next_conf) - time.monotonic())
            try:
                ready, _, _ = select.select([self.rfd], [], [], min(timeout, 0.5))
            except InterruptedError:
                continue
            if not ready:
                continue
            try:
                data = os.read(self.rfd, 65536)
            except BlockingIOError:
                continue
            except OSError as err:
                if err.errno == errno.EIO:  # pty hung up
                    break
                raise
            if not data:
                break
            for frame in self.decoder.feed(data):
                self.handle_frame(frame)
            self.c.bad_fcs = self.decoder.bad_fcs
        self.status.exited = True
        self.write_status()


@dataclass(frozen=True)
class EchoReport:
    """How one stand-in's echoes fared in a window of time (monotonic seconds)."""

    since: float
    until: float
    requests: int  # sent in the window
    judged: int  # sent early enough (echo timeout before ``until``) to expect the reply
    replied: int  # of the judged, answered within the echo timeout
    missing: list[float]  # sent times of judged requests unanswered within the timeout
    longest_gap: float  # longest time without an echo reply, window edges included
    gap_from: float | None  # where that gap started (the last reply before it)
    truncated: bool  # the ring no longer reaches back to ``since``

    def describe(self, origin: float | None = None) -> str:
        """One line; times relative to ``origin`` (default: ``since``)."""
        zero = self.since if origin is None else origin
        missing = ", ".join(f"{t - zero:+.1f}s" for t in self.missing[:8])
        more = f" (+{len(self.missing) - 8} more)" if len(self.missing) > 8 else ""
        gap_from = f" from {self.gap_from - zero:+.1f}s" if self.gap_from is not None else ""
        return (f"{self.requests} echo requests, {len(self.missing)} of {self.judged} judged "
                f"replies missing" + (f" (sent at {missing}{more})" if self.missing else "")
                + f", longest gap between replies {self.longest_gap:.2f}s{gap_from}"
                + (", ring truncated" if self.truncated else ""))


def echo_report(status: Mapping[str, Any], since: float, until: float | None = None) -> EchoReport:
    """Judge the echo requests of ``status`` (a stand-in's status dict) sent in
    [since, until]; ``until`` defaults to the status file's last update."""
    end = float(status.get("updated_monotonic") or 0.0) if until is None else until
    timeout = float(status.get("echo_timeout", ECHO_TIMEOUT))
    log = [(float(sent), replied) for sent, _ident, replied in status.get("echo_log", [])]
    in_window = [(sent, replied) for sent, replied in log if since <= sent <= end]
    judged = [(sent, replied) for sent, replied in in_window if sent <= end - timeout]
    missing = [sent for sent, replied in judged
               if replied is None or float(replied) - sent > timeout]
    replies = sorted(float(replied) for _sent, replied in log if replied is not None)
    before = [t for t in replies if t < since]
    points = ([before[-1]] if before else [since]) + \
        [t for t in replies if since <= t <= end] + [end]
    longest, gap_from = 0.0, None
    for earlier, later in itertools.pairwise(points):
        if later - earlier > longest:
            longest, gap_from = later - earlier, earlier
    return EchoReport(since=since, until=end, requests=len(in_window), judged=len(judged),
                      replied=len(judged) - len(missing), missing=missing,
                      longest_gap=round(longest, 3), gap_from=gap_from,
                      truncated=bool(log) and log[0][0] > since)


def make_raw(fd: int) -> None:
    with contextlib.suppress(termios.error):
        tty.setraw(fd)


def status_file(args: argparse.Namespace, ipparam: str | None) -> Path | None:
    if args.status:
        return Path(args.status)
    if args.status_dir:
        # Behind a NAT several calls share one ipparam: the pid keeps them apart.
        name = f"{ipparam}-{os.getpid()}" if ipparam else str(os.getpid())
        return Path(args.status_dir) / f"{name}.json"
    env = os.environ.get(STATUS_ENV)
    return Path(env) if env else None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, help="tty fd to use for both directions "
                        "(default: read fd 0, write fd 1)")
    parser.add_argument("--status", help=f"status JSON file (or ${STATUS_ENV})")
    parser.add_argument("--status-dir", help="directory for <ipparam>-<pid>.json")
    parser.add_argument("--role", default="client")
    parser.add_argument("--echo-interval", type=float, default=0.5)
    parser.add_argument("--echo-timeout", type=float, default=ECHO_TIMEOUT,
                        help="an echo request unanswered this long counts as missing")
    args, rest = parser.parse_known_args(argv)
    ipparam = None
    if "ipparam" in rest and rest.index("ipparam") + 1 < len(rest):
        ipparam = rest[rest.index("ipparam") + 1]
    rfd, wfd = (args.fd, args.fd) if args.fd is not None else (0, 1)
    make_raw(rfd)
    path = status_file(args, ipparam)
    status = Status(pid=os.getpid(), role=args.role, ipparam=ipparam, argv=argv)
    standin = StandIn(rfd, wfd, path, status, echo_interval=args.echo_interval,
                      echo_timeout=args.echo_timeout)

    def stop(_sig: int, _frame: object) -> None:
        standin.running = False

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)
    standin.run()
    return 0


def write_wrapper(path: Path, status_dir: Path, echo_interval: float = 0.5) -> Path:
    """A shell script pptpd can ``exec`` as its ``ppp`` program; runs this module."""
    root = Path(__file__).resolve().parents[2]
    path.write_text(
        "#!/bin/sh\n"
        "unset LD_PRELOAD\n"
        f"export PYTHONPATH='{root}'${{PYTHONPATH:+:$PYTHONPATH}}\n"
        f"exec '{sys.executable}' -m ryu_pptp_alg.testbed.ppp_standin --role server "
        f"--status-dir '{status_dir}' --echo-interval {echo_interval} \"$@\"\n")
    path.chmod(0o755)
    return path


if __name__ == "__main__":
    sys.exit(main())
