"""The REST API, served in-process by Ryu's WSGI application (no sockets)."""

from __future__ import annotations

import json

import pytest
from webob import Request

from ryu_pptp_alg import compat

compat.apply()

from ryu.app.wsgi import WSGIApplication  # noqa: E402

from ryu_pptp_alg import openapi  # noqa: E402
from ryu_pptp_alg.alg import Alg  # noqa: E402
from ryu_pptp_alg.config import config_from_dict  # noqa: E402
from ryu_pptp_alg.rest import ALG_KEY, SEND_KEY, PptpRestController  # noqa: E402
from tests.unit.openapi_check import check_answer  # noqa: E402
from tests.unit.test_config import VALID  # noqa: E402


@pytest.fixture
def alg():
    document = {"gateways": [{**VALID["gateways"][0],
                              "public_addresses": ["203.0.113.1", "203.0.113.2"],
                              "port_forwards": [{"public": "203.0.113.1",
                                                 "inside": "10.0.0.10"}]}]}
    return Alg(config_from_dict(document), clock=lambda: 1000.0)


@pytest.fixture
def sent():
    return []


@pytest.fixture
def app(alg, sent):
    wsgi = WSGIApplication()
    wsgi.register(PptpRestController, {ALG_KEY: alg,
                                       SEND_KEY: lambda dpid, msgs: sent.append((dpid, msgs))})
    return wsgi


def call(app, method, path, body=None):
    """Status and JSON body of a request; the answer must match its OpenAPI schema."""
    request = Request.blank(path, method=method)
    if body is not None:
        request.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        request.content_type = "application/json"
    response = request.get_response(app)
    answer = json.loads(response.body)
    check_answer(method, path, response.status_int, response.headers, answer)
    return response.status_int, answer


@pytest.fixture
def get(app):
    return lambda path: call(app, "GET", path)


def test_the_openapi_document_is_served(get):
    assert get("/pptp/openapi.json") == (200, openapi.DOCUMENT)


def test_empty_session_table(get):
    assert get("/pptp/sessions") == (200, {"sessions": []})


def test_sessions_filtered_by_dpid(get):
    assert get("/pptp/sessions?dpid=1") == (200, {"sessions": []})
    assert get("/pptp/sessions?dpid=0x1") == (200, {"sessions": []})


@pytest.mark.parametrize("query,status,fragment", [
    ("dpid=7", 404, "no gateway is configured for dpid 0x7"),
    ("dpid=bogus", 400, "is not a datapath id"),
    ("dpid=-1", 400, "is not a datapath id"),
])
def test_bad_dpid_gets_a_json_error(get, query, status, fragment):
    code, body = get(f"/pptp/sessions?{query}")
    assert code == status
    assert fragment in body["error"]


def test_gateways_show_connection_state(get, alg):
    code, body = get("/pptp/gateways")
    assert code == 200
    (gateway,) = body["gateways"]
    assert gateway["dpid"] == 1 and gateway["connected"] is False
    assert gateway["switch_profile"] == "openflow"
    alg.datapath_up(1)
    (gateway,) = get("/pptp/gateways")[1]["gateways"]
    assert gateway["connected"] is True
    assert gateway["connected_since"] == 1000.0
    assert gateway["public_addresses"] == ["203.0.113.1", "203.0.113.2"]


FORWARD = {"dpid": 1, "public": "203.0.113.1", "inside": "10.0.0.10", "sessions": 0}


def test_forwards_listed_from_the_configuration(get):
    assert get("/pptp/forwards") == (200, {"forwards": [FORWARD]})
    assert get("/pptp/forwards?dpid=1") == (200, {"forwards": [FORWARD]})
    assert get("/pptp/forwards?dpid=9")[0] == 404


def test_forward_added_and_removed_at_run_time(app, get, sent):
    status, body = call(app, "POST", "/pptp/forwards",
                        {"public": "203.0.113.2", "inside": "10.0.0.11"})
    assert status == 201
    assert body["forward"] == {**FORWARD, "public": "203.0.113.2", "inside": "10.0.0.11"}
    assert len(get("/pptp/forwards")[1]["forwards"]) == 2
    status, body = call(app, "DELETE", "/pptp/forwards/203.0.113.2")
    assert (status, body) == (200, {"removed": "203.0.113.2", "dpid": 1,
                                    "sessions_torn_down": 0})
    assert sent == [(1, [])]
    assert get("/pptp/forwards")[1]["forwards"] == [FORWARD]


