"""Permission-matrix entries of the tracing API (cases, exposures, contacts, chains,
expansion): investigators write, analysts and commanders read, all within their region."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bastion.core.auth import Perm, system_principal
from bastion.tracing import service as tracing_service
from bastion.tracing.models import Case
from bastion.tracing.schemas import CaseCreate, ExposureIn
from tests.integration.api.matrix import Endpoint, Req, _found, _marked, _person

DAY = "2022-03-25"


def _case(db: Session, where: str) -> Case:
    return tracing_service.create_case(
        db_session=db,
        principal=system_principal(),
        data=CaseCreate(person_id=_person(db, where).id, classification="asymptomatic"),
    )


def _contact(db: Session, where: str) -> int:
    case = _case(db, where)
    report = tracing_service.record_exposures(
        db_session=db,
        principal=system_principal(),
        items=[
            ExposureIn(
                case=case.code,
                person_id=_person(db, where).id,
                exposed_on=DAY,  # type: ignore[arg-type]
                setting="household",
            )
        ],
    )
    return report.close_ids[0]


def _exposure(db: Session, where: str) -> dict[str, Any]:
    return {
        "case": _case(db, where).code,
        "person_id": _person(db, where).id,
        "exposed_on": DAY,
        "setting": "household",
    }


def _batch_check(response: Any, where: str) -> None:
    report = response.json()
    assert (report["accepted"], report["refused"]) == ((1, 0) if where == "in" else (0, 1))


ENTRIES: list[Endpoint] = [
    Endpoint(
        "POST",
        "/api/v1/cases",
        Perm.cases_write,
        lambda db, r, w: Req(
            "POST",
            "/api/v1/cases",
            json={"person_id": _person(db, w).id, "classification": "asymptomatic"},
        ),
        ok=201,
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/cases",
        Perm.tracing_read,
        lambda db, r, w: _marked(_case(db, w).code, w, Req("GET", "/api/v1/cases")),
        outside=200,
        check=_found("code", page=True),
    ),
    Endpoint(
        "GET",
        "/api/v1/cases/{ref}",
        Perm.tracing_read,
        lambda db, r, w: Req("GET", f"/api/v1/cases/{_case(db, w).code}"),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/cases/{ref}/reclassify",
        Perm.cases_write,
        lambda db, r, w: Req(
            "POST",
            f"/api/v1/cases/{_case(db, w).code}/reclassify",
            json={"clinical_type": "mild"},
        ),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/cases/{ref}/close",
        Perm.cases_write,
        lambda db, r, w: Req(
            "POST", f"/api/v1/cases/{_case(db, w).code}/close", json={"action": "release"}
        ),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/cases/{ref}/chain",
        Perm.tracing_read,
        lambda db, r, w: Req("GET", f"/api/v1/cases/{_case(db, w).code}/chain"),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/exposures",
        Perm.contacts_write,
        lambda db, r, w: Req("POST", "/api/v1/exposures", json=_exposure(db, w)),
        ok=201,
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/exposures/batch",
        Perm.contacts_write,
        lambda db, r, w: Req("POST", "/api/v1/exposures/batch", json={"items": [_exposure(db, w)]}),
        outside=200,
        check=_batch_check,
    ),
    Endpoint(
        "GET",
        "/api/v1/contacts",
        Perm.tracing_read,
        lambda db, r, w: _marked(_contact(db, w), w, Req("GET", "/api/v1/contacts")),
        outside=200,
        check=_found("id", page=True),
    ),
    Endpoint(
        "GET",
        "/api/v1/contacts/{contact_id}",
        Perm.tracing_read,
        lambda db, r, w: Req("GET", f"/api/v1/contacts/{_contact(db, w)}"),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/contacts/expand",
        Perm.contacts_write,
        lambda db, r, w: Req(
            "POST", "/api/v1/contacts/expand", json={"cases": [_case(db, w).code]}
        ),
        outside=404,
    ),
]
