"""Issue 14: a real Prometheus (Debian's package) scrapes /metrics while a real call is
up, and its own query API reads the call back.

    cli 10.0.0.11 --port 1-- [OVS userspace bridge, ryu-pptp-alg] --port 2-- srv 198.51.100.10
                                   ^ /metrics every second
                              prometheus (127.0.0.1, our own child)
"""

from __future__ import annotations

import pytest

from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.controller import Controller
from ryu_pptp_alg.testbed.netns import Namespace
from ryu_pptp_alg.testbed.pptp_peers import PptpClient, PptpServer
from ryu_pptp_alg.testbed.proc import have, wait_for
from ryu_pptp_alg.testbed.prometheus import PrometheusServer
from tests.conftest import REPORT, require

pytestmark = pytest.mark.integration

DPID = 0xB4
CLIENT_IP = "10.0.0.11"
SERVER_IP = "198.51.100.10"
PUBLIC = "203.0.113.1"
LABELS = f'dp_id="{hex(DPID)}",dp_name="gw-prom"'


def scalar(prometheus: PrometheusServer, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_reads_the_call_count_during_a_real_call(ovs_running, run_id, tmp_path):
    for tool in ("pptp", "pptpd", "prometheus"):
        require(have(tool), f"{tool} is not installed (run make test)")
    config = {"gateways": [{"dpid": DPID, "name": "gw-prom", "inside_ports": [1],
                            "outside_ports": [2], "inside_address": "10.0.0.1/24",
                            "public_addresses": [PUBLIC]}],
              "timeouts": {"stats_interval": 1}}
    with Controller(config, tmp_path / "ctl") as controller, \
            ovs.Bridge(f"ppm{run_id}", DPID, controller.of_port) as bridge, \
            Namespace(f"pm{run_id}cl") as cli, Namespace(f"pm{run_id}sv") as srv, \
            PrometheusServer([f"127.0.0.1:{controller.rest_port}"],
                             tmp_path / "prometheus") as prometheus:
        cli.attach(bridge, 1, f"{CLIENT_IP}/24", gateway="10.0.0.1")
        srv.attach(bridge, 2, f"{SERVER_IP}/24")
        srv.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0")
        controller.wait_connected(DPID)
        wait_for(lambda: prometheus.targets_up(), 20, "Prometheus to scrape the controller")
        assert scalar(prometheus, f"sum(pptp_calls{{{LABELS}}})") == 0
        with PptpServer(srv, SERVER_IP, tmp_path / "pptpd"), \
                PptpClient(cli, SERVER_IP, CLIENT_IP, tmp_path / "pptp") as client:
            client.wait_ppp_up(20)
            up = wait_for(lambda: scalar(prometheus, f'pptp_calls{{{LABELS},state="established"'
                                                     f',path="fast",direction="outbound"}}')
                          == 1 or None, 20, "Prometheus to see the established call")
            assert up
            setups = scalar(prometheus, f"pptp_call_setup_seconds_count{{{LABELS}}}")
            median = scalar(prometheus, "histogram_quantile(0.5, "
                                        f"pptp_call_setup_seconds_bucket{{{LABELS}}})")
            packet_ins = scalar(prometheus, f"pptp_packet_ins_total{{{LABELS}}}")
            flow_mods = scalar(prometheus, f"pptp_flow_mods_sent_total{{{LABELS}}}")
            connected = scalar(prometheus, f"pptp_switch_connected{{{LABELS}}}")
            assert (setups, connected) == (1, 1)
            assert packet_ins and packet_ins > 0 and flow_mods and flow_mods > 0
        wait_for(lambda: scalar(prometheus, f"sum(pptp_calls{{{LABELS}}})") == 0 or None,
                 20, "Prometheus to see the call end")
        closed = scalar(prometheus, f"pptp_calls_closed_total{{{LABELS}}}")
        assert closed == 1
    REPORT.append("Prometheus scrape of a real call:")
    REPORT.append(f"  pptp_calls (established, fast, outbound) = 1 through Prometheus's query "
                  f"API; set-up median {median * 1000:.1f} ms (histogram_quantile); "
                  f"{packet_ins:.0f} packet-ins, {flow_mods:.0f} flow-mods; "
                  f"pptp_calls_closed_total = {closed:.0f} after hang-up")
