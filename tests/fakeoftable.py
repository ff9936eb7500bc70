"""A fake OpenFlow 1.3 switch pipeline for unit tests.

The ALG's pure logic emits Ryu ``ofproto_v1_3_parser`` message objects (built with
``datapath=None``).  :class:`FakeOFTable` applies those messages to an in-memory multi-table
pipeline and lets tests push packets (plain dicts of OXM field names) through the installed
flows, with no switch.  Modelled loosely on Faucet's ``tests/unit/faucet/fakeoftable.py`` but
much smaller.

Semantics (OpenFlow 1.3.5 unless noted):

* Flow lookup: highest priority wins.  Among overlapping flows of equal priority the one
  installed first wins (OpenFlow/OVS leave this undefined; re-adding an identical
  match+priority keeps the original position).  A table miss drops the packet (no implicit
  send-to-controller); outputs already produced by apply-actions in earlier tables stand.
* A flow that matches on a field the packet dict lacks does not match.  ``metadata`` is a
  pipeline field: it starts at ``packet.get('metadata', 0)``, is changed by write-metadata, and
  is not copied into output dicts.  Match prerequisites are not enforced.
* Instructions run in the fixed OpenFlow order whatever their order in the list:
  apply-actions, clear-actions, write-actions, write-metadata, goto-table.  Meter instructions
  are ignored.  The action set runs when the pipeline ends (no goto-table) in action-set order:
  dec_nw_ttl, set_field, group, output (group is not implemented).
* ``OFPActionDecNwTtl`` on a packet with ``ip_ttl`` <= 1 kills the packet: nothing further is
  executed or output for it (packets without ``ip_ttl`` are left alone, like OVS).
* Output to the packet's own ``in_port`` is dropped (as OVS does); ``OFPP_IN_PORT`` must be
  used to hairpin, and is recorded with ``out_port`` = the in_port number.  Other reserved
  ports (FLOOD, ALL, NORMAL, LOCAL, ...) are recorded as-is.
* OFPFC_ADD replaces a flow with the same table, priority and (normalised) match; counters are
  carried over unless ``OFPFF_RESET_COUNTS`` is set.  OFPFC_MODIFY/MODIFY_STRICT replace only
  the instructions (and reset counters only with ``OFPFF_RESET_COUNTS``); if nothing matches
  they do nothing (OpenFlow 1.3; OVS would add the flow instead).
* OFPFC_DELETE/DELETE_STRICT honour ``out_port`` and ``out_group`` like a real switch: only
  ``OFPP_ANY``/``OFPG_ANY`` mean "no filter".  Ryu's OFPFlowMod defaults both to 0, so a delete
  built without ``out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY`` deletes nothing here, exactly
  as on Open vSwitch.
* Timeouts use a fake clock starting at 0.0, advanced only by :meth:`FakeOFTable.advance`.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ryu.lib import addrconv
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

__all__ = ["FakeFlow", "FakeOFTable"]

_MAC_FIELDS = frozenset({"eth_src", "eth_dst", "arp_sha", "arp_tha", "ipv6_nd_sll", "ipv6_nd_tll"})
_IPV4_FIELDS = frozenset({"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"})
_IPV6_FIELDS = frozenset({"ipv6_src", "ipv6_dst", "ipv6_nd_target"})
_FIELD_BITS = {t.name: t.type.size * 8 for t in ofp.oxm_types}

# Messages that are accepted and otherwise ignored.
_IGNORED_MSGS = (
    parser.OFPBarrierRequest,
    parser.OFPSetConfig,
    parser.OFPGetConfigRequest,
    parser.OFPEchoRequest,
    parser.OFPFeaturesRequest,
    parser.OFPSetAsync,
    parser.OFPGetAsyncRequest,
    parser.OFPRoleRequest,
    parser.OFPMultipartRequest,  # every *StatsRequest, e.g. FlowStats, PortDescStats
)

# Action-set execution order (OpenFlow 1.3.5 section 5.10), restricted to what we support.
_ACTION_SET_ORDER = {"dec_nw_ttl": 0, "set_field": 1, "group": 2, "output": 3}


# --------------------------------------------------------------------------- normalisation


def _field_bits(name: str) -> int:
    return _FIELD_BITS.get(name, 64)


def _parse_ipv4(value: Any) -> ipaddress.IPv4Address:
    if isinstance(value, str):
        try:
            return ipaddress.IPv4Address(value)
        except ValueError:
            # Tolerate leading zeros ('010.0.0.1' == '10.0.0.1', read as decimal).
            parts = value.split(".")
            if len(parts) != 4 or not all(p.isdigit() and int(p) <= 255 for p in parts):
                raise
            return ipaddress.IPv4Address(".".join(str(int(p)) for p in parts))
    return ipaddress.IPv4Address(value)


def _to_int(name: str, value: Any) -> int:
    """Convert a field value (string or int) to an int for comparison."""
    if name in _MAC_FIELDS:
        if isinstance(value, int):
            return value
        return int.from_bytes(addrconv.mac.text_to_bin(value.lower()), "big")
    if name in _IPV4_FIELDS:
        return int(_parse_ipv4(value))
    if name in _IPV6_FIELDS:
        return int(ipaddress.IPv6Address(value))
    return int(value)


def _to_text(name: str, value: int) -> Any:
    """Canonical user-facing form of an int field value."""
    if name in _MAC_FIELDS:
        return addrconv.mac.bin_to_text(value.to_bytes(6, "big"))
    if name in _IPV4_FIELDS:
        return str(ipaddress.IPv4Address(value))
    if name in _IPV6_FIELDS:
        return str(ipaddress.IPv6Address(value))
    return value


def _canonical(name: str, value: Any) -> Any:
    """Canonical user-facing form of a field value (lower-case MAC, normalised IP)."""
    if name in _MAC_FIELDS or name in _IPV4_FIELDS or name in _IPV6_FIELDS:
        return _to_text(name, _to_int(name, value))
    return value


def _normalise_match(match: Any) -> dict[str, tuple[int, int]]:
    """OFPMatch (or dict) -> {field: (value & mask, mask)} with wildcard fields dropped."""
    items = match.items() if hasattr(match, "items") else match
    norm = {}
    for name, raw in items:
        full = (1 << _field_bits(name)) - 1
        if isinstance(raw, tuple):
            value, mask = _to_int(name, raw[0]), _to_int(name, raw[1])
        else:
            value, mask = _to_int(name, raw), full
        mask &= full
        if mask:
            norm[name] = (value & mask, mask)
    return norm


def _display_match(norm: dict[str, tuple[int, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (value, mask) in norm.items():
        if mask == (1 << _field_bits(name)) - 1:
            out[name] = _to_text(name, value)
        else:
            out[name] = (_to_text(name, value), _to_text(name, mask))
    return out


def _covers(general: dict[str, tuple[int, int]], specific: dict[str, tuple[int, int]]) -> bool:
    """True if every packet matching ``specific`` also matches ``general``.

    I.e. ``specific`` is a superset-or-equal (at least as specific) match of ``general``.
    """
    for name, (gvalue, gmask) in general.items():
        if name not in specific:
            return False
        svalue, smask = specific[name]
        if smask & gmask != gmask or svalue & gmask != gvalue:
            return False
    return True


def _overlap(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]) -> bool:
    """True if some packet could match both normalised matches."""
    for name in a.keys() & b.keys():
        (avalue, amask), (bvalue, bmask) = a[name], b[name]
        if (avalue ^ bvalue) & amask & bmask:
            return False
    return True


# --------------------------------------------------------------------------- flows


@dataclass
class FakeFlow:
    """One installed flow entry.

    ``match`` is a dict of field -> value, or field -> (value, mask) for masked fields, in
    canonical form (lower-case MACs, normalised IPs; all-ones masks shown as exact values).
    """

    table_id: int
    priority: int
    cookie: int
    match: dict[str, Any]
    instructions: list[Any]
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: int = 0
    packet_count: int = 0
    byte_count: int = 0
    installed_at: float = field(default=0.0, repr=False)
    last_used: float = field(default=0.0, repr=False)
    _norm: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False, compare=False)
    _seq: int = field(default=0, repr=False, compare=False)

    def matches_packet(self, packet: dict[str, Any], metadata: int) -> bool:
        for name, (value, mask) in self._norm.items():
            if name == "metadata":
                pvalue = metadata
            elif name in packet:
                pvalue = _to_int(name, packet[name])
            else:
                return False
            if pvalue & mask != value:
                return False
        return True

    def actions(self) -> list[Any]:
        """All actions of the apply-actions and write-actions instructions."""
        return [
            action
            for inst in self.instructions
            if isinstance(inst, parser.OFPInstructionActions)
            for action in inst.actions
        ]

    def outputs_to(self, port: int) -> bool:
        return any(isinstance(a, parser.OFPActionOutput) and a.port == port for a in self.actions())

    def uses_group(self, group_id: int) -> bool:
        return any(
            isinstance(a, parser.OFPActionGroup) and a.group_id == group_id for a in self.actions()
        )

    def __str__(self) -> str:
        head = [
            f"cookie={self.cookie:#x}",
            f"table={self.table_id}",
            f"n_packets={self.packet_count}",
            f"n_bytes={self.byte_count}",
        ]
        if self.idle_timeout:
            head.append(f"idle_timeout={self.idle_timeout}")
        if self.hard_timeout:
            head.append(f"hard_timeout={self.hard_timeout}")
        fields = [f"priority={self.priority}"]
        for name, value in self.match.items():
            if isinstance(value, tuple):
                fields.append(f"{name}={_fmt(value[0])}/{_fmt(value[1])}")
            else:
                fields.append(f"{name}={hex(value) if name == 'eth_type' else _fmt(value)}")
        insts = ",".join(_fmt_instruction(i) for i in _ordered(self.instructions)) or "drop"
        return f"{', '.join(head)}, {','.join(fields)} actions={insts}"


def _fmt(value: Any) -> str:
    return hex(value) if isinstance(value, int) and value > 0xFFFF else str(value)


_PORT_NAMES = {
    ofp.OFPP_CONTROLLER: "CONTROLLER",
    ofp.OFPP_IN_PORT: "IN_PORT",
    ofp.OFPP_FLOOD: "FLOOD",
    ofp.OFPP_ALL: "ALL",
    ofp.OFPP_NORMAL: "NORMAL",
    ofp.OFPP_LOCAL: "LOCAL",
    ofp.OFPP_TABLE: "TABLE",
    ofp.OFPP_ANY: "ANY",
}


def _fmt_action(action: Any) -> str:
    if isinstance(action, parser.OFPActionOutput):
        return f"output:{_PORT_NAMES.get(action.port, action.port)}"
    if isinstance(action, parser.OFPActionSetField):
        return f"set_field:{_canonical(action.key, action.value)}->{action.key}"
    if isinstance(action, parser.OFPActionDecNwTtl):
        return "dec_ttl"
    if isinstance(action, parser.OFPActionGroup):
        return f"group:{action.group_id}"
    return type(action).__name__


def _fmt_instruction(inst: Any) -> str:
    if isinstance(inst, parser.OFPInstructionActions):
        acts = ",".join(_fmt_action(a) for a in inst.actions)
        if inst.type == ofp.OFPIT_APPLY_ACTIONS:
            return acts or "apply()"
        if inst.type == ofp.OFPIT_WRITE_ACTIONS:
            return f"write_actions({acts})"
        return "clear_actions"
    if isinstance(inst, parser.OFPInstructionGotoTable):
        return f"goto_table:{inst.table_id}"
    if isinstance(inst, parser.OFPInstructionWriteMetadata):
        return f"write_metadata:{inst.metadata:#x}/{inst.metadata_mask:#x}"
    if isinstance(inst, parser.OFPInstructionMeter):
        return f"meter:{inst.meter_id}"
    return type(inst).__name__


def _inst_rank(inst: Any) -> int:
    if isinstance(inst, parser.OFPInstructionMeter):
        return 0
    if isinstance(inst, parser.OFPInstructionActions):
        return {ofp.OFPIT_APPLY_ACTIONS: 1, ofp.OFPIT_CLEAR_ACTIONS: 2}.get(inst.type, 3)
    if isinstance(inst, parser.OFPInstructionWriteMetadata):
        return 4
    return 5  # goto-table


def _ordered(instructions: list[Any]) -> list[Any]:
    """Instructions in OpenFlow execution order (stable for equal ranks)."""
    return sorted(instructions, key=_inst_rank)


# --------------------------------------------------------------------------- the table


class _PacketDied(Exception):
    """Raised internally when dec_nw_ttl expires a packet."""


class FakeOFTable:
    """An in-memory OpenFlow 1.3 multi-table pipeline."""

    def __init__(self, num_tables: int = 8) -> None:
        self.num_tables = num_tables
        self.tables: list[list[FakeFlow]] = [[] for _ in range(num_tables)]
        self.packet_outs: list[Any] = []
        self.now = 0.0
        self._seq = 0

    # ------------------------------------------------------------------ messages

    def apply(self, msgs: Iterable[object]) -> None:
        """Apply OpenFlow messages in order."""
        for msg in msgs:
            if isinstance(msg, parser.OFPFlowMod):
                self._flow_mod(msg)
            elif isinstance(msg, parser.OFPPacketOut):
                self.packet_outs.append(msg)
            elif isinstance(msg, _IGNORED_MSGS):
                continue
            else:
                raise TypeError(f"FakeOFTable cannot apply {type(msg).__name__}: {msg!r}")

    def _check_table(self, table_id: int) -> None:
        if not 0 <= table_id < self.num_tables:
            raise ValueError(f"table_id {table_id} out of range (0..{self.num_tables - 1})")

    def _validate_instructions(self, table_id: int, instructions: list[Any]) -> None:
        seen = set()
        for inst in instructions:
            if not isinstance(
                inst,
                parser.OFPInstructionActions
                | parser.OFPInstructionGotoTable
                | parser.OFPInstructionWriteMetadata
                | parser.OFPInstructionMeter,
            ):
                raise TypeError(f"unsupported instruction {type(inst).__name__}")
            if inst.type in seen:
                raise ValueError(f"duplicate instruction type {inst.type}: {instructions!r}")
            seen.add(inst.type)
            if isinstance(inst, parser.OFPInstructionGotoTable):
                if inst.table_id <= table_id:
                    raise ValueError(
                        f"goto_table:{inst.table_id} from table {table_id} must go forward"
                    )
                self._check_table(inst.table_id)

    def _selected(self, msg: Any, norm: dict[str, tuple[int, int]], strict: bool) -> list[FakeFlow]:
        """Flows selected by a modify/delete flow-mod (match, priority, cookie filters)."""
        if msg.table_id == ofp.OFPTT_ALL:
            candidates = [f for table in self.tables for f in table]
        else:
            self._check_table(msg.table_id)
            candidates = list(self.tables[msg.table_id])
        selected = []
        for flow in candidates:
            if flow.cookie & msg.cookie_mask != msg.cookie & msg.cookie_mask:
                continue
            if strict:
                if flow.priority != msg.priority or flow._norm != norm:
                    continue
            elif not _covers(norm, flow._norm):
                continue
            selected.append(flow)
        return selected

    def _flow_mod(self, msg: Any) -> None:
        norm = _normalise_match(msg.match)
        command = msg.command
        if command == ofp.OFPFC_ADD:
            self._check_table(msg.table_id)
            self._validate_instructions(msg.table_id, msg.instructions)
            self._add(msg, norm)
        elif command in (ofp.OFPFC_MODIFY, ofp.OFPFC_MODIFY_STRICT):
            if msg.table_id == ofp.OFPTT_ALL:
                raise ValueError("OFPTT_ALL is only valid for deletes")
            self._check_table(msg.table_id)
            self._validate_instructions(msg.table_id, msg.instructions)
            for flow in self._selected(msg, norm, command == ofp.OFPFC_MODIFY_STRICT):
                flow.instructions = list(msg.instructions)
                if msg.flags & ofp.OFPFF_RESET_COUNTS:
                    flow.packet_count = flow.byte_count = 0
        elif command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            for flow in self._selected(msg, norm, command == ofp.OFPFC_DELETE_STRICT):
                if msg.out_port != ofp.OFPP_ANY and not flow.outputs_to(msg.out_port):
                    continue
                if msg.out_group != ofp.OFPG_ANY and not flow.uses_group(msg.out_group):
                    continue
                self.tables[flow.table_id].remove(flow)
        else:
            raise ValueError(f"unknown flow-mod command {command}")

    def _add(self, msg: Any, norm: dict[str, tuple[int, int]]) -> None:
        table = self.tables[msg.table_id]
        if msg.flags & ofp.OFPFF_CHECK_OVERLAP:
            for old in table:
                if old.priority == msg.priority and old._norm != norm and _overlap(old._norm, norm):
                    raise ValueError(f"OFPFF_CHECK_OVERLAP: overlaps {old}")
        new = FakeFlow(
            table_id=msg.table_id,
            priority=msg.priority,
            cookie=msg.cookie,
            match=_display_match(norm),
            instructions=list(msg.instructions),
            idle_timeout=msg.idle_timeout,
            hard_timeout=msg.hard_timeout,
            flags=msg.flags,
            installed_at=self.now,
            last_used=self.now,
            _norm=norm,
        )
        for i, old in enumerate(table):
            if old.priority == new.priority and old._norm == norm:
                if not msg.flags & ofp.OFPFF_RESET_COUNTS:
                    new.packet_count, new.byte_count = old.packet_count, old.byte_count
                new._seq = old._seq  # keep its place for equal-priority tie-breaks
                table[i] = new
                return
        self._seq += 1
        new._seq = self._seq
        table.append(new)

    # ------------------------------------------------------------------ lookup

    def _best(self, table_id: int, packet: dict[str, Any], metadata: int) -> FakeFlow | None:
        best = None
        for flow in self.tables[table_id]:
            if not flow.matches_packet(packet, metadata):
                continue
            if best is None or (flow.priority, -flow._seq) > (best.priority, -best._seq):
                best = flow
        return best

    def lookup(self, packet: dict) -> list[dict]:
        """Push one packet through the pipeline; return the outputs in order.

        Each output is a copy of the packet dict as modified at that point, plus ``out_port``
        (and ``table_id``/``cookie`` for ``OFPP_CONTROLLER`` outputs).
        """
        pkt = {name: _canonical(name, value) for name, value in packet.items()}
        metadata = int(pkt.pop("metadata", 0))
        outputs: list[dict] = []
        action_set: dict[Any, Any] = {}
        table_id = 0
        flow = None
        try:
            while True:
                flow = self._best(table_id, pkt, metadata)
                if flow is None:
                    return outputs  # table miss: drop, action set discarded
                flow.packet_count += 1
                flow.byte_count += int(packet.get("len", 0))
                flow.last_used = self.now
                next_table = None
                for inst in _ordered(flow.instructions):
                    if isinstance(inst, parser.OFPInstructionActions):
                        if inst.type == ofp.OFPIT_APPLY_ACTIONS:
                            for action in inst.actions:
                                self._execute(action, pkt, flow, outputs)
                        elif inst.type == ofp.OFPIT_CLEAR_ACTIONS:
                            action_set.clear()
                        elif inst.type == ofp.OFPIT_WRITE_ACTIONS:
                            for action in inst.actions:
                                action_set[_action_set_key(action)] = action
                    elif isinstance(inst, parser.OFPInstructionWriteMetadata):
                        mask = inst.metadata_mask
                        metadata = (metadata & ~mask) | (inst.metadata & mask)
                    elif isinstance(inst, parser.OFPInstructionGotoTable):
                        next_table = inst.table_id
                if next_table is None:
                    break
                if next_table <= table_id or next_table >= self.num_tables:
                    raise ValueError(f"bad goto_table:{next_table} from table {table_id}")
                table_id = next_table
            for key in sorted(action_set, key=lambda k: _ACTION_SET_ORDER[k[0]]):
                self._execute(action_set[key], pkt, flow, outputs)
        except _PacketDied:
            pass
        return outputs

    def _execute(self, action: Any, pkt: dict[str, Any], flow: FakeFlow, outputs: list) -> None:
        if isinstance(action, parser.OFPActionOutput):
            port = action.port
            in_port = pkt.get("in_port")
            if port == ofp.OFPP_IN_PORT:
                port = in_port
            elif port == in_port:
                return  # OVS silently drops output to the ingress port
            out = copy.deepcopy(pkt)
            out["out_port"] = port
            if port == ofp.OFPP_CONTROLLER:
                out["table_id"] = flow.table_id
                out["cookie"] = flow.cookie
            outputs.append(out)
        elif isinstance(action, parser.OFPActionSetField):
            pkt[action.key] = _canonical(action.key, action.value)
        elif isinstance(action, parser.OFPActionDecNwTtl):
            if "ip_ttl" in pkt:
                if pkt["ip_ttl"] <= 1:
                    raise _PacketDied
                pkt["ip_ttl"] -= 1
        elif isinstance(action, parser.OFPActionGroup):
            raise NotImplementedError("FakeOFTable does not implement groups")
        else:
            raise NotImplementedError(f"FakeOFTable does not implement {type(action).__name__}")

    # ------------------------------------------------------------------ inspection / time

    def flows(self, table_id: int | None = None) -> list[FakeFlow]:
        """Installed flows sorted by (table, -priority), install order within a priority."""
        selected = [
            f for table in self.tables for f in table if table_id is None or f.table_id == table_id
        ]
        return sorted(selected, key=lambda f: (f.table_id, -f.priority, f._seq))

    def flow_count(self) -> int:
        return sum(len(table) for table in self.tables)

    def advance(self, seconds: float) -> list[FakeFlow]:
        """Advance the fake clock; remove and return flows whose idle/hard timeout expired."""
        self.now += seconds
        removed = []
        for flow in self.flows():
            hard = flow.hard_timeout and self.now - flow.installed_at >= flow.hard_timeout
            idle = flow.idle_timeout and self.now - flow.last_used >= flow.idle_timeout
            if hard or idle:
                self.tables[flow.table_id].remove(flow)
                removed.append(flow)
        return removed

    def __str__(self) -> str:
        return "\n".join(str(flow) for flow in self.flows())


def _action_set_key(action: Any) -> tuple[str, str]:
    if isinstance(action, parser.OFPActionSetField):
        return ("set_field", action.key)
    if isinstance(action, parser.OFPActionDecNwTtl):
        return ("dec_nw_ttl", "")
    if isinstance(action, parser.OFPActionGroup):
        return ("group", "")
    if isinstance(action, parser.OFPActionOutput):
        return ("output", "")
    raise NotImplementedError(f"FakeOFTable does not implement {type(action).__name__} in write")
