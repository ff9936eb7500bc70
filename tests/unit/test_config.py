from __future__ import annotations

import copy
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest
import yaml

from ryu_pptp_alg.config import (
    DEFAULT_STATE_PATH,
    ConfigError,
    Limits,
    PortForward,
    StateBackend,
    StateConfig,
    SwitchProfile,
    Timeouts,
    config_from_dict,
    load_config,
)

EXAMPLE = Path(__file__).parents[2] / "etc" / "gateways.example.yaml"

VALID = {
    "gateways": [{
        "dpid": 1,
        "inside_ports": [1, 2],
        "outside_ports": [3],
        "inside_address": "10.0.0.1/24",
        "public_addresses": ["203.0.113.1"],
        "outside_next_hop": None,
        "port_forwards": [],
    }]
}


DELETE = object()


def with_gateway(**changes):
    document = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is DELETE:
            del document["gateways"][0][key]
        else:
            document["gateways"][0][key] = value
    return document



def test_minimal_config():
    config = config_from_dict(VALID)
    (gateway,) = config.gateways
    assert gateway.dpid == 1
    assert gateway.inside_ports == (1, 2)
    assert gateway.outside_ports == (3,)
    assert gateway.inside_address == IPv4Interface("10.0.0.1/24")
    assert gateway.default_public_address == IPv4Address("203.0.113.1")
    assert gateway.outside_next_hop is None
    assert gateway.port_forwards == ()
    assert gateway.next_table == 2
    assert gateway.switch_profile == SwitchProfile.OPENFLOW
    assert config.gateway(1) is gateway
    assert config.gateway(2) is None


def test_example_file_loads():
    config = load_config(EXAMPLE)
    (gateway,) = config.gateways
    assert gateway.name == "edge-1"
    assert gateway.public_addresses[1:] == (IPv4Address("203.0.113.2"),
                                           IPv4Address("203.0.113.3"))
    assert gateway.outside_next_hop == IPv4Address("203.0.113.254")
    assert gateway.port_forwards == (PortForward(IPv4Address("203.0.113.3"),
                                                 IPv4Address("10.0.0.10")),)


@pytest.mark.parametrize("dpid,expected", [(1, 1), ("0x10", 16), ("0X0000000000000abc", 0xABC),
                                           ("42", 42), (2**64 - 1, 2**64 - 1)])
def test_dpid_forms(dpid, expected):
    assert config_from_dict(with_gateway(dpid=dpid)).gateways[0].dpid == expected


@pytest.mark.parametrize("document,key,fragment", [
    (None, "", "expected a mapping"),
    ({}, "gateways", "missing"),
    ({"gateways": []}, "gateways", "at least one"),
    ({"gateways": {}}, "gateways", "expected a list"),
    ({"gateways": [], "extra": 1}, "extra", "unknown key"),
    (with_gateway(dpid=DELETE), "gateways[0].dpid", "missing"),
    (with_gateway(dpid="0xZZ"), "gateways[0].dpid", "not an integer"),
    (with_gateway(dpid=0), "gateways[0].dpid", "out of range"),
    (with_gateway(dpid=2**64), "gateways[0].dpid", "out of range"),
    (with_gateway(dpid=True), "gateways[0].dpid", "expected an integer"),
    (with_gateway(inside_ports=[]), "gateways[0].inside_ports", "at least one"),
    (with_gateway(inside_ports=[1, "x"]), "gateways[0].inside_ports[1]", "expected an integer"),
    (with_gateway(inside_ports=[1, 1]), "gateways[0].inside_ports", "twice"),
    (with_gateway(inside_ports=3), "gateways[0].inside_ports", "expected a list"),
    (with_gateway(outside_ports=[0]), "gateways[0].outside_ports[0]", "out of range"),
    (with_gateway(outside_ports=[2]), "gateways[0].outside_ports", "also listed"),
    (with_gateway(inside_address="10.0.0.1"), "gateways[0].inside_address", "prefix"),
    (with_gateway(inside_address="10.0.0.0/24"), "gateways[0].inside_address", "host address"),
    (with_gateway(inside_address="bogus/24"), "gateways[0].inside_address", "not an IPv4"),
    (with_gateway(public_addresses=[]), "gateways[0].public_addresses", "at least one"),
    (with_gateway(public_addresses=["203.0.113.1", "203.0.113.1"]),
     "gateways[0].public_addresses[1]", "twice"),
    (with_gateway(public_addresses=["10.0.0.7"]), "gateways[0].public_addresses[0]",
     "inside the LAN"),
    (with_gateway(public_addresses=["2001:db8::1"]), "gateways[0].public_addresses[0]",
     "not an IPv4"),
    (with_gateway(outside_next_hop=5), "gateways[0].outside_next_hop", "expected an IPv4"),
    (with_gateway(port_forwards=[{"public": "203.0.113.9", "inside": "10.0.0.10"}]),
     "gateways[0].port_forwards[0].public", "not one of public_addresses"),
    (with_gateway(port_forwards=[{"public": "203.0.113.1", "inside": "10.9.0.10"}]),
     "gateways[0].port_forwards[0].inside", "not in the LAN"),
    (with_gateway(port_forwards=[{"public": "203.0.113.1", "inside": "10.0.0.1"}]),
     "gateways[0].port_forwards[0].inside", "gateway's own address"),
    (with_gateway(port_forwards=[{"public": "203.0.113.1"}]),
     "gateways[0].port_forwards[0].inside", "missing"),
    (with_gateway(port_forwards=[{"public": "203.0.113.1", "inside": "10.0.0.10"}] * 2),
     "gateways[0].port_forwards[1].public", "forwarded twice"),
    (with_gateway(next_table=1), "gateways[0].next_table", "out of range"),
    (with_gateway(switch_profile="ofs"), "gateways[0].switch_profile", "not one of openflow, ovs"),
    (with_gateway(switch_profile=["ovs"]), "gateways[0].switch_profile", "not one of"),
    (with_gateway(colour="red"), "gateways[0].colour", "unknown key"),
    ({"gateways": [VALID["gateways"][0], VALID["gateways"][0]]}, "gateways[1].dpid",
     "also gateways[0]"),
])
def test_invalid_config_names_key_and_problem(document, key, fragment):
    with pytest.raises(ConfigError) as info:
        config_from_dict(document)
    assert info.value.key == key
    assert fragment in info.value.problem
    assert str(info.value).startswith(key)


