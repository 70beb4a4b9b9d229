"""``bastion demo``: a ready-to-explore Bastion in one command.

Migrates the settings' database, builds the demo province if it holds nobody yet, makes one demo
user per role (each placed where that role works), prints them, runs the earlier simulations
when the record has none (a testing round over Changchun, a few days of outbreak: see
:mod:`bastion.cli.simulate_outbreak`), prints the latest day's bulletin in both languages, and
serves the site. Running it again keeps what is there: the province is not rebuilt, existing
users are left alone, the round and the outbreak are kept.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bastion.cli.common import console, domain_errors
from bastion.cli.simulate import SCALE_HELP, build_with_progress, print_summary
from bastion.cli.simulate_outbreak import DEMO_DAYS, demo_record, print_latest_bulletin
from bastion.core import migrate
from bastion.core.auth import ROLES, system_principal
from bastion.core.config import get_settings
from bastion.core.db import get_engine, transaction
from bastion.core.errors import Forbidden, InvalidInput
from bastion.core.i18n import t

#: Published on purpose, printed by the command: the demo is for looking around, and the
#: command refuses to run in production.
DEMO_PASSWORD = "bastion-demo"  # noqa: S105 - a documented demo password, refused in production
PROVINCE = "220000"
CHANGCHUN = "220100"
#: Where each role works: the whole province, a city, a district, a grid, or (the resident)
#: a person's own grid.
PLACES: dict[str, str] = {
    "admin": "province",
    "commander": "province",
    "analyst": "province",
    "lab": "city",
    "courier": "city",
    "investigator": "district",
    "isolation": "district",
    "transfer": "district",
    "hotline": "district",
    "supply": "district",
    "sampler": "grid",
    "grid_worker": "grid",
    "resident": "person",
}


@domain_errors
def demo(
    scale: float = typer.Option(0.01, help=SCALE_HELP),
    seed: int = typer.Option(1, help="Seed of the demo province"),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the site afterwards"),
    host: str = typer.Option("127.0.0.1", help="Address to serve on"),
    port: int = typer.Option(8000, help="Port to serve on"),
    fresh: bool = typer.Option(
        False, "--fresh/--keep", help="Delete the SQLite database first and start over"
    ),
    days: int = typer.Option(
        DEMO_DAYS, "--days", help="Days of simulated outbreak (after a testing round); 0: none"
    ),
) -> None:
    """Build a demo province (a few hundred thousand people by default) in the settings'
    database, create one demo user per role, run a testing round over Changchun and a few days
    of outbreak (when the record has none), print the latest day's bulletin in Chinese and
    English, and serve the site. Refused in production."""
    settings = get_settings()
    if settings.environment == "production":
        raise Forbidden("demo.refused_in_production")
    if fresh:
        _delete_sqlite_database(settings.database_url)
    migrate.upgrade()
    from bastion.regions import service as region_service
    from bastion.registry.models import Person

    with transaction() as session:
        region_service.load_base_regions(db_session=session)
        persons = session.execute(select(func.count()).select_from(Person)).scalar_one()
    if persons:
        console.print(f"the database already holds {persons:,} persons: kept as it is")
    else:
        print_summary(*build_with_progress(scale=scale, seed=seed))
    rows = _ensure_demo_users()
    _print_users(rows)
    # Something for the bulletin to report: a round and a few days of outbreak (once).
    demo_record(seed=seed, days=days)
    print_latest_bulletin()
    if serve:
        from bastion.api import serving

        console.print(f"serving [bold]http://{host}:{port}[/] (Ctrl+C stops)")
        serving.serve(host, port, workers=1)


def _delete_sqlite_database(url: str) -> None:
    """Remove the SQLite file (and its WAL and shared-memory files). Refuses other databases:
    a PostgreSQL database is dropped by its administrator, not by a demo command."""
    if not url.startswith("sqlite"):
        raise InvalidInput.one("fresh", "demo.fresh_needs_sqlite")
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    # Pooled connections would keep writing to the deleted file.
    get_engine(url).dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(database + suffix).unlink(missing_ok=True)


def _ensure_demo_users() -> list[tuple[str, str, str, str]]:
    """Create the demo users that do not exist yet; returns (username, role, region code,
    where) for all of them."""
    from bastion.accounts import service as account_service
    from bastion.regions import service as region_service
    from bastion.registry.idnumber import mask_name
    from bastion.registry.models import Person
    from bastion.simulate.province import demo_places

    rows: list[tuple[str, str, str, str]] = []
    with transaction() as session:
        places = demo_places(db_session=session, city=CHANGCHUN)
        region_of = {
            "province": PROVINCE,
            "city": CHANGCHUN,
            "district": places.district,
            "grid": places.grid,
            "person": places.grid,
        }
        for role in ROLES:
            username = f"demo_{role}"
            user = account_service.get_by_username(db_session=session, username=username)
            if user is None:
                place = PLACES.get(role, "province")
                person_id = places.person_id if place == "person" else None
                user = account_service.create(
                    db_session=session,
                    principal=system_principal(),
                    username=username,
                    password=DEMO_PASSWORD,
                    role=role,
                    region_code=region_of[place],
                    display_name=f"演示·{t(f'role.{role}', 'zh-CN')}",
                    person_id=person_id,
                )
            chain = region_service.ancestors(db_session=session, code=user.region_code)
            # The region's own name after its parent's, which is what tells grids apart.
            where = "".join(r.name_zh for r in chain[-2:] if r.code != PROVINCE) or "吉林省"
            if user.person_id is not None:
                person = session.get(Person, user.person_id)
                if person is not None:
                    where += f" · {mask_name(person.name)} (#{person.id})"
            rows.append((user.username, user.role, user.region_code, where))
    return rows


def _print_users(rows: list[tuple[str, str, str, str]]) -> None:
    table = Table(title="Demo users")
    for column in ("username", "role", "region"):
        table.add_column(column, no_wrap=True)
    table.add_column("where")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"password for every demo user: [bold]{DEMO_PASSWORD}[/]")
