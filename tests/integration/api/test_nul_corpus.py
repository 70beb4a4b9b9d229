"""A NUL byte (``\\x00``) in any string an /api/v1 endpoint takes is refused, never a 500.

PostgreSQL refuses a NUL in text (psycopg raises before the query is sent) while SQLite stores
it, so a value that reaches SQL unchecked is a 500 on one engine only. This corpus walks every
endpoint of the permission matrix: it builds the matrix's valid request for a role that may
call it (target inside the caller's region), then sends it once per string input with a NUL
put into that one input: each query parameter the endpoint declares (OpenAPI), each path
parameter, each string in the JSON body (and each top-level string field the body model
declares but the request left out), each form field, and each uploaded file's contents. Every
answer must be below 500, and a refusal a problem document; a 422 must name the field.

A new endpoint is covered as soon as it is in the matrix (``test_every_endpoint_is_in_the_matrix``
sees to that). Runs on both engines; the PostgreSQL half is the one that catches a leak.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import replace
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy.orm import sessionmaker

from bastion.api.app import create_app
from bastion.core.auth import ROLES
from bastion.core.text import has_control
from tests.integration.api import test_permission_matrix as matrix_tests
from tests.integration.api.matrix import MARK, PUBLIC, Endpoint, Req
from tests.integration.api.test_permission_matrix import MATRIX, _key, _send, expected_status

# The matrix's fixtures serve here too: one app for the module, the clock frozen at NOW.
_frozen = matrix_tests._frozen
_shared = matrix_tests._shared
client = matrix_tests.client

NUL = "\x00"

#: How one input of a request is spoiled: a name for the report and the change to make.
Variant = tuple[str, Callable[[Req], Req]]


@cache
def _spec() -> dict[str, Any]:
    return create_app(factory=sessionmaker()).openapi()  # never connects: only routes are read


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        found: dict[str, Any] = _spec()["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return found
    return schema


def _takes_string(schema: dict[str, Any]) -> bool:
    schema = _resolve(schema)
    if schema.get("type") == "string":
        return True
    return any(_takes_string(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    found: dict[str, Any] = _spec()["paths"][endpoint.path][endpoint.method.lower()]
    return found


def _with_query(name: str) -> Callable[[Req], Req]:
    def spoil(req: Req) -> Req:
        return replace(req, params={**(req.params or {}), name: f"A{NUL}"})

    return spoil


def _with_path(index: int, suffix: str) -> Callable[[Req], Req]:
    """The NUL goes at the end of the parameter, before what follows it in its segment."""

    def spoil(req: Req) -> Req:
        parts = urlsplit(req.url)
        segments = parts.path.split("/")
        value = segments[index].removesuffix(suffix)
        segments[index] = value + quote(NUL) + suffix
        url = "/".join(segments) + (f"?{parts.query}" if parts.query else "")
        return replace(req, url=url)

    return spoil


def _json_leaves(value: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_leaves(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _json_leaves(item, (*at, i))
    elif isinstance(value, str):
        yield at


def _with_json(at: tuple[Any, ...], missing: bool = False) -> Callable[[Req], Req]:
    def spoil(req: Req) -> Req:
        body = deepcopy(req.json)
        node = body
        for key in at[:-1]:
            node = node[key]
        node[at[-1]] = f"A{NUL}" if missing else f"{node[at[-1]]}{NUL}"
        return replace(req, json=body)

    return spoil


def _with_form(name: str) -> Callable[[Req], Req]:
    def spoil(req: Req) -> Req:
        data = dict(req.data or {})
        data[name] = f"{data[name]}{NUL}"
        return replace(req, data=data)

    return spoil


def _with_file(name: str) -> Callable[[Req], Req]:
    def spoil(req: Req) -> Req:
        files = dict(req.files or {})
        filename, content, *rest = files[name]
        files[name] = (filename, content.rstrip(b"\r\n") + b"\x00\n", *rest)
        return replace(req, files=files)

    return spoil


def variants(endpoint: Endpoint, req: Req) -> list[Variant]:
    """Every way to put a NUL into one string input of ``req`` (a valid request)."""
    operation = _operation(endpoint)
    found: list[Variant] = []
    template = endpoint.path.split("/")
    actual = urlsplit(req.url).path.split("/")
    for param in operation.get("parameters", []):
        name = param["name"]
        if param["in"] == "query":
            found.append((f"query {name}", _with_query(name)))
        elif param["in"] == "path" and len(template) == len(actual):
            [index] = [i for i, part in enumerate(template) if f"{{{name}}}" in part]
            suffix = template[index].split(f"{{{name}}}", 1)[1]
            found.append((f"path {name}", _with_path(index, suffix)))
    if isinstance(req.json, dict | list):
        for at in _json_leaves(req.json):
            found.append(("body " + ".".join(map(str, at)), _with_json(at)))
        content = operation.get("requestBody", {}).get("content", {})
        schema = _resolve(content.get("application/json", {}).get("schema", {}))
        if isinstance(req.json, dict):
            for name, prop in schema.get("properties", {}).items():
                if name not in req.json and _takes_string(prop):
                    found.append((f"body {name} (absent)", _with_json((name,), missing=True)))
    for name in req.data or {}:
        found.append((f"form {name}", _with_form(name)))
    for name in req.files or {}:
        found.append((f"file {name}", _with_file(name)))
    return found


def _caller(endpoint: Endpoint) -> str | None:
    """A role that may call ``endpoint`` on a target inside its region (None: public)."""
    if endpoint.needs == PUBLIC:
        return None
    for role in ROLES:
        if expected_status(endpoint, role, "in") < 300:
            return role
    raise AssertionError(f"no role may call {_key(endpoint)}")


#: Endpoints with string inputs (the others have nothing to put a NUL into).
def _with_inputs() -> list[Endpoint]:
    out = []
    for endpoint in MATRIX:
        operation = _operation(endpoint) if endpoint.path in _spec()["paths"] else {}
        if operation.get("parameters") or operation.get("requestBody"):
            out.append(endpoint)
    return out


#: Inputs whose NUL still reaches the database and is refused there, by the last line of
#: defence in ``api/errors.py`` (a 422 naming the parameter, or the column it was bound to),
#: not by the endpoint's own types. Empty: every input is refused at the edge (``core.text.Line``
#: / ``Text``, see MOVED_TO_THE_EDGE below); a new entry is a leak.
KNOWN_LEAKS: dict[str, set[str]] = {}

#: What ``api/errors.py`` logs when its last line of defence refuses a NUL.
BACKSTOP = "NUL reached the database"


@pytest.mark.parametrize("endpoint", _with_inputs(), ids=_key)
def test_a_nul_in_any_input_is_refused_not_a_500(client, headers, db, endpoint, caplog):
    role = _caller(endpoint)
    known = KNOWN_LEAKS.get(_key(endpoint), set())
    leaked = set()
    MARK.clear()
    # The valid request shows the inputs; what it placed is rolled back (a builder may place
    # what cannot be placed twice, a zone on a grid say).
    first = db.begin_nested()
    spoilt = variants(endpoint, endpoint.build(db, role or "admin", "in"))
    first.rollback()
    assert spoilt, f"{_key(endpoint)} takes input, yet no variant was found"
    failures = []
    for name, spoil in spoilt:
        # Each variant from the same start, rolled back after: an accepted variant must not
        # leave the next one a conflict (or a logged-out token) to answer instead.
        variant = db.begin_nested()
        req = spoil(endpoint.build(db, role or "admin", "in"))
        db.flush()
        caplog.clear()
        response = _send(client, req, headers(role) if role else None)
        variant.rollback()
        if any(BACKSTOP in r.getMessage() for r in caplog.records):
            leaked.add(name)
        status = response.status_code
        if status >= 500:
            failures.append(f"{name}: {status} {response.text[:200]}")
        elif status >= 400:
            if not response.headers["content-type"].startswith("application/problem+json"):
                failures.append(f"{name}: {status} is not a problem document")
            elif status == 422:
                errors = response.json().get("errors") or []
                if not errors or not all(e.get("field") for e in errors):
                    failures.append(f"{name}: 422 without the field: {response.text[:200]}")
    if leaked - known:
        failures += [
            f"{name}: refused by the database, not the endpoint" for name in leaked - known
        ]
    assert not failures, f"{_key(endpoint)}:\n" + "\n".join(failures)


def test_the_control_character_refusal_names_the_field_and_reason(client, headers):
    response = client.get(
        "/api/v1/contacts", params={"level": f"close{NUL}"}, headers=headers("investigator")
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    assert (error["field"], error["code"]) == ("level", "field.control_chars"), error


_SITE = {"code": "IS-1", "name": "站", "kind": "hotel", "region_code": "220102", "rooms": 1}
_ROUND = {"code": "R-1", "name": "轮次", "region_code": "220100", "starts_at": "2022-03-25T08:00Z"}
_LAB = {"code": "L-1", "name": "实验室", "region_code": "220100", "daily_capacity": 10}

#: The endpoints the review found answering a NUL with a 500 on PostgreSQL: each now refuses
#: it at the edge, naming the field and the reason, on both engines.
REVIEWED = [
    ("GET", "/api/v1/cases", {"status": "open"}, None, "status"),
    ("GET", "/api/v1/contacts", {"level": "close"}, None, "level"),
    ("GET", "/api/v1/contacts", {"status": "active"}, None, "status"),
    ("GET", "/api/v1/isolation/placements", {"status": "active"}, None, "status"),
    ("GET", "/api/v1/isolation/placements", {"setting": "home"}, None, "setting"),
    ("GET", "/api/v1/isolation/transfers", {"status": "open"}, None, "status"),
    ("GET", "/api/v1/isolation/transfers", {"kind": "in"}, None, "kind"),
    ("GET", "/api/v1/isolation/sites", {"kind": "hotel"}, None, "kind"),
    ("POST", "/api/v1/isolation/sites", None, {**_SITE, "beds": 2}, "name"),
    ("POST", "/api/v1/isolation/sites/IS-1{NUL}/basics", None, {"item": "water"}, "code"),
    ("POST", "/api/v1/isolation/sites/IS-1/basics", None, {"item": "water"}, "status"),
    ("GET", "/api/v1/sites/S-1{NUL}", None, None, "code"),
    ("POST", "/api/v1/rounds", None, _ROUND, "code"),
    ("POST", "/api/v1/labs", None, _LAB, "name"),
]

_ZONE = {"region_code": "220102", "kind": "lockdown", "starts_on": "2022-03-12", "reason": "封控"}
_PERSON = {"name": "王芳", "id_number": "220102199001011234", "region_code": "220102"}
_USER = {"username": "new.user", "password": "long-enough-1", "role": "sampler"}
_REQUEST = {
    "person_ids": [1],
    "colour": "yellow",
    "reason": "同楼栋",
    "evidence_type": "case",
    "evidence_id": 1,
}
_CHOICE = {"profile": "national-9", "effective_from": "2022-06-01", "reason": "第九版"}

#: The inputs that were once left to the database's refusal (api/errors.py): each is now
#: refused at the edge, before any service runs, on both engines. (The login form's username
#: is tested in test_auth.py.)
MOVED_TO_THE_EDGE = [
    ("GET", "/api/v1/regions/220100{NUL}", None, None, "code"),
    ("GET", "/api/v1/regions/220100{NUL}/children", None, None, "code"),
    ("POST", "/api/v1/zones", None, _ZONE, "region_code"),
    ("POST", "/api/v1/zones", None, _ZONE, "reason"),
    ("POST", "/api/v1/persons", None, _PERSON, "region_code"),
    ("GET", "/api/v1/persons", {"region": "220100"}, None, "region"),
    ("GET", "/api/v1/persons", {"region": "220100", "name": "王"}, None, "name"),
    ("PATCH", "/api/v1/persons/1", None, {}, "region_code"),
    ("GET", "/api/v1/persons/export/220100{NUL}.csv", None, None, "region_code"),
    ("POST", "/api/v1/users", None, {**_USER, "region_code": "220102"}, "region_code"),
    ("POST", "/api/v1/users", None, {**_USER, "region_code": "220102"}, "display_name"),
    ("POST", "/api/v1/bulletin/2022-03-25/corrections", None, {"reason": "补报"}, "reason"),
    ("POST", "/api/v1/healthcode/requests", None, _REQUEST, "reason"),
    ("GET", "/api/v1/healthcode/requests", {"status": "pending"}, None, "status"),
    ("POST", "/api/v1/healthcode/requests/1/approve", None, {}, "note"),
    ("POST", "/api/v1/healthcode/requests/1/refuse", None, {"note": "不符"}, "note"),
    ("POST", "/api/v1/healthcode/reviews", None, {"statement": "误判"}, "statement"),
    ("GET", "/api/v1/healthcode/reviews", {"status": "open"}, None, "status"),
    (
        "POST",
        "/api/v1/healthcode/proxy/1/accept",
        None,
        {"consent_document": "D-1"},
        "consent_document",
    ),
    ("POST", "/api/v1/protocols/choices", None, _CHOICE, "reason"),
]


@pytest.mark.parametrize(("method", "url", "params", "body", "field"), REVIEWED + MOVED_TO_THE_EDGE)
def test_the_reviewed_endpoints_refuse_a_nul_naming_the_field(
    client, headers, method, url, params, body, field
):
    if params is not None:
        params = {k: f"{v}{NUL}" for k, v in params.items()}
    if body is not None and "{NUL}" not in url:  # else the path carries the NUL
        body = {**body, field: f"{body.get(field, 'ok')}{NUL}"}
    response = client.request(
        method,
        url.replace("{NUL}", quote(NUL)),
        params=params,
        json=body,
        headers=headers("admin"),
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = {(e["field"], e["code"]) for e in response.json()["errors"]}
    assert (field, "field.control_chars") in fields, fields


@pytest.mark.parametrize(
    ("value", "line", "text"),
    [
        ("王芳 Wang", True, True),
        ("two\nlines\tand a tab\r\n", False, True),
        (f"a{NUL}b", False, False),
        ("bell\x07", False, False),
        ("zero\u200bwidth", False, True),
        ("", True, True),
    ],
)
def test_line_and_text_refuse_control_characters(value, line, text):
    assert has_control(value) is not line
    assert has_control(value, multiline=True) is not text
