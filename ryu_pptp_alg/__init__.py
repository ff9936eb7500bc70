"""PPTP passthrough ALG for OpenFlow NAT gateways, as a Ryu application."""

__version__ = "0.1.0"
