"""Permission-matrix entries of the health-code status API (status, history, recompute, manual
changes, alarms, contests, proxy bindings)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.accounts import service as account_service
from bastion.accounts.models import User
from bastion.core.auth import Perm
from bastion.healthcode import manual, store
from bastion.healthcode.models import ProxyBinding
from bastion.registry.idnumber import make_resident_id
from tests.integration.api.matrix import (
    CITY,
    Endpoint,
    Req,
    _found,
    _link,
    _marked,
    _person,
)
from tests.integration.healthcode import records

BASE = "/api/v1/healthcode"


def _user(db: Session, username: str) -> User:
    return db.execute(select(User).where(User.username == username)).scalar_one()


def _red(db: Session, where: str) -> Any:
    """A person with an open case, recomputed red."""
    person = _person(db, where)
    case = records.case(db, person)
    store.recompute_people(db_session=db, person_ids=[person.id])
    return person, case


def _request(db: Session, where: str) -> int:
    """A pending manual request made by the investigator of ``where``."""
    person, case = _red(db, where)
    investigator = account_service.principal_for(
        db_session=db, user=_user(db, f"investigator_{where}")
    )
    req = manual.create_request(
        db_session=db,
        principal=investigator,
        data=manual.RequestIn(
            person_ids=[person.id],
            colour="red",
            reason="matrix",
            evidence_type="case",
            evidence_id=case.id,
        ),
    )
    return req.id


def _mine(db: Session, role: str, where: str, path: str) -> Req:
    person, _ = _red(db, where)
    _link(db, role, person)
    return Req("GET", f"{BASE}/{path}/me")


def _contest(db: Session, role: str, where: str) -> Req:
    person, _ = _red(db, where)
    _link(db, role, person)
    return Req("POST", f"{BASE}/reviews", json={"statement": "我没有接触过病例"})


def _review(db: Session, where: str) -> int:
    person, _ = _red(db, where)
    user = _user(db, f"resident_{where}")
    user.person_id = person.id
    db.flush()
    principal = account_service.principal_for(db_session=db, user=user)
    return manual.contest(db_session=db, principal=principal, statement="matrix").id


def _binding(db: Session, role: str, where: str, *, holder_is_caller: bool, status: str) -> int:
    """A binding whose holder lives in ``where``; the caller is the holder or the proxy."""
    holder = _person(db, where)
    caller = _user(db, f"{role}_in")
    if holder_is_caller:
        caller.person_id = holder.id
        proxy = _user(db, f"resident_{'out' if role == 'resident' else 'in'}")
    else:
        proxy = caller
    db.flush()
    b = ProxyBinding(
        holder_person_id=holder.id,
        proxy_user_id=proxy.id,
        relation="parent",
        region_code=holder.region_code,
        status=status,
        requested_at=holder.created_at,
    )
    db.add(b)
    db.flush()
    return b.id


def _proxy_request(db: Session, role: str, where: str) -> Req:
    holder = _person(db, where)
    return Req(
        "POST",
        f"{BASE}/proxy",
        json={"id_number": make_resident_id("220102", holder.birth_date, 1), "relation": "parent"},
    )


ENTRIES: list[Endpoint] = [
    Endpoint(
        "GET",
        f"{BASE}/status/me",
        Perm.self_read,
        lambda db, r, w: _mine(db, r, w, "status"),
        outside=200,
    ),
    Endpoint(
        "GET",
        f"{BASE}/history/me",
        Perm.self_read,
        lambda db, r, w: _mine(db, r, w, "history"),
        outside=200,
    ),
    Endpoint(
        "GET",
        f"{BASE}/status/{{person_id}}",
        Perm.healthcode_read,
        lambda db, r, w: Req("GET", f"{BASE}/status/{_red(db, w)[0].id}"),
        outside=404,
    ),
    Endpoint(
        "GET",
        f"{BASE}/history/{{person_id}}",
        Perm.healthcode_read,
        lambda db, r, w: Req("GET", f"{BASE}/history/{_red(db, w)[0].id}"),
        outside=404,
    ),
    Endpoint(
        "POST",
        f"{BASE}/recompute",
        Perm.healthcode_recompute,
        lambda db, r, w: Req("POST", f"{BASE}/recompute", json={"region": CITY[w]}),
    ),
    Endpoint(
        "POST",
        f"{BASE}/requests",
        Perm.healthcode_request,
        lambda db, r, w: (
            lambda pc: Req(
                "POST",
                f"{BASE}/requests",
                json={
                    "person_ids": [pc[0].id],
                    "colour": "red",
                    "reason": "matrix",
                    "evidence_type": "case",
                    "evidence_id": pc[1].id,
                },
            )
        )(_red(db, w)),
        ok=201,
    ),
    Endpoint(
        "GET",
        f"{BASE}/requests",
        Perm.healthcode_read,
        lambda db, r, w: _marked(_request(db, w), w, Req("GET", f"{BASE}/requests")),
        outside=200,
        check=_found("id"),
    ),
    Endpoint(
        "GET",
        f"{BASE}/requests/{{request_id}}",
        Perm.healthcode_read,
        lambda db, r, w: Req("GET", f"{BASE}/requests/{_request(db, w)}"),
        outside=404,
    ),
    Endpoint(
        "POST",
        f"{BASE}/requests/{{request_id}}/approve",
        Perm.healthcode_approve,
        lambda db, r, w: Req("POST", f"{BASE}/requests/{_request(db, w)}/approve", json={}),
        outside=404,
    ),
    Endpoint(
        "POST",
        f"{BASE}/requests/{{request_id}}/refuse",
        Perm.healthcode_approve,
        lambda db, r, w: Req(
            "POST", f"{BASE}/requests/{_request(db, w)}/refuse", json={"note": "no"}
        ),
        outside=404,
    ),
    Endpoint(
        "GET",
        f"{BASE}/alarms",
        Perm.users_manage,
        lambda db, r, w: Req("GET", f"{BASE}/alarms"),
        outside=200,
    ),
    Endpoint(
        "POST",
        f"{BASE}/reviews",
        Perm.self_read,
        _contest,
        ok=201,
        outside=201,
    ),
    Endpoint(
        "GET",
        f"{BASE}/reviews",
        Perm.healthcode_read,
        lambda db, r, w: _marked(_review(db, w), w, Req("GET", f"{BASE}/reviews")),
        outside=200,
        check=_found("id"),
    ),
    Endpoint(
        "POST",
        f"{BASE}/proxy",
        Perm.self_read,
        _proxy_request,
        ok=202,
        outside=202,
    ),
    Endpoint(
        "GET",
        f"{BASE}/proxy",
        Perm.self_read,
        lambda db, r, w: Req("GET", f"{BASE}/proxy"),
        outside=200,
        instead={Perm.registry_write: 200},
    ),
    Endpoint(
        "POST",
        f"{BASE}/proxy/{{binding_id}}/accept",
        (Perm.registry_write, Perm.healthcode_read),
        lambda db, r, w: Req(
            "POST",
            f"{BASE}/proxy/"
            f"{_binding(db, r, w, holder_is_caller=r == 'resident', status='requested')}/accept",
            json={"consent_document": "CONSENT-2022-001"},
        ),
        outside=404,
        instead={Perm.self_read: 200},
    ),
    Endpoint(
        "POST",
        f"{BASE}/proxy/{{binding_id}}/refuse",
        (Perm.registry_write, Perm.healthcode_read),
        lambda db, r, w: Req(
            "POST",
            f"{BASE}/proxy/"
            f"{_binding(db, r, w, holder_is_caller=r == 'resident', status='requested')}/refuse",
        ),
        outside=404,
        instead={Perm.self_read: 200},
    ),
    Endpoint(
        "POST",
        f"{BASE}/proxy/{{binding_id}}/revoke",
        Perm.self_read,
        lambda db, r, w: Req(
            "POST",
            f"{BASE}/proxy/{_binding(db, r, w, holder_is_caller=False, status='accepted')}/revoke",
        ),
        outside=200,
    ),
    Endpoint(
        "GET",
        f"{BASE}/proxy/{{binding_id}}/status",
        Perm.self_read,
        lambda db, r, w: Req(
            "GET",
            f"{BASE}/proxy/{_binding(db, r, w, holder_is_caller=False, status='accepted')}/status",
        ),
        outside=200,
    ),
]
