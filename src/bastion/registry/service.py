"""Persons and households: create, update, look up, search, export."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock, crypto
from bastion.core.auth import Perm, Principal
from bastion.core.errors import Conflict, InvalidInput, NotFound
from bastion.regions import service as region_service
from bastion.regions.codes import Scope
from bastion.regions.models import Region
from bastion.registry import rules
from bastion.registry.enums import SpecialGroup
from bastion.registry.idnumber import mask_id, mask_name, mask_phone
from bastion.registry.models import Household, Person
from bastion.registry.schemas import PersonCreate, PersonRead, PersonUpdate

MAX_PAGE = 500
#: Deeper than any province's registry; past it an offset is a mistake (and a 64-bit overflow
#: in the database further on).
MAX_OFFSET = 100_000_000


def new_token() -> str:
    return secrets.token_hex(12)


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def to_read(person: Person, *, unmasked: bool = False, today: date | None = None) -> PersonRead:
    """The API/page view of a person: masked unless ``unmasked`` (callers check and audit)."""
    today = today or clock.today()
    return PersonRead(
        id=person.id,
        name=person.name if unmasked else mask_name(person.name),
        id_type=person.id_type,
        id_number=crypto.decrypt(person.id_cipher) if unmasked else person.id_masked,
        masked=not unmasked,
        sex=person.sex,
        birth_date=person.birth_date if unmasked else None,
        age=age_on(person.birth_date, today),
        phone=person.phone if unmasked else mask_phone(person.phone),
        region_code=person.region_code,
        household_id=person.household_id,
        address=person.address,
        special_groups=SpecialGroup.names(person.special_groups),
    )


def _region_exists(db_session: Session) -> Callable[[str], bool]:
    cache: dict[str, bool] = {}

    def exists(code: str) -> bool:
        if code not in cache:
            cache[code] = db_session.get(Region, code) is not None
        return cache[code]

    return exists


def household_for(*, db_session: Session, region_code: str, household_no: str) -> Household:
    """The household numbered ``household_no`` in ``region_code``, created if new."""
    found = db_session.execute(
        select(Household).where(
            Household.region_code == region_code, Household.household_no == household_no
        )
    ).scalar_one_or_none()
    if found is not None:
        return found
    household = Household(region_code=region_code, household_no=household_no, address="")
    db_session.add(household)
    db_session.flush()
    return household


def get_by_id_number(*, db_session: Session, number: str) -> Person | None:
    """The person registered under ``number`` (no permission check: internal lookups only)."""
    return db_session.execute(
        select(Person).where(Person.id_hash == crypto.lookup_hash(number))
    ).scalar_one_or_none()


def get(*, db_session: Session, principal: Principal, person_id: int) -> Person:
    """One person inside the principal's subtree (residents: only themselves)."""
    person = db_session.get(Person, person_id)
    if principal.can(Perm.registry_read):
        if person is None or not principal.scope.contains(person.region_code):
            raise NotFound("person.not_found")
        return person
    principal.require(Perm.self_read)
    if person is None or principal.person_id != person.id:
        raise NotFound("person.not_found")
    return person


def read(
    *, db_session: Session, principal: Principal, person_id: int, unmask: bool = False
) -> PersonRead:
    """A person's view; ``unmask`` needs the unmask permission and is audited every time."""
    person = get(db_session=db_session, principal=principal, person_id=person_id)
    if unmask:
        principal.require(Perm.personal_unmask)
        audit_service.record(
            db_session=db_session,
            actor=principal,
            action="person.unmask",
            target_type="person",
            target_id=person.id,
            region_code=person.region_code,
        )
    return to_read(person, unmasked=unmask)


