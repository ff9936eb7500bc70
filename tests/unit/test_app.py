"""The Ryu glue's one decision: handle a message in Ryu's receive loop, or queue it."""

from __future__ import annotations

import signal
import types
from typing import Any

import pytest
from ryu.controller import ofp_event
from ryu.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER

from ryu_pptp_alg import app as app_module
from ryu_pptp_alg import ofwire
from ryu_pptp_alg.config import config_from_dict
from tests.unit.test_config import VALID

DPID = VALID["gateways"][0]["dpid"]


class FakeDatapath:
    def __init__(self) -> None:
        self.id = DPID
        self.sent: list[bytes] = []
        self.xid = 0

    def set_xid(self, msg: Any) -> None:
        self.xid += 1
        msg.xid = self.xid

    def send(self, data: bytes) -> bool:
        self.sent.append(data)
        return True


class FakeBrick:
    """Ryu's ofp_event service: who observes what, and its queueing path."""

    def __init__(self, observers: list[str]) -> None:
        self.observers = observers
        self.queued: list[Any] = []

    def get_observers(self, ev: Any, state: Any) -> list[str]:
        return list(self.observers)

    def send_event_to_observers(self, ev: Any, state: Any = None) -> None:
        self.queued.append(ev)


@pytest.fixture
def glue(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    config = config_from_dict({**VALID, "state": {"path": str(tmp_path / "state.msgpack")}})
    monkeypatch.setattr(app_module, "load_configured", lambda: config)
    monkeypatch.setattr(app_module, "freeze_startup_objects", lambda: None)
    wsgi = types.SimpleNamespace(register=lambda *args: None)
    instance = app_module.PptpAlgApp(wsgi=wsgi)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the app's handler is not for pytest
    ofwire.use_ryu_packet_in_parser()  # the app installed its own: not for other tests
    brick = FakeBrick([instance.name])
    instance._ofp_brick = brick
    instance._queue_for_observers = brick.send_event_to_observers
    return instance


def packet_in(datapath: FakeDatapath, match: Any = None) -> Any:
    # 10.0.0.9, inside, asks who has 10.0.0.1: the gateway answers.
    arp_for_us = bytes.fromhex("ffffffffffff" "020000000009" "0806" "0001080006040001"
                               "020000000009" "0a000009" "000000000000" "0a000001")
    msg = types.SimpleNamespace(datapath=datapath, match=match or {"in_port": 1},
                                data=arp_for_us, cookie=0)
    return ofp_event.EventOFPPacketIn(msg)


def counters(glue: Any) -> dict[str, int]:
    return glue.alg.gateways[DPID].counters


def test_a_packet_in_with_nothing_ahead_is_handled_in_the_receive_loop(glue: Any) -> None:
    datapath = FakeDatapath()
    glue._observe(packet_in(datapath), MAIN_DISPATCHER)
    assert glue._ofp_brick.queued == []
    assert counters(glue)["handled_in_receive_loop"] == 1
    assert counters(glue)["packet_in"] == 1
    assert len(datapath.sent) == 1  # the ARP reply, a packet-out
    assert datapath.sent[0][1] == 13 and bytes.fromhex("0a000009") in datapath.sent[0]


@pytest.mark.parametrize("reason", ["queued", "sending", "observed", "state"])
def test_otherwise_it_is_queued_as_ryu_does(glue: Any, reason: str) -> None:
    datapath = FakeDatapath()
    event, state = packet_in(datapath), MAIN_DISPATCHER
    if reason == "queued":  # an earlier event still waits for this app's event loop
        glue.events.put((object(), MAIN_DISPATCHER))
    elif reason == "sending":  # an earlier batch still waits in Datapath.send
        glue._sending = 1
    elif reason == "observed":  # another app observes packet-ins too
        glue._ofp_brick.observers.append("other_app")
    else:
        state = CONFIG_DISPATCHER
    glue._observe(event, state)
    assert glue._ofp_brick.queued == [event]
    assert counters(glue)["packet_in"] == 0 and datapath.sent == []


def test_other_events_are_queued(glue: Any) -> None:
    event = ofp_event.EventOFPPortStatus(types.SimpleNamespace(datapath=FakeDatapath()))
    glue._observe(event, MAIN_DISPATCHER)
    assert glue._ofp_brick.queued == [event]


def test_a_failing_handler_is_logged_and_the_receive_loop_goes_on(
        glue: Any, caplog: pytest.LogCaptureFixture) -> None:
    class BrokenMatch:
        def get(self, key: str, default: Any = None) -> Any:
            raise RuntimeError("broken match")
    datapath = FakeDatapath()
    glue._observe(packet_in(datapath, BrokenMatch()), MAIN_DISPATCHER)  # must not raise
    assert "EventOFPPacketIn failed" in caplog.text
    glue._observe(packet_in(datapath), MAIN_DISPATCHER)
    assert counters(glue)["packet_in"] == 1
