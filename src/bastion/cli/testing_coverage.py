"""``bastion testing round-status`` and ``bastion testing rebuild-coverage``.

The commands are plain functions; :func:`register` adds them to the ``testing`` command group
(``register(testing_app)`` in bastion.cli.testing).
"""

from __future__ import annotations

import typer
from rich.table import Table

from bastion.cli.common import console, domain_errors
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import transaction
from bastion.testing import coverage
from bastion.testing.coverage import CoverageRow, RoundStatus


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def _cells(row: CoverageRow) -> list[str]:
    return [
        f"{row.required:,}",
        f"{row.sampled:,}",
        f"{row.not_tested:,}",
        _pct(row.coverage),
        _pct(row.on_time_share),
        f"{row.resulted:,}",
        f"{row.positive_tubes:,}",
        "[bold red]late[/]" if row.late else "",
    ]


def status_table(status: RoundStatus) -> Table:
    """The Rich table of a round's status: one line per city, then the totals."""
    deadline = clock.to_local(status.deadline_at).strftime("%Y-%m-%d %H:%M")
    table = Table(
        title=f"{status.round_code} · {status.round_name} ({status.round_status}, "
        f"deadline {deadline})",
        title_justify="left",
    )
    table.add_column("city\n城市", no_wrap=True)
    for name in (
        "required\n应检",
        "sampled\n已采",
        "not tested\n应检未检",
        "coverage\n覆盖率",
        "in time\n按时完成",
        "results\n已出结果",
        "positive tubes\n阳性管",
        "",
    ):
        table.add_column(name, justify="right")
    for row in status.cities:
        table.add_row(f"{row.name_zh} {row.name_en}", *_cells(row))
    table.add_section()
    table.add_row("[bold]total 合计[/]", *_cells(status.totals))
    return table


@domain_errors
def round_status(
    round_ref: str = typer.Argument(..., metavar="ROUND", help="A round id, code or 'latest'"),
) -> None:
    """A round at a glance: required, sampled, coverage and in-time share, results out and
    positive tubes, by city."""
    with transaction() as session:
        status = coverage.round_status(
            db_session=session, principal=system_principal(), ref=round_ref
        )
    console.print(status_table(status))


@domain_errors
def rebuild_coverage(
    round_ref: str = typer.Argument(..., metavar="ROUND", help="A round id, code or 'latest'"),
) -> None:
    """Recompute a round's coverage and screening figures from the record (a repair path)."""
    with transaction() as session:
        rnd = coverage.get_round(db_session=session, principal=system_principal(), ref=round_ref)
        coverage.rebuild(db_session=session, round_id=rnd.id)
        code = rnd.code
    console.print(f"coverage of round [bold]{code}[/] rebuilt from the record")


def register(app: typer.Typer) -> None:
    """Add the coverage commands to the ``testing`` group."""
    app.command("round-status")(round_status)
    app.command("rebuild-coverage")(rebuild_coverage)
