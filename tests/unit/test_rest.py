"""The REST API, served in-process by Ryu's WSGI application (no sockets)."""

from __future__ import annotations

import json

import pytest
from webob import Request

from ryu_pptp_alg import compat

compat.apply()

from ryu.app.wsgi import WSGIApplication  # noqa: E402

from ryu_pptp_alg.alg import Alg  # noqa: E402
from ryu_pptp_alg.config import config_from_dict  # noqa: E402
from ryu_pptp_alg.rest import ALG_KEY, PptpRestController  # noqa: E402
from tests.unit.test_config import VALID  # noqa: E402


@pytest.fixture
def alg():
    return Alg(config_from_dict(VALID), clock=lambda: 1000.0)


@pytest.fixture
def get(alg):
    app = WSGIApplication()
    app.register(PptpRestController, {ALG_KEY: alg})

    def _get(path):
        response = Request.blank(path).get_response(app)
        return response.status_int, json.loads(response.body)

    return _get


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
    alg.datapath_up(1)
    (gateway,) = get("/pptp/gateways")[1]["gateways"]
    assert gateway["connected"] is True
    assert gateway["connected_since"] == 1000.0
    assert gateway["public_addresses"] == ["203.0.113.1"]
