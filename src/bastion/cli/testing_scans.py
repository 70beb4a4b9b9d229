"""``bastion testing import-scans FILE``: offline sites' and feeding systems' scan files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from bastion.cli.common import console, domain_errors, err_console
from bastion.core.auth import system_principal
from bastion.core.db import transaction

MAX_PROBLEMS_SHOWN = 200


@domain_errors
def import_scans(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
) -> None:
    """Import sampling scans from CSV or Parquet (columns round, site, tube, person, scanned_at;
    optional kind, capacity), through the same checks as the live API. Sending the same file twice
    changes nothing. Exit 2 when rows were refused."""
    from bastion.testing import ingest

    with (
        file.open("rb") as binary,
        Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            TextColumn("{task.completed:,} rows read"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task(file.name, total=None)
        with transaction() as session:
            report = ingest.import_scans_file(
                db_session=session,
                principal=system_principal(),
                binary=binary,
                on_progress=lambda n: progress.update(task, completed=n),
            )
    replay = " [dim](this file was imported before: nothing changed)[/]" if report.replayed else ""
    console.print(
        f"[green]{report.accepted} scans recorded[/], {report.unchanged} unchanged, "
        f"[yellow]{report.flagged} flagged[/], [red]{report.refused} refused[/]{replay}"
    )
    for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
        err_console.print(f"  {problem.text('en')}")
    if report.refused > MAX_PROBLEMS_SHOWN:
        err_console.print(f"  … and {report.refused - MAX_PROBLEMS_SHOWN} more problems")
    if report.refused:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("import-scans")(import_scans)
