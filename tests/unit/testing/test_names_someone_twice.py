"""Which chunks the reader may rank without a sort by person (``resolve.names_someone_twice``)."""

from __future__ import annotations

import pytest

from bastion.testing.ingest.resolve import names_someone_twice
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
