"""Bounded floods from a test namespace: the C sender ``flood.c``, built with gcc at first use.

:class:`Flooder` runs it inside a :class:`Namespace` (SYN to a TCP port, junk enhanced GRE,
junk ARP; see ``flood.c``) at a given rate for a given time; it stops by itself, or
at :meth:`Flooder.stop` (SIGTERM to our own child), and reports what it sent
(:class:`FloodResult`, with a progress sample every second). Frames leave through an
AF_PACKET socket, so the next hop's MAC is given or resolved first (:func:`neighbour_mac`):
a flood never depends on the namespace's ARP cache staying fresh.

Only between namespaces the caller created; the rate (1 to 2,000,000 packets/s) and the
duration (at most 600 s) are always bounded.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.proc import HarnessError, have, run

SOURCE = Path(__file__).with_name("flood.c")
MODES = ("syn", "gre", "arp")
ARP_OPS = ("request", "reply", "mixed")
MAX_RATE = 2_000_000
MAX_SECONDS = 600.0

_lock = threading.Lock()
_built: Path | None = None


def build(directory: Path | None = None) -> Path:
    """Compile ``flood.c`` into ``directory`` (default: one temp dir per process, removed
    at exit, built once) and return the binary's path."""
    global _built
    if not have("gcc"):
        raise HarnessError("gcc is not installed: needed to build the flooder (flood.c)")
    with _lock:
        if directory is None and _built is not None and _built.exists():
            return _built
        target_dir = directory
        if target_dir is None:
            target_dir = Path(tempfile.mkdtemp(prefix="pptp-flood-"))
            atexit.register(shutil.rmtree, target_dir, True)
        target = target_dir / "flood"
        run(["gcc", "-O2", "-Wall", "-o", str(target), str(SOURCE)], timeout=60)
        if directory is None:
            _built = target
        return target


# --- addresses of a namespace's interface --------------------------------------------------

def interface_mac(ns: Namespace, ifname: str = "eth0") -> str:
    out = ns.run("cat", f"/sys/class/net/{ifname}/address").stdout.strip()
    if not out:
        raise HarnessError(f"{ns.name}: no MAC address for {ifname}")
    return out


def interface_address(ns: Namespace, ifname: str = "eth0") -> str:
    """The first IPv4 address of ``ifname`` in ``ns`` (without the prefix length)."""
    out = json.loads(ns.run("ip", "-j", "-4", "addr", "show", "dev", ifname).stdout or "[]")
    for link in out:
        for info in link.get("addr_info", []):
            if info.get("family") == "inet":
                return str(info["local"])
    raise HarnessError(f"{ns.name}: no IPv4 address on {ifname}")


def next_hop(ns: Namespace, destination: str) -> tuple[str, str]:
    """(next-hop address, interface) the namespace routes ``destination`` through."""
    out = json.loads(ns.run("ip", "-j", "route", "get", destination).stdout or "[]")
    if not out:
        raise HarnessError(f"{ns.name}: no route to {destination}")
    route = out[0]
    return str(route.get("gateway") or destination), str(route["dev"])


def neighbour_mac(ns: Namespace, address: str, ifname: str = "eth0",
                  timeout: float = 5.0) -> str:
    """The MAC of ``address`` as the namespace resolves it by ARP (a ping triggers the
    request; the answer to the ping itself does not matter)."""
    deadline = time.monotonic() + timeout
    while True:
        out = json.loads(ns.run("ip", "-j", "neigh", "show", address, "dev", ifname,
                                check=False).stdout or "[]")
        for entry in out:
            states = set(entry.get("state", []))
            if entry.get("lladdr") and not states & {"FAILED", "INCOMPLETE"}:
                return str(entry["lladdr"])
        if time.monotonic() > deadline:
            raise HarnessError(f"{ns.name}: {address} did not answer ARP on {ifname} "
                               f"within {timeout:.0f}s")
        ns.run("ping", "-c", "1", "-W", "1", "-I", ifname, address, check=False, timeout=5)


# --- the flooder -----------------------------------------------------------------------------

@dataclass
class FloodResult:
    """What one flood sent (``sent``: frames the kernel took; ``pps`` over ``elapsed``)."""

    mode: str
    sent: int
    send_errors: int
    elapsed: float
    pps: float
    rate: float  # offered
    stopped_by: str  # "time", "signal", or "killed" (no summary line)
    progress: list[tuple[float, int]] = field(default_factory=list)  # (seconds, sent so far)

    def describe(self) -> str:
        return (f"{self.mode} flood: {self.sent} frames in {self.elapsed:.1f}s = "
                f"{self.pps:,.0f}/s (offered {self.rate:,.0f}/s, {self.send_errors} send "
                f"errors, stopped by {self.stopped_by})")

    def min_rate(self, skip: float = 1.0) -> float:
        """The lowest per-second rate among the progress samples after ``skip`` seconds."""
        rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(self.progress,
                                                               self.progress[1:], strict=False)
                 if a[0] >= skip and b[0] > a[0]]
        return min(rates) if rates else self.pps


