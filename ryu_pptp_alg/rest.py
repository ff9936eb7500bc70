"""REST API on Ryu's WSGI server: the live session table and gateway status.

GET /pptp/sessions[?dpid=N]  -> {"sessions": [...]}
GET /pptp/gateways           -> {"gateways": [...]}
Errors are JSON too: {"error": "..."} with a 4xx status.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ryu.app.wsgi import ControllerBase, Response, route
from webob import Request

from ryu_pptp_alg.alg import Alg, UnknownDatapath

LOG = logging.getLogger("ryu_pptp_alg.rest")

ALG_KEY = "pptp_alg"
ROUTE_NAME = "pptp"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(status=status, content_type="application/json", charset="utf-8",
                    body=json.dumps(body, sort_keys=True).encode() + b"\n")


def error_response(status: int, message: str) -> Response:
    LOG.info("REST %d: %s", status, message)
    return json_response({"error": message}, status=status)


def parse_dpid(text: str) -> int:
    """A dpid as decimal or 0x-prefixed hex; ValueError otherwise."""
    value = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    if not 0 <= value < 2**64:
        raise ValueError(text)
    return value


class PptpRestController(ControllerBase):
    def __init__(self, req: Request, link: Any, data: dict[str, Any], **config: Any) -> None:
        super().__init__(req, link, data, **config)
        self.alg: Alg = data[ALG_KEY]

    @route(ROUTE_NAME, "/pptp/sessions", methods=["GET"])
    def list_sessions(self, req: Request, **_: Any) -> Response:
        dpid_text = req.GET.get("dpid")
        dpid = None
        if dpid_text is not None:
            try:
                dpid = parse_dpid(dpid_text)
            except ValueError:
                return error_response(400, f"dpid {dpid_text!r} is not a datapath id")
        try:
            return json_response({"sessions": self.alg.sessions(dpid)})
        except UnknownDatapath as err:
            return error_response(404, str(err))

    @route(ROUTE_NAME, "/pptp/gateways", methods=["GET"])
    def list_gateways(self, req: Request, **_: Any) -> Response:
        return json_response({"gateways": self.alg.status()})
