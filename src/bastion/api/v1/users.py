"""Users and the audit log (administrators)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from bastion.accounts import service as account_service
from bastion.accounts.schemas import UserCreate, UserRead
from bastion.api.deps import CurrentPrincipal, SessionDep
from bastion.audit import service as audit_service
from bastion.core.auth import Perm

router = APIRouter(tags=["users"])


@router.get("/users", response_model=list[UserRead])
def list_users(session: SessionDep, principal: CurrentPrincipal) -> object:
    return account_service.list_users(db_session=session, principal=principal)


@router.post("/users", response_model=UserRead, status_code=201)
def create_user(body: UserCreate, session: SessionDep, principal: CurrentPrincipal) -> object:
    return account_service.create(
        db_session=session,
        principal=principal,
        username=body.username,
        password=body.password,
        role=body.role,
        region_code=body.region_code,
        display_name=body.display_name,
    )


class AuditVerify(BaseModel):
    ok: bool
    entries: int
    head_hash: str
    problems: list[str]


@router.get("/audit/verify", response_model=AuditVerify)
def verify_audit(session: SessionDep, principal: CurrentPrincipal) -> AuditVerify:
    principal.require(Perm.audit_read)
    report = audit_service.verify(db_session=session)
    return AuditVerify(
        ok=report.ok, entries=report.entries, head_hash=report.head_hash, problems=report.problems
    )
