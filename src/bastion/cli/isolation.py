"""``bastion isolation …``: sites and occupancy, who is due for release (and releasing them in
one batch), transfer tasks (red flags of daily closure), zone lifting checks."""

from __future__ import annotations

from datetime import date

import typer
from rich.table import Table

from bastion.cli.common import console, domain_errors
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import transaction
from bastion.core.i18n import t

app = typer.Typer(
    help="Isolation: sites, placements due for release, transfers, zone lifting checks.",
    no_args_is_help=True,
)


@app.command("sites")
@domain_errors
def sites_command(
    region: str = typer.Option("220000", help="Region code (subtree)"),
) -> None:
    """Every site in the region with its beds, occupancy and basics."""
    from bastion.isolation import sites

    with transaction() as session:
        rows = sites.list_sites(
            db_session=session, principal=system_principal(), region_code=region
        )
        taken = sites.occupancy(session, [s.id for s in rows])
        views = [sites.to_read(session, s, taken[s.id]) for s in rows]
    table = Table("code", "name", "kind", "region", "beds", "occupied", "free", "basics")
    for v in views:
        problems = [f"{b.item}: {b.note}" for b in v.basics if b.status == "problem"]
        table.add_row(
            v.code,
            v.name,
            v.kind,
            v.region_code,
            str(v.beds),
            str(v.occupied),
            str(v.free),
            "[red]" + "; ".join(problems) + "[/]" if problems else "[green]ok[/]",
        )
    console.print(table)


@app.command("due-releases")
@domain_errors
def due_releases(
    region: str = typer.Option("220000", help="Region code (subtree)"),
    day: str = typer.Option("", help="Local date (default today)"),
) -> None:
    """Active placements whose planned end is the day or earlier, with what still blocks each."""
    from bastion.isolation import service

    on = date.fromisoformat(day) if day else clock.today()
    with transaction() as session:
        rows, total = service.list_placements(
            db_session=session,
            principal=system_principal(),
            region_code=region,
            due_on=on,
            limit=500,
        )
        blockers = {p.id: service.blockers_of(session, p, on) for p in rows}
    table = Table("id", "person", "reason", "setting", "profile", "planned end", "missing")
    for p in rows:
        missing = [
            t(b.key, "en", day=b.day_no or "", due_on=b.due_on or "") for b in blockers[p.id]
        ]
        table.add_row(
            str(p.id),
            str(p.person_id),
            p.reason,
            p.setting,
            p.profile,
            p.planned_end_on.isoformat(),
            "[red]" + "; ".join(missing) + "[/]" if missing else "[green]ready[/]",
        )
    console.print(table)
    console.print(f"{total} due for release on {on.isoformat()}")


@app.command("release-due")
@domain_errors
def release_due(
    day: str = typer.Option("", help="Local date (default today)"),
    region: str = typer.Option("220000", help="Region code (subtree)"),
) -> None:
    """Release, in one set-based batch, every active placement whose planned end is the day or
    earlier and whose tests are done and negative; list the others with what still blocks each.
    Exit 2 when any was refused."""
    from bastion.isolation import service

    try:
        on = date.fromisoformat(day) if day else clock.today()
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--day") from err
    with transaction() as session:
        report = service.release_due(
            db_session=session, principal=system_principal(), day=on, region_code=region
        )
    table = Table("row", "placement", "missing")
    for r in report.refused:
        table.add_row(str(r.row), str(r.placement_id), "; ".join(p.text("en") for p in r.problems))
    if report.refused:
        console.print(table)
    console.print(
        f"{len(report.released)} released on {on.isoformat()} "
        f"({report.monitoring} into home monitoring, {report.transfers} transfers home, "
        f"{report.contacts} contacts released); {report.refused_count} refused"
    )
    if report.refused_count:
        raise typer.Exit(2)


@app.command("transfers")
@domain_errors
def transfers_command(
    red: bool = typer.Option(False, "--red", help="Only tasks still open from before today"),
    status: str = typer.Option("open", help="pending, dispatched, arrived, failed or open"),
) -> None:
    """Transfer tasks; red ones (日清日结) are still open from before today."""
    from bastion.isolation import transfers

    with transaction() as session:
        rows = transfers.list_tasks(
            db_session=session, principal=system_principal(), status=status, red_only=red
        )
    today = clock.today()
    table = Table("id", "person", "kind", "destination", "status", "since", "red", "needs")
    for x in rows:
        flag = transfers.is_red(x, today)
        table.add_row(
            str(x.id),
            str(x.person_id),
            x.kind,
            x.destination,
            x.status,
            x.created_on.isoformat(),
            "[bold red]RED[/]" if flag else "",
            x.special_needs,
        )
    console.print(table)
    console.print(f"{len(rows)} tasks, {sum(transfers.is_red(x, today) for x in rows)} red")


@app.command("zone-check")
@domain_errors
def zone_check(
    zone_id: int = typer.Argument(..., help="Zone id"),
    day: str = typer.Option("", help="Local date (default today)"),
) -> None:
    """Which lifting conditions hold for a zone; exit 2 while any still fails."""
    from bastion.isolation import zones

    on = date.fromisoformat(day) if day else None
    with transaction() as session:
        check = zones.check_lift(
            db_session=session, principal=system_principal(), zone_id=zone_id, on=on
        )
    console.print(
        f"zone {check.zone.id} ({check.zone.kind}, {check.zone.region_code}) "
        f"on {check.on.isoformat()} under {check.profile}"
    )
    for c in check.conditions:
        mark = "[green]✔[/]" if c.ok else "[red]✘[/]"
        console.print(f"  {mark} {t(c.key, 'en', **c.params)}")
    if not check.ready:
        raise typer.Exit(2)
