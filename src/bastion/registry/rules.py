"""Pure validation of a person's fields, shared by single create, update and bulk import."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from bastion.core.errors import FieldProblem
from bastion.core.text import has_control
from bastion.registry.enums import SPECIAL_GROUP_ALIASES, IdType, SpecialGroup
from bastion.registry.idnumber import IdNumberError, normalise, parse_resident_id

#: A mainland mobile number, optionally with the country code (+86 or 0086) in front.
MOBILE_RE = re.compile(r"(?:\+86|0086)?(1[3-9][0-9]{9})")
#: A landline with its area code: 0431-88888888, 010-1234567.
LANDLINE_RE = re.compile(r"0[0-9]{2,3}-?[0-9]{7,8}")
OTHER_ID_RE = re.compile(r"[A-Z0-9]{5,20}")
MAX_NAME = 50
MAX_ADDRESS = 200
MAX_HOUSEHOLD = 40
SEX_ALIASES = {"m": "M", "male": "M", "男": "M", "f": "F", "female": "F", "女": "F"}


@dataclass(frozen=True)
class CleanPerson:
    """A person's fields after validation, in canonical form."""

    name: str
    id_type: str
    id_number: str
    sex: str
    birth_date: date
    phone: str | None
    region_code: str
    address: str
    household: str | None
    special_groups: int


def _text(values: Mapping[str, object], key: str) -> str:
    value = values.get(key)
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def parse_date(raw: str) -> date | None:
    """``YYYY-MM-DD`` (or ``YYYYMMDD``), or a timestamp at any time of that day; None for
    anything else (a trailing remainder is not silently dropped)."""
    try:
        return date.fromisoformat(raw)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw).date()
    except ValueError:
        return None


def clean_phone(raw: str) -> tuple[str | None, bool]:
    """``(canonical phone, valid)``. Spaces, brackets and full-width digits are tolerated; a
    mobile number is stored as its 11 digits (no country code, no dashes)."""
    compact = re.sub(r"[\s()]", "", unicodedata.normalize("NFKC", raw))
    if not compact:
        return None, True
    mobile = MOBILE_RE.fullmatch(compact.replace("-", ""))
    if mobile:
        return mobile.group(1), True
    return compact, LANDLINE_RE.fullmatch(compact) is not None


def parse_special_groups(raw: str) -> tuple[int, str | None]:
    """``"独居;low_income"`` → bit set; returns the first unknown name if any."""
    value = 0
    for part in re.split(r"[;,，；|/\s]+", raw.strip()):
        if not part:
            continue
        key = SPECIAL_GROUP_ALIASES.get(part.lower()) or SPECIAL_GROUP_ALIASES.get(part)
        if key is None:
            return 0, part
        value |= SpecialGroup[key].value
    return value, None


def check_person(
    values: Mapping[str, object],
    *,
    today: date,
    region_exists: Callable[[str], bool],
    row: int | None = None,
) -> tuple[CleanPerson | None, list[FieldProblem]]:
    """Validate one person's fields. Returns the clean person, or None and every problem found
    (each naming its field and reason, and ``row`` when given)."""
    problems: list[FieldProblem] = []

    def bad(field: str, reason: str, **params: object) -> None:
        problems.append(FieldProblem(field, reason, dict(params), row))

    name = _text(values, "name")
    if not name:
        bad("name", "field.required")
    elif len(name) > MAX_NAME:
        bad("name", "field.too_long", max=MAX_NAME)
    elif has_control(name, name=True):
        bad("name", "field.control_chars")

    id_type = _text(values, "id_type") or IdType.resident_id.value
    if id_type not in IdType.__members__:
        bad("id_type", "id.unknown_type", value=id_type)

    raw_id = _text(values, "id_number")
    id_number = normalise(raw_id)
    birth_from_id: date | None = None
    sex_from_id: str | None = None
    if not raw_id:
        bad("id_number", "field.required")
    elif id_type == IdType.resident_id:
        try:
            parsed = parse_resident_id(raw_id, today=today)
            birth_from_id, sex_from_id = parsed.birth_date, parsed.sex
        except IdNumberError as err:
            bad("id_number", err.reason, **err.params)
    elif not OTHER_ID_RE.fullmatch(id_number):
        bad("id_number", "id.bad_document_number")

    sex_raw = _text(values, "sex")
    sex: str | None = None
    if sex_raw:
        sex = SEX_ALIASES.get(sex_raw.lower()) or SEX_ALIASES.get(sex_raw)
        if sex is None:
            bad("sex", "person.bad_sex", value=sex_raw)
        elif sex_from_id and sex != sex_from_id:
            bad("sex", "person.sex_mismatch")
    sex = sex or sex_from_id
    # A resident ID number carries the sex and birth date: when it (or the document type) is
    # already refused, "sex is required" would only send the user after the wrong field.
    id_refused = any(p.field == "id_type" for p in problems) or (
        id_type == IdType.resident_id and any(p.field == "id_number" for p in problems)
    )
    if sex is None and not id_refused and not any(p.field == "sex" for p in problems):
        bad("sex", "field.required")

    birth_raw = _text(values, "birth_date")
    birth: date | None = None
    if birth_raw:
        birth = parse_date(birth_raw)
        if birth is None:
            bad("birth_date", "field.bad_date", value=birth_raw)
        else:
            if birth > today or birth.year < 1880:
                bad("birth_date", "person.impossible_birth_date", value=birth_raw)
            elif birth_from_id and birth != birth_from_id:
                bad("birth_date", "person.birth_mismatch")
    birth = birth or birth_from_id
    if birth is None and not id_refused and not any(p.field == "birth_date" for p in problems):
        bad("birth_date", "field.required")

    phone, phone_ok = clean_phone(_text(values, "phone"))
    if not phone_ok:
        bad("phone", "person.bad_phone")

    region_code = _text(values, "region_code")
    if not region_code:
        bad("region_code", "field.required")
    elif not region_exists(region_code):
        bad("region_code", "error.region_unknown", region=region_code)

    address = _text(values, "address")
    if len(address) > MAX_ADDRESS:
        bad("address", "field.too_long", max=MAX_ADDRESS)
    elif has_control(address):
        bad("address", "field.control_chars")

    household = _text(values, "household") or None
    if household and len(household) > MAX_HOUSEHOLD:
        bad("household", "field.too_long", max=MAX_HOUSEHOLD)
    elif household and has_control(household):
        bad("household", "field.control_chars")

    groups_raw = values.get("special_groups")
    groups = 0
    if isinstance(groups_raw, list | tuple):
        groups_raw = ";".join(str(g) for g in groups_raw)
    if groups_raw:
        groups, unknown = parse_special_groups(str(groups_raw))
        if unknown is not None:
            bad("special_groups", "person.unknown_group", value=unknown)

    if problems:
        return None, problems
    assert sex is not None
    assert birth is not None
    return (
        CleanPerson(
            name=name,
            id_type=id_type,
            id_number=id_number,
            sex=sex,
            birth_date=birth,
            phone=phone,
            region_code=region_code,
            address=address,
            household=household,
            special_groups=groups,
        ),
        [],
    )
