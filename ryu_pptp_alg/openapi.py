"""The REST API described as OpenAPI 3.1, served at GET /pptp/openapi.json.

The paths and methods here are the ones ``rest.py`` routes (it answers any other method
on them with 405 from this document); the tests validate the document with
openapi-spec-validator and every answer of the API against its schema here.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

try:
    VERSION = metadata.version("ryu-pptp-alg")
except metadata.PackageNotFoundError:  # run from a source tree that is not installed
    VERSION = "0"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None,
            description: str = "") -> dict[str, Any]:
    """A closed object: an undocumented key in an answer fails the tests."""
    schema: dict[str, Any] = {"type": "object", "properties": {**required, **(optional or {})},
                              "required": list(required), "additionalProperties": False}
    if description:
        schema["description"] = description
    return schema


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


INT = {"type": "integer", "minimum": 0}
STRING = {"type": "string"}
COUNTS = {"type": "object", "additionalProperties": INT}
ENDPOINT = {"type": "string", "pattern": r"^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$",
            "description": "IPv4 address:port"}
IPV4 = {"type": "string", "format": "ipv4"}
TIME = {"type": "string", "format": "date-time"}
CONFLICT = {"$ref": "#/components/responses/Conflict"}
ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "404": {"$ref": "#/components/responses/NotFound"},
}

SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": STRING}),
    "Call": _object({
        "client_call_id": {**INT, "maximum": 0xFFFF},
        "public_call_id": {**INT, "maximum": 0xFFFF,
                           "description": "the call ID the server sees"},
        "server_call_id": {"type": ["integer", "null"], "minimum": 0, "maximum": 0xFFFF},
        "state": {"enum": ["requested", "established", "clearing", "closed"]},
        "path": {"enum": ["fast", "slow", "refused"],
                 "description": "fast: the switch forwards its GRE both ways; slow: the "
                                "controller carries it one way or both; refused: nothing can"},
        "packets": INT,
        "bytes": INT,
        "created": TIME,
    }),
    "Session": _object({
        "id": {"type": "string", "pattern": r"^\d+-\d+$",
               "description": "DPID-N (decimal): stable across controller restarts"},
        "dpid": INT,
        "direction": {"enum": ["outbound", "inbound"]},
        "client": ENDPOINT,
        "public": ENDPOINT,
        "server": ENDPOINT,
        "state": {"enum": ["connecting", "starting", "established", "stopping", "closing"]},
        "created": TIME,
        "last_seen": TIME,
        "calls": {"type": "array", "items": _ref("Call")},
        "errors": COUNTS,
    }, description="One PPTP control connection and its calls"),
    "TornDown": _object({
        "id": STRING,
        "dpid": INT,
        "client": ENDPOINT,
        "calls": {"type": "array", "items": INT,
                  "description": "the client call IDs of the calls ended"},
        "flows_deleted": INT,
        "peers_told": {"type": "boolean",
                       "description": "whether the peers were told the PPTP way"},
    }),
    "Forward": _object({"dpid": INT, "public": IPV4, "inside": IPV4, "sessions": INT}),
    "ForwardRequest": _object({"public": IPV4, "inside": IPV4}, {"dpid": INT}),
    "Gateway": _object({
        "dpid": INT,
        "name": STRING,
        "connected": {"type": "boolean"},
        "connected_since": {"type": ["number", "null"]},
        "gateway_mac": STRING,
        "switch_profile": STRING,
        "inside_ports": {"type": "array", "items": INT},
        "outside_ports": {"type": "array", "items": INT},
        "inside_address": {"type": "string", "description": "address/prefix length"},
        "public_addresses": {"type": "array", "items": IPV4},
        "port_forwards": {"type": "array", "items": _ref("Forward")},
        "control_connections": INT,
        "gre_pairs": INT,
        "counters": COUNTS,
        "switch_counters": COUNTS,
        "limits": COUNTS,
        "blocked_hosts": {**COUNTS, "description": "host: seconds its block has left"},
        "rates": COUNTS,
        "meters": {"type": "boolean"},
        "last_restore": {"type": ["object", "null"]},
        "last_flow_sync": {"type": ["object", "null"]},
    }, {"ha": _ref("HaRole")}),
    "HaRole": _object({
        "role": {"enum": ["master", "slave"], "description": "this controller's role"},
        "lease_confirmed": {"type": "boolean", "description": "master, and etcd answered "
                            "a keepalive within the lease: false while etcd cannot be "
                            "reached (calls go on; new set-ups are refused)"},
        "generation_id": {"type": ["integer", "null"], "minimum": 0,
                          "description": "the master's generation id (an etcd revision)"},
        "master": {"type": ["string", "null"], "description": "the master's instance name"},
    }, description="High availability: who masters this switch"),
    "HaHealth": _object({
        "instance": STRING,
        "etcd": {"enum": ["ok", "unavailable"], "description": "as the election last saw it"},
        "error": {"type": ["string", "null"]},
        "lease": {"type": ["integer", "null"]},
        "lease_valid_for": {"type": "number", "minimum": 0},
        "store": _object({"backend": STRING, "ok": {"type": "boolean"},
                          "error": {"type": ["string", "null"]}}),
    }, description="High availability: this controller's lease and the state store"),
}


def _parameter(name: str, where: str, description: str,
               schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path",
            "description": description, "schema": schema or STRING}


DPID = _parameter("dpid", "query", "only this gateway's: decimal, or hex with 0x",
                  {"type": "string", "pattern": "^(0[xX][0-9a-fA-F]+|[0-9]+)$"})
SESSION_ID = _parameter("id", "path", "a session's id, as listed",
                        {"type": "string", "pattern": r"^\d+-\d+$"})
TORN_DOWN = _json(_object({"torn_down": _ref("TornDown")}),
                  "What was torn down; its flows are deleted from the switch")

PATHS: dict[str, Any] = {
    "/pptp/sessions": {"get": {
        "summary": "The live session table: one row per control connection",
        "operationId": "listSessions",
        "parameters": [DPID],
        "responses": {"200": _json(_object({"sessions": {"type": "array",
                                                         "items": _ref("Session")}}),
                                   "The sessions"), **ERRORS},
    }},
    "/pptp/sessions/{id}": {
        "parameters": [SESSION_ID],
        "get": {
            "summary": "One session",
            "operationId": "getSession",
            "responses": {"200": _json(_object({"session": _ref("Session")}), "The session"),
                          **ERRORS},
        },
        "delete": {
            "summary": "End a session: its calls are cleared the PPTP way where possible, "
                       "then its TCP connection is reset",
            "operationId": "tearDownSession",
            "responses": {"200": TORN_DOWN, **ERRORS, "409": CONFLICT},
        },
    },
    "/pptp/sessions/{id}/calls/{client_call_id}": {
        "parameters": [SESSION_ID, _parameter(
            "client_call_id", "path", "the call's client call ID, as listed",
            {"type": "string", "pattern": "^[0-9]{1,5}$"})],
        "delete": {
            "summary": "End one call; its session goes on",
            "operationId": "endCall",
            "responses": {"200": TORN_DOWN, **ERRORS, "409": CONFLICT},
        },
    },
    "/pptp/gateways": {"get": {
        "summary": "Each gateway's configuration, connection state and counters",
        "operationId": "listGateways",
        "responses": {"200": _json(_object({"gateways": {"type": "array",
                                                         "items": _ref("Gateway")}},
                                           {"ha": _ref("HaHealth")}),
                                   "The gateways (and, with several controllers, this "
                                   "one's part in the group)")},
    }},
    "/pptp/forwards": {
        "get": {
            "summary": "Port forwards (inbound PPTP to a server inside)",
            "operationId": "listForwards",
            "parameters": [DPID],
            "responses": {"200": _json(_object({"forwards": {"type": "array",
                                                             "items": _ref("Forward")}}),
                                       "The forwards"), **ERRORS},
        },
        "post": {
            "summary": "Add a port forward; without dpid, the gateway owning the address",
            "operationId": "addForward",
            "parameters": [DPID],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("ForwardRequest")}}},
            "responses": {"201": _json(_object({"forward": _ref("Forward")}), "Added"),
                          **ERRORS, "409": CONFLICT},
        },
    },
    "/pptp/forwards/{public}": {
        "parameters": [_parameter("public", "path", "the forwarded public address", IPV4),
                       DPID],
        "delete": {
            "summary": "Remove a port forward; its sessions are torn down",
            "operationId": "removeForward",
            "responses": {"200": _json(_object({"removed": IPV4, "dpid": INT,
                                                "sessions_torn_down": INT}), "Removed"),
                          **ERRORS, "409": CONFLICT},
        },
    },
    "/pptp/openapi.json": {"get": {
        "summary": "This document",
        "operationId": "getOpenApi",
        "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]},
                                   "OpenAPI 3.1")},
    }},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "ryu-pptp-alg",
        "version": VERSION,
        "description": "PPTP passthrough ALG for OpenFlow NAT gateways. Every error is "
                       "JSON ({\"error\": ...}): 400 for a bad value, 404 for an unknown "
                       "gateway, session, forward or path under /pptp/, 405 (with Allow) "
                       "for a method a path does not take.",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": {
            "BadRequest": _json(_ref("Error"), "A bad value: the message names it"),
            "NotFound": _json(_ref("Error"), "No such gateway, session, call or forward"),
            "MethodNotAllowed": _json(_ref("Error"), "A method the path does not take; "
                                                     "Allow lists those it does"),
            "Conflict": _json(_ref("Error"), "The public address is already forwarded, or "
                                             "this controller is not the gateway's master "
                                             "(several controllers: ask its master)"),
        },
    },
}


def methods() -> dict[str, tuple[str, ...]]:
    """Each path template of the API and the methods it takes (upper case)."""
    return {path: tuple(m.upper() for m in HTTP_METHODS if m in item)
            for path, item in PATHS.items()}
