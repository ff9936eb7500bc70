"""The web page's files, served in-process by Ryu's WSGI application beside the REST API."""

from __future__ import annotations

import json
import re
import signal

import pytest
from webob import Request

from ryu_pptp_alg import compat

compat.apply()

from ryu.app.wsgi import WSGIApplication  # noqa: E402

from ryu_pptp_alg import app as app_module  # noqa: E402
from ryu_pptp_alg import ofwire  # noqa: E402
from ryu_pptp_alg.alg import Alg  # noqa: E402
from ryu_pptp_alg.config import config_from_dict  # noqa: E402
from ryu_pptp_alg.rest import ALG_KEY, SEND_KEY, PptpRestController  # noqa: E402
from ryu_pptp_alg.ui import ASSETS, PptpUiController, asset  # noqa: E402
from tests.unit.test_config import VALID  # noqa: E402


@pytest.fixture(params=["rest first", "ui first"])
def app(request):
    """Both registration orders: the UI's routes must win over rest.py's catch-all
    ``/pptp/{rest:.*}`` whichever is connected first."""
    wsgi = WSGIApplication()
    rest = (PptpRestController, {ALG_KEY: Alg(config_from_dict(VALID)),
                                 SEND_KEY: lambda *_: None})
    for controller, data in ([rest, (PptpUiController, None)] if request.param == "rest first"
                             else [(PptpUiController, None), rest]):
        wsgi.register(controller, data)
    return wsgi


def get(app, path, method="GET"):
    return Request.blank(path, method=method).get_response(app)


@pytest.mark.parametrize("path,name,content_type", [
    ("/pptp/ui/", "index.html", "text/html"),
    ("/pptp/ui/index.html", "index.html", "text/html"),
    ("/pptp/ui/app.js", "app.js", "text/javascript"),
    ("/pptp/ui/style.css", "style.css", "text/css"),
])
def test_assets_served_with_their_content_type(app, path, name, content_type):
    response = get(app, path)
    assert response.status_int == 200
    assert response.content_type == content_type
    assert response.charset.lower() == "utf-8"
    assert response.body == asset(name) and response.body
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_head_is_answered_without_a_body(app):
    response = get(app, "/pptp/ui/app.js", method="HEAD")
    assert response.status_int == 200 and response.body == b""


def test_without_the_slash_redirects_to_the_page(app):
    response = get(app, "/pptp/ui")
    assert response.status_int == 301
    assert response.location.endswith("/pptp/ui/")


@pytest.mark.parametrize("path", [
    "/pptp/ui/../rest.py",
    "/pptp/ui/..%2frest.py",
    "/pptp/ui/%2e%2e/ui.py",
    "/pptp/ui/%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/pptp/ui/ui.py",
    "/pptp/ui/../../pyproject.toml",
    "/pptp/ui//etc/passwd",
    "/pptp/ui/missing.js",
    "/pptp/ui/.",
    "/pptp/ui/index.html/",
])
def test_nothing_but_the_assets_is_served(app, path):
    response = get(app, path)
    assert response.status_int == 404
    assert b"import" not in response.body and b"root:" not in response.body


def test_rest_api_still_answers_beside_the_page(app):
    response = get(app, "/pptp/sessions")
    assert response.status_int == 200
    assert json.loads(response.body) == {"sessions": []}
    response = get(app, "/pptp/nonsense")
    assert response.status_int == 404 and "error" in json.loads(response.body)


def test_page_references_only_packaged_assets():
    """No CDN, and every file the page loads is one the routes serve."""
    html = asset("index.html").decode()
    referenced = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert referenced, html
    for url in referenced:
        assert url == "data:," or url in ASSETS, url
    for name in ASSETS:
        text = asset(name).decode()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name


def test_script_inserts_no_markup():
    """Data goes in as text: no innerHTML / outerHTML / insertAdjacentHTML / document.write."""
    script = asset("app.js").decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


def test_app_registers_the_page(monkeypatch, tmp_path):
    config = config_from_dict({**VALID, "state": {"path": str(tmp_path / "state.msgpack")}})
    monkeypatch.setattr(app_module, "load_configured", lambda: config)
    monkeypatch.setattr(app_module, "freeze_startup_objects", lambda: None)
    wsgi = WSGIApplication()
    try:
        app_module.PptpAlgApp(wsgi=wsgi)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        ofwire.use_ryu_packet_in_parser()
    assert get(wsgi, "/pptp/ui/").body == asset("index.html")
