"""Resident ID numbers (GB 11643) and the masking of personal data: pure rules."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.registry.idnumber import (
    COMPOUND_SURNAMES,
    IdNumberError,
    check_char,
    make_resident_id,
    mask_id,
    mask_name,
    mask_phone,
    parse_resident_id,
)

TODAY = date(2022, 3, 26)

#: The number on the GB 11643 specimen card, and numbers built digit by digit by hand.
KNOWN_VALID = [
    ("11010519491231002X", "110105", date(1949, 12, 31), "F"),
    ("220102198506151232", "220102", date(1985, 6, 15), "M"),
    ("22020220000229004X", "220202", date(2000, 2, 29), "F"),
    ("220581196201019992", "220581", date(1962, 1, 1), "M"),
    ("440308201010100102", "440308", date(2010, 10, 10), "F"),
]

regions6 = st.from_regex(r"[1-8][0-9]{5}", fullmatch=True)
birth_dates = st.dates(min_value=date(1880, 1, 1), max_value=TODAY)
sequences = st.integers(min_value=0, max_value=999)


@pytest.mark.parametrize(("number", "region", "born", "sex"), KNOWN_VALID)
def test_it_accepts_known_valid_numbers_and_reads_their_parts(number, region, born, sex):
    parsed = parse_resident_id(number, today=TODAY)
    assert parsed.number == number
    assert parsed.region == region
    assert parsed.birth_date == born
    assert parsed.sex == sex


@pytest.mark.parametrize(
    ("first17", "expected"),
    [
        ("11010519491231002", "X"),
        ("22010219850615123", "2"),
        ("22058119620101999", "2"),
        ("44030820101010010", "2"),
        ("22020220000229004", "X"),
    ],
)
def test_check_character_follows_iso_7064_mod_11_2(first17, expected):
    assert check_char(first17) == expected


def test_every_remainder_maps_to_its_check_character():
    # Weighted sums 0..10 (a single non-zero digit in the position of weight 1) → "10X98765432".
    seen = {}
    for digit in range(10):
        first17 = "0" * 7 + str(digit) + "0" * 9  # position 8 has weight 1
        seen[digit] = check_char(first17)
    assert "".join(seen[d] for d in range(10)) == "10X9876543"
    # Remainder 10: weight 10 × 1 in position 3.
    assert check_char("001" + "0" * 14) == "2"


@pytest.mark.parametrize(
    "typed",
    [
        " 11010519491231002x ",
        "110105 19491231 002X",
        "１１０１０５１９４９１２３１００２Ｘ",  # a Chinese input method in full-width mode
        "110105\u300019491231002ｘ",
    ],
)
def test_it_accepts_the_ways_people_type_a_valid_number(typed):
    assert parse_resident_id(typed, today=TODAY).number == "11010519491231002X"


@given(region=regions6, born=birth_dates, sequence=sequences)
def test_every_built_number_parses_back_to_the_same_parts(region, born, sequence):
    number = make_resident_id(region, born, sequence)
    parsed = parse_resident_id(number, today=TODAY)
    assert len(number) == 18
    assert parsed.region == region
    assert parsed.birth_date == born
    assert parsed.sex == ("M" if sequence % 2 else "F")


@given(
    region=regions6,
    born=birth_dates,
    sequence=sequences,
    position=st.integers(min_value=0, max_value=16),
    shift=st.integers(min_value=1, max_value=9),
)
def test_any_single_digit_change_in_the_first_17_breaks_the_number(
    region, born, sequence, position, shift
):
    number = make_resident_id(region, born, sequence)
    changed_digit = str((int(number[position]) + shift) % 10)
    tampered = number[:position] + changed_digit + number[position + 1 :]
    with pytest.raises(IdNumberError):
        parse_resident_id(tampered, today=TODAY)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "id.wrong_length"),
        ("11010519491231002", "id.wrong_length"),
        ("11010519491231002XX", "id.wrong_length"),
        ("1101051949123100", "id.wrong_length"),
        ("11010519491231002Y", "id.bad_characters"),
        ("1101051949123100X2", "id.bad_characters"),
        ("A1010519491231002X", "id.bad_characters"),
        ("11010519491231-02X", "id.bad_characters"),
        # Arabic-Indic digits are digits to Unicode, but not ID-number digits.
        ("110105١٩٤٩1231002X", "id.bad_characters"),
        ("11010519491231002\n", "id.wrong_length"),
        ("11010519490230002X", "id.bad_birth_date"),  # 30 February
        ("11010519990231002X", "id.bad_birth_date"),  # 31 February 1999
        ("11010519991301002X", "id.bad_birth_date"),  # month 13
        ("11010519990000002X", "id.bad_birth_date"),  # day 0
        ("11010518791231002X", "id.bad_birth_date"),  # before 1880
        ("110105194912310021", "id.bad_check_char"),
    ],
)
def test_it_refuses_malformed_numbers_naming_the_reason(raw, reason):
    with pytest.raises(IdNumberError) as caught:
        parse_resident_id(raw, today=TODAY)
    assert caught.value.reason == reason


def test_it_refuses_a_birth_date_in_the_future():
    tomorrow = TODAY + timedelta(days=1)
    number = make_resident_id("220102", tomorrow, 11)
    with pytest.raises(IdNumberError) as caught:
        parse_resident_id(number, today=TODAY)
    assert caught.value.reason == "id.bad_birth_date"
    assert parse_resident_id(make_resident_id("220102", TODAY, 11), today=TODAY)


def test_a_wrong_check_character_names_the_expected_one():
    with pytest.raises(IdNumberError) as caught:
        parse_resident_id("110105194912310021", today=TODAY)
    assert caught.value.params == {"got": "1", "expected": "X"}


def test_an_impossible_date_is_reported_even_with_a_right_check_character():
    first17 = "11010519990231002"
    with pytest.raises(IdNumberError) as caught:
        parse_resident_id(first17 + check_char(first17), today=TODAY)
    assert caught.value.reason == "id.bad_birth_date"
    assert caught.value.params == {"value": "19990231"}


# Masking ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("11010519491231002X", "1****************X"),
        ("220102198506151232", "2****************2"),
        ("E12345678", "E*******8"),
        ("AB", "**"),
        ("A", "*"),
        ("", ""),
    ],
)
def test_an_id_number_is_masked_to_its_first_and_last_characters(number, masked):
    assert mask_id(number) == masked


@given(number=st.text(alphabet="0123456789X", min_size=3, max_size=18))
def test_a_masked_id_number_keeps_length_and_reveals_only_its_ends(number):
    masked = mask_id(number)
    assert len(masked) == len(number)
    assert masked[0] == number[0]
    assert masked[-1] == number[-1]
    assert set(masked[1:-1]) == {"*"}


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三", "张*"),
        ("王小明", "王**"),
        ("欧阳娜娜", "欧阳**"),
        ("司马光", "司马*"),
        ("诸葛亮", "诸葛*"),
        ("上官婉儿", "上官**"),
        ("欧阳", "欧*"),
        ("李", "李*"),
        ("", ""),
        ("John Smith", "J*********"),
    ],
)
def test_a_name_is_masked_to_its_surname(name, masked):
    assert mask_name(name) == masked


@given(
    surname=st.sampled_from(sorted(COMPOUND_SURNAMES)),
    given_name=st.text(alphabet="伟芳娜敏静丽强磊军洋", min_size=1, max_size=3),
)
def test_a_compound_surname_is_kept_whole(surname, given_name):
    assert mask_name(surname + given_name) == surname + "*" * len(given_name)


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("0431-88888888", "043******8888"),
        ("043188888888", "043*****8888"),
        (None, None),
        ("", ""),
    ],
)
def test_a_phone_number_is_masked_in_the_middle(phone, masked):
    assert mask_phone(phone) == masked


@given(phone=st.text(alphabet="0123456789-", min_size=1, max_size=20))
def test_a_masked_phone_always_hides_at_least_four_characters(phone):
    masked = mask_phone(phone)
    assert masked is not None
    assert len(masked) == len(phone)
    assert masked.count("*") >= min(4, len(phone))
