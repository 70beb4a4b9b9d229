"""The daily counters the bulletin sums, rebuilt from the record on demand
(``bastion bulletin rebuild-counters``): after a bulk load that bypassed the writers, or to
check them. The counters themselves are kept by their domains (bastion.tracing.counters)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core.auth import Perm, Principal
from bastion.tracing import counters as contact_counters


def rebuild_counters(*, db_session: Session, principal: Principal) -> dict[str, int]:
    """Recount every daily counter; rows written per counter table."""
    principal.require(Perm.bulletin_publish)
    rows = {"contact_day_counts": contact_counters.rebuild(db_session)}
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="bulletin.rebuild_counters",
        target_type="bulletin",
        target_id="",
        details=rows,
    )
    return rows
