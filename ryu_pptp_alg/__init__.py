"""PPTP passthrough ALG for OpenFlow NAT gateways, as a Ryu application."""

from ryu_pptp_alg import compiled  # first: decides where the hot-path modules load from

__version__ = "0.1.0"
__all__ = ["compiled"]
