"""Public addresses and ports for outbound control connections.

A client keeps one public address per server. A new one gets a pool address that no
other client uses towards that server (addresses that forward inbound PPTP last), so
its GRE pair stays unambiguous and in the switch; only when none is left do clients
share the default address (and the controller tells their GRE apart). Who uses what
is read from the state's indexes, which the records rebuild.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from ryu_pptp_alg.codec import pptp
from ryu_pptp_alg.state import GatewayState

FIRST_DYNAMIC_PORT = 1024


class AddressPool:
    def __init__(self, state: GatewayState, addresses: tuple[IPv4Address, ...],
                 ports: tuple[int, int] = (FIRST_DYNAMIC_PORT, 65535)) -> None:
        self.state = state
        self.addresses = addresses
        self.first_port, self.last_port = ports  # where a client's own port is taken
        self.order: tuple[IPv4Address, ...] = addresses
        self.forwarded: frozenset[IPv4Address] = frozenset()
        # Where the last search for a free port ended, per (server, port, public): only
        # saves time, so it is not state (a restart starts the searches afresh).
        self._port_cursor: dict[tuple[IPv4Address, int, IPv4Address], int] = {}

    def set_forwarded(self, forwarded: frozenset[IPv4Address]) -> None:
        """Addresses that forward inbound PPTP are chosen last, and keep port 1723."""
        self.forwarded = forwarded
        self.order = tuple(sorted(self.addresses, key=lambda a: a in forwarded))

    def choose_public(self, client: IPv4Address, server: IPv4Address) -> IPv4Address:
        idx = self.state.idx
        known = idx.client_public.get((client, server))
        if known is not None:
            return known[0]
        for address in self.order:
            if (server, address) not in idx.key_users:
                return address
        return self.addresses[0]

    def choose_port(self, public: IPv4Address, port: int, server: IPv4Address,
                    server_port: int) -> int | None:
        """The client's own source port unless another connection holds it; then the next
        free one after a per-(server, public address) cursor. None: every port is taken."""
        taken = self.state.idx.by_outside
        reserved = public in self.forwarded

        def free(candidate: int) -> bool:
            return not (reserved and candidate == pptp.PPTP_PORT) \
                and (server, server_port, public, candidate) not in taken
        if free(port):
            return port
        cursor_key = (server, server_port, public)
        first, last = self.first_port, self.last_port
        candidate = self._port_cursor.get(cursor_key, first)
        for _ in range(last - first + 1):
            following = candidate + 1 if candidate < last else first
            if free(candidate):
                self._port_cursor[cursor_key] = following
                return candidate
            candidate = following
        return None
