"""REST API on Ryu's WSGI server: the live session table and gateway status.

GET    /pptp/sessions[?dpid=N]        -> {"sessions": [...]}
GET    /pptp/sessions/{id}            -> {"session": {...}}
DELETE /pptp/sessions/{id}            -> {"torn_down": {...}}: its calls end, then it
DELETE /pptp/sessions/{id}/calls/{client_call_id} -> {"torn_down": {...}}: that call
GET    /pptp/gateways                 -> {"gateways": [...][, "ha": {...}]}
GET    /pptp/forwards[?dpid=N]        -> {"forwards": [...]}
POST   /pptp/forwards                 {"public": A, "inside": B[, "dpid": N]} -> 201
DELETE /pptp/forwards/{public}[?dpid=N] -> its sessions are torn down
GET    /pptp/openapi.json             -> all of this as OpenAPI 3.1 (openapi.py)
Errors are JSON too: {"error": "..."} with a 4xx status.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from ryu.app.wsgi import ControllerBase, Response, route
from webob import Request

from ryu_pptp_alg import openapi
from ryu_pptp_alg.alg import Alg, RequestError, UnknownDatapath

LOG = logging.getLogger("ryu_pptp_alg.rest")

ALG_KEY = "pptp_alg"
SEND_KEY = "pptp_send"  # callable(dpid, messages): sends to that switch if connected
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
        self.send: Callable[[int, list[Any]], None] = data.get(SEND_KEY, lambda *_: None)

    @staticmethod
    def _dpid(req: Request) -> int | None:
        text = req.GET.get("dpid")
        if text is None:
            return None
        try:
            return parse_dpid(text)
        except ValueError:
            raise RequestError(400, f"dpid {text!r} is not a datapath id") from None

    def _answer(self, handler: Callable[[], Response]) -> Response:
        try:
            return handler()
        except RequestError as err:
            return error_response(err.status, str(err))
        except UnknownDatapath as err:
            return error_response(404, str(err))

    @route(ROUTE_NAME, "/pptp/sessions", methods=["GET"])
    def list_sessions(self, req: Request, **_: Any) -> Response:
        return self._answer(lambda: json_response(
            {"sessions": self.alg.sessions(self._dpid(req))}))

    @route(ROUTE_NAME, "/pptp/sessions/{id}", methods=["GET"])
    def get_session(self, req: Request, id: str, **_: Any) -> Response:
        return self._answer(lambda: json_response({"session": self.alg.session(id)}))

    @route(ROUTE_NAME, "/pptp/sessions/{id}", methods=["DELETE"])
    def delete_session(self, req: Request, id: str, **_: Any) -> Response:
        return self._answer(lambda: self._torn_down(*self.alg.teardown_session(id)))

    @route(ROUTE_NAME, "/pptp/sessions/{id}/calls/{client_call_id}", methods=["DELETE"])
    def delete_call(self, req: Request, id: str, client_call_id: str, **_: Any) -> Response:
        return self._answer(lambda: self._torn_down(*self.alg.end_call(id, client_call_id)))

    def _torn_down(self, dpid: int, msgs: list[Any], summary: dict[str, Any]) -> Response:
        self.send(dpid, msgs)
        LOG.info("REST: session %s torn down: %s", summary["id"], summary)
        return json_response({"torn_down": summary})

    @route(ROUTE_NAME, "/pptp/forwards", methods=["GET"])
    def list_forwards(self, req: Request, **_: Any) -> Response:
        return self._answer(lambda: json_response(
            {"forwards": self.alg.forwards(self._dpid(req))}))

    @route(ROUTE_NAME, "/pptp/forwards", methods=["POST"])
    def add_forward(self, req: Request, **_: Any) -> Response:
        def handle() -> Response:
            try:
                body = json.loads(req.body or b"null")
            except ValueError as err:
                raise RequestError(400, f"body is not JSON: {err}") from None
            except RecursionError:
                raise RequestError(400, "body is not JSON we take: nested too deeply") \
                    from None
            return json_response({"forward": self.alg.add_forward(body, self._dpid(req))},
                                 status=201)
        return self._answer(handle)

    @route(ROUTE_NAME, "/pptp/forwards/{public}", methods=["DELETE"])
    def remove_forward(self, req: Request, public: str, **_: Any) -> Response:
        def handle() -> Response:
            dpid, msgs, torn_down = self.alg.remove_forward(public, self._dpid(req))
            self.send(dpid, msgs)
            return json_response({"removed": public, "dpid": dpid,
                                  "sessions_torn_down": torn_down})
        return self._answer(handle)

    @route(ROUTE_NAME, "/pptp/gateways", methods=["GET"])
    def list_gateways(self, req: Request, **_: Any) -> Response:
        body: dict[str, Any] = {"gateways": self.alg.status()}
        if self.alg.ha_health is not None:
            body["ha"] = self.alg.ha_health()
        return json_response(body)

    @route(ROUTE_NAME, "/pptp/openapi.json", methods=["GET"])
    def get_openapi(self, req: Request, **_: Any) -> Response:
        return json_response(openapi.DOCUMENT)

    # Ryu connects a controller's routes in the order of their names: this one, matching
    # any method and any path under /pptp/, must come last.
    @route(ROUTE_NAME, "/pptp/{rest:.*}", requirements={"rest": ".*"})
    def zz_unknown(self, req: Request, rest: str, **_: Any) -> Response:
        """What no route above took: JSON like every other answer, not Ryu's HTML."""
        allowed = KNOWN_PATHS.get(_shape(rest))
        if allowed is not None:
            response = error_response(405, f"{req.method} /pptp/{rest}: use {', '.join(allowed)}")
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return error_response(404, f"no such resource: /pptp/{rest}")


# The API's paths (templates under /pptp/) and their methods, for answering a wrong method
# with 405: those the OpenAPI document describes.
KNOWN_PATHS = {path.removeprefix("/pptp/"): methods
               for path, methods in openapi.methods().items()}


def _shape(rest: str) -> str:
    """The template a path under /pptp/ has (``{...}`` standing for any one segment)."""
    parts = rest.strip("/").split("/")
    for template in KNOWN_PATHS:
        shape = template.split("/")
        if len(shape) == len(parts) and all(
                want == part or (want.startswith("{") and part)
                for want, part in zip(shape, parts, strict=True)):
            return template
    return "/".join(parts)