@pytest.mark.parametrize("profile", ["openflow", "ovs"])
def test_switch_profile(profile):
    gateway = config_from_dict(with_gateway(switch_profile=profile)).gateways[0]
    assert gateway.switch_profile is SwitchProfile(profile)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateways: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def with_state(state):
    return {**copy.deepcopy(VALID), "state": state}


def test_state_defaults():
    state = config_from_dict(VALID).state
    assert state == StateConfig()
    assert state.backend is StateBackend.FILE
    assert state.path == DEFAULT_STATE_PATH == Path("/var/lib/ryu-pptp-alg/state.msgpack")
    assert state.fsync_interval == 1.0
    assert config_from_dict(with_state(None)).state == StateConfig()
    assert config_from_dict(with_state({})).state == StateConfig()


def test_state_section():
    state = config_from_dict(with_state({"backend": "file", "path": "/srv/alg/state.bin",
                                         "fsync_interval": 0})).state
    assert state == StateConfig(StateBackend.FILE, Path("/srv/alg/state.bin"), 0.0)
    assert isinstance(state.fsync_interval, float)
    assert config_from_dict(with_state({"backend": "none"})).state.backend is StateBackend.NONE
    assert config_from_dict(with_state({"fsync_interval": 2.5})).state.fsync_interval == 2.5


def test_etcd_state_section():
    assert StateConfig().endpoints == ("http://127.0.0.1:2379",)
    assert StateConfig().prefix == "/ryu-pptp-alg/"
    assert StateConfig().lease_ttl == 2
    state = config_from_dict(with_state({
        "backend": "etcd", "prefix": "/site-a/alg/", "lease_ttl": 5,
        "endpoints": ["http://10.0.0.1:2379", "https://etcd-2.example:2379/"]})).state
    assert state.backend is StateBackend.ETCD
    assert state.endpoints == ("http://10.0.0.1:2379", "https://etcd-2.example:2379/")
    assert (state.prefix, state.lease_ttl) == ("/site-a/alg/", 5)


def test_example_state_section_is_the_default():
    assert load_config(EXAMPLE).state == StateConfig()


