"""The counter catalogue: every counter the controller keeps, stated once.

The code counts under a plain key (``gateway.counters["gre_no_call"] += 1``); this
catalogue says what each key means and which Prometheus metric it becomes: a family
(``pptp_<family>_total``) and, where several keys share a family, the label value that
tells them apart (drops by ``reason``, budget refusals by ``class``...). Both the REST
API (``/pptp/gateways``) and ``/metrics`` read it; a test checks that every key the code
counts under is here, and that nothing here is counted nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class CounterSpec:
    family: str  # the metric: pptp_<family>_total
    help: str  # the family's help text when the family is the key's own; else the value's
    label: tuple[str, str] | None = None  # (label name, value) within a shared family


def _own(help_text: str, family: str = "") -> CounterSpec:
    return CounterSpec(family, help_text)


# Shared families: name -> (label name, help text of the family).
FAMILIES: Final[dict[str, tuple[str, str]]] = {
    "drops": ("reason", "Packets the controller dropped, by reason."),
    "refusals": ("reason", "New connections or calls refused by a cap, a block or a "
                           "shortage, by reason."),
    "rate_limited": ("class", "Packet-ins over their budget, dropped by the controller's "
                              "token buckets (switch profiles without meters), by budget."),
    "connection_errors": ("kind", "Errors met on control connections, by kind (also per "
                                  "connection in the session table)."),
    "switch_refusals": ("kind", "Messages the switch refused, and calls left without a "
                                "GRE path, by kind."),
    "unknown_dpid_events": ("event", "Events from a switch no gateway is configured for, "
                                     "by event."),
}


def _in(family: str, value: str, help_text: str) -> CounterSpec:
    return CounterSpec(family, help_text, (FAMILIES[family][0], value))


CATALOGUE: Final[dict[str, CounterSpec]] = {
    # What happened
    "packet_in": _own("Packet-ins handled.", "packet_ins"),
    "handled_in_receive_loop": _own("Packet-ins and barrier replies handled straight from "
                                    "Ryu's receive loop (nothing queued ahead of them)."),
    "connects": _own("Times the switch connected."),
    "control_messages": _own("PPTP control messages parsed."),
    "control_connections_outbound": _own("Control connections opened from inside."),
    "control_connections_inbound": _own("Control connections opened through a port "
                                        "forward."),
    "calls_requested": _own("Calls requested (Outgoing-Call-Request)."),
    "calls_established": _own("Calls established."),
    "calls_closed": _own("Calls ended."),
    "call_ids_translated": _own("Call IDs translated (a clash through one public address)."),
    "gre_via_controller": _own("Inward GRE packets the controller forwarded (slow path)."),
    "gre_via_controller_bytes": _own("Bytes of inward GRE the controller forwarded."),
    "gre_outward_via_controller": _own("Outward GRE packets the controller forwarded (a "
                                       "refused outward flow)."),
    "gre_outward_via_controller_bytes": _own("Bytes of outward GRE the controller "
                                             "forwarded."),
    "flow_mods_sent": _own("Flow-mods sent to the switch."),
    "packet_outs_sent": _own("Packet-outs sent to the switch."),
    "barriers_sent": _own("Barrier requests sent to the switch."),
    "other_messages_sent": _own("Other OpenFlow messages sent to the switch (meter-mods, "
                                "statistics requests)."),
    "switch_gre_unmatched_dropped": _own("GRE of no known call the switch dropped (its "
                                         "drop flow's packet count, read every "
                                         "stats_interval)."),
    "gre_idle_timeouts": _own("GRE pairs ended by their flows' idle timeout."),
    "control_idle_timeouts": _own("Control connections ended by the idle timeout."),
    "streams_resynchronised": _own("Restored control streams picked up at a message "
                                   "start."),
    "resync_segments_skipped": _own("Segments of restored streams skipped while looking "
                                    "for a message start."),
    "connections_unrecoverable": _own("Restored control connections reset: their stream "
                                      "could not be picked up."),
    "forward_sessions_torn_down": _own("Sessions torn down with their port forward."),
    "sessions_torn_down": _own("Sessions torn down on request (REST DELETE)."),
    "calls_torn_down": _own("Calls ended on request, their connection going on (REST "
                            "DELETE)."),
    "injections_resent": _own("Messages the gateway put into a control stream to end a "
                              "call, sent again for want of an acknowledgement."),
    "arp_requests_sent": _own("ARP requests the gateway sent."),
    "arp_replies_sent": _own("ARP replies the gateway sent."),
    "neighbours_evicted": _own("Neighbours evicted from the full table (least recent)."),
    "state_store_errors": _own("Writes the state store refused."),
    # High availability (several controllers, state in etcd)
    "ha_takeovers": _own("Times this controller became the switch's master (its records "
                         "read from etcd)."),
    "ha_releases": _own("Times this controller stopped being the switch's master (its "
                        "records dropped here)."),
    "ha_writes_refused": _own("Writes etcd refused because another controller holds the "
                              "switch: this one stepped down and sent nothing."),
    "ha_events_ignored": _own("Switch events ignored because this controller is not the "
                              "switch's master."),
    "ha_role_requests": _own("Role requests (MASTER or SLAVE) sent to the switch."),
    # Drops
    "bad_frame": _in("drops", "bad_frame", "a frame that does not parse"),
    "bad_gre": _in("drops", "bad_gre", "GRE that does not parse"),
    "unexpected_ethertype": _in("drops", "unexpected_ethertype", "neither IPv4 nor ARP"),
    "unexpected_protocol": _in("drops", "unexpected_protocol", "an IP protocol not ours"),
    "ip_fragment": _in("drops", "ip_fragment", "an IP fragment"),
    "ttl_expired": _in("drops", "ttl_expired", "TTL would reach 0"),
    "tcp_unhandled": _in("drops", "tcp_unhandled", "TCP on a port on neither side"),
    "tcp_no_session": _in("drops", "tcp_no_session", "TCP of no tracked connection"),
    "tcp_hairpin": _in("drops", "tcp_hairpin", "inside to inside, or to the gateway's "
                                               "own addresses (no hairpin NAT)"),
    "spoofed_source": _in("drops", "spoofed_source", "a source address of the other side"),
    "gre_no_call": _in("drops", "gre_no_call", "GRE of no known call"),
    "gre_unexpected": _in("drops", "gre_unexpected", "GRE arriving where none is "
                                                     "expected"),
    "arp_unresolved_drops": _in("drops", "arp_unresolved", "packets whose next hop never "
                                                          "answered ARP"),
    "arp_queue_full_drops": _in("drops", "arp_queue_full", "packets over the ARP "
                                                          "queue's bound"),
    "arp_bad_opcode": _in("drops", "arp_bad_opcode", "ARP neither request nor reply"),
    "neighbour_wrong_side": _in("drops", "neighbour_wrong_side", "an address seen on "
                                                                "the wrong side"),
    # Refusals: caps, blocks, shortages
    "refused_per_host_cap": _in("refusals", "per_host_cap", "a host at its connection cap"),
    "refused_connection_cap": _in("refusals", "connection_cap", "the connection table "
                                                               "full, all answered"),
    "unanswered_early_drops": _in("refusals", "unanswered_early_drop", "an unanswered "
                                  "connection dropped to make room"),
    "unanswered_timeouts": _in("refusals", "unanswered_timeout", "a connection its "
                               "server never answered"),
    "public_ports_exhausted": _in("refusals", "public_ports_exhausted", "no free public "
                                  "port (RST to the client)"),
    "connection_key_conflict": _in("refusals", "connection_key_conflict", "a connection "
                                   "that would look like another after NAT"),
    "hosts_blocked": _in("refusals", "host_blocked", "a host's SYNs dropped in the switch "
                                                     "for a while"),
    "blocked_hosts_full": _in("refusals", "blocked_hosts_full", "a block not made: too "
                                                                "many blocked hosts"),
    "call_ids_exhausted": _in("refusals", "call_ids_exhausted", "no free call ID through a "
                                                                "public address"),
    "calls_refused_no_path": _in("refusals", "no_gre_path", "a call nothing can carry, "
                                 "answered to its client as failed"),
    "refused_store_unavailable": _in("refusals", "store_unavailable", "a new control "
                                     "connection while the state store cannot write"),
    "calls_refused_store_unavailable": _in("refusals", "call_store_unavailable", "a call "
                                           "set up while the state store cannot write, "
                                           "answered to its client as failed"),
    # Budgets (token buckets; with meters the switch drops, see the meter statistics)
    "rate_limited_arp": _in("rate_limited", "arp", "ARP for the gateway"),
    "rate_limited_new_connections": _in("rate_limited", "new_connections", "new "
                                        "connections"),
    "rate_limited_control": _in("rate_limited", "control", "tracked connections"),
    "rate_limited_gre": _in("rate_limited", "gre", "slow-path GRE"),
    "rate_limited_unmatched_gre": _in("rate_limited", "unmatched_gre", "inside GRE no flow "
                                                                       "takes"),
    # The switch
    "openflow_errors": _in("switch_refusals", "openflow_error", "OpenFlow errors"),
    "gre_flows_refused": _in("switch_refusals", "gre_flow", "GRE flows refused"),
    "meter_mods_refused": _in("switch_refusals", "meter_mod", "meter modifications "
                              "refused (one of modify-then-add at every connect)"),
    "gre_pair_conflict": _in("switch_refusals", "gre_pair_conflict", "a call whose outward "
                             "GRE the switch could not tell from another pair's"),
    "call_without_next_hop": _in("switch_refusals", "no_next_hop", "a call whose next hop "
                                 "was unknown"),
    # Per connection (summed over the gateway)
    "connection_error_bad_message": _in("connection_errors", "bad_message", "a control "
                                        "message the codec rejects (forwarded unchanged)"),
    "connection_error_stream_desync": _in("connection_errors", "stream_desync", "framing "
                                          "lost"),
    "connection_error_reassembly_overflow": _in("connection_errors", "reassembly_overflow",
                                                "too much held out of order"),
    "connection_error_call_after_close": _in("connection_errors", "call_after_close", "a "
                                             "call requested after FIN/RST"),
    "connection_error_duplicate_call_id": _in("connection_errors", "duplicate_call_id",
                                              "a request reusing a live call's ID"),
    "connection_error_call_cap": _in("connection_errors", "call_cap", "a call over a cap"),
    "connection_error_unknown_call_id": _in("connection_errors", "unknown_call_id", "a "
                                            "message naming no known call"),
    # The controller (Alg)
    "unknown_dpid_packet_in": _in("unknown_dpid_events", "packet_in", "packet-ins"),
    "unknown_dpid_connect": _in("unknown_dpid_events", "connect", "connects"),
}

CONNECTION_ERROR_PREFIX: Final = "connection_error_"


def metric(key: str) -> tuple[str, dict[str, str]]:
    """The metric name (without ``_total``) and extra labels of a counter key; a key not
    in the catalogue is reported as an ``unlisted`` counter rather than lost."""
    spec = CATALOGUE.get(key)
    if spec is None:
        return "pptp_unlisted", {"key": key}
    family = spec.family or key
    labels = {spec.label[0]: spec.label[1]} if spec.label else {}
    return f"pptp_{family}", labels


def family_help(family: str) -> str:
    """The help text of ``pptp_<family>_total``."""
    shared = FAMILIES.get(family)
    if shared is not None:
        return shared[1]
    for key, spec in CATALOGUE.items():
        if (spec.family or key) == family:
            return spec.help
    return "A counter not in the catalogue (ryu_pptp_alg/counters.py)."
