"""Login (OAuth2 password flow), who am I, logout."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from bastion.accounts import service as account_service
from bastion.accounts.schemas import Token
from bastion.api.deps import CurrentPrincipal, SessionDep
from bastion.core.auth import ROLE_PERMISSIONS
from bastion.core.errors import InvalidInput
from bastion.core.text import has_control

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token", response_model=Token)
def login(session: SessionDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
    # The username is looked up in SQL: one line, no control character (as core.text.Line;
    # the form is OAuth2's own). The password is only hashed and may hold anything.
    if has_control(form.username):
        raise InvalidInput.one("username", "field.control_chars")
    user = account_service.authenticate(
        db_session=session, username=form.username, password=form.password
    )
    token, ttl = account_service.issue_token(user)
    return Token(access_token=token, expires_in=ttl)


class Me(BaseModel):
    username: str
    role: str
    region_code: str
    permissions: list[str]


@router.get("/me", response_model=Me)
def me(principal: CurrentPrincipal) -> Me:
    return Me(
        username=principal.username,
        role=principal.role,
        region_code=principal.region_code,
        permissions=sorted(p.value for p in ROLE_PERMISSIONS[principal.role]),
    )


@router.post("/logout", status_code=204)
def logout(request: Request, session: SessionDep, principal: CurrentPrincipal) -> None:
    user = account_service.get(db_session=session, user_id=principal.user_id or 0)
    if user is not None:
        account_service.logout(db_session=session, user=user)
        request.app.state.principals.drop_user(user.id)