def create(*, db_session: Session, principal: Principal, data: PersonCreate) -> Person:
    """Register one person. Refuses every invalid field at once, a region outside the user's
    subtree, and an ID number already registered."""
    principal.require(Perm.registry_write)
    clean, problems = rules.check_person(
        data.model_dump(), today=clock.today(), region_exists=_region_exists(db_session)
    )
    if clean is None:
        raise InvalidInput(problems=problems)
    principal.require_region(clean.region_code)
    id_hash = crypto.lookup_hash(clean.id_number)
    if db_session.execute(select(Person.id).where(Person.id_hash == id_hash)).first():
        raise Conflict("person.already_registered")
    household_id = None
    if clean.household:
        household_id = household_for(
            db_session=db_session, region_code=clean.region_code, household_no=clean.household
        ).id
    now = clock.now()
    person = Person(
        token=new_token(),
        name=clean.name,
        id_type=clean.id_type,
        id_cipher=crypto.encrypt(clean.id_number),
        id_hash=id_hash,
        id_masked=mask_id(clean.id_number),
        sex=clean.sex,
        birth_date=clean.birth_date,
        phone=clean.phone,
        region_code=clean.region_code,
        household_id=household_id,
        address=clean.address,
        special_groups=clean.special_groups,
        created_at=now,
        updated_at=now,
    )
    db_session.add(person)
    db_session.flush()
    count_into_open_rounds(db_session, Person.id == person.id)
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="person.create",
        target_type="person",
        target_id=person.id,
        region_code=person.region_code,
    )
    return person


def count_into_open_rounds(db_session: Session, people: Any) -> None:
    """A newcomer is required by the testing rounds open where they live (imported here, not
    at the top: the testing domain reads the registry)."""
    from bastion.testing.coverage.counters import add_newcomers

    add_newcomers(db_session=db_session, people=people)


def update(
    *, db_session: Session, principal: Principal, person_id: int, data: PersonUpdate
) -> Person:
    """Change a person's editable fields; moving them needs both regions in the user's subtree."""
    principal.require(Perm.registry_write)
    person = get(db_session=db_session, principal=principal, person_id=person_id)
    current = {
        "name": person.name,
        "id_type": person.id_type,
        "id_number": crypto.decrypt(person.id_cipher),
        "sex": person.sex,
        "birth_date": person.birth_date.isoformat(),
        "phone": person.phone,
        "region_code": person.region_code,
        "address": person.address,
        "special_groups": SpecialGroup.names(person.special_groups),
    }
    changes = data.model_dump(exclude_unset=True)
    merged = {**current, **{k: v for k, v in changes.items() if v is not None or k == "phone"}}
    clean, problems = rules.check_person(
        merged, today=clock.today(), region_exists=_region_exists(db_session)
    )
    if clean is None:
        raise InvalidInput(problems=problems)
    principal.require_region(clean.region_code)
    changed = sorted(k for k in changes if merged.get(k) != current.get(k))
    person.name = clean.name
    person.phone = clean.phone
    person.region_code = clean.region_code
    person.address = clean.address
    person.special_groups = clean.special_groups
    if clean.household:
        person.household_id = household_for(
            db_session=db_session, region_code=clean.region_code, household_no=clean.household
        ).id
    person.updated_at = clock.now()
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="person.update",
        target_type="person",
        target_id=person.id,
        region_code=person.region_code,
        details={"fields": changed},
    )
    return person


def find_by_id_number(
    *, db_session: Session, principal: Principal, id_number: str
) -> Person | None:
    """Exact lookup by ID number within the user's subtree; None when there is no such person
    there. Audited every time, found or not (probing numbers is itself worth seeing): the caller
    must answer "not found" without rolling its transaction back, or the entry is lost."""
    principal.require(Perm.registry_read)
    if not id_number.strip():
        raise InvalidInput.one("id_number", "field.required")
    id_hash = crypto.lookup_hash(id_number)
    person = db_session.execute(
        select(Person).where(Person.id_hash == id_hash)
    ).scalar_one_or_none()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="person.lookup",
        target_type="person",
        target_id=person.id if person else "",
        region_code=person.region_code if person else None,
        details={"found": person is not None and principal.scope.contains(person.region_code)},
    )
    if person is None or not principal.scope.contains(person.region_code):
        return None
    return person


