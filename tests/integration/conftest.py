"""Fixtures for tests against a real Open vSwitch and network namespaces."""

from __future__ import annotations

import os
import secrets

import pytest

from ryu_pptp_alg.testbed import ovs
from ryu_pptp_alg.testbed.proc import have
from tests.conftest import require


@pytest.fixture(scope="session")
def ovs_running():
    require(os.geteuid() == 0, "integration tests need root")
    for command in ("ovs-vsctl", "ip", "ethtool"):
        require(have(command), f"{command} is not installed (run make test)")
    ovs.ensure_running()


@pytest.fixture
def run_id():
    """A short random tag: names of bridges, namespaces and links of one test."""
    return secrets.token_hex(2)
