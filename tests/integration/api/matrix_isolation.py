"""Permission-matrix entries of the isolation API (sites, placements, transfers, zone lifting,
figures) and of the protocol API."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from bastion.core.auth import Perm, system_principal
from bastion.isolation import service, sites, transfers
from bastion.isolation.needs import PlacementNeed
from bastion.isolation.schemas import BatchCreate, SiteCreate
from tests.integration.api.matrix import (
    CITY,
    COMMUNITY,
    GRID,
    MARK,
    Endpoint,
    Req,
    _found,
    _marked,
    _n,
    _person,
    _zone,
)

BASE = "/api/v1/isolation"


def _site(db: Session, where: str, kind: str = "hotel") -> Any:
    return sites.create_site(
        db_session=db,
        principal=system_principal(),
        data=SiteCreate(
            code=f"ISO-M{_n()}",
            name="隔离点",
            kind=kind,
            region_code=COMMUNITY[where],
            rooms=20,
            beds=20,
        ),
    )


def _placement(
    db: Session, where: str, *, destination: str = "home", starts: str = "2022-03-25"
) -> int:
    person = _person(db, where)
    report = service.place_needs(
        db_session=db,
        principal=system_principal(),
        needs=[
            PlacementNeed(
                person_id=person.id,
                region_code=GRID[where],
                reason="secondary_contact",
                source_type="contact",
                source_id=900_000 + _n(),
                destination=destination,  # type: ignore[arg-type]
                starts_on=date.fromisoformat(starts),
            )
        ],
    )
    pid = report.placement_ids[0]
    assert pid is not None
    return pid


def _releasable(db: Session, where: str) -> int:
    """An active home placement past its planned end with every test negative."""
    pid = _placement(db, where, starts="2022-03-10")
    for test in service.tests_of(db, pid):
        service.record_test(
            db_session=db,
            principal=system_principal(),
            placement_id=pid,
            day_no=test.day_no,
            result="negative",
            tested_on=test.due_on,
        )
    return pid


def _task(db: Session, where: str) -> int:
    pid = _placement(db, where, destination="centralised")
    [task] = [
        t
        for t in transfers.list_tasks(db_session=db, principal=system_principal())
        if t.placement_id == pid
    ]
    return task.id


def _batch(db: Session, where: str, *, dispatched: bool = False) -> int:
    site = _site(db, where)
    batch = transfers.create_batch(
        db_session=db,
        principal=system_principal(),
        data=BatchCreate(
            code=f"B-M{_n()}",
            vehicle="吉A00001",
            escort="李护士",
            site=site.code,
            tasks=[_task(db, where)],
        ),
    )
    if dispatched:
        transfers.dispatch(db_session=db, principal=system_principal(), batch_id=batch.id)
    return batch.id


def _batch_req(db: Session, role: str, where: str) -> Req:
    site = _site(db, where)
    body = {
        "code": f"B-N{_n()}",
        "vehicle": "吉A00002",
        "escort": "王医生",
        "site": site.code,
        "tasks": [_task(db, where)],
        "special_needs": {},
    }
    return Req("POST", f"{BASE}/transfers/batches", json=body)


def _landed(key: str, *, named: bool = True) -> Any:
    """For batch endpoints (200 both ways): the row of a record inside lands (``key`` counts
    it, or lists its id); a record outside is refused as not found when ``named`` (the caller
    sent its id), else simply not reached."""

    def check(response: Any, where: str) -> None:
        body = response.json()
        value = body[key]
        landed = (value == [MARK[where]]) if isinstance(value, list) else value == 1
        assert landed == (where == "in"), body
        if where != "in" and named:
            problems = body.get("problems") or body["refused"][0]["problems"]
            assert [p["code"] for p in problems] == ["placement.not_found"], body

    return check


def _marked_release(db: Session, where: str, url: str, body: dict[str, Any]) -> Req:
    pid = _releasable(db, where)
    if "placement_ids" in body:
        body = {**body, "placement_ids": [pid]}
    return _marked(pid, where, Req("POST", url, json=body))


ENTRIES: list[Endpoint] = [
    Endpoint(
        "POST",
        "/api/v1/isolation/placements/tests",
        Perm.isolation_write,
        lambda db, r, w: Req(
            "POST",
            f"{BASE}/placements/tests",
            json={
                "items": [{"placement_id": _placement(db, w), "day_no": 1, "result": "negative"}]
            },
        ),
        outside=200,
        check=_landed("recorded"),
    ),
    Endpoint(
        "POST",
        "/api/v1/isolation/releases",
        Perm.isolation_write,
        lambda db, r, w: _marked_release(db, w, f"{BASE}/releases", {"placement_ids": []}),
        outside=200,
        check=_landed("released"),
    ),
    Endpoint(
        "POST",
        "/api/v1/isolation/releases/due",
        Perm.isolation_write,
        lambda db, r, w: _marked_release(db, w, f"{BASE}/releases/due", {"day": "2022-03-25"}),
        outside=200,
        check=_landed("released", named=False),
    ),
    Endpoint(
        "POST",
        "/api/v1/isolation/sites",
        Perm.isolation_write,
        lambda db, r, w: Req(
            "POST",
            f"{BASE}/sites",
            json={
                "code": f"ISO-N{_n()}",
                "name": "方舱",
                "kind": "makeshift",
                "region_code": COMMUNITY[w],
                "rooms": 100,
                "beds": 400,
            },
        ),
        ok=201,
    ),
    Endpoint(
        "GET",
        "/api/v1/isolation/sites",
        Perm.isolation_read,
        lambda db, r, w: _marked(_site(db, w).code, w, Req("GET", f"{BASE}/sites")),
        outside=200,
        check=_found("code"),
    ),
    Endpoint(
        "GET",
        "/api/v1/isolation/sites/{code}",
        Perm.isolation_read,
        lambda db, r, w: Req("GET", f"{BASE}/sites/{_site(db, w).code}"),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/isolation/sites/{code}/basics",
        Perm.isolation_write,
        lambda db, r, w: Req(
            "POST",
            f"{BASE}/sites/{_site(db, w).code}/basics",
            json={"item": "heating", "status": "problem", "note": "3号楼暖气不热"},
        ),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/isolation/placements",
        Perm.isolation_read,
        lambda db, r, w: _marked(_placement(db, w), w, Req("GET", f"{BASE}/placements")),
        outside=200,
        check=_found("id", page=True),
    ),
    Endpoint(
        "GET",
        "/api/v1/isolation/placements/{placement_id}",
        Perm.isolation_read,
        lambda db, r, w: Req("GET", f"{BASE}/placements/{_placement(db, w)}"),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/isolation/placements/{placement_id}/release",
        Perm.isolation_write,
        lambda db, r, w: Req("POST", f"{BASE}/placements/{_releasable(db, w)}/release", json={}),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/isolation/placements/{placement_id}/tests",
        Perm.isolation_write,
        lambda db, r, w: Req(
            "POST",
            f"{BASE}/placements/{_placement(db, w)}/tests",
            json={"day_no": 1, "result": "negative"},
        ),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/isolation/tests",
        Perm.isolation_read,
        lambda db, r, w: _marked(_placement(db, w), w, Req("GET", f"{BASE}/tests")),
        outside=200,
        check=_found("placement_id"),
    ),
    Endpoint(
        "GET",
        "/api/v1/isolation/transfers",
        Perm.isolation_read,
        lambda db, r, w: _marked(_task(db, w), w, Req("GET", f"{BASE}/transfers")),
        outside=200,
        check=_found("id"),
    ),
    Endpoint(
        "POST",
        "/api/v1/isolation/transfers/batches",
        Perm.transfers_write,
        _batch_req,
        ok=201,
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/isolation/transfers/batches/{batch_id}/dispatch",
        Perm.transfers_write,
        lambda db, r, w: Req("POST", f"{BASE}/transfers/batches/{_batch(db, w)}/dispatch"),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/isolation/transfers/batches/{batch_id}/arrive",
        Perm.transfers_write,
        lambda db, r, w: Req(
            "POST", f"{BASE}/transfers/batches/{_batch(db, w, dispatched=True)}/arrive"
        ),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/isolation/transfers/batches/{batch_id}/fail",
        Perm.transfers_write,
        lambda db, r, w: Req(
            "POST",
            f"{BASE}/transfers/batches/{_batch(db, w)}/fail",
            json={"reason": "车辆故障"},
        ),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/isolation/zones/{zone_id}/lift-check",
        Perm.isolation_read,
        lambda db, r, w: Req("GET", f"{BASE}/zones/{_zone(db, w).id}/lift-check"),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/isolation/zones/{zone_id}/lift",
        (Perm.zones_write, Perm.isolation_read),
        lambda db, r, w: Req(
            "POST",
            f"{BASE}/zones/{_zone(db, w).id}/lift",
            json={"ends_on": "2022-03-25", "override_reason": "指挥部决定"},
        ),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/isolation/figures",
        Perm.isolation_read,
        lambda db, r, w: Req(
            "GET", f"{BASE}/figures", params={"region": CITY[w], "day": "2022-03-25"}
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/protocols",
        Perm.protocols_manage,
        lambda db, r, w: Req("GET", "/api/v1/protocols"),
        outside=200,
        instead={Perm.isolation_read: 200},
    ),
    Endpoint(
        "POST",
        "/api/v1/protocols/choices",
        Perm.protocols_manage,
        lambda db, r, w: Req(
            "POST",
            "/api/v1/protocols/choices",
            json={"profile": "national-9", "effective_from": "2022-04-01", "reason": "第九版"},
        ),
        ok=201,
        outside=201,
    ),
]
