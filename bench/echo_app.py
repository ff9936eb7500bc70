"""A Ryu app that does nothing but answer each packet-in with one packet-out.

``bench/controlplane.py --floor`` runs it under ``ryu-manager`` (with the shim)
to measure what Ryu and eventlet alone cost per message on this machine: the
floor under the ALG's own work. It sends the way the ALG does (``ofwire``, one
socket write per batch).
"""

from __future__ import annotations

from typing import Any

from ryu_pptp_alg import compat

compat.apply()

from ryu.base import app_manager  # noqa: E402
from ryu.controller import ofp_event  # noqa: E402
from ryu.controller.handler import MAIN_DISPATCHER, set_ev_cls  # noqa: E402
from ryu.ofproto import ofproto_v1_3  # noqa: E402

from ryu_pptp_alg import ofmsg, ofwire  # noqa: E402


class EchoApp(app_manager.RyuApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev: Any) -> None:
        msg = ev.msg
        datapath = msg.datapath
        out = ofmsg.packet_out(msg.data, [ofmsg.output(msg.match.get("in_port", 0))])
        datapath.set_xid(out)
        datapath.send(ofwire.encode(out, datapath))
