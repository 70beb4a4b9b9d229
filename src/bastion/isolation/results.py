"""Recording a batch of test-day results, set-based: a whole site's test day in one call.

Each row is checked by the rules of :func:`bastion.isolation.placements.record_test` (which is a
one-row call of :func:`record_tests`); the good rows land through one staged ``UPDATE … FROM``,
the bad ones are reported (row number, field, reason). A row whose day already holds the same
result changes nothing, so re-sending a batch is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.db import among, bulk_insert, id_chunks
from bastion.core.errors import FieldProblem
from bastion.isolation.enums import TestResult
from bastion.isolation.models import Placement, PlacementTest
from bastion.isolation.sql import expire

#: Refused rows reported in full up to this many (the count is always exact).
MAX_REPORTED = 1_000

_STAGE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS iso_test_stage (test_id BIGINT PRIMARY KEY, "
    "result VARCHAR(16) NOT NULL, tested_on DATE NOT NULL, tube_barcode VARCHAR(24))"
)
# The result IS NULL guard: a concurrent writer that recorded the day first keeps its result.
_APPLY = """
UPDATE placement_tests SET result = s.result, tested_on = s.tested_on,
    tube_barcode = COALESCE(s.tube_barcode, placement_tests.tube_barcode),
    recorded_by = :recorded_by, recorded_at = :recorded_at
