"""The counter catalogue (ryu_pptp_alg/counters.py) is complete and has nothing extra:
every key the sources count under is in it, and every key in it is counted somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from ryu_pptp_alg import pipeline
from ryu_pptp_alg.app import OTHER_SENT, SENT_COUNTERS
from ryu_pptp_alg.counters import CATALOGUE, CONNECTION_ERROR_PREFIX, FAMILIES, family_help, metric

SOURCES = Path(__file__).resolve().parents[2] / "ryu_pptp_alg"
LITERAL = re.compile(r'(?<!switch_)counters\["([a-z_]+)"\]|_drop\(\s*"([a-z_]+)"')
ERROR = re.compile(r'(?:_error|_conn_error)\(conn, "([a-z_]+)"\)')
SWITCH = re.compile(r'switch_counters\["([a-z_]+)"\]')
UNKNOWN_DPID = re.compile(r'_known\(dpid, "([a-z_]+)"\)')


def counted_keys() -> set[str]:
    keys: set[str] = set()
    for path in SOURCES.glob("*.py"):
        text = path.read_text()
        keys.update(a or b for a, b in LITERAL.findall(text))
        keys.update(CONNECTION_ERROR_PREFIX + name for name in ERROR.findall(text))
        keys.update(f"unknown_dpid_{event}" for event in UNKNOWN_DPID.findall(text))
        keys.update(f"switch_{name}" for name in SWITCH.findall(text))
    keys.update([*SENT_COUNTERS.values(), OTHER_SENT])  # by message class, in the app's send
    # Formatted keys: the budgets without meters, and connections by direction.
    keys.update(f"rate_limited_{kind}" for kind in (*pipeline.PER_PORT, "control", "gre"))
    keys.update(f"control_connections_{d}" for d in ("outbound", "inbound"))
    return keys


def test_every_counted_key_is_in_the_catalogue_and_nothing_else():
    counted = counted_keys()
    assert counted - set(CATALOGUE) == set()
    assert set(CATALOGUE) - counted == set()


def test_metric_names_and_labels():
    assert metric("gre_no_call") == ("pptp_drops", {"reason": "gre_no_call"})
    assert metric("calls_established") == ("pptp_calls_established", {})
    assert metric("packet_in") == ("pptp_packet_ins", {})
    assert metric("no_such_key") == ("pptp_unlisted", {"key": "no_such_key"})
    for key, spec in CATALOGUE.items():
        name, labels = metric(key)
        assert re.fullmatch(r"pptp_[a-z_]+", name), key
        assert spec.help and family_help(name.removeprefix("pptp_")), key
        if spec.label is not None:
            assert spec.family in FAMILIES and list(labels) == [FAMILIES[spec.family][0]]
    # Within a family, label values are distinct.
    seen = [metric(k) for k in CATALOGUE]
    assert len({(n, tuple(sorted(lab.items()))) for n, lab in seen}) == len(seen)
