"""Users, logins and the tokens that carry them."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.accounts.models import User
from bastion.audit import service as audit_service
from bastion.core import clock, crypto
from bastion.core.auth import ROLES, Perm, Principal, hash_password, verify_password
from bastion.core.config import get_settings
from bastion.core.errors import Conflict, FieldProblem, InvalidInput, NotAuthenticated
from bastion.core.text import has_control
from bastion.regions import service as region_service

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{3,64}$")
MIN_PASSWORD = 8
TOKEN_PURPOSE = "session"  # noqa: S105 - a label binding tokens to their use


def get(*, db_session: Session, user_id: int) -> User | None:
    return db_session.get(User, user_id)


def get_by_username(*, db_session: Session, username: str) -> User | None:
    return db_session.execute(select(User).where(User.username == username)).scalar_one_or_none()


def create(
    *,
    db_session: Session,
    principal: Principal,
    username: str,
    password: str,
    role: str,
    region_code: str,
    display_name: str = "",
    person_id: int | None = None,
) -> User:
    """Create a user. Refuses a malformed username, a short password, an unknown role or region,
    a region outside the creator's subtree, and a username already taken."""
    principal.require(Perm.users_manage)
    problems: list[FieldProblem] = []
    if not USERNAME_RE.match(username):
        problems.append(FieldProblem("username", "user.bad_username"))
    if len(password) < MIN_PASSWORD:
        problems.append(FieldProblem("password", "user.password_short", {"min": MIN_PASSWORD}))
    if role not in ROLES:
        problems.append(FieldProblem("role", "user.unknown_role", {"value": role}))
    if region_service.get(db_session=db_session, code=region_code) is None:
        problems.append(
            FieldProblem("region_code", "error.region_unknown", {"region": region_code})
        )
    if problems:
        raise InvalidInput(problems=problems)
    principal.require_region(region_code)
    if get_by_username(db_session=db_session, username=username) is not None:
        raise Conflict("user.taken", username=username)
    user = User(
        username=username,
        display_name=display_name or username,
        password_hash=hash_password(password),
        role=role,
        region_code=region_code,
        person_id=person_id,
        active=True,
        token_version=0,
        created_at=clock.now(),
    )
    db_session.add(user)
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="user.create",
        target_type="user",
        target_id=user.id,
        region_code=region_code,
        details={"username": username, "role": role},
    )
    return user


def list_users(*, db_session: Session, principal: Principal) -> Sequence[User]:
    """Users whose region lies in the principal's subtree."""
    principal.require(Perm.users_read)
    stmt = select(User).where(principal.scope.clause(User.region_code)).order_by(User.username)
    return db_session.execute(stmt).scalars().all()


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def authenticate(*, db_session: Session, username: str, password: str) -> User:
    """The active user with these credentials; refuses anything else with one message that
    does not tell which half was wrong, and in the same time: an unknown username still costs
    a password check, or the answer's speed would tell which usernames exist."""
    # No username holds a control character (the edge refuses them): such a one is unknown,
    # and never reaches the database (PostgreSQL refuses a NUL in text outright).
    user = (
        None if has_control(username) else get_by_username(db_session=db_session, username=username)
    )
    if user is None:
        verify_password(_decoy_hash(), password)
        raise NotAuthenticated("auth.bad_credentials")
    if not verify_password(user.password_hash, password) or not user.active:
        raise NotAuthenticated("auth.bad_credentials")
    return user


def principal_for(*, db_session: Session, user: User) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        region_code=user.region_code,
        scope=region_service.scope_of(db_session=db_session, code=user.region_code),
        person_id=user.person_id,
        ancestors=tuple(
            r.code for r in region_service.ancestors(db_session=db_session, code=user.region_code)
        ),
    )


def issue_token(user: User) -> tuple[str, int]:
    """A signed bearer token for ``user`` and its lifetime in seconds."""
    ttl = get_settings().token_ttl_minutes * 60
    token = crypto.sign(
        {"uid": user.id, "ver": user.token_version}, ttl_seconds=ttl, purpose=TOKEN_PURPOSE
    )
    return token, ttl


def user_from_token(*, db_session: Session, token: str) -> User:
    """The user a token names, if the token is valid, unexpired and not revoked."""
    body = crypto.unsign(token, purpose=TOKEN_PURPOSE)
    if body is None:
        raise NotAuthenticated("auth.bad_token")
    user = db_session.get(User, body.get("uid"))
    if user is None or not user.active or user.token_version != body.get("ver"):
        raise NotAuthenticated("auth.bad_token")
    return user


def logout(*, db_session: Session, user: User) -> None:
    """Revoke every token the user holds."""
    user.token_version += 1
    db_session.flush()
