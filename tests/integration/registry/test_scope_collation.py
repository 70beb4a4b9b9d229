"""Jurisdiction filters are code ranges; they must select the same rows under any collation a
PostgreSQL database may be created with (C here, but often en_US or zh_CN in production)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, String, Table, insert, select, text

from bastion.regions import service as region_service
from bastion.regions.codes import Scope

CODES = [
    "220000",
    "220100",
    "220102",
    "220102001001001",
    "220112",
    "220183",
    "220199",
    "220200",
    "220202001001001",
    "220500",
    "220502",
    "220581",
    "220581001001001",
    "229999",
    "230100",
]
SCOPES = [
    Scope(prefix="2201"),
    Scope(prefix="22"),
    Scope(prefix="2205", excluded=("220581",)),
    Scope(prefix="220102001"),
    Scope(prefix="2299"),
    Scope(prefix="22", excluded=("2201", "220581")),
]


@pytest.mark.parametrize("collation", ["und-x-icu", "zh-x-icu", "en-x-icu"])
def test_scope_ranges_agree_with_prefixes_under_locale_collations(db, collation):
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("collations are a PostgreSQL matter; SQLite compares bytes")
    available = db.execute(
        text("SELECT 1 FROM pg_collation WHERE collname = :c"), {"c": collation}
    ).first()
    if available is None:
        pytest.skip(f"this server has no {collation} collation")
    db.execute(text(f'CREATE TEMP TABLE scoped_codes (code varchar(15) COLLATE "{collation}")'))
    table = Table("scoped_codes", MetaData(), Column("code", String(15)))
    db.execute(insert(table), [{"code": c} for c in CODES])
    for scope in SCOPES:
        selected = set(db.execute(select(table.c.code).where(scope.clause(table.c.code))).scalars())
        assert selected == {c for c in CODES if scope.contains(c)}, scope


def test_the_scope_of_a_city_excludes_a_province_run_city_inside_its_prefix(db):
    tonghua = region_service.scope_of(db_session=db, code="220500")
    assert tonghua == Scope(prefix="2205", excluded=("220581",))
    assert region_service.scope_of(db_session=db, code="220000") == Scope(prefix="22")
    assert region_service.scope_of(db_session=db, code="220100") == Scope(prefix="2201")
    assert region_service.scope_of(db_session=db, code="220102001") == Scope(prefix="220102001")
