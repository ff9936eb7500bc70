"""Sessions by id over REST, with real PPTP peers on the fake switch behind the Alg."""

from __future__ import annotations

import pytest

from ryu_pptp_alg import compat

compat.apply()

from ryu.app.wsgi import WSGIApplication  # noqa: E402

from ryu_pptp_alg.alg import Alg  # noqa: E402
from ryu_pptp_alg.config import AlgConfig  # noqa: E402
from ryu_pptp_alg.rest import ALG_KEY, SEND_KEY, PptpRestController  # noqa: E402
from tests.unit.fakeswitch import FakeSwitch  # noqa: E402
from tests.unit.test_outbound import OUTSIDE, PUBLIC, SERVER, TIMEOUTS, Peers, gateway_config  # noqa: E402
from tests.unit.test_rest import call  # noqa: E402


class Journal:
    """Stands in for the state store: the changes written, in order."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, object, object]] = []

    def append(self, dpid: int, changes: list[tuple[str, object, object]]) -> None:
        self.changes.extend(changes)


@pytest.fixture
def alg(clock):
    alg = Alg(AlgConfig(gateways=(gateway_config(),), timeouts=TIMEOUTS), clock=clock)
    alg.store = Journal()  # type: ignore[assignment]  (after start-up: nothing to restore)
    return alg


@pytest.fixture
def switch(alg):
    sw = FakeSwitch(alg.gateways[1])
    sw.apply(sw.gateway.datapath_up())
    sw.send(OUTSIDE, SERVER.arp_request(PUBLIC))  # the gateway learns the server
    return sw


@pytest.fixture
def sent():
    return []


@pytest.fixture
def app(alg, switch, sent):
    def send(dpid, msgs):
        sent.append((dpid, list(alg.store.changes)))  # what was stored when they left
        switch.apply(msgs)

    wsgi = WSGIApplication()
    wsgi.register(PptpRestController, {ALG_KEY: alg, SEND_KEY: send})
    return wsgi


@pytest.fixture
def peers(switch):
    peers = Peers(switch, 1)
    peers.start()
    peers.call(7, 128)
    peers.call(8, 129)
    return peers


def only_id(app):
    (row,) = call(app, "GET", "/pptp/sessions")[1]["sessions"]
    return row["id"]


def test_a_session_row_has_a_stable_id(app, peers, switch):
    ident = only_id(app)
    conn_id = next(iter(switch.gateway.state.conns))
    assert ident == f"1-{conn_id}"
    status, body = call(app, "GET", f"/pptp/sessions/{ident}")
    assert status == 200
    assert body["session"]["id"] == ident
    assert body["session"]["client"] == "10.0.0.11:40000"
    assert [c["client_call_id"] for c in body["session"]["calls"]] == [7, 8]


def test_the_id_survives_a_controller_restart(app, peers, switch):
    ident = only_id(app)
    gateway = switch.restart_controller()
    assert [row["id"] for row in gateway.sessions()] == [ident]


def test_an_id_is_never_given_to_another_session_after_a_restart(app, peers, switch):
    old = only_id(app)
    msgs, _ = switch.gateway.teardown(int(old.split("-")[1]))
    switch.apply(msgs)  # (not through the app: its stand-in store would keep the change)
    gateway = switch.restart_controller()  # the newest id belonged to a session now gone
    switch.send(OUTSIDE, SERVER.arp_request(PUBLIC))  # neighbours are learnt anew
    Peers(switch, 2).start()
    (row,) = gateway.sessions()
    assert row["id"] != old and int(row["id"].split("-")[1]) > int(old.split("-")[1])


@pytest.mark.parametrize("method,path,status,fragment", [
    ("GET", "/pptp/sessions/1-999", 404, "no session 1-999"),
    ("GET", "/pptp/sessions/7-1", 404, "no gateway is configured for dpid 0x7"),
    ("GET", "/pptp/sessions/bogus", 400, "is not DPID-N"),
    ("GET", "/pptp/sessions/1-", 400, "is not DPID-N"),
    ("GET", "/pptp/sessions/-1", 400, "is not DPID-N"),
    ("GET", "/pptp/sessions/1-2-3", 400, "is not DPID-N"),
    ("GET", "/pptp/sessions/0x1-2", 400, "is not DPID-N"),
    ("DELETE", "/pptp/sessions/1-999", 404, "no session 1-999"),
    ("DELETE", "/pptp/sessions/x", 400, "is not DPID-N"),
    ("DELETE", "/pptp/sessions/9-1", 404, "dpid 0x9"),
    ("DELETE", "/pptp/sessions/1-999/calls/7", 404, "no session 1-999"),
    ("DELETE", "/pptp/sessions/x/calls/7", 400, "is not DPID-N"),
])
def test_unknown_and_malformed_ids_get_a_json_error(app, sent, method, path, status,
                                                    fragment):
    code, body = call(app, method, path)
    assert code == status and fragment in body["error"]
    assert sent == []  # nothing reached the switch


@pytest.mark.parametrize("call_id,status,fragment", [
    ("99", 404, "has no call with client call ID 99"),
    ("x", 400, "is not 0-65535"),
    ("65536", 400, "is not 0-65535"),
    ("-1", 400, "is not 0-65535"),
])
def test_unknown_and_malformed_call_ids_get_a_json_error(app, peers, sent, call_id, status,
                                                         fragment):
    ident = only_id(app)
    code, body = call(app, "DELETE", f"/pptp/sessions/{ident}/calls/{call_id}")
    assert code == status and fragment in body["error"]
    assert sent == []


def test_deleting_a_session_ends_its_calls_and_removes_its_flows(app, peers, switch, sent):
    ident = only_id(app)
    conn_id = next(iter(switch.gateway.state.conns))
    assert switch.gre_flows()
    status, body = call(app, "DELETE", f"/pptp/sessions/{ident}")
    assert status == 200
    summary = body["torn_down"]
    assert (summary["id"], summary["dpid"], summary["client"]) == (ident, 1, "10.0.0.11:40000")
    assert sorted(summary["calls"]) == [7, 8]
    assert summary["flows_deleted"] > 0
    ((dpid, stored),) = sent
    assert dpid == 1 and ("conn", conn_id, None) in stored  # stored before it was sent
    assert switch.gre_flows() == []
    assert call(app, "GET", "/pptp/sessions") == (200, {"sessions": []})
    assert call(app, "GET", f"/pptp/sessions/{ident}")[0] == 404
    assert call(app, "DELETE", f"/pptp/sessions/{ident}")[0] == 404


def test_deleting_a_call_ends_only_that_call(app, peers, switch, sent):
    ident = only_id(app)
    status, body = call(app, "DELETE", f"/pptp/sessions/{ident}/calls/7")
    assert status == 200
    summary = body["torn_down"]
    assert (summary["id"], summary["calls"]) == (ident, [7])
    assert [dpid for dpid, _ in sent] == [1]
    (row,) = call(app, "GET", "/pptp/sessions")[1]["sessions"]
    assert row["id"] == ident
    assert [c["client_call_id"] for c in row["calls"] if c["state"] != "closed"] == [8]
    assert call(app, "DELETE", f"/pptp/sessions/{ident}/calls/7")[0] == 404
