"""Running the ``bastion`` command against a fresh, committed database of the test's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.core.db import make_engine


def flat(text: str) -> str:
    """Output with Rich's line wrapping undone, for substring checks."""
    return " ".join(text.split())


@pytest.fixture
def bastion(cli_env: dict[str, Any]) -> Callable[..., Result]:
    """``bastion("users", "create", ...)`` runs the command in-process on the fresh database,
    already upgraded and holding the base regions."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Result:
        result = runner.invoke(app, list(args), input=input)
        assert "Traceback" not in result.output, result.output
        if result.exception is not None:
            assert isinstance(result.exception, SystemExit), repr(result.exception)
        return result

    upgraded = run("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    return run


@pytest.fixture
def cli_db(cli_env: dict[str, Any]) -> Iterator[Session]:
    """A session on the CLI's database, to look at what the commands committed."""
    engine = make_engine(cli_env["BASTION_DATABASE_URL"])
    with Session(engine) as session:
        yield session
    engine.dispose()
