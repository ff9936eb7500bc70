"""GET /metrics: the Prometheus text format from prometheus_client, read back with its
own parser, after a call through the fake switch."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from webob import Request

from ryu_pptp_alg import compat

compat.apply()

from ryu.app.wsgi import WSGIApplication  # noqa: E402

from ryu_pptp_alg.alg import Alg  # noqa: E402
from ryu_pptp_alg.codec import pptp  # noqa: E402
from ryu_pptp_alg.config import config_from_dict  # noqa: E402
from ryu_pptp_alg.counters import CATALOGUE, metric  # noqa: E402
from ryu_pptp_alg.metrics import METRICS_KEY, Metrics, MetricsController  # noqa: E402
from tests.unit.fakeswitch import FakeClock, FakeSwitch  # noqa: E402
from tests.unit.test_outbound import CLIENTS, OUTSIDE, PUBLIC, SERVER, Peers  # noqa: E402

DP = {"dp_id": "0x1", "dp_name": "gw-test"}


@pytest.fixture
def alg(clock: FakeClock) -> Alg:
    config = config_from_dict({"gateways": [{
        "dpid": 1, "name": "gw-test", "inside_ports": [1, 2, 4], "outside_ports": [OUTSIDE],
        "inside_address": "10.0.0.1/24", "public_addresses": [str(PUBLIC), "203.0.113.9"],
    }]})
    return Alg(config, clock=clock)


def scrape(metrics: Metrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample: name -> {sorted labels: value}."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return samples[name][tuple(sorted({**DP, **labels}.items()))]


def test_a_call_shows_in_the_metrics(alg: Alg, clock: FakeClock) -> None:
    metrics = Metrics(alg)
    switch = FakeSwitch(alg.gateways[1])
    switch.apply(alg.gateways[1].datapath_up())
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))
    peers = Peers(switch, 1)
    peers.start()
    peers.from_client(pptp.OutgoingCallRequest(call_id=7))
    clock.now += 0.25  # between the request and the reply
    peers.from_server(pptp.OutgoingCallReply(call_id=0x80, peer_call_id=7))
    switch.send(1, CLIENTS[1].gre(SERVER.ip, 0x80))  # carried by the switch: not counted
    samples = scrape(metrics)
    assert value(samples, "pptp_switch_connected") == 1
    assert value(samples, "pptp_calls", state="established", path="fast",
                 direction="outbound") == 1
    assert value(samples, "pptp_control_connections", state="established",
                 direction="outbound") == 1
    assert value(samples, "pptp_calls_established_total") == 1
    assert value(samples, "pptp_calls_requested_total") == 1
    assert value(samples, "pptp_gre_pairs") == 1
    assert value(samples, "pptp_public_addresses", use="in_use") == 1
    assert value(samples, "pptp_public_addresses", use="free") == 1
    assert value(samples, "pptp_pool_free_addresses", server=str(SERVER.ip)) == 1
    assert value(samples, "pptp_flow_entries", table="gre") >= 2
    assert value(samples, "pptp_call_setup_seconds_count") == 1
    assert value(samples, "pptp_call_setup_seconds_sum") == pytest.approx(0.25)
    assert value(samples, "pptp_call_setup_seconds_bucket", le="0.25") == 1
    assert value(samples, "pptp_call_setup_seconds_bucket", le="0.1") == 0
    assert value(samples, "pptp_drops_total", reason="gre_no_call") == 0
    # Every catalogue key is exported, zero until counted.
    for key in CATALOGUE:
        name, extra = metric(key)
        if key in ("state_store_errors",) or key.startswith("unknown_dpid_"):
            assert tuple(sorted(extra.items())) in samples[f"{name}_total"]
        else:
            assert value(samples, f"{name}_total", **extra) >= 0


def test_counters_of_a_gateway_are_not_another_gateways(alg: Alg) -> None:
    metrics = Metrics(alg)
    alg.gateways[1].counters["gre_no_call"] += 3
    alg.counters["unknown_dpid_packet_in"] += 2
    samples = scrape(metrics)
    assert value(samples, "pptp_drops_total", reason="gre_no_call") == 3
    assert samples["pptp_unknown_dpid_events_total"][(("event", "packet_in"),)] == 2


def test_the_route_serves_the_text_format(alg: Alg) -> None:
    wsgi = WSGIApplication()
    wsgi.register(MetricsController, {METRICS_KEY: Metrics(alg)})
    response = Request.blank("/metrics").get_response(wsgi)
    assert response.status_int == 200
    assert response.content_type == "text/plain"
    assert "# TYPE pptp_calls gauge" in response.text
    assert 'pptp_switch_connected{dp_id="0x1",dp_name="gw-test"} 0.0' in response.text
