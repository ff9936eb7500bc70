"""The barrier fence: the only code that knows whether the switch needs barriers.

A call's peers may send GRE as soon as they see its reply, so the reply must not
leave the switch before the call's flows are in it. On a switch that may reorder
messages between barriers (``switch_profile: openflow``), the server's segments that
set up a call wait behind a barrier until the switch answers it; on Open vSwitch,
which runs each message to completion in order, being sent after the flows is enough.
What waits here is transient: a restart loses it, and TCP retransmits it.
"""

from __future__ import annotations

from typing import Any

from ryu.ofproto.ofproto_v1_3 import OFPFC_ADD
from ryu.ofproto.ofproto_v1_3_parser import OFPBarrierRequest, OFPFlowMod

from ryu_pptp_alg import ofmsg


class Fence:
    def __init__(self, fenced: bool) -> None:
        self.fenced = fenced
        self.held: dict[int, int] = {}  # barrier xid -> Conn.id held for it
        self._waiting: dict[int, list[Any]] = {}  # Conn.id -> its packet-outs, in order
        self._next_xid = 1

    def order(self, flow_msgs: list[Any]) -> list[Any]:
        """Flow changes that a control packet sent next must not overtake."""
        return [*flow_msgs, ofmsg.barrier()] if flow_msgs and self.fenced else flow_msgs

    def after_flows(self, conn_id: int, flow_msgs: list[Any], hold: bool,
                    out: list[Any]) -> list[Any]:
        """``out`` (a connection's packets) behind ``flow_msgs``; when ``hold``, they wait
        for the switch to confirm the flows. Later packets of a held connection wait
        behind the held ones, so its stream stays in order."""
        msgs = list(flow_msgs)
        waiting = self._waiting.get(conn_id)
        if hold and waiting is None and self.fenced:
            xid = self.xid()
            barrier = ofmsg.barrier()
            barrier.set_xid(xid)
            waiting = self._waiting[conn_id] = []
            self.held[xid] = conn_id
            msgs.append(barrier)
        if waiting is not None:
            waiting.extend(out)
        else:
            msgs.extend(out)
        return msgs

    def sequence(self, msgs: list[Any]) -> list[Any]:
        """A switch that may reorder between barriers gets one between a flow addition and
        a later deletion in one batch (a call set up and torn down by one segment, say):
        else the deletion could run first and the addition outlive its call."""
        if not self.fenced or len(msgs) < 2:
            return msgs
        out: list[Any] = []
        added = False
        for msg in msgs:
            command = getattr(msg, "command", None) if type(msg) is OFPFlowMod else None
            if command == OFPFC_ADD:
                added = True
            elif command is not None and added:
                out.append(ofmsg.barrier())
                added = False
            elif type(msg) is OFPBarrierRequest:
                added = False
            out.append(msg)
        return out

    def barrier_reply(self, xid: int) -> list[Any]:
        conn_id = self.held.pop(xid, None)
        return [] if conn_id is None else self._waiting.pop(conn_id, [])

    def release_all(self) -> list[Any]:
        """Barriers sent to an old switch connection will never be answered."""
        msgs = [msg for out in self._waiting.values() for msg in out]
        self.held.clear()
        self._waiting.clear()
        return msgs

    def xid(self) -> int:
        """Transaction ids of our own requests: the high half, apart from Ryu's."""
        xid = self._next_xid
        self._next_xid = self._next_xid % 0x7FFFFFFF + 1
        return 0x80000000 | xid
