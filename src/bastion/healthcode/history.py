"""Sealing the status history in the audit chain, and checking it.

Every write to ``code_history`` happens in a batch (one recompute, one approval). The batch is
sealed by one audit entry (action ``healthcode.history``) whose details carry the batch id, its
row count and a digest: the sum, modulo 2**60, of the first 60 bits of the MD5 of each row's
canonical text. Because the audit log is hash-chained, the seal cannot be changed either; so an
edited history row (digest), a deleted one (count, digest), or a row slipped in (an unsealed
batch, or count) is caught by :func:`verify`, which ``bastion audit verify`` runs after the chain.

The digest is order-free and additive, so PostgreSQL computes it in one aggregate over a round's
worth of rows; SQLite (small data) in Python. Both give the same number.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.audit.models import AuditEntry
from bastion.core.auth import Principal
from bastion.core.db import is_postgres
from bastion.healthcode.models import CodeHistory

ACTION = "healthcode.history"
_MOD = 1 << 60

#: What a row's text is made of: the columns that differ between the rows of a batch (not its
#: id: a person appears once per batch). The batch's time and cause are the same for every row
#: and are sealed once, in the seal's details.
_COLUMNS = (
    "person_id",
    "old_colour",
    "new_colour",
    "rule",
    "reason_key",
    "evidence_type",
    "evidence_id",
    "popup",
    "valid_until",
)


def _epoch(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(math.floor(value.timestamp()))


def row_text(row: Any) -> str:
    """The canonical text of a history row (NULL as empty; instants as epoch seconds)."""
    parts = []
    for col in _COLUMNS:
        value = getattr(row, col)
        if col in ("valid_until", "at"):
            parts.append(_epoch(value))
        else:
            parts.append("" if value is None else str(value))
    return "|".join(parts)


def row_value(row: Any) -> int:
    return int(hashlib.md5(row_text(row).encode(), usedforsecurity=False).hexdigest()[:15], 16)


def digest_of(rows: Iterable[Any]) -> tuple[int, int]:
    count = total = 0
    for row in rows:
        count += 1
        total = (total + row_value(row)) % _MOD
    return count, total


def _pg_row_text(columns: dict[str, str]) -> str:
    """SQL of a row's canonical text; ``columns`` maps a history column to its SQL."""
    parts = []
    for c in _COLUMNS:
        expr = columns.get(c, c)
        if c in ("valid_until", "at"):
            parts.append(f"COALESCE(floor(extract(epoch from {expr}))::bigint::text, '')")
        else:
            parts.append(f"COALESCE(({expr})::text, '')")
    return " || '|' || ".join(parts)


def _pg_sum(row_text: str) -> str:
    return f"COALESCE(sum(('x' || substr(md5({row_text}), 1, 15))::bit(60)::bigint), 0)"


def batch_digest(db_session: Session, batch_id: str) -> tuple[int, int]:
    """(rows, digest) of one batch as stored now."""
    if is_postgres(db_session):
        row = db_session.execute(
            text(
                f"SELECT count(*), {_pg_sum(_pg_row_text({}))} "  # noqa: S608 - fixed SQL
                "FROM code_history WHERE batch_id = :b"
            ),
            {"b": batch_id},
        ).one()
        return int(row[0]), int(row[1]) % _MOD
    rows = db_session.execute(
        select(CodeHistory.__table__).where(CodeHistory.batch_id == batch_id)
    ).all()
    return digest_of(rows)


def staged_digest(
    db_session: Session, *, at: datetime, cause: str, batch_id: str
) -> tuple[int, int]:
    """(rows, digest) of the batch about to be written from the store's ``hc_diff`` table: the
    same figure :func:`batch_digest` gives once the rows are in, read from the small temporary
    table instead of the history (PostgreSQL; elsewhere the history is read)."""
    if not is_postgres(db_session):
        return batch_digest(db_session, batch_id)
    row_text = _pg_row_text({"new_colour": "colour"})
    row = db_session.execute(
        text(f"SELECT count(*), {_pg_sum(row_text)} FROM hc_diff")  # noqa: S608
    ).one()
    return int(row[0]), int(row[1]) % _MOD


def seal(
    *,
    db_session: Session,
    actor: Principal,
    batch_id: str,
    cause: str,
    region_code: str | None = None,
    extra: dict[str, Any] | None = None,
    at: datetime,
    staged: bool = False,
) -> AuditEntry:
    """Append the batch's seal to the audit chain (after its rows, all written at ``at``;
    ``staged``: digest the store's staged rows instead of reading them back)."""
    if staged:
        count, digest = staged_digest(db_session, at=at, cause=cause, batch_id=batch_id)
    else:
        count, digest = batch_digest(db_session, batch_id)
    return audit_service.record(
        db_session=db_session,
        actor=actor,
        action=ACTION,
        target_type="code_history",
        target_id=batch_id,
        region_code=region_code,
        details={
            "batch": batch_id,
            "rows": count,
            "digest": str(digest),
            "cause": cause,
            "at": _epoch(at),
        }
        | (extra or {}),
    )


@dataclass
class HistoryReport:
    batches: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(*, db_session: Session, chunk: int = 50_000) -> HistoryReport:
    """Recompute every batch's count and digest and compare them with the sealed ones."""
    sealed: dict[str, tuple[int, int]] = {}
    constants: dict[str, tuple[str, str]] = {}
    for details in db_session.execute(
        select(AuditEntry.details).where(AuditEntry.action == ACTION)
    ).scalars():
        data = json.loads(details)
        sealed[str(data["batch"])] = (int(data["rows"]), int(data["digest"]))
        constants[str(data["batch"])] = (str(data.get("at", "")), str(data.get("cause", "")))
    found: dict[str, list[int]] = {}
    altered: set[str] = set()
    table = CodeHistory.__table__
    after = None
    while True:
        stmt = select(table).order_by(table.c.id).limit(chunk)
        if after is not None:
            stmt = stmt.where(table.c.id > after)
        rows = db_session.execute(stmt).all()
        if not rows:
            break
        for row in rows:
            after = row.id
            acc = found.setdefault(row.batch_id, [0, 0])
            acc[0] += 1
            acc[1] = (acc[1] + row_value(row)) % _MOD
            if constants.get(row.batch_id, (_epoch(row.at), row.cause)) != (
                _epoch(row.at),
                row.cause,
            ):
                altered.add(row.batch_id)
    report = HistoryReport(batches=len(found), rows=sum(v[0] for v in found.values()))
    for batch, (count, digest) in sorted(found.items()):
        if batch not in sealed:
            report.problems.append(
                f"health-code history batch {batch} ({count} rows) is not sealed in the audit "
                "log: rows were inserted outside the store"
            )
            continue
        want_count, want_digest = sealed[batch]
        if count != want_count:
            report.problems.append(
                f"health-code history batch {batch} has {count} rows, sealed with {want_count} "
                "(rows deleted or inserted)"
            )
        elif digest != want_digest or batch in altered:
            report.problems.append(
                f"health-code history batch {batch} does not match its seal (a row was edited)"
            )
    for batch, (want_count, _) in sorted(sealed.items()):
        if batch not in found and want_count:
            report.problems.append(
                f"health-code history batch {batch} is sealed with {want_count} rows but has "
                "none (deleted)"
            )
    return report
