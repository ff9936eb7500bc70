"""Gateway configuration: YAML in, validated frozen dataclasses out.

Every error names the offending key path (``gateways[0].inside_ports[1]``) and
what is wrong with it, so an operator can fix the file from the message alone.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

MAX_DPID = 2**64 - 1
MAX_PORT = 0xFFFFFF00  # OFPP_MAX: highest physical port number
DEFAULT_NEXT_TABLE = 2
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
DEFAULT_STATE_PATH = Path("/var/lib/ryu-pptp-alg/state.msgpack")
MAX_FSYNC_INTERVAL = 3600.0
MIN_REBALANCE = 5.0  # seconds: a hand-over is a pause of the controller path; not often
INSTANCE_RE = re.compile(r"[A-Za-z0-9.:_-]{0,64}")  # a part of etcd keys: no /
DEFAULT_ETCD_ENDPOINTS = ("http://127.0.0.1:2379",)
DEFAULT_ETCD_PREFIX = "/ryu-pptp-alg/"
# etcd raises a shorter lease to its minimum: 1.5 election timeouts rounded up, 2 s with
# its default timings, 1 s with --election-timeout 500 (README, High availability).
MIN_LEASE_TTL, MAX_LEASE_TTL = 1, 3600

T = TypeVar("T")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and the problem."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


class SwitchProfile(StrEnum):
    """How the switch orders the OpenFlow messages of one connection.

    ``openflow``: any OpenFlow 1.3 switch. The spec lets a switch reorder messages
    between barriers, so a barrier keeps a call's GRE flows ahead of the control packet
    that lets its peers start sending GRE, and the server's reply waits for the barrier's
    answer. ``ovs``: Open vSwitch runs each message to completion before it reads the
    next (its barrier handler answers at once for that reason), so flow changes are in
    place before any later packet-out with no barrier at all: two messages fewer each
    way per call set-up, and no round trip before the reply goes on.
    """

    OPENFLOW = "openflow"
    OVS = "ovs"


@dataclass(frozen=True)
class Capabilities:
    """What a switch profile can do, stated once (as Faucet's hardware profiles)."""

    barriers: bool  # may reorder between barriers: flow changes are fenced by one
    meters: bool  # OpenFlow meters: traffic to the controller is metered in the switch


CAPABILITIES = {
    SwitchProfile.OPENFLOW: Capabilities(barriers=True, meters=False),  # assume the least
    SwitchProfile.OVS: Capabilities(barriers=False, meters=True),  # userspace meters too
}


@dataclass(frozen=True)
class Rates:
    """Packets per second the controller takes, per class: metered in the switch where the
    switch profile has meters, else by token buckets in the controller. Each class has its
    own budget, so one host's flood of one kind cannot starve the others."""

    arp: int = 100  # ARP for the gateway's addresses, per switch port
    new_connections: int = 200  # TCP/1723 no tracked connection's flow takes, per port
    control: int = 2000  # segments of control connections the server has answered
    gre: int = 20000  # GRE of keys on the controller path
    # GRE from an inside host that no flow takes (a pair's outward flow the switch refused,
    # or junk), per switch port
    unmatched_gre: int = 1000


@dataclass(frozen=True)
class PortForward:
    """Inbound PPTP: TCP/1723 (and its GRE) to ``public`` goes to ``inside``."""

    public: IPv4Address
    inside: IPv4Address


@dataclass(frozen=True)
class GatewayConfig:
    dpid: int
    inside_ports: tuple[int, ...]
    outside_ports: tuple[int, ...]
    inside_address: IPv4Interface
    public_addresses: tuple[IPv4Address, ...]
    outside_next_hop: IPv4Address | None = None
    port_forwards: tuple[PortForward, ...] = ()
    next_table: int = DEFAULT_NEXT_TABLE
    name: str = ""
    gateway_mac: str = ""
    switch_profile: SwitchProfile = SwitchProfile.OPENFLOW

    def __post_init__(self) -> None:
        if not self.gateway_mac:
            object.__setattr__(self, "gateway_mac", default_gateway_mac(self.dpid))

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES[self.switch_profile]

    @property
    def default_public_address(self) -> IPv4Address:
        return self.public_addresses[0]

    @property
    def label(self) -> str:
        return self.name or f"dpid {self.dpid:#x}"


def default_gateway_mac(dpid: int) -> str:
    """A locally administered unicast MAC derived from the dpid: 0e:00 + its low 32 bits."""
    return "0e:00:" + (dpid & 0xFFFFFFFF).to_bytes(4, "big").hex(":")


@dataclass(frozen=True)
class Timeouts:
    """Seconds. GRE flows idle this long are removed and their calls end."""

    gre_idle: int = 300
    control_idle: int = 300  # control connection silent this long is torn down
    closing_linger: int = 10  # a closed (FIN/RST) connection's NAT mapping stays this long
    stats_interval: int = 10  # flow statistics refresh for the session table
    arp_retry: float = 1.0  # ARP request retry interval for unresolved next hops
    arp_give_up: float = 5.0  # packets waiting for an unresolved next hop are dropped after
    unanswered: int = 10  # a connection the server has not answered (SYN-ACK) goes after


@dataclass(frozen=True)
class Limits:
    """Caps on what hosts can make the controller keep, per gateway (as conntrack's table
    size): a SYN past a cap is dropped and counted; at the overall cap the oldest
    connection still waiting for the server's answer makes room first."""

    max_connections: int = 10000  # control connections in all
    max_connections_per_host: int = 64  # per inside client (outbound) or outside client
    max_calls: int = 20000  # calls in all
    max_calls_per_connection: int = 64
    # A host at its cap that still sends SYNs has its new connections dropped in the switch
    # for this long (0: never), so that its flood cannot use up its port's budget; at most
    # max_blocked_hosts at a time.
    block_seconds: int = 10
    max_blocked_hosts: int = 1024


class StateBackend(StrEnum):
    """Where the controller keeps its records across restarts (``ryu_pptp_alg.store``).

    ``file``: a snapshot and an append-only journal on local disk. ``etcd``: an etcd
    cluster shared by the controllers of a high-availability group (``etcdstore``).
    ``none``: nothing is kept; a restarted controller starts cold.
    """

    FILE = "file"
    ETCD = "etcd"
    NONE = "none"


@dataclass(frozen=True)
class StateConfig:
    """The ``state:`` section. A power loss may lose the changes of the last
    ``fsync_interval`` seconds (0: none, at the cost of a disk flush per change); a
    killed or crashed controller loses nothing either way."""

    backend: StateBackend = StateBackend.FILE
    path: Path = DEFAULT_STATE_PATH  # the snapshot; the journal is <path>.journal
    fsync_interval: float = 1.0
    # backend etcd: the members' client URLs, the key prefix, and the masters' lease:
    # a controller that dies loses its switches to a standby about lease_ttl s later.
    endpoints: tuple[str, ...] = DEFAULT_ETCD_ENDPOINTS
    prefix: str = DEFAULT_ETCD_PREFIX
    lease_ttl: int = 2


@dataclass(frozen=True)
class HaConfig:
    """The ``ha:`` section (with ``state.backend: etcd``): this instance's name in the
    group's election, unique in the group; "" names it hostname:OpenFlow-port."""

    instance: str = ""
    # Seconds a better-ranked instance (rendezvous hashing) is connected to a switch before
    # its master hands the switch over to it; 0: never, a controller back stays standby.
    rebalance_after: float = 0.0


@dataclass(frozen=True)
class AlgConfig:
    gateways: tuple[GatewayConfig, ...]
    timeouts: Timeouts = Timeouts()
    state: StateConfig = StateConfig()
    limits: Limits = Limits()
    rates: Rates = Rates()
    ha: HaConfig = HaConfig()

    def gateway(self, dpid: int) -> GatewayConfig | None:
        for gateway in self.gateways:
            if gateway.dpid == dpid:
                return gateway
        return None


GATEWAY_KEYS = {
    "dpid",
    "inside_ports",
    "outside_ports",
    "inside_address",
    "public_addresses",
    "outside_next_hop",
    "port_forwards",
    "next_table",
    "name",
    "gateway_mac",
    "switch_profile",
}
REQUIRED_GATEWAY_KEYS = ("dpid", "inside_ports", "outside_ports", "inside_address",
                         "public_addresses")


def load_config(path: str | Path) -> AlgConfig:
    """Read and validate the YAML file at ``path``."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError("", f"cannot read {path}: {err.strerror or err}") from err
    return parse_config(text)


def parse_config(text: str) -> AlgConfig:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError("", f"not valid YAML: {err}") from err
    except RecursionError:
        raise ConfigError("", "not YAML we take: nested too deeply") from None
    return config_from_dict(document)


def config_from_dict(document: Any) -> AlgConfig:
    top = _mapping(document, "", {"gateways", "timeouts", "state", "limits", "rates", "ha"})
    if "gateways" not in top:
        raise ConfigError("gateways", "missing (a list with one entry per NAT switch)")
    entries = _list(top["gateways"], "gateways")
    if not entries:
        raise ConfigError("gateways", "must list at least one gateway")
    gateways = tuple(_gateway(entry, f"gateways[{i}]") for i, entry in enumerate(entries))
    seen: dict[int, int] = {}
    for i, gateway in enumerate(gateways):
        if gateway.dpid in seen:
            raise ConfigError(f"gateways[{i}].dpid",
                              f"{gateway.dpid:#x} is also gateways[{seen[gateway.dpid]}]")
        seen[gateway.dpid] = i
    return AlgConfig(gateways=gateways, timeouts=_timeouts(top.get("timeouts") or {}),
                     state=_state({} if top.get("state") is None else top["state"]),
                     limits=_limits(top.get("limits") or {}),
                     rates=_rates(top.get("rates") or {}),
                     ha=_ha({} if top.get("ha") is None else top["ha"]))


def _ha(value: Any) -> HaConfig:
    fields = _mapping(value, "ha", set(HaConfig.__dataclass_fields__))
    instance = fields.get("instance", "")
    if not isinstance(instance, str) or not INSTANCE_RE.fullmatch(instance):
        raise ConfigError("ha.instance", f"expected a name of letters, digits and .:_- "
                                         f"(at most 64), got {_describe(instance)}")
    rebalance = fields.get("rebalance_after", 0.0)
    if isinstance(rebalance, bool) or not isinstance(rebalance, int | float) or not (
            rebalance == 0 or MIN_REBALANCE <= rebalance <= 86400):
        raise ConfigError("ha.rebalance_after", f"expected 0 (never) or {MIN_REBALANCE:g} to "
                                                f"86400 seconds, got {_describe(rebalance)}")
    return HaConfig(instance=instance, rebalance_after=float(rebalance))


def _rates(value: Any) -> Rates:
    fields = _mapping(value, "rates", set(Rates.__dataclass_fields__))
    return Rates(**{name: _int(raw, f"rates.{name}", 1, 10_000_000)
                    for name, raw in fields.items()})


def _limits(value: Any) -> Limits:
    fields = _mapping(value, "limits", set(Limits.__dataclass_fields__))
    return Limits(**{name: _int(raw, f"limits.{name}", 0 if name == "block_seconds" else 1,
                                10_000_000)
                     for name, raw in fields.items()})


def _timeouts(value: Any) -> Timeouts:
    fields = _mapping(value, "timeouts", set(Timeouts.__dataclass_fields__))
    values: dict[str, Any] = {}
    for name, raw in fields.items():
        key = f"timeouts.{name}"
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ConfigError(key, f"expected a number of seconds, got {_describe(raw)}")
        if name in ("gre_idle", "control_idle", "closing_linger", "stats_interval",
                    "unanswered"):
            values[name] = _int(raw, key, 1, 0xFFFF)
        elif not 0 < raw <= 3600:
            raise ConfigError(key, f"{raw} is out of range (0, 3600]")
        else:
            values[name] = float(raw)
    return Timeouts(**values)


def _state(value: Any) -> StateConfig:
    fields = _mapping(value, "state", set(StateConfig.__dataclass_fields__))
    backend = fields.get("backend", StateBackend.FILE.value)
    if not isinstance(backend, str) or backend not in set(StateBackend):
        raise ConfigError("state.backend",
                          f"{shown(backend)} is not one of {', '.join(map(str, StateBackend))}")
    path = fields.get("path", str(DEFAULT_STATE_PATH))
    if not isinstance(path, str) or not path.strip():
        raise ConfigError("state.path", f"expected a file path, got {_describe(path)}")
    if path.endswith("/"):
        raise ConfigError("state.path", f"{shown(path)} names a directory; name the file in it, "
                                        f"e.g. {path}{DEFAULT_STATE_PATH.name}")
    interval = fields.get("fsync_interval", 1.0)
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        raise ConfigError("state.fsync_interval",
                          f"expected a number of seconds, got {_describe(interval)}")
    if not 0 <= interval <= MAX_FSYNC_INTERVAL:
        raise ConfigError("state.fsync_interval",
                          f"{interval} is out of range [0, {MAX_FSYNC_INTERVAL:g}] "
                          "(0: flush every change to disk)")
    prefix = fields.get("prefix", DEFAULT_ETCD_PREFIX)
    if not isinstance(prefix, str) or not prefix.endswith("/") or prefix.strip() != prefix:
        raise ConfigError("state.prefix", f"expected a key prefix ending in /, e.g. "
                                          f"{DEFAULT_ETCD_PREFIX}, got {_describe(prefix)}")
    return StateConfig(backend=StateBackend(backend), path=Path(path),
                       fsync_interval=float(interval),
                       endpoints=_endpoints(fields.get("endpoints", list(DEFAULT_ETCD_ENDPOINTS))),
                       prefix=prefix,
                       lease_ttl=_int(fields.get("lease_ttl", 2), "state.lease_ttl",
                                      MIN_LEASE_TTL, MAX_LEASE_TTL))


def _endpoints(value: Any) -> tuple[str, ...]:
    """etcd client URLs: ``http(s)://host:port``, each once."""
    endpoints = _list(value, "state.endpoints")
    if not endpoints:
        raise ConfigError("state.endpoints", "must list at least one etcd client URL")
    for i, url in enumerate(endpoints):
        key = f"state.endpoints[{i}]"
        if not isinstance(url, str):
            raise ConfigError(key, f"expected a URL, got {_describe(url)}")
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None \
                or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(key, f"{shown(url)} is not an etcd client URL like "
                                   f"{DEFAULT_ETCD_ENDPOINTS[0]}")
        if endpoints.index(url) != i:
            raise ConfigError(key, f"{url} is listed twice")
    return tuple(endpoints)


def _gateway(entry: Any, key: str) -> GatewayConfig:
    fields = _mapping(entry, key, GATEWAY_KEYS)
    for required in REQUIRED_GATEWAY_KEYS:
        if required not in fields:
            raise ConfigError(f"{key}.{required}", "missing")
    inside_ports = _ports(fields["inside_ports"], f"{key}.inside_ports")
    outside_ports = _ports(fields["outside_ports"], f"{key}.outside_ports")
    shared = sorted(set(inside_ports) & set(outside_ports))
    if shared:
        raise ConfigError(f"{key}.outside_ports",
                          f"port {shared[0]} is also listed in inside_ports")
    inside_address = _interface(fields["inside_address"], f"{key}.inside_address")
    public_addresses = _address_list(fields["public_addresses"], f"{key}.public_addresses")
    for i, public in enumerate(public_addresses):
        if public in inside_address.network:
            raise ConfigError(f"{key}.public_addresses[{i}]",
                              f"{public} is inside the LAN {inside_address.network}")
    next_hop = fields.get("outside_next_hop")
    outside_next_hop = None if next_hop is None else _address(next_hop,
                                                              f"{key}.outside_next_hop")
    forwards = _port_forwards(fields.get("port_forwards") or [], f"{key}.port_forwards",
                              public_addresses, inside_address)
    next_table = _int(fields.get("next_table", DEFAULT_NEXT_TABLE), f"{key}.next_table",
                      DEFAULT_NEXT_TABLE, 254)
    name = fields.get("name", "")
    if not isinstance(name, str):
        raise ConfigError(f"{key}.name", f"expected a string, got {shown(name)}")
    gateway_mac = fields.get("gateway_mac", "")
    if gateway_mac:
        if not isinstance(gateway_mac, str) or not MAC_RE.match(gateway_mac.lower()):
            raise ConfigError(f"{key}.gateway_mac", f"{shown(gateway_mac)} is not a MAC address")
        if int(gateway_mac[:2], 16) & 1:
            raise ConfigError(f"{key}.gateway_mac", f"{gateway_mac} is a multicast address")
    profile = fields.get("switch_profile", SwitchProfile.OPENFLOW.value)
    if not isinstance(profile, str) or profile not in set(SwitchProfile):
        raise ConfigError(f"{key}.switch_profile",
                          f"{shown(profile)} is not one of {', '.join(map(str, SwitchProfile))}")
    return GatewayConfig(
        dpid=_dpid(fields["dpid"], f"{key}.dpid"),
        inside_ports=inside_ports,
        outside_ports=outside_ports,
        inside_address=inside_address,
        public_addresses=public_addresses,
        outside_next_hop=outside_next_hop,
        port_forwards=forwards,
        next_table=next_table,
        name=name,
        gateway_mac=gateway_mac.lower() if gateway_mac else "",
        switch_profile=SwitchProfile(profile),
    )


def _port_forwards(value: Any, key: str, public_addresses: tuple[IPv4Address, ...],
                   inside_address: IPv4Interface) -> tuple[PortForward, ...]:
    forwards = []
    publics: set[IPv4Address] = set()
    for i, entry in enumerate(_list(value, key)):
        item_key = f"{key}[{i}]"
        fields = _mapping(entry, item_key, {"public", "inside"})
        for required in ("public", "inside"):
            if required not in fields:
                raise ConfigError(f"{item_key}.{required}", "missing")
        forward = parse_port_forward(fields, item_key, public_addresses, inside_address)
        if forward.public in publics:
            raise ConfigError(f"{item_key}.public", f"{forward.public} is forwarded twice")
        publics.add(forward.public)
        forwards.append(forward)
    return tuple(forwards)


def parse_port_forward(fields: Mapping[str, Any], key: str,
                       public_addresses: tuple[IPv4Address, ...],
                       inside_address: IPv4Interface) -> PortForward:
    """One ``{public, inside}`` entry; shared with the REST API."""
    public = _address(fields.get("public"), f"{key}.public")
    inside = _address(fields.get("inside"), f"{key}.inside")
    if public not in public_addresses:
        raise ConfigError(f"{key}.public", f"{public} is not one of public_addresses")
    if inside not in inside_address.network:
        raise ConfigError(f"{key}.inside", f"{inside} is not in the LAN {inside_address.network}")
    if inside == inside_address.ip:
        raise ConfigError(f"{key}.inside", f"{inside} is the gateway's own address")
    return PortForward(public=public, inside=inside)


def _mapping(value: Any, key: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping, got {_describe(value)}")
    for name in value:
        if name not in allowed:
            where = f"{key}.{name}" if key else str(name)
            raise ConfigError(where, f"unknown key (known: {', '.join(sorted(allowed))})")
    return value


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(key, f"expected a list, got {_describe(value)}")
    return value


def _int(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"expected an integer, got {_describe(value)}")
    if not low <= value <= high:
        raise ConfigError(key, f"{value} is out of range {low}..{high}")
    return value


def _dpid(value: Any, key: str) -> int:
    if isinstance(value, str):
        try:
            value = int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError as err:
            raise ConfigError(key, f"{shown(value)} is not an integer or 0x-prefixed hex") from err
    return _int(value, key, 1, MAX_DPID)


def _ports(value: Any, key: str) -> tuple[int, ...]:
    ports = tuple(_int(port, f"{key}[{i}]", 1, MAX_PORT)
                  for i, port in enumerate(_list(value, key)))
    if not ports:
        raise ConfigError(key, "must list at least one port")
    if len(set(ports)) != len(ports):
        raise ConfigError(key, "lists a port twice")
    return ports


def _parsed(parse: Callable[[str], T], value: Any, key: str, what: str) -> T:
    if not isinstance(value, str):
        raise ConfigError(key, f"expected {what}, got {_describe(value)}")
    try:
        return parse(value)
    except ValueError as err:
        raise ConfigError(key, f"{shown(value)} is not {what}") from err


def _address(value: Any, key: str) -> IPv4Address:
    return _parsed(IPv4Address, value, key, "an IPv4 address")


def _interface(value: Any, key: str) -> IPv4Interface:
    if isinstance(value, str) and "/" not in value:
        raise ConfigError(key, f"{shown(value)} needs a prefix length, e.g. 10.0.0.1/24")
    interface = _parsed(IPv4Interface, value, key, "an IPv4 address with prefix")
    if interface.ip in (interface.network.network_address, interface.network.broadcast_address) \
            and interface.network.prefixlen < 31:
        raise ConfigError(key, f"{interface.ip} is not a host address of {interface.network}")
    return interface


def _address_list(value: Any, key: str) -> tuple[IPv4Address, ...]:
    addresses = tuple(_address(item, f"{key}[{i}]") for i, item in enumerate(_list(value, key)))
    if not addresses:
        raise ConfigError(key, "must list at least one address")
    for i, address in enumerate(addresses):
        if addresses.index(address) != i:
            raise ConfigError(f"{key}[{i}]", f"{address} is listed twice")
    return addresses


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 60, 60


def shown(value: Any) -> str:
    """A value as error messages quote it: bounded, however large or deep it is."""
    return _SHOWN.repr(value)


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {shown(value)}"


__all__ = [
    "AlgConfig",
    "ConfigError",
    "GatewayConfig",
    "HaConfig",
    "PortForward",
    "StateBackend",
    "StateConfig",
    "SwitchProfile",
    "Timeouts",
    "config_from_dict",
    "load_config",
    "parse_config",
    "parse_port_forward",
]
