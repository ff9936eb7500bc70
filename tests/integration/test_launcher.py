"""The launcher and stock ryu-manager as real processes (no switch needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ryu_pptp_alg import flags
from ryu_pptp_alg.testbed.controller import Controller, launcher_path
from tests.unit.test_config import VALID

BIN = Path(sys.executable).parent


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, env=env)


def test_launcher_accepts_ryu_manager_options():
    result = run(launcher_path(), "--version")
    assert result.returncode == 0, result.stderr
    assert "ryu-manager 4.34" in result.stdout + result.stderr


def test_launcher_help_lists_pptp_config():
    result = run(launcher_path(), "--help")
    assert result.returncode == 0
    assert "--pptp-config" in result.stdout
    assert "--ofp-tcp-listen-port" in result.stdout


def test_invalid_config_fails_at_start_naming_the_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("gateways:\n  - dpid: 1\n    inside_ports: [1]\n    outside_ports: [1]\n"
                      "    inside_address: 10.0.0.1/24\n    public_addresses: [203.0.113.1]\n")
    result = run(launcher_path(), "--pptp-config", str(config))
    assert result.returncode != 0
    assert "gateways[0].outside_ports: port 1 is also listed in inside_ports" in result.stderr


def test_missing_config_option_is_explained():
    env = {"PATH": "/usr/bin:/bin"}
    result = run(launcher_path(), env=env)
    assert result.returncode != 0
    assert "pass --pptp-config PATH" in result.stderr


def test_launcher_serves_rest(tmp_path):
    with Controller(VALID, tmp_path) as controller:
        assert controller.get("/pptp/sessions") == {"sessions": []}
        assert "loading app ryu_pptp_alg.app" in controller.log()


@pytest.mark.parametrize("extra_app", ["ryu.app.ofctl_rest"])
def test_launcher_loads_further_apps(tmp_path, extra_app):
    with Controller(VALID, tmp_path, extra_args=(extra_app,)) as controller:
        assert controller.get("/stats/switches") == []
        assert controller.get("/pptp/sessions") == {"sessions": []}


def test_stock_ryu_manager_runs_the_app_where_eventlet_is_compatible(tmp_path):
    """On a Ryu that runs unpatched, plain ``ryu-manager ryu_pptp_alg.app`` works.

    A sitecustomize gives eventlet the sentinel old releases had, standing in for
    such an installation; the app's own options come in with --user-flags.
    """
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import eventlet.wsgi\neventlet.wsgi.ALREADY_HANDLED = object()\n")
    command = (str(BIN / "ryu-manager"), "--user-flags", flags.__file__, "ryu_pptp_alg.app")
    with Controller(VALID, tmp_path, command=command,
                    env={"PYTHONPATH": str(site)}) as controller:
        assert controller.get("/pptp/sessions") == {"sessions": []}