@pytest.mark.parametrize("state,key,fragment", [
    ([], "state", "expected a mapping"),
    (False, "state", "expected a mapping"),
    ({"backend": "consul"}, "state.backend", "'consul' is not one of file, etcd, none"),
    ({"backend": 1}, "state.backend", "not one of"),
    ({"fsync_interval": -1}, "state.fsync_interval", "out of range [0, 3600]"),
    ({"fsync_interval": 3601}, "state.fsync_interval", "out of range"),
    ({"fsync_interval": True}, "state.fsync_interval", "expected a number of seconds"),
    ({"fsync_interval": "1s"}, "state.fsync_interval", "expected a number of seconds"),
    ({"path": ""}, "state.path", "expected a file path"),
    ({"path": None}, "state.path", "expected a file path"),
    ({"path": "/var/lib/ryu-pptp-alg/"}, "state.path", "names a directory"),
    ({"colour": "red"}, "state.colour", "unknown key"),
    ({"endpoints": []}, "state.endpoints", "at least one etcd client URL"),
    ({"endpoints": "http://127.0.0.1:2379"}, "state.endpoints", "expected a list"),
    ({"endpoints": [2379]}, "state.endpoints[0]", "expected a URL, got int 2379"),
    ({"endpoints": ["127.0.0.1:2379"]}, "state.endpoints[0]", "is not an etcd client URL"),
    ({"endpoints": ["http://127.0.0.1"]}, "state.endpoints[0]", "is not an etcd client URL"),
    ({"endpoints": ["http://127.0.0.1:99999"]}, "state.endpoints[0]", "not an etcd client"),
    ({"endpoints": ["http://127.0.0.1:2379/v3"]}, "state.endpoints[0]", "not an etcd client"),
    ({"endpoints": ["unix:///run/etcd.sock"]}, "state.endpoints[0]", "not an etcd client"),
    ({"endpoints": ["http://a:1", "http://a:1"]}, "state.endpoints[1]", "listed twice"),
    ({"prefix": "/ryu-pptp-alg"}, "state.prefix", "ending in /"),
    ({"prefix": ""}, "state.prefix", "ending in /"),
    ({"prefix": 7}, "state.prefix", "ending in /"),
    ({"lease_ttl": 0}, "state.lease_ttl", "out of range 1..3600"),
    ({"lease_ttl": 2.5}, "state.lease_ttl", "expected an integer"),
    ({"lease_ttl": True}, "state.lease_ttl", "expected an integer"),
])
def test_invalid_state_names_key_and_problem(state, key, fragment):
    with pytest.raises(ConfigError) as info:
        config_from_dict(with_state(state))
    assert info.value.key == key
    assert fragment in info.value.problem
    assert str(info.value).startswith(key)


def test_example_round_trips_through_yaml():
    document = yaml.safe_load(EXAMPLE.read_text())
    assert config_from_dict(document) == load_config(EXAMPLE)


def test_limits_have_defaults_and_take_integers():
    assert config_from_dict(VALID).limits == Limits()
    config = config_from_dict({**VALID, "limits": {"max_connections": 100,
                                                   "max_connections_per_host": 4}})
    assert (config.limits.max_connections, config.limits.max_connections_per_host) == (100, 4)
    assert config.timeouts.unanswered == Timeouts().unanswered


@pytest.mark.parametrize("limits,fragment", [
    ({"max_connections": 0}, "limits.max_connections"),
    ({"max_calls": "many"}, "limits.max_calls"),
    ({"max_sessions": 5}, "unknown key"),
])
def test_bad_limits_name_the_key(limits, fragment):
    with pytest.raises(ConfigError, match=fragment):
        config_from_dict({**VALID, "limits": limits})


def test_ha_instance_name():
    assert config_from_dict(VALID).ha.instance == ""  # hostname:port
    assert config_from_dict({**VALID, "ha": {"instance": "ctl-2.site:6653"}}).ha.instance \
        == "ctl-2.site:6653"
    assert config_from_dict(VALID).ha.rebalance_after == 0  # a controller back stays standby
    assert config_from_dict({**VALID, "ha": {"rebalance_after": 30}}).ha.rebalance_after == 30


@pytest.mark.parametrize("ha,key,fragment", [
    ([], "ha", "expected a mapping"),
    ({"instance": "a/b"}, "ha.instance", "got str 'a/b'"),
    ({"instance": "a\n"}, "ha.instance", "letters, digits"),
    ({"instance": "x" * 65}, "ha.instance", "at most 64"),
    ({"instance": 2}, "ha.instance", "got int 2"),
    ({"name": "a"}, "ha.name", "unknown key"),
    ({"rebalance_after": 1}, "ha.rebalance_after", "0 (never) or 5 to 86400"),
    ({"rebalance_after": -5}, "ha.rebalance_after", "got int -5"),
    ({"rebalance_after": True}, "ha.rebalance_after", "got bool True"),
    ({"rebalance_after": "10"}, "ha.rebalance_after", "got str '10'"),
])
def test_bad_ha_names_the_key(ha, key, fragment):
    with pytest.raises(ConfigError) as info:
        config_from_dict({**VALID, "ha": ha})
    assert info.value.key == key and fragment in info.value.problem
