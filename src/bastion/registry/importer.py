"""Bulk import of persons from CSV or XLSX.

Every bad row is reported (row number, field, reason) and the good rows still land; a row whose
person is already registered with the same details counts as unchanged, so sending the same file
twice changes nothing. Rows go to the database through the one bulk path (COPY / executemany).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock, crypto
from bastion.core.auth import Perm, Principal
from bastion.core.config import get_settings
from bastion.core.db import bulk_insert, index_lookups
from bastion.core.errors import FieldProblem, InvalidInput
from bastion.core.filereader import read_table
from bastion.regions.models import Region
from bastion.registry import rules
from bastion.registry.idnumber import mask_id
from bastion.registry.models import Household, ImportBatch, Person
from bastion.registry.service import count_into_open_rounds, new_token

COLUMNS = [
    "name",
    "id_number",
    "sex",
    "birth_date",
    "phone",
    "region_code",
    "address",
    "household",
    "special_groups",
    "id_type",
]
REQUIRED = ["name", "id_number", "region_code"]
HEADER_ALIASES = {
    "姓名": "name",
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "证件号码": "id_number",
    "证件类型": "id_type",
    "性别": "sex",
    "出生日期": "birth_date",
    "电话": "phone",
    "手机号": "phone",
    "联系电话": "phone",
    "区划代码": "region_code",
    "网格代码": "region_code",
    "地址": "address",
    "住址": "address",
    "户号": "household",
    "特殊人群": "special_groups",
}
PERSON_COLUMNS = [
    "token",
    "name",
    "id_type",
    "id_cipher",
    "id_hash",
    "id_masked",
    "sex",
    "birth_date",
    "phone",
    "region_code",
    "household_id",
    "address",
    "special_groups",
    "created_at",
    "updated_at",
]
CHUNK = 5_000


@dataclass
class ImportResult:
    batch_id: int | None = None
    rows_total: int = 0
    created: int = 0
    unchanged: int = 0
    problems: list[FieldProblem] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return len({p.row for p in self.problems})


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def import_persons(
    *, db_session: Session, principal: Principal, filename: str, data: bytes
) -> ImportResult:
    """Import a registry file. A file that cannot be read at all (wrong type, encoding, missing
    columns, too large) is refused whole; otherwise each row lands or is reported."""
    principal.require(Perm.registry_import)
    settings = get_settings()
    table = read_table(
        filename,
        data,
        aliases=HEADER_ALIASES,
        required=REQUIRED,
        known=COLUMNS,
        max_bytes=settings.max_upload_bytes,
        max_rows=settings.max_import_rows,
    )
    regions = _regions_in_scope(db_session, principal)
    today = clock.today()
    result = ImportResult()
    first_row_of: dict[str, int] = {}

    for chunk in _chunks(table.rows, CHUNK):
        valid: list[tuple[int, rules.CleanPerson, str]] = []
        for row_number, values in chunk:
            result.rows_total += 1
            clean, problems = rules.check_person(
                values, today=today, region_exists=regions.__contains__, row=row_number
            )
            if clean is None:
                result.problems.extend(_outside_or(db_session, problems, values, principal))
                continue
            id_hash = crypto.lookup_hash(clean.id_number)
            if id_hash in first_row_of:
                result.problems.append(
                    FieldProblem(
                        "id_number",
                        "person.duplicate_in_file",
                        {"first": first_row_of[id_hash]},
                        row_number,
                    )
                )
                continue
            first_row_of[id_hash] = row_number
            valid.append((row_number, clean, id_hash))
        _land(db_session, valid, result)

    result.rows_total += len({p.row for p in table.problems})
    result.problems.extend(table.problems)
    result.problems.sort(key=lambda p: p.row or 0)
    if result.rows_total == 0:
        # A header without rows is a mistake worth saying, not a successful import of nothing.
        raise InvalidInput.one("file", "import.empty")
    batch = ImportBatch(
        kind="persons",
        file_sha256=hashlib.sha256(data).hexdigest(),
        filename=filename[:200],
        actor=principal.username,
        rows_total=result.rows_total,
        rows_created=result.created,
        rows_unchanged=result.unchanged,
        rows_refused=result.refused,
        created_at=clock.now(),
    )
    db_session.add(batch)
    db_session.flush()
    result.batch_id = batch.id
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="registry.import",
        target_type="import_batch",
        target_id=batch.id,
        region_code=principal.region_code or None,
        details={
            "file": filename[:200],
            "sha256": batch.file_sha256,
            "rows": result.rows_total,
            "created": result.created,
            "unchanged": result.unchanged,
            "refused": result.refused,
        },
    )
    return result


def _regions_in_scope(db_session: Session, principal: Principal) -> set[str]:
    return set(
        db_session.execute(select(Region.code).where(principal.scope.clause(Region.code))).scalars()
    )


def _outside_or(
    db_session: Session, problems: list[FieldProblem], values: dict[str, Any], principal: Principal
) -> list[FieldProblem]:
    """Say "outside your jurisdiction" rather than "unknown" for a real region out of scope."""
    code = str(values.get("region_code") or "").strip()
    out = []
    for p in problems:
        if (
            p.field == "region_code"
            and p.reason == "error.region_unknown"
            and not principal.scope.contains(code)
            and db_session.get(Region, code) is not None
        ):
            p = FieldProblem("region_code", "error.region_outside", {"region": code}, p.row)
        out.append(p)
    return out


def _same(person: Any, clean: rules.CleanPerson, household_no: str | None) -> bool:
    return (
        person.name == clean.name
        and person.sex == clean.sex
        and person.birth_date == clean.birth_date
        and person.region_code == clean.region_code
        and (person.phone or None) == clean.phone
        and person.address == clean.address
        and person.special_groups == clean.special_groups
        and (household_no or None) == clean.household
    )


def _land(
    db_session: Session, valid: list[tuple[int, rules.CleanPerson, str]], result: ImportResult
) -> None:
    if not valid:
        return
    hashes = [h for _, _, h in valid]
    with index_lookups(db_session):
        registered = db_session.execute(
            select(
                Person.id_hash,
                Person.name,
                Person.sex,
                Person.birth_date,
                Person.region_code,
                Person.phone,
                Person.address,
                Person.special_groups,
                Household.household_no,
            )
            .outerjoin(Household, Household.id == Person.household_id)
            .where(Person.id_hash.in_(hashes))
        ).all()
    existing = {row.id_hash: row for row in registered}
    new: list[tuple[int, rules.CleanPerson, str]] = []
    for row_number, clean, id_hash in valid:
        found = existing.get(id_hash)
        if found is None:
            new.append((row_number, clean, id_hash))
        elif _same(found, clean, found.household_no):
            result.unchanged += 1
        else:
            result.problems.append(
                FieldProblem("id_number", "person.conflicting_details", {}, row_number)
            )
    if not new:
        return
    households = _households(
        db_session, {(c.region_code, c.household) for _, c, _ in new if c.household}
    )
    now = clock.now()
    rows = [
        (
            new_token(),
            c.name,
            c.id_type,
            crypto.encrypt(c.id_number),
            h,
            mask_id(c.id_number),
            c.sex,
            c.birth_date,
            c.phone,
            c.region_code,
            households.get((c.region_code, c.household)) if c.household else None,
            c.address,
            c.special_groups,
            now,
            now,
        )
        for _, c, h in new
    ]
    result.created += bulk_insert(db_session, Person, PERSON_COLUMNS, rows)
    count_into_open_rounds(db_session, Person.id_hash.in_([h for _, _, h in new]))


def _households(
    db_session: Session, keys: set[tuple[str, str | None]]
) -> dict[tuple[str, str], int]:
    """Ids of the households named by ``(region_code, household_no)``, creating missing ones."""
    wanted = {(r, h) for r, h in keys if h}
    if not wanted:
        return {}

    def lookup() -> dict[tuple[str, str], int]:
        found: dict[tuple[str, str], int] = {}
        for batch in _chunks(sorted(wanted), 500):
            for region_code, household_no, hid in db_session.execute(
                select(Household.region_code, Household.household_no, Household.id).where(
                    tuple_(Household.region_code, Household.household_no).in_(batch)
                )
            ):
                found[(region_code, household_no)] = hid
        return found

    with index_lookups(db_session):
        found = lookup()
    missing = sorted(wanted - found.keys())
    if missing:
        bulk_insert(
            db_session,
            Household,
            ["region_code", "household_no", "address"],
            [(r, h, "") for r, h in missing],
        )
        with index_lookups(db_session):
            found = lookup()
    return found
