"""The live web page at /pptp/ui/, on Ryu's WSGI port beside the REST API.

This only serves the page's files from the package (deployments are often offline: no
CDN). The page reads GET /pptp/gateways and GET /pptp/sessions and tears a session down
with DELETE /pptp/sessions/{id}, all in rest.py.

rest.py's catch-all ``/pptp/{rest:.*}`` does not shadow these routes: Routes tries the
routes with the longest static prefix first ("/pptp/ui" before "/pptp"), whatever the
order the controllers were registered in.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from ryu.app.wsgi import ControllerBase, Response, route
from webob import Request

ROUTE_NAME = "pptp_ui"
PREFIX = "/pptp/ui/"

# The only files served: a fixed list, so no request path ever reaches the file system.
ASSETS: dict[str, str] = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}

HEADERS = {
    # Assets change with the package: always revalidate, never a stale page after upgrade.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    # Nothing but our own files; no framing (the page has teardown buttons).
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; "
                                "frame-ancestors 'none'"),
}


def asset(name: str) -> bytes:
    return resources.files("ryu_pptp_alg").joinpath("ui", name).read_bytes()


def asset_response(name: str) -> Response:
    content_type = ASSETS.get(name)
    if content_type is None:
        return Response(status=404, content_type="text/plain", charset="utf-8",
                        body=b"no such file\n")
    response = Response(status=200, content_type=content_type, charset="utf-8",
                        body=asset(name))
    response.headers.update(HEADERS)
    return response


class PptpUiController(ControllerBase):
    @route(ROUTE_NAME, "/pptp/ui", methods=["GET", "HEAD"])
    def redirect(self, req: Request, **_: Any) -> Response:
        """Relative URLs on the page (its assets, ../sessions) need the trailing slash."""
        return Response(status=301, location=PREFIX)

    @route(ROUTE_NAME, PREFIX, methods=["GET", "HEAD"])
    def index(self, req: Request, **_: Any) -> Response:
        return asset_response("index.html")

    @route(ROUTE_NAME, PREFIX + "{name}", methods=["GET", "HEAD"])
    def file(self, req: Request, name: str, **_: Any) -> Response:
        return asset_response(name)
