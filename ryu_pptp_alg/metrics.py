"""Prometheus metrics at ``GET /metrics``, made with the official ``prometheus_client``.

Counters come from the catalogue (``counters.py``): every key a gateway counts under is a
``pptp_*`` family labelled ``dp_id`` and ``dp_name`` (as Faucet labels its ``faucet_*``
metrics), zero until counted. Gauges are read from the gateways' records at scrape time
(nothing is kept twice); the two histograms (call set-up time, packet-in handling time)
are observed as things happen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ryu_pptp_alg import compat, pipeline

compat.apply()  # ryu.app.wsgi needs it on modern eventlet

from ryu.app.wsgi import ControllerBase, Response, route  # noqa: E402

from ryu_pptp_alg.counters import CATALOGUE, family_help, metric  # noqa: E402
from ryu_pptp_alg.records import REFUSED_OUTWARD, ConnState, Path  # noqa: E402

if TYPE_CHECKING:
    from ryu_pptp_alg.alg import Alg
    from ryu_pptp_alg.config import GatewayConfig
    from ryu_pptp_alg.gateway import Gateway

METRICS_KEY = "pptp_metrics"
DP_LABELS = ("dp_id", "dp_name")
# Call set-up through the controller: a few ms on a quiet controller, seconds when it
# is overloaded or a barrier is slow.
SETUP_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
PACKET_IN_BUCKETS = (.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .1)


def dp_labels(gateway: Gateway) -> tuple[str, str]:
    config = gateway.config
    return hex(config.dpid), config.name or hex(config.dpid)


class Metrics:
    """The registry /metrics serves, and the histograms the app observes into."""

    def __init__(self, alg: Alg) -> None:
        self.alg = alg
        self.registry = CollectorRegistry(auto_describe=True)
        self.call_setup = Histogram(
            "pptp_call_setup_seconds", "Call set-up through the controller: the call "
            "request's packet-in to the reply's release.", DP_LABELS,
            buckets=SETUP_BUCKETS, registry=self.registry)
        self.packet_in = Histogram(
            "pptp_packet_in_seconds", "Time the controller spent on one packet-in (the "
            "ALG's handling and the sending of its answer).", DP_LABELS,
            buckets=PACKET_IN_BUCKETS, registry=self.registry)
        # Children bound once per switch: the packet-in path skips the label lookup.
        self.packet_in_by_dpid: dict[int, Any] = {}
        for dpid, gateway in alg.gateways.items():
            labels = dp_labels(gateway)
            gateway.on_call_setup = self.call_setup.labels(*labels).observe
            self.packet_in_by_dpid[dpid] = self.packet_in.labels(*labels)
        self.registry.register(GatewayCollector(alg))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class GatewayCollector:
    """Counters and gauges read from the Alg and its gateways at each scrape."""

    def __init__(self, alg: Alg) -> None:
        self.alg = alg

    def collect(self) -> Iterator[Metric]:
        yield from self._counters()
        yield from self._gauges()

    def _counters(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily] = {}

        def add(key: str, value: float, base: tuple[str, ...], base_names: tuple[str, ...]):
            name, extra = metric(key)
            family = families.get(name)
            if family is None:
                family = families[name] = CounterMetricFamily(
                    name, family_help(name.removeprefix("pptp_")),
                    labels=[*base_names, *extra])
            family.add_metric([*base, *extra.values()], value)

        gateway_keys = [k for k in CATALOGUE if k not in ALG_KEYS]
        for gateway in self.alg.gateways.values():
            labels = dp_labels(gateway)
            counted = gateway.counters + gateway.neighbours.counters
            for key in [*gateway_keys, *sorted(set(counted) - set(CATALOGUE))]:
                add(key, counted.get(key, 0), labels, DP_LABELS)
            for key, value in gateway.switch_counters.items():  # the switch's flow stats
                add(f"switch_{key}", value, labels, DP_LABELS)
        alg_counted: Counter[str] = self.alg.counters
        for key in [*ALG_KEYS, *sorted(set(alg_counted) - set(CATALOGUE))]:
            add(key, alg_counted.get(key, 0), (), ())
        yield from families.values()

    def _gauges(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily("pptp_switch_connected", "1 while the switch is "
                                      "connected.", labels=DP_LABELS)
        conns = GaugeMetricFamily("pptp_control_connections", "Control connections by "
                                  "state and direction.", labels=[*DP_LABELS, "state",
                                                                  "direction"])
        calls = GaugeMetricFamily("pptp_calls", "Calls by state, path and direction.",
                                  labels=[*DP_LABELS, "state", "path", "direction"])
        pairs = GaugeMetricFamily("pptp_gre_pairs", "GRE pairs (inside host, outside host, "
                                  "public address).", labels=DP_LABELS)
        flows = GaugeMetricFamily("pptp_flow_entries", "Flow entries of ours the records "
                                  "want in the switch, by table.", labels=[*DP_LABELS,
                                                                           "table"])
        pool = GaugeMetricFamily("pptp_public_addresses", "Public addresses in the pool, "
                                 "by use (in use: some control connection has it).",
                                 labels=[*DP_LABELS, "use"])
        free = GaugeMetricFamily("pptp_pool_free_addresses", "Public addresses a new client "
                                 "of a server could still get a fast path through, per "
                                 "server with clients.", labels=[*DP_LABELS, "server"])
        blocked = GaugeMetricFamily("pptp_blocked_hosts", "Hosts whose new connections the "
                                    "switch drops.", labels=DP_LABELS)
        neighbours = GaugeMetricFamily("pptp_neighbours", "Entries in the neighbour (ARP) "
                                       "table.", labels=DP_LABELS)
        restore = GaugeMetricFamily("pptp_last_restore", "What the last start restored and "
                                    "reconciled, by item.", labels=[*DP_LABELS, "item"])
        for gateway in self.alg.gateways.values():
            labels = dp_labels(gateway)
            state = gateway.state
            connected.add_metric(labels, 1.0 if gateway.connected else 0.0)
            by_conn: Counter[tuple[str, str]] = Counter(
                (str(c.state), str(c.direction)) for c in state.conns.values())
            for conn_state in ConnState:
                for direction in ("outbound", "inbound"):
                    conns.add_metric([*labels, str(conn_state), direction],
                                     by_conn.get((str(conn_state), direction), 0))
            by_call: Counter[tuple[str, str, str]] = Counter(
                (str(call.state), str(gateway.paths.path(call)),
                 "inbound" if call.inbound else "outbound") for call in state.calls.values())
            for (call_state, path, direction), count in sorted(by_call.items()):
                calls.add_metric([*labels, call_state, path, direction], count)
            if not by_call:  # the family is never empty: dashboards sum it
                calls.add_metric([*labels, "established", str(Path.FAST), "outbound"], 0)
            pairs.add_metric(labels, len(state.pairs))
            classify, gre = flow_counts(gateway)
            flows.add_metric([*labels, "classify"], classify)
            flows.add_metric([*labels, "gre"], gre)
            total = len(gateway.config.public_addresses)
            in_use = len({c.public_ip for c in state.conns.values()})
            pool.add_metric([*labels, "in_use"], in_use)
            pool.add_metric([*labels, "free"], total - in_use)
            used_by_server: dict[Any, int] = Counter(
                server for (server, _public) in state.idx.key_users)
            for server, used in sorted(used_by_server.items()):
                free.add_metric([*labels, str(server)], total - used)
            blocked.add_metric(labels, len(gateway.blocked))
            neighbours.add_metric(labels, len(gateway.neighbours.table))
            for item, value in sorted((gateway.last_restore or {}).items()):
                if isinstance(value, int | float) and not isinstance(value, bool):
                    restore.add_metric([*labels, item], value)
        yield from (connected, conns, calls, pairs, flows, pool, free, blocked, neighbours,
                    restore)
        yield from self._ha()

    def _ha(self) -> Iterator[Metric]:
        """High availability (several controllers): each switch's role here, its master's
        generation id, and the health of etcd as the election and the store see it."""
        status, health = self.alg.ha_status, self.alg.ha_health
        if status is None or health is None:
            return
        master = GaugeMetricFamily("pptp_ha_master", "1 while this controller is the "
                                   "switch's master, 0 while standby.", labels=DP_LABELS)
        generation = GaugeMetricFamily("pptp_ha_generation_id", "The switch's master's "
                                       "generation id (an etcd revision; 0: none known).",
                                       labels=DP_LABELS)
        for gateway in self.alg.gateways.values():
            labels = dp_labels(gateway)
            row = status(gateway.dpid)
            master.add_metric(labels, 1.0 if row["role"] == "master" else 0.0)
            generation.add_metric(labels, float(row["generation_id"] or 0))
        now = health()
        etcd = GaugeMetricFamily("pptp_ha_etcd_up", "1 while etcd answers, by who asked "
                                 "(the election, the state store).", labels=["client"])
        etcd.add_metric(["election"], 1.0 if now["etcd"] == "ok" else 0.0)
        etcd.add_metric(["store"], 1.0 if now["store"]["ok"] else 0.0)
        lease = GaugeMetricFamily("pptp_ha_lease_valid_seconds", "How long this "
                                  "controller's lease surely lives without another "
                                  "keepalive (0: it holds none).")
        lease.add_metric([], float(now["lease_valid_for"]))
        yield from (master, generation, etcd, lease)


# Counted by the Alg (the controller), not by one gateway: no dp labels.
ALG_KEYS = tuple(k for k in CATALOGUE if k == "state_store_errors"
                 or k.startswith("unknown_dpid_"))


@lru_cache(maxsize=64)
def _static_counts(config: GatewayConfig, metered: bool) -> tuple[int, int]:
    """The static pipeline's flows in all, and in the GRE table: built once, not at every
    scrape (the configuration does not change while the controller runs)."""
    static = pipeline.static_flows(config, metered)
    return len(static), sum(1 for f in static if f.table_id == pipeline.TABLE_GRE)


def flow_counts(gateway: Gateway) -> tuple[int, int]:
    """Entries of ours the records want in the classify and GRE tables, counted without
    building the flow-mods."""
    state = gateway.state
    static, static_gre = _static_counts(gateway.config, gateway.metered)
    tracked = 2 * sum(1 for c in state.conns.values() if c.to_client is not None)
    classify = static - static_gre + tracked + len(gateway.blocked)
    outward = sum(1 for p in state.pairs.values()
                  if p.installed and not p.refused & REFUSED_OUTWARD)
    return classify, static_gre + outward + len(state.idx.key_flows)


class MetricsController(ControllerBase):
    """``GET /metrics`` on Ryu's WSGI port: the Prometheus text format."""

    def __init__(self, req: Any, link: Any, data: dict[str, Any], **config: Any) -> None:
        super().__init__(req, link, data, **config)
        self.metrics: Metrics = data[METRICS_KEY]

    @route("pptp_metrics", "/metrics", methods=["GET"])
    def scrape(self, req: Any, **_: Any) -> Response:
        return Response(status=200, body=self.metrics.exposition(),
                        headerlist=[("Content-Type", CONTENT_TYPE_LATEST)])
