"""What the reader can tell of a chunk from its rows alone (``ingest.resolve``): whether it
names someone twice (a sort by person), whether a barcode comes with several rounds or sites."""

from __future__ import annotations

import pytest

from bastion.testing.ingest.resolve import names_someone_twice, tubes_mixed
from bastion.testing.ingest.statements import STAGE_COLUMNS

TOKEN = STAGE_COLUMNS.index("person_token")
ID_HASH = STAGE_COLUMNS.index("id_hash")


def staged(token: str | None = None, id_hash: str | None = None) -> tuple[object, ...]:
    row: list[object] = [0] * len(STAGE_COLUMNS)
    row[TOKEN], row[ID_HASH] = token, id_hash
    return tuple(row)


@pytest.mark.parametrize(
    ("rows", "twice"),
    [
        ([], False),
        ([staged("a")], False),
        ([staged("a"), staged("b"), staged(id_hash="h1"), staged(id_hash="h2")], False),
        ([staged("a"), staged("b"), staged("a")], True),
        ([staged(id_hash="h1"), staged("a"), staged(id_hash="h1")], True),
        # A token equal to some ID hash is still two people.
        ([staged("x"), staged(id_hash="x")], False),
        # One person by token and by ID number: not seen here (the unique index stops it).
        ([staged("a"), staged(id_hash="a-hash")], False),
    ],
)
def test_names_someone_twice(rows, twice):
    assert names_someone_twice(rows) is twice


BARCODE = STAGE_COLUMNS.index("barcode")
ROUND = STAGE_COLUMNS.index("round_id")
SITE = STAGE_COLUMNS.index("site_id")


def at(barcode: str, round_id: int = 1, site_id: int = 1) -> tuple[object, ...]:
    row: list[object] = [0] * len(STAGE_COLUMNS)
    row[BARCODE], row[ROUND], row[SITE] = barcode, round_id, site_id
    return tuple(row)


@pytest.mark.parametrize(
    ("rows", "mixed"),
    [
        ([], False),
        ([at("T1"), at("T1"), at("T2", site_id=2)], False),
        ([at("T1"), at("T1", site_id=2)], True),
        ([at("T1"), at("T2"), at("T1", round_id=2)], True),
        # Another tube of the other site is no mix.
        ([at("T1"), at("T2", round_id=2, site_id=2), at("T2", round_id=2, site_id=2)], False),
    ],
)
def test_tubes_mixed(rows, mixed):
    assert tubes_mixed(rows) is mixed