FROM iso_test_stage AS s
WHERE placement_tests.id = s.test_id AND placement_tests.result IS NULL
"""


@dataclass(frozen=True)
class TestItem:
    """One row of a batch: a placement's test day and its result (or a tube whose lab result
    is taken), tested on a day (today by default)."""

    __test__ = False  # not a pytest class

    placement_id: int
    day_no: int
    result: str | None = None
    tested_on: date | None = None
    tube_barcode: str | None = None


@dataclass
class TestBatchReport:
    """What a batch did: rows recorded, rows already holding that result, refused rows."""

    __test__ = False  # not a pytest class

    rows: int = 0
    recorded: int = 0
    unchanged: int = 0
    refused: int = 0
    problems: list[FieldProblem] = field(default_factory=list)

    def refuse(self, problem: FieldProblem) -> None:
        self.refused += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(problem)


@dataclass(frozen=True)
class _Staged:
    test_id: int
    result: str
    tested_on: date
    tube_barcode: str | None


def _load(
    db_session: Session, principal: Principal, items: Sequence[TestItem]
) -> tuple[dict[int, Any], dict[tuple[int, int], Any], dict[str, Any], set[tuple[int, int]]]:
    """Placements (in the principal's region), their test days, the tubes named and which of
    their members are the placements' people: four set-based reads."""
    ids = sorted({int(i.placement_id) for i in items})
    placements: dict[int, Any] = {}
    tests: dict[tuple[int, int], Any] = {}
    for chunk in id_chunks(db_session, ids):
        for placement in db_session.execute(
            select(Placement.id, Placement.person_id, Placement.region_code).where(
                among(db_session, Placement.id, chunk)
            )
        ):
            if principal.scope.contains(placement.region_code):
                placements[int(placement.id)] = placement
        for row in db_session.execute(
            select(
                PlacementTest.id,
                PlacementTest.placement_id,
                PlacementTest.day_no,
                PlacementTest.result,
            ).where(among(db_session, PlacementTest.placement_id, chunk))
        ):
            tests[(int(row.placement_id), int(row.day_no))] = row
    barcodes = sorted({i.tube_barcode[:24] for i in items if i.tube_barcode})
    tubes: dict[str, Any] = {}
    members: set[tuple[int, int]] = set()
    if barcodes:
        from bastion.testing.models import Tube, TubeMember

        for start in range(0, len(barcodes), 5_000):
            for tube in db_session.execute(
                select(Tube.id, Tube.barcode, Tube.result).where(
                    Tube.barcode.in_(barcodes[start : start + 5_000])
                )
            ):
                tubes[str(tube.barcode)] = tube
        tube_ids = sorted(int(t.id) for t in tubes.values())
        people = {int(p.person_id) for p in placements.values()}
        for chunk in id_chunks(db_session, tube_ids):
            for member in db_session.execute(
                select(TubeMember.tube_id, TubeMember.person_id).where(
                    among(db_session, TubeMember.tube_id, chunk)
                )
            ):
                if int(member.person_id) in people:
                    members.add((int(member.tube_id), int(member.person_id)))
    return placements, tests, tubes, members


def _check(
    row: int,
    item: TestItem,
    today: date,
    placements: dict[int, Any],
    tests: dict[tuple[int, int], Any],
    tubes: dict[str, Any],
    members: set[tuple[int, int]],
    staged: dict[tuple[int, int], _Staged],
) -> FieldProblem | _Staged | None:
    """The first problem of a row (in :func:`record_test`'s order), or what to stage, or None
    when the day already holds that result."""
    placement = placements.get(int(item.placement_id))
    if placement is None:
        return FieldProblem(
            "placement_id", "placement.not_found", {"placement": item.placement_id}, row
        )
    key = (int(item.placement_id), int(item.day_no))
    test = tests.get(key)
    if test is None:
        return FieldProblem("day_no", "placement.not_a_test_day", {"day": item.day_no}, row)
    tested_on = item.tested_on or today
    if tested_on > today:
        return FieldProblem(
            "tested_on", "placement.date_in_future", {"day": tested_on.isoformat()}, row
        )
    result = item.result
    barcode = item.tube_barcode[:24] if item.tube_barcode else None
    if barcode:
        tube = tubes.get(barcode)
        # The tube must hold this person's sample: a link never borrows someone else's result.
        if tube is None or (int(tube.id), int(placement.person_id)) not in members:
            return FieldProblem("tube_barcode", "placement.tube_not_theirs", {}, row)
        if result is None:
            result = tube.result
            if result is None:
                return FieldProblem("tube_barcode", "placement.tube_without_result", {}, row)
    if result not in TestResult.__members__:
        return FieldProblem("result", "placement.unknown_result", {"value": str(result)}, row)
    earlier = staged[key].result if key in staged else test.result
    if earlier is not None and earlier != result:
        return FieldProblem(
            "result",
            "placement.test_already_recorded",
            {"day": item.day_no, "result": earlier},
            row,
        )
    if earlier is not None:
        return None
    return _Staged(int(test.id), str(result), tested_on, barcode)


def record_tests(
    *, db_session: Session, principal: Principal, items: Sequence[TestItem]
) -> TestBatchReport:
    """Record a batch of test-day results. Each row is refused (row number, field, reason) by
    the rules of :func:`~bastion.isolation.placements.record_test`: a placement not found in
    the principal's region, a day that is not one of its test days, a date in the future, a
    tube that does not hold the person's sample or has no result yet, an unknown result, a
    different result for a day already recorded. Good rows land in one staged ``UPDATE …
    FROM``; a day already holding the same result is left as it is (re-sending changes
    nothing). One ``placement.update`` audit entry per batch that changed anything."""
    principal.require(Perm.isolation_write)
    principal.require(Perm.isolation_read)
    report = TestBatchReport(rows=len(items))
    if not items:
        return report
    today = clock.today()
    placements, tests, tubes, members = _load(db_session, principal, items)
    staged: dict[tuple[int, int], _Staged] = {}
    for row, item in enumerate(items, start=1):
        checked = _check(row, item, today, placements, tests, tubes, members, staged)
        if isinstance(checked, FieldProblem):
            report.refuse(checked)
        elif checked is None:
            report.unchanged += 1
        else:
            staged[(int(item.placement_id), int(item.day_no))] = checked
    if not staged:
        return report
    db_session.execute(text(_STAGE))
    try:
        bulk_insert(
            db_session,
            "iso_test_stage",
            ("test_id", "result", "tested_on", "tube_barcode"),
            ((s.test_id, s.result, s.tested_on, s.tube_barcode) for s in staged.values()),
        )
        done = db_session.execute(
            text(_APPLY), {"recorded_by": principal.user_id, "recorded_at": clock.now()}
        )
    finally:
        db_session.execute(text("DELETE FROM iso_test_stage"))
    report.recorded = int(getattr(done, "rowcount", 0) or 0)
    report.unchanged += len(staged) - report.recorded
    expire(db_session, PlacementTest)
    touched = sorted({k[0] for k in staged})
    one = placements[touched[0]] if len(touched) == 1 else None
    details: dict[str, Any] = {"tests": report.recorded, "refused": report.refused}
    if len(staged) == 1:
        [(pid, day_no)] = staged
        details.update(test_day=day_no, result=staged[(pid, day_no)].result)
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="placement.update",
        target_type="placement",
        target_id=int(one.id) if one is not None else "",
        region_code=one.region_code if one is not None else None,
        details=details,
    )
    return report


__all__ = ["MAX_REPORTED", "TestBatchReport", "TestItem", "record_tests"]
