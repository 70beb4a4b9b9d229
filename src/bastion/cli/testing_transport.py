"""``bastion testing transport-delays``: where a round's tubes are stuck on their way to a lab.

The command is a plain function; :func:`register` adds it to the ``testing`` command group.
"""

from __future__ import annotations

from datetime import datetime

import typer
from rich.table import Table

from bastion.cli.common import console, domain_errors
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import transaction
from bastion.testing import transport
from bastion.testing.transport import Delays


def _local(moment: datetime) -> str:
    return clock.to_local(moment).strftime("%m-%d %H:%M")


def delays_tables(found: Delays) -> list[Table]:
    """Two Rich tables: tubes in no box per site, and late boxes (oldest first)."""
    unboxed = Table(title=f"{found.round_code}: tubes sampled and still in no box")
    for name in ("site", "region", "tubes", "oldest scan"):
        unboxed.add_column(name, justify="right" if name == "tubes" else "left")
    for u in found.unboxed:
        unboxed.add_row(u.site, u.region_code, f"{u.tubes:,}", _local(u.oldest_scan_at))
    boxes = Table(title=f"{found.round_code}: boxes waiting for a courier or on the road")
    for name in ("box", "state", "site", "lab", "tubes", "since", "hours"):
        boxes.add_column(name, justify="right" if name in ("tubes", "hours") else "left")
    for b in found.late_boxes:
        boxes.add_row(
            b.code,
            "[yellow]waiting[/]" if b.state == "packed" else "[red]on the road[/]",
            b.site,
            b.lab or "—",
            f"{b.declared_tubes:,}",
            _local(b.since),
            f"{b.hours:.1f}",
        )
    return [unboxed, boxes]


@domain_errors
def transport_delays(
    round_ref: str = typer.Argument(..., metavar="ROUND", help="A round id, code or 'latest'"),
    unboxed_hours: float = typer.Option(None, help="A tube is late in no box after (h, 2)"),
    waiting_hours: float = typer.Option(None, help="A packed box is late after (h, 2)"),
    on_road_hours: float = typer.Option(None, help="A box on the road is late after (h, 4)"),
) -> None:
    """Transport delays (转运延误): tubes sampled long ago and still in no box, per site; boxes
    packed and never picked up; boxes picked up and never received."""
    with transaction() as session:
        found = transport.transport_delays(
            db_session=session,
            principal=system_principal(),
            ref=round_ref,
            unboxed_hours=unboxed_hours,
            waiting_hours=waiting_hours,
            on_road_hours=on_road_hours,
        )
    for table in delays_tables(found):
        console.print(table)
    console.print(f"{found.unboxed_tubes:,} tubes in no box, {len(found.late_boxes):,} late boxes")


def register(app: typer.Typer) -> None:
    """Add the transport commands to the ``testing`` group."""
    app.command("transport-delays")(transport_delays)
