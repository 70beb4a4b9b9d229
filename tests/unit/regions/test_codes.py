"""Region codes, subtree prefixes and scopes: pure rules (the SQL form checked on SQLite)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

from bastion.regions.codes import Scope, is_valid_code, prefix, upper_bound

digits = st.text(alphabet="0123456789", min_size=1, max_size=15)
codes = st.lists(digits, min_size=1, max_size=30, unique=True)

_metadata = MetaData()
_codes_table = Table("codes", _metadata, Column("code", String(15)))
_engine = create_engine("sqlite://")
_metadata.create_all(_engine)


def selected_by_clause(scope: Scope, values: list[str]) -> set[str]:
    """Run ``scope.clause`` in a real database over ``values``."""
    with _engine.begin() as conn:
        conn.execute(_codes_table.delete())
        conn.execute(insert(_codes_table), [{"code": v} for v in values])
        rows = conn.execute(select(_codes_table.c.code).where(scope.clause(_codes_table.c.code)))
        return {r.code for r in rows}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("220000", "22"),
        ("220100", "2201"),
        ("220102", "220102"),
        ("220581", "220581"),
        ("222400", "2224"),
        ("220102001", "220102001"),
        ("220102001001", "220102001001"),
        ("220102001001001", "220102001001001"),
    ],
)
def test_a_code_s_subtree_prefix_drops_its_trailing_zero_pairs(code, expected):
    assert prefix(code) == expected


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("220000", True),
        ("220102001", True),
        ("220102001001", True),
        ("220102001001001", True),
        ("22010", False),
        ("2201020", False),
        ("2201020010", False),
        ("22010200100100", False),
        ("2201020010010010", False),
        ("22010a", False),
        ("", False),
    ],
)
def test_only_6_9_12_or_15_digit_codes_are_well_formed(code, valid):
    assert is_valid_code(code) is valid


@pytest.mark.parametrize(
    ("pfx", "bound"),
    [("2201", "2202"), ("2209", "221"), ("2299", "23"), ("22", "23"), ("199", "2"), ("9", None)],
)
def test_the_upper_bound_is_the_prefix_counted_up_in_digits(pfx, bound):
    assert upper_bound(pfx) == bound


@given(pfx=digits, code=digits)
def test_the_range_holds_exactly_the_codes_that_start_with_the_prefix(pfx, code):
    bound = upper_bound(pfx)
    in_range = pfx <= code and (bound is None or code < bound)
    assert in_range == code.startswith(pfx)


def test_tonghua_does_not_contain_meihekou_which_the_province_runs():
    tonghua = Scope(prefix=prefix("220500"), excluded=("220581",))
    assert tonghua.contains("220500")
    assert tonghua.contains("220502")
    assert tonghua.contains("220502001001001")
    assert not tonghua.contains("220581")
    assert not tonghua.contains("220581001001001")
    assert not tonghua.contains("220100")
    values = ["220500", "220502", "220502001001001", "220581", "220581001001001", "220100"]
    assert selected_by_clause(tonghua, values) == {"220500", "220502", "220502001001001"}


def test_changchun_contains_its_districts_and_grids_but_not_jilin_city():
    changchun = Scope(prefix=prefix("220100"))
    assert changchun.contains("220102001001001")
    assert not changchun.contains("220202001001001")
    assert not changchun.contains("220000")
    assert not changchun.contains(None)


def test_everything_contains_every_code():
    assert Scope.everything().contains("220581001001001")
    assert Scope.everything().contains("")
    assert selected_by_clause(Scope.everything(), ["1", "99", "220100"]) == {"1", "99", "220100"}


@st.composite
def scopes(draw: st.DrawFn) -> Scope:
    pfx = draw(st.text(alphabet="0123456789", min_size=0, max_size=6))
    tails = draw(st.lists(st.text(alphabet="0123456789", min_size=1, max_size=4), max_size=3))
    return Scope(prefix=pfx, excluded=tuple(sorted({pfx + t for t in tails})))


@given(scope=scopes(), values=codes)
def test_the_sql_clause_selects_exactly_what_contains_accepts(scope, values):
    assert selected_by_clause(scope, values) == {v for v in values if scope.contains(v)}


@given(scope=scopes(), values=codes)
def test_an_excluded_branch_is_never_contained(scope, values):
    for value in values:
        if any(value.startswith(e) for e in scope.excluded):
            assert not scope.contains(value)
