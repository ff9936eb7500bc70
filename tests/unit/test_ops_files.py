"""The shipped alert rules and Grafana dashboard (etc/) name only metrics /metrics
exports, and Prometheus's own promtool accepts the rules and the exposition."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ryu_pptp_alg.alg import Alg
from ryu_pptp_alg.config import config_from_dict
from ryu_pptp_alg.metrics import Metrics
from tests.conftest import require

ETC = Path(__file__).resolve().parents[2] / "etc"
RULES = ETC / "prometheus" / "ryu-pptp-alg.rules.yml"
DASHBOARD = ETC / "grafana" / "ryu-pptp-alg.dashboard.json"
NAME = re.compile(r"\bpptp_[a-z_]+")


@pytest.fixture
def exposition() -> str:
    config = config_from_dict({"gateways": [{
        "dpid": 1, "name": "gw", "inside_ports": [1], "outside_ports": [2],
        "inside_address": "10.0.0.1/24", "public_addresses": ["203.0.113.1"]}]})
    metrics = Metrics(Alg(config, clock=lambda: 1000.0))
    for histogram in (metrics.call_setup, metrics.packet_in):  # samples of each bucket
        histogram.labels("0x1", "gw").observe(0.01)
    return metrics.exposition().decode()


def exported(exposition: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in exposition.splitlines()
            if line and not line.startswith("#")}


def dashboard_exprs() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in document["panels"] for t in panel["targets"]]
    exprs += [v["query"] for v in document["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_rules_and_dashboard_name_only_exported_metrics(exposition: str) -> None:
    names = exported(exposition)
    used = set(NAME.findall(RULES.read_text()))
    for expr in dashboard_exprs():
        used |= set(NAME.findall(expr))
    assert used and used - names == set()


def promtool() -> str:
    path = shutil.which("promtool")
    require(path is not None, "promtool (Debian's prometheus) is not installed: make test")
    assert path is not None
    return path


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_lints_the_exposition_clean(exposition: str) -> None:
    result = subprocess.run([promtool(), "check", "metrics"], input=exposition,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
