"""Permission-matrix entries of the signed-code endpoints (see test_permission_matrix)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm
from bastion.healthcode import keys, signing
from tests.integration.api.matrix import PUBLIC, Endpoint, Req, _link, _person


def _mine(path: str) -> Any:
    """The caller's own code: every account is linked to a person living ``where``; a resident
    gets theirs wherever they live, a role without self.read is refused all the same."""

    def build(db: Session, role: str, where: str) -> Req:
        _link(db, role, _person(db, where))
        return Req("GET", path)

    return build


def _lookup(db: Session, role: str, where: str) -> Req:
    return Req("GET", "/api/v1/codes/lookup", params={"person": _person(db, where).token})


def _verify(db: Session, role: str, where: str) -> Req:
    """A code of someone living ``where``: a checkpoint checks anyone's code it is shown."""
    person = _person(db, where)
    row = keys.ensure_active(db_session=db)
    at = int(clock.now().timestamp())
    claims = signing.Claims(row.kid, "green", at, at + 300, person.token)
    payload = signing.sign(claims, keys.private_key(row))
    return Req("POST", "/api/v1/codes/verify", json={"payload": payload})


def _verified(response: Any, where: str) -> None:
    assert response.json()["colour"] == "green", response.json()


ENTRIES: list[Endpoint] = [
    Endpoint("GET", "/api/v1/codes/mine", Perm.self_read, _mine("/api/v1/codes/mine"), outside=200),
    Endpoint(
        "GET",
        "/api/v1/codes/mine/qr",
        Perm.self_read,
        _mine("/api/v1/codes/mine/qr"),
        outside=200,
    ),
    Endpoint("GET", "/api/v1/codes/lookup", Perm.healthcode_read, _lookup, outside=403),
    Endpoint(
        "POST",
        "/api/v1/codes/verify",
        Perm.healthcode_read,
        _verify,
        outside=200,
        check=_verified,
    ),
    Endpoint(
        "GET", "/api/v1/codes/keys", PUBLIC, lambda db, r, w: Req("GET", "/api/v1/codes/keys")
    ),
    Endpoint(
        "POST",
        "/api/v1/codes/keys/rotate",
        Perm.healthcode_keys,
        lambda db, r, w: Req("POST", "/api/v1/codes/keys/rotate"),
        ok=201,
        # Keys are the province's, not a region's.
        outside=201,
    ),
]
