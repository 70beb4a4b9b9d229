"""Permission-matrix entries of the bulletin endpoints: a city's bulletin is read (and
published) by a user whose region holds the city; the caller's own city is "in" (Changchun),
Jilin City "out"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from bastion.bulletin import service as bulletin_service
from bastion.core.auth import Perm, system_principal
from bastion.tracing import service as tracing_service
from bastion.tracing.schemas import CaseCreate
from tests.integration.api.matrix import CITY, Endpoint, Req, _person

#: The matrix runs on 25 March 2022 (Shanghai): the 24th is over and may be published.
DAY = date(2022, 3, 24)
BASE = f"/api/v1/bulletin/{DAY.isoformat()}"


def _read(suffix: str, **params: str) -> Callable[[Session, str, str], Req]:
    def build(db: Session, role: str, where: str) -> Req:
        return Req("GET", BASE + suffix, params={"region": CITY[where], **params})

    return build


def _publish(db: Session, role: str, where: str) -> Req:
    return Req("POST", BASE + "/publish", params={"region": CITY[where]})


def _correction(db: Session, role: str, where: str) -> Req:
    """The city's day published, then a case reported for that day: a correction has work."""
    bulletin_service.publish(
        db_session=db, principal=system_principal(), day=DAY, region_code=CITY[where]
    )
    person = _person(db, where)
    tracing_service.create_case(
        db_session=db,
        principal=system_principal(),
        data=CaseCreate(
            person_id=person.id, classification="confirmed", clinical_type="mild", reported_on=DAY
        ),
    )
    return Req("POST", BASE + "/corrections", json={"reason": "补报1例", "region": CITY[where]})


def _region_is_asked(response: Any, where: str) -> None:
    body = response.json()
    assert body["region_code"] == CITY[where]


ENTRIES: list[Endpoint] = [
    Endpoint(
        "GET",
        "/api/v1/bulletin/{day}",
        Perm.bulletin_read,
        _read(""),
        check=_region_is_asked,
    ),
    Endpoint(
        "GET",
        "/api/v1/bulletin/{day}/text",
        Perm.bulletin_read,
        _read("/text"),
    ),
    Endpoint(
        "GET",
        "/api/v1/bulletin/{day}/charts/{chart}",
        Perm.bulletin_read,
        _read("/charts/cities.svg"),
    ),
    Endpoint(
        "GET",
        "/api/v1/bulletin/{day}/revisions",
        Perm.bulletin_read,
        _read("/revisions"),
    ),
    Endpoint("POST", "/api/v1/bulletin/{day}/publish", Perm.bulletin_publish, _publish, ok=201),
    Endpoint(
        "POST", "/api/v1/bulletin/{day}/corrections", Perm.bulletin_publish, _correction, ok=201
    ),
]
