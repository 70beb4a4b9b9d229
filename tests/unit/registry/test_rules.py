"""Validation of one person's fields (registry.rules.check_person): pure rules."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.registry.enums import SPECIAL_GROUP_ALIASES, SpecialGroup
from bastion.registry.idnumber import make_resident_id
from bastion.registry.rules import check_person, parse_special_groups

TODAY = date(2022, 3, 26)
GRID = "220102001001001"
KNOWN_REGIONS = {GRID, "220100", "220102"}
#: A woman born 1985-06-15 (even sequence).
WOMAN = make_resident_id("220102", date(1985, 6, 15), 122)
#: A man born 1949-12-31 (odd sequence).
MAN = make_resident_id("220102", date(1949, 12, 31), 7)


def good(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "王芳",
        "id_number": WOMAN,
        "phone": "13812345678",
        "region_code": GRID,
        "address": "南关区测试街道1号",
        "household": "H-001",
        "special_groups": "",
    }
    values.update(overrides)
    return values


def check(values: dict[str, Any], row: int | None = None):
    return check_person(values, today=TODAY, region_exists=KNOWN_REGIONS.__contains__, row=row)


def problems_of(values: dict[str, Any]) -> dict[str, str]:
    clean, problems = check(values)
    assert clean is None, "expected a refusal"
    return {p.field: p.reason for p in problems}


def test_it_accepts_a_good_person_and_derives_sex_and_birth_date_from_the_id():
    clean, problems = check(good())
    assert problems == []
    assert clean is not None
    assert clean.sex == "F"
    assert clean.birth_date == date(1985, 6, 15)
    assert clean.id_type == "resident_id"
    assert clean.id_number == WOMAN
    assert clean.household == "H-001"
    assert clean.special_groups == 0


def test_a_name_written_with_a_joiner_is_kept():
    # ZWNJ and ZWJ belong to how some scripts write names (core.text.Name).
    clean, problems = check(good(name="علی\u200cرضا"))
    assert problems == []
    assert clean is not None
    assert clean.name == "علی\u200cرضا"


def test_it_trims_fields_and_normalises_the_id_number():
    clean, _ = check(good(name="  王芳 ", id_number=f" {WOMAN.lower()} ", region_code=f" {GRID} "))
    assert clean is not None
    assert clean.name == "王芳"
    assert clean.id_number == WOMAN
    assert clean.region_code == GRID


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"name": ""}, "name", "field.required"),
        ({"name": "   "}, "name", "field.required"),
        ({"name": None}, "name", "field.required"),
        ({"name": "王" * 51}, "name", "field.too_long"),
        ({"name": "王\u0000芳"}, "name", "field.control_chars"),
        ({"name": "王\u200b芳"}, "name", "field.control_chars"),
        ({"id_type": "driving_licence"}, "id_type", "id.unknown_type"),
        ({"id_number": ""}, "id_number", "field.required"),
        ({"id_number": WOMAN[:-1]}, "id_number", "id.wrong_length"),
        ({"id_number": WOMAN[:-1] + "Y"}, "id_number", "id.bad_characters"),
        ({"id_number": "11010519990231002X"}, "id_number", "id.bad_birth_date"),
        ({"id_number": WOMAN[:-1] + "0"}, "id_number", "id.bad_check_char"),
        (
            {"id_number": make_resident_id("220102", date(2022, 3, 27), 2)},
            "id_number",
            "id.bad_birth_date",
        ),
        (
            {"id_type": "passport", "id_number": "E1", "sex": "F", "birth_date": "1990-01-02"},
            "id_number",
            "id.bad_document_number",
        ),
        ({"sex": "X"}, "sex", "person.bad_sex"),
        ({"sex": "M"}, "sex", "person.sex_mismatch"),
        ({"sex": "男"}, "sex", "person.sex_mismatch"),
        ({"birth_date": "1985-06-16"}, "birth_date", "person.birth_mismatch"),
        ({"birth_date": "15/06/1985"}, "birth_date", "field.bad_date"),
        ({"birth_date": "1985-06-15junk"}, "birth_date", "field.bad_date"),
        ({"birth_date": "1985-02-30"}, "birth_date", "field.bad_date"),
        ({"birth_date": "2022-03-27"}, "birth_date", "person.impossible_birth_date"),
        ({"birth_date": "1879-12-31"}, "birth_date", "person.impossible_birth_date"),
        ({"phone": "12812345678"}, "phone", "person.bad_phone"),
        ({"phone": "1381234567"}, "phone", "person.bad_phone"),
        ({"phone": "138123456789"}, "phone", "person.bad_phone"),
        ({"phone": "call me"}, "phone", "person.bad_phone"),
        ({"phone": "431-88888888"}, "phone", "person.bad_phone"),
        ({"phone": "+1 415 555 0100"}, "phone", "person.bad_phone"),
        ({"region_code": ""}, "region_code", "field.required"),
        ({"region_code": "999999"}, "region_code", "error.region_unknown"),
        ({"address": "路" * 201}, "address", "field.too_long"),
        ({"address": "一号\u0007楼"}, "address", "field.control_chars"),
        ({"household": "H" * 41}, "household", "field.too_long"),
        ({"household": "H\u0000-1"}, "household", "field.control_chars"),
        ({"special_groups": "独居;astronaut"}, "special_groups", "person.unknown_group"),
        ({"special_groups": ["veteran", "pilot"]}, "special_groups", "person.unknown_group"),
    ],
)
def test_each_refusal_names_its_field_and_reason(overrides, field, reason):
    clean, problems = check(good(**overrides))
    assert clean is None
    assert [(p.field, p.reason) for p in problems] == [(field, reason)]


def test_it_reports_every_bad_field_at_once_with_the_row():
    clean, problems = check(
        good(name="", id_number="123", phone="x", region_code="999999", special_groups="飞行员"),
        row=7,
    )
    assert clean is None
    assert {p.field for p in problems} == {
        "name",
        "id_number",
        "phone",
        "region_code",
        "special_groups",
    }
    assert {p.row for p in problems} == {7}


def test_a_bad_resident_id_is_not_also_blamed_on_the_sex_and_birth_date_it_would_give():
    assert problems_of(good(id_number="123")) == {"id_number": "id.wrong_length"}


def test_other_documents_need_the_sex_and_birth_date_given():
    assert problems_of(good(id_type="passport", id_number="E12345678")) == {
        "sex": "field.required",
        "birth_date": "field.required",
    }
    clean, _ = check(
        good(id_type="passport", id_number="e1234 5678", sex="女", birth_date="1990-01-02")
    )
    assert clean is not None
    assert (clean.id_number, clean.sex, clean.birth_date) == ("E12345678", "F", date(1990, 1, 2))


@pytest.mark.parametrize(
    ("sex", "number"),
    [
        ("F", WOMAN),
        ("f", WOMAN),
        ("female", WOMAN),
        ("Female", WOMAN),
        ("女", WOMAN),
        ("M", MAN),
        ("male", MAN),
        ("男", MAN),
        ("", MAN),
        (None, MAN),
    ],
)
def test_the_sex_may_be_given_in_any_usual_spelling_when_it_agrees_with_the_id(sex, number):
    clean, problems = check(good(sex=sex, id_number=number))
    assert problems == []
    assert clean is not None
    assert clean.sex == ("F" if number == WOMAN else "M")


@pytest.mark.parametrize(
    "birth",
    ["1985-06-15", date(1985, 6, 15), datetime(1985, 6, 15), "1985-06-15 00:00:00", "19850615"],
)
def test_a_birth_date_that_agrees_with_the_id_is_accepted_in_its_usual_forms(birth):
    clean, problems = check(good(birth_date=birth))
    assert problems == []
    assert clean is not None
    assert clean.birth_date == date(1985, 6, 15)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("13812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("+86 138 1234 5678", "13812345678"),
        ("+8613812345678", "13812345678"),
        ("0086 13812345678", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),
        ("19912345678", "19912345678"),
        ("0431-88888888", "0431-88888888"),
        ("043188888888", "043188888888"),
        ("(0431)88888888", "043188888888"),
        ("010-1234567", "010-1234567"),
        ("", None),
        (None, None),
    ],
)
def test_usual_phone_formats_are_accepted_and_stored_canonically(typed, stored):
    clean, problems = check(good(phone=typed))
    assert problems == []
    assert clean is not None
    assert clean.phone == stored


@pytest.mark.parametrize(("alias", "key"), sorted(SPECIAL_GROUP_ALIASES.items()))
def test_every_special_group_alias_is_understood(alias, key):
    clean, problems = check(good(special_groups=alias))
    assert problems == []
    assert clean is not None
    assert clean.special_groups == SpecialGroup[key].value


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("独居;低保", SpecialGroup.living_alone | SpecialGroup.low_income),
        ("卧床，残疾人", SpecialGroup.bedridden | SpecialGroup.disabled),
        ("veteran | LOW_INCOME", SpecialGroup.veteran | SpecialGroup.low_income),
        ("disabled/残疾", SpecialGroup.disabled),
        ("退役军人；独居老人", SpecialGroup.veteran | SpecialGroup.living_alone),
        (["bedridden", "退役军人"], SpecialGroup.bedridden | SpecialGroup.veteran),
        ("", 0),
        (" ; ", 0),
    ],
)
def test_special_groups_combine_from_any_separator_and_either_language(raw, expected):
    clean, problems = check(good(special_groups=raw))
    assert problems == []
    assert clean is not None
    assert clean.special_groups == int(expected)


@given(st.sets(st.sampled_from(sorted(SPECIAL_GROUP_ALIASES))))
def test_special_group_names_round_trip_through_the_bit_set(aliases):
    value, unknown = parse_special_groups(";".join(sorted(aliases)))
    assert unknown is None
    expected = {SPECIAL_GROUP_ALIASES[a] for a in aliases}
    assert set(SpecialGroup.names(value)) == expected
    assert SpecialGroup.parse_names(sorted(expected)) == value
