"""The ``bastion`` command."""

from __future__ import annotations

from pathlib import Path

import typer

from bastion.audit import service as audit_service
from bastion.cli.bulletin import app as bulletin_app
from bastion.cli.common import console, domain_errors, err_console
from bastion.cli.demo import demo
from bastion.cli.healthcode import app as healthcode_app
from bastion.cli.isolation import app as isolation_app
from bastion.cli.protocol import app as protocol_app
from bastion.cli.simulate import simulate_app
from bastion.cli.testing import testing_app
from bastion.cli.tracing import tracing_app
from bastion.core import migrate
from bastion.core.auth import ROLES, system_principal
from bastion.core.db import transaction
from bastion.regions import service as region_service

app = typer.Typer(
    help="Bastion (众志成城): outbreak-response command platform.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
registry_app = typer.Typer(help="Population registry.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(registry_app, name="registry")
app.add_typer(audit_app, name="audit")
app.add_typer(simulate_app, name="simulate")
app.command("demo")(demo)
app.add_typer(testing_app, name="testing")
app.add_typer(tracing_app, name="tracing")
app.add_typer(healthcode_app, name="healthcode")
app.add_typer(isolation_app, name="isolation")
app.add_typer(protocol_app, name="protocol")
app.add_typer(bulletin_app, name="bulletin")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database to ``revision`` and load the base regions (idempotent)."""
    migrate.upgrade(revision=revision)
    with transaction() as session:
        added = region_service.load_base_regions(db_session=session)
    console.print(f"database at [bold]{revision}[/]; {added} base regions added")


@users_app.command("create")
@domain_errors
def users_create(
    username: str = typer.Option(..., help="Login name"),
    role: str = typer.Option(..., help=f"One of: {', '.join(ROLES)}"),
    region: str = typer.Option(..., help="Region code the user is scoped to"),
    password: str = typer.Option(..., prompt=True, hide_input=True, help="At least 8 characters"),
    display_name: str = typer.Option("", help="Name shown on pages"),
) -> None:
    """Create a user scoped to a region subtree."""
    from bastion.accounts import service as account_service

    with transaction() as session:
        user = account_service.create(
            db_session=session,
            principal=system_principal(),
            username=username,
            password=password,
            role=role,
            region_code=region,
            display_name=display_name,
        )
        console.print(f"created user [bold]{user.username}[/] ({user.role}) in {user.region_code}")


@registry_app.command("import")
@domain_errors
def registry_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
) -> None:
    """Import persons from CSV or XLSX; report every bad row, land the good ones."""
    from bastion.registry import importer

    with transaction() as session:
        result = importer.import_persons(
            db_session=session,
            principal=system_principal(),
            filename=file.name,
            data=file.read_bytes(),
        )
    console.print(
        f"{result.rows_total} rows: [green]{result.created} created[/], "
        f"{result.unchanged} unchanged, [red]{result.refused} refused[/]"
    )
    for problem in result.problems[:200]:
        err_console.print(f"  {problem.text('en')}")
    if len(result.problems) > 200:
        err_console.print(f"  … and {len(result.problems) - 200} more problems")
    if result.refused:
        raise typer.Exit(2)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check every entry's hash and link; exit 1 if anything was edited, inserted or deleted."""
    from bastion.healthcode import history as healthcode_history

    with transaction() as session:
        report = audit_service.verify(db_session=session)
        # Health-code history batches are sealed by audit entries (bastion.healthcode.history).
        sealed = healthcode_history.verify(db_session=session)
    report.problems.extend(sealed.problems)
    if report.ok and sealed.ok:
        console.print(
            f"[green]audit log intact[/]: {report.entries} entries, head {report.head_hash}"
        )
        return
    err_console.print(f"[bold red]audit log broken[/] ({report.entries} entries read):")
    for problem in report.problems:
        err_console.print(f"  - {problem}")
    raise typer.Exit(1)


@app.command("serve")
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes: one per core"),
    access_log: bool = typer.Option(
        False, "--access-log/--no-access-log", help="Log every request (costs CPU per request)"
    ),
) -> None:
    """Serve the web pages and the API (the health-code lookups and the live sampling API
    answered ahead of the framework's routing: ADRs 0007 and 0008). On a production machine,
    one worker per core (``--workers 2`` here): each worker listens on the port itself
    (SO_REUSEPORT) and a supervisor restarts one that dies."""
    from bastion.api import serving

    try:
        serving.serve(host, port, workers, access_log=access_log)
    except serving.PortUnavailable as err:
        err_console.print(f"[bold red]cannot listen on[/] {err}")
        raise typer.Exit(1) from err


if __name__ == "__main__":  # pragma: no cover
    app()
