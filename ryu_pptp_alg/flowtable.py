"""The switch's flows of ours against the flows the records call for (warm reconnect).

On connect the gateway reads every flow carrying our cookie tag (a flow-stats
request with the cookie mask) and ``diff`` says what to do: keep a flow that is
exactly as wanted (same table, priority, match, cookie, instructions and idle
timeout), add what is missing or different, delete strictly (by priority, match and
exact cookie) what nothing wants. A live call's flows are therefore neither
deleted nor re-added, and flows of other applications are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

MatchItems = tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class FlowEntry:
    """One flow as the switch reports it (or as a flow-mod would install it)."""

    table_id: int
    priority: int
    cookie: int
    match: MatchItems
    instructions: Any  # ``instructions_key``: compares parsed and built alike
    idle_timeout: int = 0
    packets: int = 0
    bytes: int = 0

    @property
    def identity(self) -> tuple[int, int, MatchItems]:
        """What OpenFlow tells flows apart by in a table."""
        return (self.table_id, self.priority, self.match)


def match_items(match: parser.OFPMatch) -> MatchItems:
    return tuple(sorted((name, _plain(value)) for name, value in match.items()))


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def instructions_key(instructions: list[Any]) -> tuple[Any, ...]:
    """What instructions do, read from Ryu's objects (built or parsed alike: the same
    attributes), a few times faster than encoding them."""
    return tuple((inst.type, getattr(inst, "table_id", None),
                  tuple((a.type, getattr(a, "key", None), getattr(a, "value", None),
                         getattr(a, "port", None), getattr(a, "max_len", None))
                        for a in getattr(inst, "actions", ())))
                 for inst in instructions)


def entry_of(msg: Any) -> FlowEntry:
    """A flow-mod's flow, or a flow-stats entry's (``OFPFlowStats``)."""
    packets = getattr(msg, "packet_count", 0)
    octets = getattr(msg, "byte_count", 0)
    return FlowEntry(msg.table_id, msg.priority, msg.cookie, match_items(msg.match),
                     instructions_key(msg.instructions), msg.idle_timeout, packets, octets)


def delete_strict(entry: FlowEntry) -> parser.OFPFlowMod:
    return parser.OFPFlowMod(None, table_id=entry.table_id, command=ofp.OFPFC_DELETE_STRICT,
                             priority=entry.priority, cookie=entry.cookie,
                             cookie_mask=0xFFFFFFFFFFFFFFFF, out_port=ofp.OFPP_ANY,
                             out_group=ofp.OFPG_ANY,
                             match=parser.OFPMatch(**dict(entry.match)))


@dataclass(frozen=True, slots=True)
class FlowDiff:
    adds: list[Any]
    deletes: list[Any]
    kept: int


def diff(wanted: list[Any], present: list[FlowEntry]) -> FlowDiff:
    """Adds (flow-mods from ``wanted``) and strict deletes that make ``present`` (flows of
    ours in the switch) what ``wanted`` says; adds come first so that no packet falls
    through while a flow is replaced."""
    by_identity = {}
    for msg in wanted:
        entry = entry_of(msg)
        by_identity[entry.identity] = (entry, msg)
    adds = []
    deletes = []
    kept = 0
    seen = set()
    for entry in present:
        want = by_identity.get(entry.identity)
        if want is not None and _same(want[0], entry) and entry.identity not in seen:
            kept += 1
            seen.add(entry.identity)
        elif want is None or want[0].cookie != entry.cookie:
            deletes.append(delete_strict(entry))
        # Same identity and cookie but other actions: the add below replaces it.
    for identity, (_, msg) in by_identity.items():
        if identity not in seen:
            adds.append(msg)
    return FlowDiff(adds, deletes, kept)


def _same(want: FlowEntry, have: FlowEntry) -> bool:
    return (want.cookie, want.instructions, want.idle_timeout) \
        == (have.cookie, have.instructions, have.idle_timeout)
