"""What the permission matrix is made of: requests, endpoint entries and the builders that
place a record inside (Changchun) or outside (Jilin City) the caller's region.

Each domain lists its endpoints in ``tests/integration/api/matrix_<domain>.py`` as ``ENTRIES``
(a list of :class:`Endpoint`); ``test_permission_matrix`` collects every such module.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.accounts.models import User
from bastion.core.auth import Perm, system_principal
from bastion.regions import service as region_service
from bastion.registry.models import Person
from bastion.testing import service as testing_service
from bastion.testing.schemas import RoundCreate, SiteCreate
from tests.integration.registry.imports import csv_bytes
from tests.integration.registry.people import new_id_number, register
from tests.support.world import CHANGYI_GRID, NANGUAN_GRID

START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)
NOW = START + timedelta(hours=6)
CITY = {"in": "220100", "out": "220200"}
DISTRICT = {"in": "220102", "out": "220202"}
COMMUNITY = {"in": NANGUAN_GRID[:12], "out": CHANGYI_GRID[:12]}
GRID = {"in": NANGUAN_GRID, "out": CHANGYI_GRID}
PUBLIC = "public"
ANY_USER = "any user"
_unique = itertools.count(1)


@dataclass
class Req:
    method: str
    url: str
    json: Any = None
    data: dict[str, str] | None = None
    files: dict[str, Any] | None = None
    params: dict[str, Any] | None = None


@dataclass(frozen=True)
class Endpoint:
    """How to call one endpoint, what it needs, and what it answers."""

    method: str
    path: str
    #: PUBLIC, ANY_USER, a permission, or a tuple of permissions all of which are needed.
    needs: Perm | tuple[Perm, ...] | str
    build: Callable[[Session, str, str], Req]
    ok: int = 200
    #: The answer to a caller who holds the permission but targets another region.
    outside: int = 403
    #: Answers to callers lacking ``needs`` but holding another permission (else 403).
    instead: dict[Perm, int] = field(default_factory=dict)
    #: Answers, instead of ``outside``, to callers holding ``needs`` and another permission who
    #: target another region (a resident may name no one but themselves: 403, not 404).
    outside_instead: dict[Perm, int] = field(default_factory=dict)
    #: Further checks of a 2xx answer: (response, where) → None, asserting.
    check: Callable[[Any, str], None] | None = None


def _n() -> int:
    return next(_unique)


# Builders: (db, role, where) → the request, creating what it needs through the services. ------


def _person(db: Session, where: str, **overrides: Any) -> Any:
    return register(db, region_code=GRID[where], **overrides)


def _zone(db: Session, where: str) -> Any:
    return region_service.designate_zone(
        db_session=db,
        principal=system_principal(),
        region_code=GRID[where],
        kind="control",
        starts_on=date(2022, 3, 20),
        reason="matrix",
    )


def _round(db: Session, where: str) -> Any:
    return testing_service.create_round(
        db_session=db,
        principal=system_principal(),
        data=RoundCreate(
            code=f"R-M{_n()}", name="matrix", region_code=CITY[where], starts_at=START
        ),
    )


def _site(db: Session, where: str) -> Any:
    return testing_service.create_site(
        db_session=db,
        principal=system_principal(),
        data=SiteCreate(
            code=f"S-M{_n()}",
            name="采样点",
            region_code=COMMUNITY[where],
            capacity_per_hour=300,
            grids=[GRID[where]],
        ),
    )


def _import(db: Session, role: str, where: str) -> Req:
    row = {"name": "王芳", "id_number": new_id_number(), "region_code": GRID[where]}
    return Req("POST", "/api/v1/persons/import", files={"file": ("p.csv", csv_bytes([row]))})


def _import_check(response: Any, where: str) -> None:
    report = response.json()
    assert (report["created"], report["refused"]) == ((1, 0) if where == "in" else (0, 1))


def _scan(db: Session, role: str, where: str) -> Req:
    rnd, site, person = _round(db, where), _site(db, where), _person(db, where)
    return Req(
        "POST",
        "/api/v1/scans/batches",
        json={
            "key": f"matrix-{_n():08d}",
            "round": rnd.code,
            "site": site.code,
            "groups": [
                {
                    "tube": f"TM{_n():08d}",
                    "people": [person.token],
                    "scanned_at": (START + timedelta(hours=2)).isoformat(),
                }
            ],
        },
    )


def _scan_check(response: Any, where: str) -> None:
    assert response.json()["accepted"] == (1 if where == "in" else 0)


def _found(key: str, *, page: bool = False) -> Callable[[Any, str], None]:
    """For list endpoints (200 both ways): the record placed inside is listed, outside not.
    ``page``: the list is the answer's ``items``."""

    def check(response: Any, where: str) -> None:
        body = response.json()
        values = {item[key] for item in (body["items"] if page else body)}
        assert (MARK[where] in values) == (where == "in"), values

    return check


#: The value a list check looks for, set by the builder of the running test.
MARK: dict[str, Any] = {}


def _marked(value: Any, where: str, req: Req) -> Req:
    MARK[where] = value
    return req


def _link(db: Session, role: str, person: Person) -> None:
    """Make ``person`` the caller's own (what a resident's account is for)."""
    user = db.execute(select(User).where(User.username == f"{role}_in")).scalar_one()
    user.person_id = person.id
    db.flush()


def _only_mark(response: Any, where: str) -> None:
    """For "mine" lists: the caller's own record and nothing else (not a neighbour's)."""
    assert [item["id"] for item in response.json()] == [MARK[where]], response.json()
