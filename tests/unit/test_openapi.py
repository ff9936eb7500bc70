"""The OpenAPI document: valid, served, and in step with the routes rest.py has."""

from __future__ import annotations

import copy
import inspect

import pytest
from jsonschema import ValidationError
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from ryu_pptp_alg import compat

compat.apply()

from ryu_pptp_alg import openapi, rest  # noqa: E402
from tests.unit.openapi_check import check_answer, template_of  # noqa: E402

JSON = {"Content-Type": "application/json"}


def test_the_document_is_valid_openapi():
    validate(openapi.DOCUMENT)


def test_the_validator_would_catch_a_broken_document():
    broken = copy.deepcopy(openapi.DOCUMENT)
    del broken["paths"]["/pptp/sessions"]["get"]["responses"]["200"]["description"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def _routes():
    for _, method in inspect.getmembers(rest.PptpRestController, inspect.isfunction):
        info = getattr(method, "routing_info", None)
        if info is not None and info["methods"]:
            for verb in info["methods"]:
                yield info["path"], verb


def test_every_route_is_documented_and_every_documented_operation_routed():
    routed = sorted(_routes())
    documented = sorted((path, verb) for path, verbs in openapi.methods().items()
                        for verb in verbs)
    assert routed == documented


def test_wrong_methods_answer_405_from_the_document():
    assert rest.KNOWN_PATHS["sessions/{id}"] == ("GET", "DELETE")
    assert rest.KNOWN_PATHS["sessions/{id}/calls/{client_call_id}"] == ("DELETE",)


def test_paths_map_to_their_templates():
    assert template_of("/pptp/sessions/1-42") == "/pptp/sessions/{id}"
    assert template_of("/pptp/sessions/1-42/calls/7") == \
        "/pptp/sessions/{id}/calls/{client_call_id}"
    assert template_of("/pptp/forwards/203.0.113.1?dpid=1") == "/pptp/forwards/{public}"
    assert template_of("/pptp/sessions/1-42/x") is None


# The check can fail: answers that do not match the document are caught.
@pytest.mark.parametrize("method,path,status,body", [
    ("GET", "/pptp/sessions", 200, {"sessions": [], "extra": 1}),
    ("GET", "/pptp/sessions", 200, {"sessions": [{"id": "1-1"}]}),
    ("GET", "/pptp/forwards", 200, {"forwards": [{"dpid": 1, "public": "x", "inside":
                                                  "10.0.0.1", "sessions": 0}]}),
    ("GET", "/pptp/sessions/1-1", 404, {"error": 404}),
    ("DELETE", "/pptp/sessions/1-1", 200, {"torn_down": {"id": "1-1"}}),
])
def test_an_answer_off_its_schema_fails(method, path, status, body):
    with pytest.raises(ValidationError):
        check_answer(method, path, status, JSON, body)


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/pptp/gateways", 404),  # not a status that operation answers
    ("PUT", "/pptp/sessions", 200),  # not an operation of the document
    ("GET", "/pptp/nothing", 200),
])
def test_an_undocumented_answer_fails(method, path, status):
    with pytest.raises(AssertionError):
        check_answer(method, path, status, JSON, {})
