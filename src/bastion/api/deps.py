"""FastAPI dependencies: the request's transaction, the caller, the language."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from bastion.accounts import service as account_service
from bastion.api.errors import request_language
from bastion.api.principals import PrincipalCache
from bastion.core.auth import Principal
from bastion.core.errors import NotAuthenticated
from bastion.core.i18n import Language

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request, committed before the response is sent (scope="function"),
    so an acknowledgement always means the data is durable."""
    factory = request.app.state.session_factory
    with factory() as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> Principal:
    """The caller named by the bearer token; 401 without a valid one. Resolved principals are
    cached briefly per app (see api/principals.py), so hot paths touch the database rarely."""
    if not token:
        raise NotAuthenticated()
    cache: PrincipalCache = request.app.state.principals
    principal = cache.get(token)
    if principal is not None:
        return principal
    with request.app.state.session_factory() as session:
        user = account_service.user_from_token(db_session=session, token=token)
        principal = account_service.principal_for(db_session=session, user=user)
    cache.put(token, principal)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
#: A row id in a path: a 64-bit key, so a larger number is refused (422) before the database
#: sees it (both drivers fail on integers past 2**63 - 1).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
LangDep = Annotated[Language, Depends(request_language)]
