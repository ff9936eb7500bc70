"""Watching a process and the controller while a test loads them.

:func:`process_usage` reads a pid's resident memory and CPU time from procfs;
:class:`ControllerSampler` polls the controller in a thread (``GET /pptp/gateways``:
``control_connections``, counters, the optional ``limits``; its process's RSS and CPU)
and keeps every sample, REST failures included, for figures over any window.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ryu_pptp_alg.testbed.controller import Controller

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Usage:
    rss_kib: int
    cpu_seconds: float  # user + system


def process_usage(pid: int) -> Usage | None:
    """RSS (VmRSS) and CPU time of ``pid``; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    rss = 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
            break
    return Usage(rss, cpu)


@dataclass
class Sample:
    t: float  # monotonic, when the request was made
    rest_seconds: float | None  # how long GET /pptp/gateways took; None: failed
    error: str | None
    control_connections: int | None
    gateway: dict[str, Any] | None  # the gateway's row, as answered
    rss_kib: int | None
    cpu_seconds: float | None


@dataclass
class Window:
    """Figures of the samples in one window of time."""

    samples: int
    rest_failures: int
    rest_slowest: float | None
    max_connections: int | None
    max_rss_kib: int | None
    rss_before_kib: int | None  # the last sample before the window
    cpu_share: float | None  # CPU seconds per wall second over the window (1.0 = one core)
    errors: list[str] = field(default_factory=list)

    def describe(self) -> str:
        rss = (f"RSS max {self.max_rss_kib / 1024:.0f} MiB" if self.max_rss_kib else "RSS ?")
        if self.rss_before_kib and self.max_rss_kib:
            rss += f" (before {self.rss_before_kib / 1024:.0f} MiB)"
        cpu = f"CPU {self.cpu_share * 100:.0f}% of a core" if self.cpu_share is not None \
            else "CPU ?"
        rest = (f"REST {self.samples - self.rest_failures} of {self.samples} polls answered"
                + (f", slowest {self.rest_slowest:.2f}s" if self.rest_slowest else ""))
        return (f"control connections max {self.max_connections}, {rss}, {cpu}, {rest}")


class ControllerSampler:
    """Polls ``controller`` every ``interval`` s in a daemon thread until :meth:`stop`."""

    def __init__(self, controller: Controller, dpid: int, interval: float = 0.5,
                 rest_timeout: float = 2.0) -> None:
        self.controller, self.dpid = controller, dpid
        self.interval, self.rest_timeout = interval, rest_timeout
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> Sample:
        pid = self.controller.pid
        usage = process_usage(pid) if pid is not None else None
        began = time.monotonic()
        row, error, took = None, None, None
        try:
            gateways = self.controller.get("/pptp/gateways", timeout=self.rest_timeout)
            took = time.monotonic() - began
            row = next((g for g in gateways["gateways"] if g.get("dpid") == self.dpid), None)
        except (OSError, urllib.error.URLError, ValueError, KeyError) as err:
            error = f"{type(err).__name__}: {err}"
        connections = row.get("control_connections") if row else None
        return Sample(began, took, error, connections if isinstance(connections, int) else None,
                      row, usage.rss_kib if usage else None, usage.cpu_seconds if usage else None)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.samples.append(self.sample())
            self._stop.wait(max(0.0, began + self.interval - time.monotonic()))

    def start(self) -> ControllerSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.rest_timeout + 5)

    def last_gateway(self) -> dict[str, Any] | None:
        for sample in reversed(self.samples):
            if sample.gateway is not None:
                return sample.gateway
        return None

    def window(self, since: float, until: float) -> Window:
        inside = [s for s in list(self.samples) if since <= s.t <= until]
        before = [s for s in self.samples if s.t < since and s.rss_kib is not None]
        failures = [s for s in inside if s.error is not None]
        connections = [s.control_connections for s in inside
                       if s.control_connections is not None]
        rss = [s.rss_kib for s in inside if s.rss_kib is not None]
        cpu = [(s.t, s.cpu_seconds) for s in inside if s.cpu_seconds is not None]
        share = None
        if len(cpu) >= 2 and cpu[-1][0] > cpu[0][0]:
            share = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0])
        slowest = max((s.rest_seconds for s in inside if s.rest_seconds is not None),
                      default=None)
        return Window(len(inside), len(failures), slowest, max(connections, default=None),
                      max(rss, default=None), before[-1].rss_kib if before else None, share,
                      sorted({s.error for s in failures if s.error}))

    def __enter__(self) -> ControllerSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

