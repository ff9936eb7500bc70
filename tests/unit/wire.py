"""Byte-equality of ofwire.encode and Ryu's serialisation, for any message."""

from __future__ import annotations

import copy
from typing import Any

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto.ofproto_protocol import ProtocolDesc

from ryu_pptp_alg import ofwire

PROTOCOL = ProtocolDesc(ofp.OFP_VERSION)


def ryu_bytes(msg: Any, xid: int) -> bytes:
    """Ryu's serialisation of a copy of ``msg`` (the original keeps its xid and datapath)."""
    clone = copy.copy(msg)
    clone.datapath = PROTOCOL
    clone.xid = xid
    return ofwire.ryu_encode(clone)


def ours(msg: Any, xid: int) -> bytes:
    clone = copy.copy(msg)
    clone.xid = xid
    return ofwire.encode(clone, PROTOCOL)


def assert_same_wire(msg: Any, xid: int = 0x1234) -> None:
    assert ours(msg, xid) == ryu_bytes(msg, xid), msg
