"""Every REST answer in the tests, checked against its schema in the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from ryu_pptp_alg.openapi import DOCUMENT

DOC_URI = "urn:ryu-pptp-alg:openapi"
REGISTRY: Registry = Registry().with_resource(DOC_URI, Resource(DOCUMENT, DRAFT202012))
ERROR_POINTER = "/components/schemas/Error"


def template_of(path: str) -> str | None:
    """The document's path template a concrete path (query string dropped) has."""
    path = path.split("?", 1)[0]
    for template in DOCUMENT["paths"]:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return template
    return None


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def schema_pointer(method: str, path: str, status: int) -> str:
    """Where the schema of this answer is; an answer the document does not describe fails."""
    template = template_of(path)
    if template is None or status == 405:  # no operation to hang them on: the catch-all's
        assert status in (404, 405), f"{method} {path}: {status} for an undocumented path"
        return ERROR_POINTER
    operation = DOCUMENT["paths"][template].get(method.lower())
    assert operation is not None, f"{method} {template} is not in the document"
    response = operation["responses"].get(str(status))
    assert response is not None, f"{method} {template}: status {status} is not documented"
    pointer = "/".join(["", "paths", _escape(template), method.lower(), "responses",
                        str(status)])
    if "$ref" in response:
        pointer = response["$ref"].removeprefix("#")
    return pointer + "/content/application~1json/schema"


def check_answer(method: str, path: str, status: int, headers: Any, body: Any) -> None:
    assert headers["Content-Type"].startswith("application/json"), headers["Content-Type"]
    if status == 405:
        assert headers.get("Allow"), "a 405 names the methods the path takes"
    schema = {"$ref": f"{DOC_URI}#{schema_pointer(method, path, status)}"}
    Draft202012Validator(schema, registry=REGISTRY,
                         format_checker=Draft202012Validator.FORMAT_CHECKER).validate(body)
