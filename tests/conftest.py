"""Suite-wide fixtures: every integration test runs once on SQLite and once on PostgreSQL,
inside a transaction that is rolled back afterwards."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Settings are read once per process: fix them before any bastion module caches them.
os.environ["BASTION_ENVIRONMENT"] = "test"
os.environ["BASTION_ARGON2_TIME_COST"] = "1"
os.environ["BASTION_ARGON2_MEMORY_KIB"] = "1024"
# Tests share one connection between sessions (savepoints): the health-code lookups must poll
# the statuses inside a request, never in a background thread beside the test.
os.environ["BASTION_CODE_POLL_IN_BACKGROUND"] = "0"

from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from bastion.accounts import service as account_service
from bastion.accounts.models import User
from bastion.api.app import create_app
from bastion.core import migrate
from bastion.core.auth import Principal
from bastion.core.config import get_settings
from bastion.core.db import dispose_engines, make_engine
from tests.support import databases, world

BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=("all", *BACKENDS),
        default=os.environ.get("BASTION_TEST_BACKEND", "all"),
        help="run integration tests on SQLite, PostgreSQL or both (default)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--backend")
        params = BACKENDS if chosen == "all" else (chosen,)
        metafunc.parametrize("backend", params, scope="session")


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database holding the test world, for the whole session."""
    if backend == "sqlite":
        url = databases.sqlite_url(tmp_path_factory.mktemp("db"))
        name = None
    else:
        why = databases.pg_reachable()
        if why is not None:
            if os.environ.get("BASTION_REQUIRE_POSTGRES"):
                pytest.fail(f"PostgreSQL is required here but unreachable: {why}")
            pytest.skip(f"!!! PostgreSQL unreachable, its half of the suite is SKIPPED: {why}")
        name, url = databases.create_pg_database()
    migrate.upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        cast = world.build(session)
    engine.dispose()
    _CASTS[url] = cast
    yield url
    if name:
        databases.drop_pg_database(name)


_CASTS: dict[str, world.Cast] = {}


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = (
        make_engine(database_url, connect_args={"check_same_thread": False})
        if database_url.startswith("sqlite")
        else make_engine(database_url)
    )
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture
def session_factory(connection: Connection) -> sessionmaker[Session]:
    """Sessions that share the test's connection; their commits are savepoints."""
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@pytest.fixture
def cast(database_url: str) -> world.Cast:
    return _CASTS[database_url]


@pytest.fixture
def principal(db: Session, cast: world.Cast) -> Callable[..., Principal]:
    """``principal("investigator")`` inside Changchun; ``principal("lab", "out")`` outside."""

    def make(role: str, where: str = "in") -> Principal:
        user = db.get(User, cast.ids[(role, where)])
        assert user is not None
        return account_service.principal_for(db_session=db, user=user)

    return make


@pytest.fixture
def client(session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    app = create_app(factory=session_factory)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def headers(db: Session, cast: world.Cast) -> Callable[..., dict[str, str]]:
    """``headers("analyst")`` → an Authorization header for that cast member."""

    def make(role: str, where: str = "in") -> dict[str, str]:
        user = db.get(User, cast.ids[(role, where)])
        assert user is not None
        token, _ = account_service.issue_token(user)
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database of its own, for CLI runs that commit."""
    if backend == "sqlite":
        url = databases.sqlite_url(tmp_path)
        name = None
    else:
        if databases.pg_reachable() is not None:
            pytest.skip("!!! PostgreSQL unreachable")
        name, url = databases.create_pg_database("bastion_cli")
    migrate.upgrade(url)
    yield url
    dispose_engines()
    if name:
        databases.drop_pg_database(name)


@pytest.fixture
def cli_env(fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Point the CLI (and ``get_settings()``) at a fresh database for the test."""
    monkeypatch.setenv("BASTION_DATABASE_URL", fresh_database_url)
    get_settings.cache_clear()
    yield {"BASTION_DATABASE_URL": fresh_database_url}
    get_settings.cache_clear()
