"""Hand new cases and contacts to isolation: one PlacementNeed each, one call.

Tracing imports isolation's service only (never its flows). Placements are the system's
consequence of an authorised tracing action (a lab's upload, an investigator's expansion): they
are made as the system, so a contact living outside the investigator's region is still placed
by the region that serves them; the tracing action itself is audited under its actor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.isolation import service as isolation_service
from bastion.isolation.needs import PlacementNeed
from bastion.protocols import service as protocol_service
from bastion.tracing import classify
from bastion.tracing.models import Case, Contact


def needs_for(
    db_session: Session, *, case_ids: Sequence[int], contact_ids: Sequence[int]
) -> list[PlacementNeed]:
    """The placement needs of the given cases and contacts under the profile in force today
    (a contact level the profile does not trace needs no placement)."""
    today = clock.today()
    profile = protocol_service.profile_on(db_session, today)
    needs: list[PlacementNeed] = []
    for i in range(0, len(case_ids), 5_000):
        for c in db_session.execute(
            select(Case).where(Case.id.in_(case_ids[i : i + 5_000]))
        ).scalars():
            needs.append(
                PlacementNeed(
                    person_id=c.person_id,
                    region_code=c.region_code,
                    reason="case",
                    source_type="case",
                    source_id=c.id,
                    destination=classify.case_destination(  # type: ignore[arg-type]
                        profile, c.classification, c.clinical_type
                    ),
                    starts_on=min(c.reported_on, today),
                )
            )
    for i in range(0, len(contact_ids), 5_000):
        rows = db_session.execute(
            select(
                Contact.id, Contact.person_id, Contact.region_code, Contact.level,
                Contact.identified_on,
            ).where(Contact.id.in_(contact_ids[i : i + 5_000]))
        ).all()  # fmt: skip
        for r in rows:
            if not profile.rule(r.level).traced:
                continue
            reason: Any = "close_contact" if r.level == "close" else "secondary_contact"
            needs.append(
                PlacementNeed(
                    person_id=r.person_id,
                    region_code=r.region_code,
                    reason=reason,
                    source_type="contact",
                    source_id=r.id,
                    destination=classify.contact_destination(profile, r.level),  # type: ignore[arg-type]
                    starts_on=r.identified_on,
                )
            )
    return needs


def hand_over(db_session: Session, *, case_ids: Sequence[int], contact_ids: Sequence[int]) -> Any:
    """Place the given cases and contacts (isolation's ``place_needs``, as the system)."""
    needs = needs_for(db_session, case_ids=case_ids, contact_ids=contact_ids)
    if not needs:
        return None
    return isolation_service.place_needs(
        db_session=db_session, principal=system_principal(), needs=needs
    )
