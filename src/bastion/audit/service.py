"""Append to and verify the audit chain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.audit.models import AuditEntry, AuditHead
from bastion.core import clock
from bastion.core.auth import Principal

GENESIS = "0" * 64


def _digest(entry: Any) -> str:
    """SHA-256 over the entry's fields (an AuditEntry or a row with the same attributes)."""
    at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
    body = json.dumps(
        [
            entry.seq,
            at.astimezone(UTC).isoformat(),
            entry.actor_id,
            entry.actor,
            entry.action,
            entry.target_type,
            entry.target_id,
            entry.region_code,
            entry.details,
            entry.prev_hash,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode()).hexdigest()


def record(
    *,
    db_session: Session,
    actor: Principal,
    action: str,
    target_type: str = "",
    target_id: str | int = "",
    region_code: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry to the chain in the caller's transaction."""
    # Lock the head row: without it, two concurrent transactions would both chain onto the same
    # last entry and fork the log (on SQLite the write lock already serialises writers).
    head = db_session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, last_seq=0, last_hash=GENESIS)
        db_session.add(head)
    at = clock.now().replace(microsecond=0)
    entry = AuditEntry(
        seq=head.last_seq + 1,
        at=at,
        actor_id=actor.user_id,
        actor=actor.username,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        region_code=region_code,
        details=json.dumps(details or {}, ensure_ascii=False, sort_keys=True, default=str),
        prev_hash=head.last_hash,
    )
    entry.hash = _digest(entry)
    db_session.add(entry)
    head.last_seq = entry.seq
    head.last_hash = entry.hash
    db_session.flush()
    return entry


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    entries: int
    head_hash: str
    problems: list[str]


def verify(*, db_session: Session, batch: int = 10_000) -> VerifyReport:
    """Walk the whole chain: every entry's hash, every link, no gaps, nothing before the first
    entry, and the head agrees with the last entry. Each problem names the entry."""
    problems: list[str] = []
    prev_hash = GENESIS
    expected_seq = 1
    count = 0
    last_seq = 0
    table = AuditEntry.__table__
    after: int | None = None
    while True:
        # Keyset paging from the very first row, whatever its number: a row forged with
        # seq 0 (or below) must be read too.
        stmt = select(table).order_by(table.c.seq).limit(batch)
        if after is not None:
            stmt = stmt.where(table.c.seq > after)
        rows = db_session.execute(stmt).all()
        if not rows:
            break
        for entry in rows:
            after = entry.seq
            count += 1
            if entry.seq < expected_seq:
                problems.append(f"entry {entry.seq} is out of sequence (inserted before entry 1)")
                continue
            if entry.seq != expected_seq:
                problems.append(f"entries {expected_seq}..{entry.seq - 1} are missing (deleted)")
            if entry.prev_hash != prev_hash:
                problems.append(f"entry {entry.seq} does not link to the entry before it")
            if _digest(entry) != entry.hash:
                problems.append(f"entry {entry.seq} was altered (its hash does not match)")
            prev_hash = entry.hash
            expected_seq = entry.seq + 1
            last_seq = entry.seq
    head = db_session.get(AuditHead, 1)
    if head is None:
        if count:
            problems.append("the chain head is missing")
    elif last_seq < head.last_seq:
        problems.append(
            f"the chain ends at entry {last_seq} but the head records entry {head.last_seq}: "
            f"entries {last_seq + 1}..{head.last_seq} were removed"
        )
    elif last_seq > head.last_seq:
        problems.append(
            f"entries {head.last_seq + 1}..{last_seq} lie beyond the chain's head "
            f"(entry {head.last_seq}): they were inserted outside the log"
        )
    elif head.last_hash != prev_hash:
        problems.append(f"entry {last_seq} does not match the hash the head records (altered)")
    return VerifyReport(ok=not problems, entries=count, head_hash=prev_hash, problems=problems)