def search(
    *,
    db_session: Session,
    principal: Principal,
    region_code: str,
    name: str | None = None,
    special_group: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[Sequence[Person], int]:
    """Persons in ``region_code``'s subtree (which must be inside the user's), optionally by
    name prefix or special group; returns one page and the total."""
    principal.require(Perm.registry_read)
    if limit < 1 or limit > MAX_PAGE:
        raise InvalidInput.one("limit", "field.out_of_range", min=1, max=MAX_PAGE)
    if offset < 0 or offset > MAX_OFFSET:
        raise InvalidInput.one("offset", "field.out_of_range", min=0, max=MAX_OFFSET)
    region_service.get_or_404(db_session=db_session, code=region_code)
    principal.require_region(region_code)
    scope = region_service.scope_of(db_session=db_session, code=region_code)
    conditions = [scope.clause(Person.region_code), principal.scope.clause(Person.region_code)]
    if name:
        conditions.append(Person.name.startswith(name.strip(), autoescape=True))
    if special_group:
        if special_group not in SpecialGroup.__members__:
            raise InvalidInput.one("special_group", "person.unknown_group", value=special_group)
        bit = SpecialGroup[special_group].value
        conditions.append(Person.special_groups.op("&")(bit) != 0)
    total = db_session.execute(
        select(func.count()).select_from(Person).where(*conditions)
    ).scalar_one()
    rows = (
        db_session.execute(
            select(Person)
            .where(*conditions)
            .order_by(Person.region_code, Person.id)
            .offset(offset)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    return rows, total


EXPORT_COLUMNS = [
    "name",
    "id_type",
    "id_number",
    "sex",
    "birth_date",
    "phone",
    "region_code",
    "address",
    "household",
    "special_groups",
]


@dataclass(frozen=True)
class ExportPlan:
    """An authorised, audited export: what to read and how to show it."""

    scope: Scope
    user_scope: Scope
    unmask: bool
    rows: int


def export_csv(
    *, db_session: Session, principal: Principal, region_code: str, unmask: bool = False
) -> ExportPlan:
    """Authorise and audit an export of a region subtree's persons (masked unless ``unmask``,
    which needs the unmask permission). The rows are read by :func:`export_lines`."""
    principal.require(Perm.registry_export)
    if unmask:
        principal.require(Perm.personal_unmask)
    region_service.get_or_404(db_session=db_session, code=region_code)
    principal.require_region(region_code)
    scope = region_service.scope_of(db_session=db_session, code=region_code)
    where = [scope.clause(Person.region_code), principal.scope.clause(Person.region_code)]
    count = db_session.execute(select(func.count()).select_from(Person).where(*where)).scalar_one()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="registry.export",
        target_type="region",
        target_id=region_code,
        region_code=region_code,
        details={"rows": count, "unmasked": unmask},
    )
    return ExportPlan(scope=scope, user_scope=principal.scope, unmask=unmask, rows=count)


def _cell(value: object) -> object:
    """Neutralise spreadsheet formulas (CSV injection): a leading = + - @ becomes text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def export_lines(*, db_session: Session, plan: ExportPlan) -> Iterator[str]:
    """The CSV text of an export, in chunks (streams; never holds the region in memory)."""
    stmt = (
        select(Person, Household.household_no)
        .outerjoin(Household, Household.id == Person.household_id)
        .where(plan.scope.clause(Person.region_code), plan.user_scope.clause(Person.region_code))
        .order_by(Person.region_code, Person.id)
        .execution_options(yield_per=5000)
    )
    unmask = plan.unmask
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(EXPORT_COLUMNS)
    for person, household_no in db_session.execute(stmt):
        writer.writerow(
            [
                _cell(person.name if unmask else mask_name(person.name)),
                person.id_type,
                crypto.decrypt(person.id_cipher) if unmask else person.id_masked,
                person.sex,
                person.birth_date.isoformat() if unmask else person.birth_date.year,
                person.phone if unmask else mask_phone(person.phone),
                person.region_code,
                _cell(person.address),
                _cell(household_no or ""),
                ";".join(SpecialGroup.names(person.special_groups)),
            ]
        )
        if buf.tell() > 64_000:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
