"""``bastion tracing cases / case / expand / chain`` on a committed database of their own."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bastion.core import clock
from bastion.core.db import bulk_insert
from tests.integration.cli.conftest import bastion, cli_db, flat  # noqa: F401 - fixtures
from tests.integration.tracing.support import NOW, TODAY, case
from tests.support import factories, world


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def outbreak(bastion, cli_db):  # noqa: F811 - fixture
    """A case whose person shares a household with one person, who works with another."""
    cli_db.add_all(world._tree("220102"))
    cli_db.flush()
    index, housemate, colleague = (factories.person(cli_db) for _ in range(3))
    made = case(cli_db, index, onset_on=TODAY - timedelta(days=1))
    rows = []
    for a, b, setting in ((index, housemate, "household"), (housemate, colleague, "workplace")):
        rows += [(a.id, b.id, TODAY, setting), (b.id, a.id, TODAY, setting)]
    bulk_insert(cli_db, "exposure_edges", ["person_id", "other_id", "exposed_on", "setting"], rows)
    cli_db.commit()
    return made


def test_it_lists_shows_expands_and_walks_a_case(bastion, outbreak):  # noqa: F811 - fixture
    listed = bastion("tracing", "cases")
    assert listed.exit_code == 0, listed.output
    assert outbreak.code in listed.output

    expanded = bastion("tracing", "expand", outbreak.code)
    assert expanded.exit_code == 0, expanded.output
    assert "1 new close contacts, 1 new secondary contacts" in flat(expanded.output)

    shown = bastion("tracing", "case", outbreak.code)
    assert shown.exit_code == 0, shown.output
    assert "contacts: 2 (1 close, 1 secondary" in flat(shown.output)

    walked = bastion("tracing", "chain", outbreak.code)
    assert walked.exit_code == 0, walked.output
    assert "—close→" in walked.output
    assert "—secondary→" in walked.output


def test_an_unknown_case_is_a_clear_error(bastion):  # noqa: F811 - fixture
    result = bastion("tracing", "case", "C99999999")
    assert result.exit_code == 1
    assert "C99999999" in result.output
