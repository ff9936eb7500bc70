"""Fuzz target ``rest``: the port-forward API with any body, through the Alg's methods and
through the REST controller on Ryu's WSGI application (in-process, no sockets).

The Alg's REST-facing methods may raise ``RequestError`` and nothing else (``sessions``
and ``forwards`` also ``UnknownDatapath``, which the controller answers with 404); the
controller must answer every request with JSON and a 2xx or 4xx status, never let an
exception out. Bodies include deeply nested JSON (thousands of levels). After each
input the gateway's indexes must equal their rebuilt form.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from webob import Request

from ryu_pptp_alg import compat

compat.apply()

from ryu.app.wsgi import WSGIApplication  # noqa: E402

from ryu_pptp_alg.alg import Alg, RequestError, UnknownDatapath  # noqa: E402
from ryu_pptp_alg.config import config_from_dict  # noqa: E402
from ryu_pptp_alg.rest import ALG_KEY, SEND_KEY, PptpRestController  # noqa: E402
from tests.fuzz.engine import Finding, Reader  # noqa: E402

DOCUMENT = {"gateways": [
    {"dpid": 1, "inside_ports": [1, 2], "outside_ports": [3],
     "inside_address": "10.0.0.1/24", "public_addresses": ["203.0.113.1", "203.0.113.2"],
     "port_forwards": [{"public": "203.0.113.1", "inside": "10.0.0.10"}]},
    {"dpid": 2, "inside_ports": [1], "outside_ports": [2],
     "inside_address": "10.1.0.1/24", "public_addresses": ["198.51.100.1", "203.0.113.2"]}]}
CONFIG = config_from_dict(DOCUMENT)
TEXTS = ("203.0.113.1", "203.0.113.2", "198.51.100.1", "10.0.0.10", "10.0.0.11", "10.0.0.1",
         "10.1.0.5", "0.0.0.0", "255.255.255.255", "::1", "", " ", "203.0.113.1 ", "1", "0x1",
         "01.0.0.1", "203.0.113.01", "bogus", "\0", "é")
DPIDS: tuple[Any, ...] = (1, 2, 3, 0, -1, 2**64, 1.0, True, None, "1", [1])
# One WSGI application for the process; each input gets a fresh Alg through its data.
DATA: dict[str, Any] = {SEND_KEY: lambda dpid, msgs: None}
APP = WSGIApplication()
APP.register(PptpRestController, DATA)


def nested(depth: int, inner: Any, as_dict: bool) -> Any:
    for _ in range(depth):
        inner = {"public": inner} if as_dict else [inner]
    return inner


def value(r: Reader, depth: int = 0) -> Any:
    kind = r.u8() % 9
    if kind < 3:
        return r.pick(TEXTS)
    if kind == 3:
        return r.pick(DPIDS)
    if kind == 4:
        return r.blob(24).decode("utf-8", "replace")
    if kind == 5 and depth < 3:
        return [value(r, depth + 1) for _ in range(r.u8() % 4)]
    if kind == 6 and depth < 3:
        return {r.pick(("public", "inside", "dpid", "x")): value(r, depth + 1)
                for _ in range(r.u8() % 4)}
    if kind == 7:
        return 10 ** (r.u8() % 64) * (1 if r.u8() & 1 else -1)
    return nested(r.u16() % 5000, r.pick(TEXTS), bool(r.u8() & 1))


def body(r: Reader) -> Any:
    shape = r.u8() % 4
    if shape == 0:
        return value(r)
    fields = {"public": value(r) if r.u8() & 1 else r.pick(TEXTS),
              "inside": value(r) if r.u8() & 1 else r.pick(TEXTS)}
    if shape >= 2:
        fields["dpid"] = value(r) if shape == 3 else r.pick(DPIDS)
    for name in ("public", "inside"):
        if r.u8() % 8 == 0:
            del fields[name]
    return fields


def json_text(r: Reader) -> bytes:
    """A body as a client could send it: JSON of any depth, or any bytes."""
    kind = r.u8() % 4
    if kind == 0:
        return r.blob().decode("latin-1").encode()
    if kind == 1:
        depth = r.u16() % 20000
        opener, closer = ('{"public":', "}") if r.u8() & 1 else ("[", "]")
        inner = json.dumps(r.pick(TEXTS))
        return (opener * depth + inner + closer * depth).encode()
    try:
        return json.dumps(body(r)).encode()
    except (ValueError, RecursionError):  # deeper than json.dumps goes: any bytes then
        return r.rest()


def call(method: str, path: str, payload: bytes | None = None) -> list[Finding]:
    request = Request.blank(path, method=method)
    if payload is not None:
        request.body = payload
        request.content_type = "application/json"
    if not APP._match(request):  # no such route: Ryu's own 404, not the ALG's answer
        return []
    response = request.get_response(APP)
    where = f"{method} {path} {(payload or b'')[:200]!r}"
    if not (200 <= response.status_int < 300 or 400 <= response.status_int < 500):
        return [Finding(f"REST answers {response.status_int} to {method}", where)]
    try:
        answer = json.loads(response.body)
    except ValueError:
        return [Finding(f"REST answers {method} with a body that is not JSON", where)]
    if response.status_int >= 400 and not isinstance(answer.get("error"), str):
        return [Finding(f"REST error answer to {method} without an error message", where)]
    return []


def query(r: Reader) -> str:
    if r.u8() & 1:
        return ""
    text = r.pick(("1", "0x1", "2", "7", "-1", "0x", "bogus", "1e3", "\u0661", str(2**64)))
    return "?dpid=" + quote(text, safe="")


def run(data: bytes) -> list[Finding]:
    r = Reader(data)
    alg = Alg(CONFIG, clock=lambda: 1000.0)
    DATA[ALG_KEY] = alg
    found: list[Finding] = []
    while r.more() and len(found) == 0:
        kind = r.u8() % 6
        try:
            if kind == 0:
                alg.add_forward(body(r), r.pick((None, 1, 2, 3)))
            elif kind == 1:
                alg.remove_forward(r.pick(TEXTS) if r.u8() & 1 else r.blob(24).decode(
                    "utf-8", "replace"), r.pick((None, 1, 2, 3)))
            elif kind == 2:
                dpid = r.pick((None, 1, 2, 3, 2**64))
                try:
                    alg.sessions(dpid)
                    alg.forwards(dpid)
                except UnknownDatapath:
                    pass
            elif kind == 3:
                found += call("POST", "/pptp/forwards" + query(r), json_text(r))
            elif kind == 4:
                public = r.pick(TEXTS) if r.u8() & 1 else r.blob(24).decode("utf-8", "replace")
                found += call("DELETE", "/pptp/forwards/" + quote(public, safe="") + query(r))
            else:
                found += call("GET", r.pick(("/pptp/sessions", "/pptp/forwards",
                                             "/pptp/gateways")) + query(r))
        except RequestError:
            pass
    for gateway in alg.gateways.values():
        problems = gateway.problems()
        if problems:
            found.append(Finding("REST changes leave the gateway's indexes inconsistent",
                                 "\n".join(problems)))
    return found
