"""Per-datapath ALG logic: plain Python, no eventlet, no sockets.

A ``Gateway`` turns switch events into lists of OpenFlow messages (Ryu parser
objects with no datapath bound) and keeps the session table for one NAT
switch. The Ryu glue in ``app.py`` only delivers events and sends messages.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ryu_pptp_alg import ofmsg, pipeline
from ryu_pptp_alg.config import GatewayConfig

Clock = Callable[[], float]


class Gateway:
    def __init__(self, config: GatewayConfig, clock: Clock = time.time,
                 logger: logging.Logger | None = None) -> None:
        self.config = config
        self.clock = clock
        self.log = logger or logging.getLogger(f"ryu_pptp_alg.gateway.{config.dpid:x}")
        self.connected = False
        self.connected_since: float | None = None
        self.counters: Counter[str] = Counter()

    @property
    def dpid(self) -> int:
        return self.config.dpid

    def datapath_up(self) -> list[ofmsg.Message]:
        """The switch connected (or reconnected): rebuild our pipeline on it."""
        self.connected = True
        self.connected_since = self.clock()
        self.counters["connects"] += 1
        self.log.info("%s connected: installing PPTP pipeline", self.config.label)
        return pipeline.connect_flows(self.config)

    def datapath_down(self) -> None:
        if self.connected:
            self.log.warning("%s disconnected", self.config.label)
        self.connected = False
        self.connected_since = None

    def packet_in(self, in_port: int, data: bytes, cookie: int) -> list[ofmsg.Message]:
        """A packet the pipeline sent to the controller."""
        self.counters["packet_in"] += 1
        return []

    def sessions(self) -> list[dict[str, Any]]:
        """Rows of the REST session table, one per control connection."""
        return []

    def status(self) -> dict[str, Any]:
        config = self.config
        return {
            "dpid": config.dpid,
            "name": config.name,
            "connected": self.connected,
            "connected_since": self.connected_since,
            "inside_ports": list(config.inside_ports),
            "outside_ports": list(config.outside_ports),
            "inside_address": str(config.inside_address),
            "public_addresses": [str(a) for a in config.public_addresses],
            "port_forwards": [{"public": str(f.public), "inside": str(f.inside)}
                              for f in config.port_forwards],
            "counters": dict(sorted(self.counters.items())),
        }
