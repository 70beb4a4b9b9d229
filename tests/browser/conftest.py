"""Browser tests: the real app served by uvicorn in a thread, driven by Debian's Chromium
through Playwright (never Playwright's own browser download).

The server runs against a SQLite file of its own, built like the suite's databases (migrations,
then the world's regions and users) plus a scene committed for the pages: the server commits
for real, so it cannot share the rolled-back databases of the integration tests. Why SQLite
only: see docs/dev/testing.md.

Skipped, loudly, when /usr/bin/chromium is missing — unless BASTION_REQUIRE_BROWSER is set
(CI sets it), which turns a missing browser into a failure.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bastion.api.app import create_app
from bastion.core import clock, crypto, migrate
from bastion.core.db import make_engine
from bastion.registry.models import Person
from tests.support import databases, factories, world
from tests.support import testing_factories as tf

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).parent / "artifacts"
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1280, "height": 900}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def _browser_missing() -> None:
    if CHROMIUM.exists():
        return
    why = f"{CHROMIUM} is missing (make install puts Debian's chromium there)"
    if os.environ.get("BASTION_REQUIRE_BROWSER"):
        pytest.fail(f"the browser tests are required here: {why}")
    pytest.skip(f"!!! browser tests SKIPPED: {why}")


@dataclass
class Scene:
    url: str
    engine: Engine
    round_code: str
    people: list[Person]
    #: Who is scanned where (the server's database lives for the whole session): 0–1 the
    #: sampling path, 2–5 the offline queue, 6 the lost session, 7 by ID number; 8–9 never.
    #: People[7]'s ID number in clear, to type at the site as the fallback.
    id_number: str
    lab_code: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _build(session: Session) -> dict[str, Any]:
    world.build(session)
    now = clock.now()
    # People first: a round requires whoever is registered when it opens.
    people = [factories.person(session) for _ in range(10)]
    rnd = factories.round_(
        session, code="R-BROWSER", region_code="220000", starts_at=now - timedelta(hours=3)
    )
    site = factories.site(session, code="SITE-CC")
    factories.site(session, code="SITE-JL", region_code="220202001001", grids=[world.CHANGYI_GRID])
    lab = factories.lab(session, code="LAB-CC", capacity=50)
    at = now - timedelta(hours=2)
    # A box packed at the site, waiting for the courier; another already on its way to the lab.
    tf.sampled(session, rnd, site, ["TB00000001", "TB00000002"], at=at)
    tf.packed(session, rnd, site, "BOX-WAIT", ["TB00000001", "TB00000002"], at=at)
    tf.sampled(session, rnd, site, ["TB00000011", "TB00000012", "TB00000013"], at=at)
    tf.packed(session, rnd, site, "BOX-LAB", ["TB00000011", "TB00000012", "TB00000013"], at=at)
    return {
        "round": rnd.code,
        "people": people,
        "id_number": crypto.decrypt(people[7].id_cipher),
        "lab": lab.code,
    }


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """The app on a free port, against a fresh migrated SQLite file with the world and a scene."""
    _browser_missing()
    url = databases.sqlite_url(tmp_path_factory.mktemp("browser-db"))
    migrate.upgrade(url)
    engine = make_engine(url, connect_args={"check_same_thread": False})
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    with factory() as session, session.begin():
        built = _build(session)
    port = _free_port()
    config = uvicorn.Config(
        create_app(factory=factory),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the test server did not start"
    yield Scene(
        url=f"http://127.0.0.1:{port}",
        engine=engine,
        round_code=built["round"],
        people=built["people"],
        id_number=built["id_number"],
        lab_code=built["lab"],
    )
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    _browser_missing()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def desk(chromium: Any, live: Scene) -> Iterator[Any]:
    """A fresh desktop browser context (its own cookies and storage)."""
    context = chromium.new_context(viewport=DESK, base_url=live.url, locale="zh-CN")
    yield context
    context.close()


@pytest.fixture
def phone(chromium: Any, live: Scene) -> Iterator[Any]:
    """A fresh phone-sized context, as at a sampling site."""
    context = chromium.new_context(
        viewport=PHONE, base_url=live.url, locale="zh-CN", is_mobile=True, has_touch=True
    )
    yield context
    context.close()


def shot(page: Any, name: str) -> None:
    """Keep a screenshot of the page as a test artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(context: Any, username: str, path: str = "/") -> Any:
    page = context.new_page()
    page.goto(f"/login?next={path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", world.PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"**{path}*")
    return page
