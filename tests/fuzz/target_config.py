"""Fuzz target ``config``: the configuration loader on any text and on mutated documents.

``parse_config`` and ``config_from_dict`` may raise ``ConfigError`` and nothing else (the
controller stops at start with its message). A configuration they accept must work: a
gateway made from it connects to the fake switch and installs its pipeline (every message
encoded as Ryu would).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import yaml

from ryu_pptp_alg.config import AlgConfig, ConfigError, config_from_dict, parse_config
from tests.fuzz.engine import Finding, Reader
from tests.unit.fakeswitch import FakeClock, FakeSwitch

BASE: dict[str, Any] = {
    "gateways": [{
        "dpid": 1, "inside_ports": [1, 2], "outside_ports": [3],
        "inside_address": "10.0.0.1/24", "public_addresses": ["203.0.113.1", "203.0.113.2"],
        "outside_next_hop": "203.0.113.254",
        "port_forwards": [{"public": "203.0.113.1", "inside": "10.0.0.10"}],
        "next_table": 2, "name": "edge-1", "gateway_mac": "0e:00:00:00:00:01",
        "switch_profile": "openflow"}],
    "timeouts": {"gre_idle": 300, "control_idle": 300, "closing_linger": 10,
                 "stats_interval": 10, "arp_retry": 1.0, "arp_give_up": 5.0},
    "state": {"backend": "file", "path": "/var/lib/ryu-pptp-alg/state.msgpack",
              "fsync_interval": 1.0},
}
INTS = (0, 1, 2, -1, 254, 255, 0xFFFF, 0x10000, 0xFFFFFF00, 0xFFFFFF01, 2**64 - 1, 2**64,
        10**40)
FLOATS = (0.0, -0.0, 0.5, 3600.0, 3600.5, -1.0, math.nan, math.inf, 1e308)
STRINGS = ("", " ", "0x", "0x1", "0X1", "1", "\u0967", "10.0.0.1", "10.0.0.1/24", "10.0.0.0/24",
           "10.0.0.255/24", "10.0.0.1/32", "10.0.0.1/0", "10.0.0.1/255.255.255.0",
           "203.0.113.1", "203.0.113.3", "10.0.0.10", "::1", "0e:00:00:00:00:01",
           "0E:00:00:00:00:01", "0e:00:00:00:00:01\n", "01:00:00:00:00:00", "0e-00-00-00-00-01",
           "ovs", "openflow", "OVS", "file", "none", "/", "/tmp/", "/tmp/x", "\0", "a" * 300)
KEYS = ("gateways", "timeouts", "state", "dpid", "inside_ports", "public", "inside",
        "bogus", "", "0")


def value(r: Reader, depth: int = 0) -> Any:
    kind = r.u8() % 10
    if kind == 0:
        return r.pick(INTS)
    if kind == 1:
        return r.u32() - (1 << 31)
    if kind == 2:
        return r.pick(FLOATS)
    if kind == 3:
        return r.pick((True, False, None))
    if kind in (4, 5):
        return r.pick(STRINGS)
    if kind == 6:
        return r.blob(32).decode("utf-8", "replace")
    if kind == 7 and depth < 4:
        return [value(r, depth + 1) for _ in range(r.u8() % 4)]
    if kind == 8 and depth < 4:
        return {r.pick(KEYS): value(r, depth + 1) for _ in range(r.u8() % 4)}
    nested: Any = r.pick(INTS)  # deep nesting, made without recursion
    for _ in range(r.u16() % 3000):
        nested = [nested]
    return nested


def mutated(r: Reader) -> Any:
    """BASE with a few values replaced, keys dropped or added, lists grown or emptied."""
    document = copy.deepcopy(BASE)
    for _ in range(1 + r.u8() % 4):
        node: Any = document
        while isinstance(node, dict | list) and node and r.u8() % 4:
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))
            key = r.pick(keys)
            child = node[key]
            if not isinstance(child, dict | list) or not child or r.u8() % 3 == 0:
                action = r.u8() % 4
                if action == 0 and isinstance(node, dict):
                    del node[key]
                elif action == 1 and isinstance(node, list):
                    node.append(child)  # shared: copying a deep value would recurse
                else:
                    node[key] = value(r)
                break
            node = child
        else:
            if isinstance(node, dict):
                node[r.pick(KEYS)] = value(r)
    return document


def run(data: bytes) -> list[Finding]:
    r = Reader(data)
    kind = r.u8() % 8  # deep YAML is slow to parse: one input in eight
    try:
        if kind < 2:
            config = parse_config(r.rest().decode("utf-8", "replace"))
        elif kind < 5:
            config = config_from_dict(mutated(r))
        elif kind < 7:  # as YAML: the loader's own types (dates, bytes, anchors, ...)
            document = mutated(r)
            try:
                text = yaml.safe_dump(document)
            except (yaml.YAMLError, RecursionError):
                return []
            cut = r.u16()
            text = text[:cut] + r.blob(16).decode("latin-1") + text[cut:] if r.u8() & 1 else text
            config = parse_config(text)
        else:  # deeply nested YAML (PyYAML's scanner is quadratic in depth: a few hundred)
            depth = r.u16() % 600
            config = parse_config(f"gateways: {'[' * depth}{']' * depth}\n")
    except ConfigError:
        return []
    return usable(config)


def usable(config: AlgConfig) -> list[Finding]:
    for gateway in config.gateways:
        try:
            FakeSwitch.create(gateway, FakeClock(), config.timeouts)
        except Exception as err:
            return [Finding(f"config accepted but a gateway fails with it: {type(err).__name__}",
                            f"{gateway!r}\n{config.timeouts!r}\n{err!r}")]
    return []