@pytest.mark.parametrize("body,status,fragment", [
    (b"{not json", 400, "not JSON"),
    (b"", 400, "expected a JSON object"),
    ([1, 2], 400, "expected a JSON object"),
    ({"public": "203.0.113.2"}, 400, "inside: missing"),
    ({"inside": "10.0.0.11"}, 400, "public: missing"),
    ({"public": "203.0.113.2", "inside": "10.0.0.11", "extra": 1}, 400, "unknown key"),
    ({"public": "bogus", "inside": "10.0.0.11"}, 400, "not an IPv4 address"),
    ({"public": "198.51.100.1", "inside": "10.0.0.11"}, 400, "no gateway has"),
    ({"public": "203.0.113.2", "inside": "10.9.9.9"}, 400, "not in the LAN"),
    ({"public": "203.0.113.2", "inside": 5}, 400, "expected an IPv4 address"),
    ({"public": "203.0.113.2", "inside": "10.0.0.11", "dpid": "x"}, 400, "dpid"),
    ({"public": "203.0.113.2", "inside": "10.0.0.11", "dpid": 9}, 404, "dpid 0x9"),
    ({"public": "203.0.113.1", "inside": "10.0.0.11"}, 409, "already forwarded"),
])
def test_bad_forward_bodies_get_a_clear_error(app, body, status, fragment):
    code, answer = call(app, "POST", "/pptp/forwards", body)
    assert code == status
    assert fragment in answer["error"]


@pytest.mark.parametrize("path,status,fragment", [
    ("/pptp/forwards/203.0.113.2", 404, "is not forwarded"),
    ("/pptp/forwards/bogus", 400, "not an IPv4 address"),
    ("/pptp/forwards/203.0.113.1?dpid=9", 404, "dpid 0x9"),
])
def test_bad_forward_removals_get_a_clear_error(app, path, status, fragment):
    code, answer = call(app, "DELETE", path)
    assert code == status
    assert fragment in answer["error"]


def test_a_body_nested_too_deeply_is_a_clear_400(app):
    code, answer = call(app, "POST", "/pptp/forwards", b"[" * 100000 + b"]" * 100000)
    assert code == 400 and "nested too deeply" in answer["error"]


@pytest.mark.parametrize("method,path,status,fragment", [
    ("GET", "/pptp/nothing", 404, "no such resource: /pptp/nothing"),
    ("GET", "/pptp/sessions/x/y", 404, "no such resource"),
    ("POST", "/pptp/sessions", 405, "use GET"),
    ("PUT", "/pptp/forwards", 405, "use GET, POST"),
    ("GET", "/pptp/forwards/203.0.113.1", 405, "use DELETE"),
    ("POST", "/pptp/sessions/1-1", 405, "use GET, DELETE"),
    ("GET", "/pptp/sessions/1-1/calls/7", 405, "use DELETE"),
    ("DELETE", "/pptp/openapi.json", 405, "use GET"),
    ("DELETE", "/pptp/gateways", 405, "use GET"),
    ("DELETE", "/pptp/sessions/1-1/calls", 404, "no such resource"),
])
def test_unknown_paths_and_methods_answer_json(app, method, path, status, fragment):
    code, answer = call(app, method, path)
    assert code == status and fragment in answer["error"]


def test_a_deeply_nested_value_is_a_clear_400_not_a_recursion(app):
    depth = 900  # within what json parses; deep enough for repr and ipaddress to recurse
    body = b'{"public": ' + b"[" * depth + b'"203.0.113.2"' + b"]" * depth + \
        b', "inside": "10.0.0.11"}'
    code, answer = call(app, "POST", "/pptp/forwards", body)
    assert code == 400 and "public: expected an IPv4 address" in answer["error"]
