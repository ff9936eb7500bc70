"""The ALG across all configured gateways: routes events by dpid.

Events for a dpid that is not configured are counted and logged, never fatal:
the switch may belong to another application.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from ryu_pptp_alg import ofmsg
from ryu_pptp_alg.config import AlgConfig
from ryu_pptp_alg.gateway import Clock, Gateway

LOG = logging.getLogger("ryu_pptp_alg.alg")


class UnknownDatapath(KeyError):
    """A dpid that no gateway in the configuration describes."""

    def __init__(self, dpid: int) -> None:
        super().__init__(dpid)
        self.dpid = dpid

    def __str__(self) -> str:
        return f"no gateway is configured for dpid {self.dpid:#x}"


class Alg:
    def __init__(self, config: AlgConfig, clock: Clock | None = None) -> None:
        self.config = config
        kwargs = {} if clock is None else {"clock": clock}
        self.gateways = {g.dpid: Gateway(g, config.timeouts, **kwargs) for g in config.gateways}
        self.counters: Counter[str] = Counter()

    def gateway(self, dpid: int) -> Gateway:
        try:
            return self.gateways[dpid]
        except KeyError:
            raise UnknownDatapath(dpid) from None

    def _known(self, dpid: int, event: str) -> Gateway | None:
        gateway = self.gateways.get(dpid)
        if gateway is None:
            self.counters[f"unknown_dpid_{event}"] += 1
            LOG.warning("ignoring %s from dpid %#x: not a configured gateway", event, dpid)
        return gateway

    def datapath_up(self, dpid: int) -> list[ofmsg.Message]:
        gateway = self._known(dpid, "connect")
        return [] if gateway is None else gateway.datapath_up()

    def datapath_down(self, dpid: int) -> None:
        gateway = self.gateways.get(dpid)
        if gateway is not None:
            gateway.datapath_down()

    def packet_in(self, dpid: int, in_port: int, data: bytes,
                  cookie: int) -> list[ofmsg.Message]:
        gateway = self._known(dpid, "packet_in")
        return [] if gateway is None else gateway.packet_in(in_port, data, cookie)

    def barrier_reply(self, dpid: int, xid: int) -> list[ofmsg.Message]:
        gateway = self.gateways.get(dpid)
        return [] if gateway is None else gateway.barrier_reply(xid)

    def flow_removed(self, dpid: int, cookie: int, reason: int, packets: int,
                     octets: int) -> list[ofmsg.Message]:
        gateway = self.gateways.get(dpid)
        return [] if gateway is None else gateway.flow_removed(cookie, reason, packets, octets)

    def flow_stats(self, dpid: int, entries: list[tuple[int, dict[str, Any], int, int]]) -> None:
        gateway = self.gateways.get(dpid)
        if gateway is not None:
            gateway.flow_stats(entries)

    def tick(self, dpid: int) -> list[ofmsg.Message]:
        gateway = self.gateways.get(dpid)
        return [] if gateway is None else gateway.tick()

    def sessions(self, dpid: int | None = None) -> list[dict[str, Any]]:
        gateways = self.gateways.values() if dpid is None else [self.gateway(dpid)]
        return [row for gateway in gateways for row in gateway.sessions()]

    def status(self) -> list[dict[str, Any]]:
        return [gateway.status() for gateway in self.gateways.values()]
