"""Users bound to the sampling sites they work at (recorders 录入员, samplers).

The rule the scan checks apply (``testing.ingest.rows``): a user bound to one or more sites may
send scans for those sites only (``scan.site_not_bound`` on the row's ``site``); a user bound to
none is held to their region alone, as before bindings existed. The live API keeps each site's
bound users with the site in its cache, so a bound user at their own site costs no query; a user
not bound there costs one indexed look-up (:data:`BOUND_ANYWHERE`) the first time the cached
site meets them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from bastion.accounts.models import User
from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import ROLE_PERMISSIONS, Perm, Principal
from bastion.core.errors import FieldProblem, InvalidInput
from bastion.regions import service as region_service
from bastion.testing import service as testing_service
from bastion.testing.models import Site, SiteRecorder
from bastion.testing.schemas import RecorderRead

#: Is the user bound to any site at all? (the ``user_id`` index, one row at most).
BOUND_ANYWHERE = (
    select(SiteRecorder.site_id).where(SiteRecorder.user_id == bindparam("user_id")).limit(1)
)
#: A site's bound users, plus one row of the acting user's bindings elsewhere, in one query
#: (the scan checks' look-up of a site not yet cached).
BINDINGS_OF_SITE_AND_USER = select(SiteRecorder.site_id, SiteRecorder.user_id).where(
    (SiteRecorder.site_id == bindparam("site_id")) | (SiteRecorder.user_id == bindparam("user_id"))
)


def is_bound(db_session: Session, user_id: int) -> bool:
    """Whether the user is bound to any site."""
    return db_session.connection().execute(BOUND_ANYWHERE, {"user_id": user_id}).first() is not None


def _site_for(db_session: Session, principal: Principal, code: str) -> Site:
    return testing_service.get_site(db_session=db_session, principal=principal, code=code)


def _users(db_session: Session, site: Site) -> Sequence[User]:
    return (
        db_session.execute(
            select(User)
            .join(SiteRecorder, SiteRecorder.user_id == User.id)
            .where(SiteRecorder.site_id == site.id)
            .order_by(User.username)
        )
        .scalars()
        .all()
    )


def _read(user: User) -> RecorderRead:
    return RecorderRead(
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        region_code=user.region_code,
        active=user.active,
    )


def list_recorders(*, db_session: Session, principal: Principal, code: str) -> list[RecorderRead]:
    """The users bound to a site, by username (a site outside the caller's subtree: 404)."""
    principal.require(Perm.sites_manage)
    site = _site_for(db_session, principal, code)
    return [_read(u) for u in _users(db_session, site)]


def set_recorders(
    *, db_session: Session, principal: Principal, code: str, usernames: Sequence[str]
) -> list[RecorderRead]:
    """Bind exactly these users to the site (replacing the set; an empty list unbinds all).
    Refuses, on ``usernames`` with the username: an unknown user or one outside the caller's
    subtree (``recorder.unknown_user``, not telling which), a role that cannot send scans
    (``recorder.cannot_scan``), a user whose own region does not reach the site's
    (``recorder.outside_site_region``: they could not scan there anyway). A site outside the
    caller's subtree is not found. Audited when the set changed, with who was added and
    removed. Takes effect for the live API within its site cache's lifetime (30 s)."""
    principal.require(Perm.sites_manage)
    site = _site_for(db_session, principal, code)
    principal.require_region(site.region_code)
    wanted = sorted({u.strip() for u in usernames})
    found = {
        u.username: u
        for u in db_session.execute(select(User).where(User.username.in_(wanted))).scalars()
    }
    problems: list[FieldProblem] = []
    for username in wanted:
        user = found.get(username)
        if user is None or not principal.scope.contains(user.region_code):
            problems.append(
                FieldProblem("usernames", "recorder.unknown_user", {"username": username[:64]})
            )
        elif Perm.scans_write not in ROLE_PERMISSIONS.get(user.role, frozenset()):
            problems.append(
                FieldProblem(
                    "usernames",
                    "recorder.cannot_scan",
                    {"username": username, "role": user.role},
                )
            )
        elif not region_service.scope_of(db_session=db_session, code=user.region_code).contains(
            site.region_code
        ):
            problems.append(
                FieldProblem(
                    "usernames",
                    "recorder.outside_site_region",
                    {"username": username, "region": site.region_code},
                )
            )
    if problems:
        raise InvalidInput(problems=problems)

    before = {u.username: u for u in _users(db_session, site)}
    added = [name for name in wanted if name not in before]
    removed = sorted(name for name in before if name not in found)
    if removed:
        db_session.execute(
            delete(SiteRecorder).where(
                SiteRecorder.site_id == site.id,
                SiteRecorder.user_id.in_([before[name].id for name in removed]),
            )
        )
    now = clock.now()
    db_session.add_all(
        SiteRecorder(
            site_id=site.id,
            user_id=found[name].id,
            assigned_at=now,
            assigned_by=principal.user_id,
        )
        for name in added
    )
    if added or removed:
        db_session.flush()
        audit_service.record(
            db_session=db_session,
            actor=principal,
            action="site.recorders.update",
            target_type="site",
            target_id=site.id,
            region_code=site.region_code,
            details={"code": site.code, "added": added, "removed": removed},
        )
    return [_read(u) for u in _users(db_session, site)]
