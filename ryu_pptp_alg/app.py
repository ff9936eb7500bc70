"""Ryu application: the thin glue between Ryu events and the pure ALG logic.

Run it with ``ryu-pptp-alg --pptp-config gateways.yaml`` (``ryu-manager`` with
the Python 3.11 shim applied), or with stock ``ryu-manager`` where Ryu runs
unpatched (see ``ryu_pptp_alg.flags`` for passing the option there).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import time
from typing import Any

from ryu_pptp_alg import compat

compat.apply()

# Ryu must import after the shim: ryu.base.app_manager imports ryu.app.wsgi.
from ryu import cfg  # noqa: E402
from ryu.app.wsgi import WSGIApplication  # noqa: E402
from ryu.base import app_manager  # noqa: E402
from ryu.controller import ofp_event  # noqa: E402
from ryu.controller.handler import (  # noqa: E402
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from ryu.lib import hub  # noqa: E402
from ryu.ofproto import ofproto_v1_3, ofproto_v1_3_parser  # noqa: E402

from ryu_pptp_alg import compiled, flags, ofwire  # noqa: E402
from ryu_pptp_alg.alg import Alg  # noqa: E402
from ryu_pptp_alg.config import AlgConfig, ConfigError, StateBackend, load_config  # noqa: E402
from ryu_pptp_alg.election import Election, instance_name  # noqa: E402
from ryu_pptp_alg.etcdkv import EtcdKeyValue, call_timeouts  # noqa: E402
from ryu_pptp_alg.flowtable import entry_of  # noqa: E402
from ryu_pptp_alg.ha import HighAvailability  # noqa: E402
from ryu_pptp_alg.metrics import METRICS_KEY, Metrics, MetricsController  # noqa: E402
from ryu_pptp_alg.records import SCHEMA  # noqa: E402
from ryu_pptp_alg.rest import ALG_KEY, SEND_KEY, PptpRestController  # noqa: E402
from ryu_pptp_alg.store import StateStore, StoreError, open_store  # noqa: E402
from ryu_pptp_alg.ui import PptpUiController  # noqa: E402

LOG = logging.getLogger("ryu_pptp_alg.app")
TICK_SECONDS = 1.0
# The election ticks this often per lease TTL: a free key is seen (and taken) within
# ttl / 10 s of etcd expiring a dead master's lease.
ELECTION_TICKS_PER_TTL = 10
# Messages sent, counted per gateway by class (ryu_pptp_alg/counters.py has the keys).
SENT_COUNTERS: dict[type, str] = {
    ofproto_v1_3_parser.OFPFlowMod: "flow_mods_sent",
    ofproto_v1_3_parser.OFPPacketOut: "packet_outs_sent",
    ofproto_v1_3_parser.OFPBarrierRequest: "barriers_sent"}
OTHER_SENT = "other_messages_sent"


def load_configured() -> AlgConfig:
    """The gateway configuration named by --pptp-config; SystemExit if unusable."""
    flags.register()
    path = cfg.CONF.pptp_config
    if not path:
        message = ("ryu-pptp-alg: no gateway configuration: pass --pptp-config PATH "
                   "(or set RYU_PPTP_CONFIG)")
        LOG.error(message)
        raise SystemExit(message)
    try:
        return load_config(path)
    except ConfigError as err:
        message = f"ryu-pptp-alg: invalid configuration {path}: {err}"
        LOG.error(message)
        raise SystemExit(message) from None


def open_configured_store(config: AlgConfig) -> StateStore:
    """The state store the configuration names; SystemExit if it cannot be used."""
    try:
        return open_store(config.state, SCHEMA, logging.getLogger("ryu_pptp_alg.store"))
    except StoreError as err:
        message = f"ryu-pptp-alg: state.path: {err}"
        LOG.error(message)
        raise SystemExit(message) from None


def high_availability(config: AlgConfig, alg: Alg, store: StateStore,
                      send: Any, is_connected: Any) -> HighAvailability:
    """With ``state.backend: etcd``: this instance's election over the group's etcd."""
    state = config.state
    of_port = int(getattr(cfg.CONF, "ofp_tcp_listen_port", 0) or 6653)
    name = instance_name(config.ha.instance, socket.gethostname(), of_port)
    kv = EtcdKeyValue(state.endpoints, *call_timeouts(state.lease_ttl, len(state.endpoints)))
    election = Election(kv, name, state.prefix, state.lease_ttl,
                        [g.dpid for g in config.gateways], settle=config.ha.rebalance_after)
    LOG.info("high availability: instance %s, etcd %s, prefix %s, lease %d s", name,
             ",".join(state.endpoints), state.prefix, state.lease_ttl)
    return HighAvailability(election, alg, store, send, is_connected)  # type: ignore[arg-type]


def freeze_startup_objects() -> None:
    """Keep what is loaded by now (Ryu, its OpenFlow parsers, the configuration) out of
    the garbage collector's full passes. It lives as long as the process anyway, and
    walking it again on every full collection stopped the controller for tens of
    milliseconds even with few calls up (``bench/heap.py`` measures the pause both
    ways)."""
    gc.collect()
    gc.freeze()


class PptpAlgApp(app_manager.RyuApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = load_configured()
        store = open_configured_store(config)
        elected = config.state.backend == StateBackend.ETCD
        # Elected: no switch is ours until the election says so (its records read then).
        self.alg = Alg(config, store=store, restore=not elected)
        self.alg.store_lock = hub.BoundedSemaphore(1)
        # etcd: messages wait in the outbox for the group commit of the changes they depend
        # on (_committer); a write per event would cap set-ups at a few dozen per second.
        self.alg.group_commit = elected
        self._outbox: list[tuple[Any, list[Any]]] = []
        self._outbox_ready = hub.Event()
        self.datapaths: dict[int, Any] = {}
        self.ha = high_availability(config, self.alg, store, self.send_to,
                                    self.datapaths.__contains__) if elected else None
        self._sending = 0  # greenlets of ours inside Datapath.send (it blocks when full)
        self._ofp_brick: Any = None
        self._queue_for_observers: Any = None
        self._inline_handlers = {ofp_event.EventOFPPacketIn: self.packet_in,
                                 ofp_event.EventOFPBarrierReply: self.barrier_reply}
        kwargs["wsgi"].register(PptpRestController,
                                {ALG_KEY: self.alg, SEND_KEY: self.send_to})
        kwargs["wsgi"].register(PptpUiController)  # /pptp/ui/: the live web page
        self.metrics = Metrics(self.alg)
        kwargs["wsgi"].register(MetricsController, {METRICS_KEY: self.metrics})
        LOG.info("packet-in path: %s (%s)", compiled.BUILD, "ryu_pptp_alg/compiled.py")
        for gateway in self.alg.config.gateways:
            LOG.info("gateway %s: inside ports %s, outside ports %s, public %s",
                     gateway.label, list(gateway.inside_ports), list(gateway.outside_ports),
                     ", ".join(map(str, gateway.public_addresses)))
        self.threads.append(hub.spawn(self._ticker))
        if self.ha is not None:
            self.threads.append(hub.spawn(self._election_ticker))
        if self.alg.group_commit:
            self.threads.append(hub.spawn(self._committer))
        ofwire.use_fast_packet_in_parser()
        signal.signal(signal.SIGTERM, self._terminate)
        freeze_startup_objects()

    def _terminate(self, signum: int, _frame: Any) -> None:
        """SIGTERM: leave the election (the others take our switches at once, not a lease
        later), compact and sync the state store, then die of the signal as before. Python
        runs this handler in whichever greenlet is current, often eventlet's hub, where
        nothing may block (etcd's requests would fail): the work goes to a greenlet."""
        hub.spawn(self._die, signum)

    def _die(self, signum: int) -> None:
        self._close()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def _close(self) -> None:
        if self.ha is not None:
            try:  # the others take our switches over at their next tick
                self.ha.close()
            except Exception:
                LOG.exception("leaving the election failed")
        try:
            self.alg.close()
        except Exception:
            LOG.exception("closing the state store failed")

    def start(self) -> Any:
        thread = super().start()
        self._ofp_brick = app_manager.lookup_service_brick("ofp_event")
        self._queue_for_observers = self._ofp_brick.send_event_to_observers
        self._ofp_brick.send_event_to_observers = self._observe
        return thread

    def stop(self) -> None:
        if self._ofp_brick is not None:
            self._ofp_brick.send_event_to_observers = self._queue_for_observers
            self._ofp_brick = None
        self._close()
        super().stop()

    def _observe(self, ev: Any, state: Any = None) -> None:
        """Where Ryu's receive loop hands each switch message to the apps observing it.

        Packet-ins and barrier replies (the messages of every call set-up) go through the
        ALG right here, in the receive loop, when that cannot be told from Ryu's way of
        queueing the event for this app's event loop: this app alone observes them, every
        event queued before has been handled (the queue is empty), and no earlier batch of
        messages is still waiting to be sent (``Datapath.send`` blocks when its queue is
        full). Anything else is queued as always. It saves a queue, two greenlet switches
        and a handler lookup per message, about 5% of a set-up's CPU."""
        handler = self._inline_handlers.get(type(ev))
        if handler is not None and state == MAIN_DISPATCHER and not self._sending \
                and not self.events.qsize() \
                and self._ofp_brick.get_observers(ev, state) == [self.name]:
            gateway = self.alg.gateways.get(ev.msg.datapath.id)
            if gateway is not None:
                gateway.counters["handled_in_receive_loop"] += 1
            try:
                handler(ev)
            except Exception:  # as Ryu's event loop does: log it, keep the connection
                LOG.exception("%s: handling %s failed", self.name, type(ev).__name__)
        else:
            self._queue_for_observers(ev, state)

    def _election_ticker(self) -> None:
        """The election's own tick: its lease is kept alive every ttl / 3 s."""
        assert self.ha is not None
        interval = min(TICK_SECONDS, self.ha.election.ttl / ELECTION_TICKS_PER_TTL)
        while True:
            hub.sleep(interval)
            try:
                self.ha.tick()
            except Exception:
                LOG.exception("election tick failed")

    def _ticker(self) -> None:
        while True:
            hub.sleep(TICK_SECONDS)
            for dpid, datapath in list(self.datapaths.items()):
                if not self.alg.is_master(dpid):
                    continue
                try:
                    self.send(datapath, self.alg.tick(dpid))
                except Exception:  # a bug must not stop timeouts for every switch
                    LOG.exception("tick failed for dpid %#x", dpid)
            try:
                self.alg.housekeeping()
            except Exception:
                LOG.exception("state store housekeeping failed")

    def send_to(self, dpid: int, msgs: list[Any]) -> None:
        """Send to a switch by dpid; a switch that is not connected gets its flows
        rebuilt from the session table when it connects."""
        datapath = self.datapaths.get(dpid)
        if datapath is not None:
            self.send(datapath, msgs)

    def send(self, datapath: Any, msgs: list[Any]) -> None:
        """Send ``msgs`` once the changes they depend on are stored: now, or with group
        commit after the next commit."""
        if not msgs:
            return
        if self.alg.group_commit:
            self._outbox.append((datapath, msgs))
            self._outbox_ready.set()
            return
        self._transmit(datapath, msgs)

    def _committer(self) -> None:
        """Group commit: write every change made since the last round in one go, then send
        the messages queued before it, in order. Events go on meanwhile; what they queue
        waits for the next round."""
        while True:
            self._outbox_ready.wait()
            self._outbox_ready.clear()
            batch, self._outbox = self._outbox, []
            try:
                refused = self.alg.commit()
            except Exception:  # a bug must not stop every switch's messages
                LOG.exception("group commit failed")
                refused = set()
            for datapath, msgs in batch:
                if datapath.id in refused:
                    continue  # deposed: nothing that depended on the refused write goes
                try:
                    self._transmit(datapath, msgs)
                except Exception:
                    LOG.exception("sending to dpid %#x failed", datapath.id or 0)

    def _transmit(self, datapath: Any, msgs: list[Any]) -> None:
        """Encode the batch in order and hand it to the socket in one write."""
        buffers = []
        counters = self.alg.counters_of(datapath.id)
        for msg in msgs:
            if msg.xid is None:
                datapath.set_xid(msg)
            buffers.append(ofwire.encode(msg, datapath))
            counters[SENT_COUNTERS.get(type(msg), OTHER_SENT)] += 1
        self._sending += 1
        try:
            datapath.send(b"".join(buffers))
        finally:
            self._sending -= 1

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features(self, ev: Any) -> None:
        datapath = ev.msg.datapath
        self.datapaths[datapath.id] = datapath
        if self.ha is not None:  # a master's role request goes before its flows
            self.ha.connected(datapath.id)
        self.send(datapath, self.alg.datapath_up(datapath.id))

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def state_change(self, ev: Any) -> None:
        datapath = ev.datapath
        dpid = datapath.id
        if dpid is not None and self.datapaths.get(dpid) is datapath:
            del self.datapaths[dpid]
            self.alg.datapath_down(dpid)
            if self.ha is not None:
                self.ha.disconnected(dpid)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in(self, ev: Any) -> None:
        msg = ev.msg
        datapath = msg.datapath
        in_port = msg.match.get("in_port", 0)
        started = time.perf_counter()
        try:
            msgs = self.alg.packet_in(datapath.id, in_port, msg.data, msg.cookie)
        except Exception:  # never let one packet take the controller down
            LOG.exception("packet-in from dpid %#x port %d failed", datapath.id, in_port)
            return
        self.send(datapath, msgs)
        timing = self.metrics.packet_in_by_dpid.get(datapath.id)
        if timing is not None:
            timing.observe(time.perf_counter() - started)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def barrier_reply(self, ev: Any) -> None:
        msg = ev.msg
        self.send(msg.datapath, self.alg.barrier_reply(msg.datapath.id, msg.xid))

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def flow_removed(self, ev: Any) -> None:
        msg = ev.msg
        self.send(msg.datapath, self.alg.flow_removed(msg.datapath.id, msg.cookie, msg.reason,
                                                      msg.packet_count, msg.byte_count))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats_reply(self, ev: Any) -> None:
        msg = ev.msg
        more = bool(msg.flags & ofproto_v1_3.OFPMPF_REPLY_MORE)
        self.send(msg.datapath, self.alg.flow_stats(
            msg.datapath.id, [entry_of(stat) for stat in msg.body], msg.xid, more))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error_msg(self, ev: Any) -> None:
        msg = ev.msg
        datapath = msg.datapath
        LOG.error("dpid %#x reported OpenFlow error type %d code %d (xid %#x)",
                  datapath.id or 0, msg.type, msg.code, msg.xid or 0)
        if datapath.id is not None:
            if self.ha is not None:  # refused as stale or as from a SLAVE: step down
                self.ha.switch_error(datapath.id, msg.type, msg.code)
            self.send(datapath, self.alg.error(datapath.id, msg.xid, msg.type, msg.code))
