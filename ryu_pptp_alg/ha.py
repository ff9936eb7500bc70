"""High availability: the election's actions carried out on the Alg, the store and the
switches (plain Python: the Ryu app calls it from its handlers and a greenlet).

What each action does is election.py's docstring: ``BecomeMaster`` guards the store's
writes of that switch, reads its records, sends MASTER and reconciles the flows warmly;
``BecomeSlave`` drops the switch's state here and sends SLAVE; ``RequestRole`` sends the
role request alone. A store write refused as from a deposed master steps down at once
(the Alg sends nothing that depended on it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from ryu_pptp_alg.alg import Alg
from ryu_pptp_alg.election import (
    Action,
    BecomeMaster,
    BecomeSlave,
    Election,
    Role,
    role_messages,
)
from ryu_pptp_alg.store import Records, StoreError

LOG = logging.getLogger("ryu_pptp_alg.ha")


class GuardedStore(Protocol):
    def set_guard(self, dpid: int, key: str, lease_id: int) -> None: ...

    def set_reachable(self, reachable: bool, why: str = "") -> None: ...

    def clear_guard(self, dpid: int) -> None: ...

    def load_gateway(self, dpid: int) -> Records: ...

    def health(self) -> dict[str, Any]: ...


class HighAvailability:
    """One instance's part in its group: ``send(dpid, msgs)`` sends to a switch if it is
    connected (``connected(dpid)`` tells whether)."""

    def __init__(self, election: Election, alg: Alg, store: GuardedStore,
                 send: Callable[[int, list[Any]], None],
                 is_connected: Callable[[int], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.election = election
        self.alg = alg
        self.store = store
        self.send = send
        self.is_connected = is_connected
        self.clock = clock
        alg.on_not_master = self.not_master
        alg.ha_status = self.status
        alg.ha_health = self.health

    # --- what the app reports ---------------------------------------------------------------

    def tick(self) -> None:
        self.apply(self.election.tick(self.clock()))
        # etcd as the election found it. Unreachable: the store's writes fail at once
        # (not after a timeout on the packet-in path; they are retried). Unreachable for
        # a whole lease (unconfirmed): new set-ups are refused until it answers again.
        error = self.election.error
        self.store.set_reachable(not error, error)
        confirmed = self.election.lease_confirmed(self.clock())
        self.alg.set_store_down(not confirmed, error or "no etcd lease yet")

    def connected(self, dpid: int) -> None:
        """Before ``Alg.datapath_up``: a master's role request goes first."""
        self.apply(self.election.connected(dpid, self.clock()))

    def disconnected(self, dpid: int) -> None:
        self.election.disconnected(dpid, self.clock())

    def switch_error(self, dpid: int, err_type: int, code: int) -> None:
        self.apply(self.election.switch_error(dpid, err_type, code, self.clock()))

    def not_master(self, dpid: int) -> None:
        """The store refused a write: another instance holds the switch."""
        self.apply(self.election.step_down(dpid, self.clock()))

    def close(self) -> None:
        self.apply(self.election.close())

    # --- the actions --------------------------------------------------------------------------

    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            try:
                if isinstance(action, BecomeMaster):
                    self._become_master(action)
                elif isinstance(action, BecomeSlave):
                    self._become_slave(action.dpid, action.generation_id)
                else:
                    self._request(action.dpid, action.role, action.generation_id)
            except Exception:  # one switch's trouble must not stop the others'
                LOG.exception("high availability: %s failed", action)

    def _request(self, dpid: int, role: Role, generation_id: int) -> None:
        if self.is_connected(dpid):
            counters = self.alg.counters_of(dpid)
            counters["ha_role_requests"] += 1
            self.send(dpid, role_messages(role, generation_id))

    def _become_master(self, action: BecomeMaster) -> None:
        dpid, guard = action.dpid, action.guard
        self.store.set_guard(dpid, guard.key, guard.lease)
        try:
            records = self.store.load_gateway(dpid)
        except StoreError as err:
            LOG.error("dpid %#x: elected master (generation %d) but its records cannot "
                      "be read (%s): standing down until they can", dpid,
                      action.generation_id, err)
            self.store.clear_guard(dpid)
            self.apply(self.election.step_down(dpid, self.clock()))
            return
        gateway = self.alg.take_over(dpid, records, f"etcd, master generation "
                                                    f"{action.generation_id}")
        LOG.warning("dpid %#x: master now (generation %d): %d control connections, "
                    "%d GRE pairs read from the store", dpid, action.generation_id,
                    len(gateway.state.conns), len(gateway.state.pairs))
        if self.is_connected(dpid):
            self._request(dpid, Role.MASTER, action.generation_id)
            self.send(dpid, self.alg.datapath_up(dpid))

    def _become_slave(self, dpid: int, generation_id: int) -> None:
        was_master = dpid in (self.alg.mastered or ())
        self.alg.release(dpid)
        self.store.clear_guard(dpid)
        if was_master:
            LOG.warning("dpid %#x: no longer master; its state is dropped here", dpid)
        self._request(dpid, Role.SLAVE, generation_id)

    # --- status -----------------------------------------------------------------------------

    def status(self, dpid: int) -> dict[str, Any]:
        return self.election.status(dpid, self.clock())

    def health(self) -> dict[str, Any]:
        return {**self.election.health(self.clock()), "store": self.store.health()}


__all__ = ["GuardedStore", "HighAvailability"]