class Flooder:
    """``flood.c`` in ``ns``: ``mode`` frames to ``dst`` at ``rate``/s for ``seconds``.

    ``src``: the source address (default: the interface's own); ``spoof``: a prefix to
    draw a random source from per frame instead. ``dst_mac``: the next hop's MAC (default:
    resolved by ARP towards ``dst`` before the flood starts; for ``arp`` floods, the MAC
    replies are sent to). For ``arp``, ``dst`` is the target protocol address asked for.
    """

    def __init__(self, ns: Namespace, mode: str, dst: str, rate: float, seconds: float,
                 ifname: str = "eth0", src: str | None = None, spoof: str | None = None,
                 dst_mac: str | None = None, src_mac: str | None = None, dport: int = 1723,
                 arp_op: str = "mixed", random_mac: bool = False, seed: int | None = None,
                 progress: float = 1.0, batch: int = 64) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
        if arp_op not in ARP_OPS:
            raise ValueError(f"arp_op {arp_op!r}: one of {', '.join(ARP_OPS)}")
        if not 1 <= rate <= MAX_RATE or not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"rate {rate} (1..{MAX_RATE}/s) or seconds {seconds} "
                             f"(0..{MAX_SECONDS:.0f}) out of bounds")
        self.ns, self.mode, self.dst = ns, mode, dst
        self.rate, self.seconds = rate, seconds
        self.ifname, self.src, self.spoof = ifname, src, spoof
        self.dst_mac, self.src_mac = dst_mac, src_mac
        self.dport, self.arp_op, self.random_mac = dport, arp_op, random_mac
        self.seed, self.progress_interval, self.batch = seed, progress, batch
        self.process: subprocess.Popen[str] | None = None
        self.started_at: float | None = None  # monotonic
        self.result: FloodResult | None = None
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None
        self._stderr = ""

    def command(self) -> list[str]:
        if self.src_mac is None:
            self.src_mac = interface_mac(self.ns, self.ifname)
        if self.dst_mac is None:
            hop, _dev = next_hop(self.ns, self.dst) if self.mode != "arp" else (self.dst, "")
            self.dst_mac = neighbour_mac(self.ns, hop, self.ifname)
        if self.src is None and self.spoof is None:
            self.src = interface_address(self.ns, self.ifname)
        args = [str(build()), "--mode", self.mode, "--ifname", self.ifname,
                "--src-mac", self.src_mac, "--dst-mac", self.dst_mac, "--dst", self.dst,
                "--dport", str(self.dport), "--arp-op", self.arp_op,
                "--rate", str(int(self.rate)), "--seconds", f"{self.seconds:g}",
                "--batch", str(self.batch), "--progress", f"{self.progress_interval:g}"]
        if self.spoof:
            args += ["--spoof", self.spoof]
        if self.src:
            args += ["--src", self.src]
        if self.random_mac:
            args.append("--random-mac")
        if self.seed is not None:
            args += ["--seed", str(self.seed)]
        return args

    def start(self) -> Flooder:
        if self.process is not None:
            raise HarnessError("this flooder was started already")
        command = self.command()
        self.process = self.ns.popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.started_at = time.monotonic()
        process = self.process

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                self._lines.append(line.strip())
        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def sent_so_far(self) -> int:
        """Frames sent by the last progress line (0 before the first)."""
        for line in reversed(self._lines):
            with contextlib.suppress(ValueError):
                return int(json.loads(line).get("sent", 0))
        return 0

    def wait(self, timeout: float | None = None) -> FloodResult:
        """Wait for the flood to end by itself (``timeout`` default: its duration + 10 s)."""
        if self.result is not None:
            return self.result
        if self.process is None:
            raise HarnessError("the flooder was never started")
        limit = self.seconds + 10 if timeout is None else timeout
        try:
            self.process.wait(limit)
        except subprocess.TimeoutExpired:
            self.stop()
            raise HarnessError(f"the flooder outlived its {self.seconds:g}s by {limit:.0f}s "
                               "(stopped)") from None
        return self._finish()

    def stop(self, grace: float = 5.0) -> FloodResult | None:
        """SIGTERM our own child (it prints its summary and exits), SIGKILL after ``grace``."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(grace)
        return self._finish()

    def _finish(self) -> FloodResult:
        if self.result is not None:
            return self.result
        assert self.process is not None
        if self._reader is not None:
            self._reader.join(5)
        if self.process.stderr is not None:
            self._stderr = self.process.stderr.read()
            self.process.stderr.close()
        if self.process.stdout is not None:
            self.process.stdout.close()
        progress, summary = [], None
        for line in self._lines:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if data.get("progress"):
                progress.append((float(data["t"]), int(data["sent"])))
            else:
                summary = data
        code = self.process.returncode
        if summary is None:
            if code not in (None, 0) and code > 0:
                raise HarnessError(f"flood exited with {code}: {self._stderr.strip()}")
            last = progress[-1] if progress else (0.0, 0)
            elapsed = time.monotonic() - (self.started_at or time.monotonic())
            self.result = FloodResult(self.mode, last[1], 0, elapsed,
                                      last[1] / elapsed if elapsed else 0.0, self.rate,
                                      "killed", progress)
        else:
            self.result = FloodResult(str(summary["mode"]), int(summary["sent"]),
                                      int(summary["send_errors"]), float(summary["elapsed"]),
                                      float(summary["pps"]), float(summary["rate"]),
                                      str(summary["stopped_by"]), progress)
        return self.result

    def __enter__(self) -> Flooder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def flood(ns: Namespace, mode: str, dst: str, rate: float, seconds: float,
          **options: Any) -> FloodResult:
    """Run one flood to its end and return what it sent."""
    return Flooder(ns, mode, dst, rate, seconds, **options).start().wait()
