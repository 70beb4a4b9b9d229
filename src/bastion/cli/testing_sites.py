"""``bastion testing site-load``: a round's load per sampling site and local hour.

The command is a plain function; :func:`register` adds it to the ``testing`` command group
(``register(testing_app)`` in bastion.cli.testing).
"""

from __future__ import annotations

from datetime import time

import typer
from rich.table import Table

from bastion.cli.common import console, domain_errors
from bastion.core.auth import system_principal
from bastion.core.db import transaction
from bastion.testing import site_load
from bastion.testing.site_load import RoundSiteLoad


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M")


def sites_table(load: RoundSiteLoad) -> Table:
    """One line per site: scans, capacity per hour, the busiest hour, hours over capacity and
    scans outside opening hours."""
    table = Table(title=f"{load.round_code} · site load 采样点负荷", title_justify="left")
    table.add_column("site\n采样点", no_wrap=True)
    table.add_column("opening hours\n开放时间", no_wrap=True)
    for name in (
        "scans\n采样人次",
        "capacity/h\n每小时能力",
        "peak hour\n高峰小时",
        "hours over\n超负荷小时",
        "outside hours\n非开放时间",
    ):
        table.add_column(name, justify="right")
    for site in load.sites:
        over = site.hours_over_capacity
        outside = site.outside_hours
        table.add_row(
            f"{site.code} {site.name}",
            f"{_hhmm(site.opens_at)}–{_hhmm(site.closes_at)}",
            f"{site.scans:,}",
            f"{site.capacity_per_hour:,}",
            f"{site.peak_scans:,}",
            f"[bold red]{over}[/]" if over else "0",
            f"[bold yellow]{outside:,}[/]" if outside else "0",
        )
    return table


def hours_table(load: RoundSiteLoad) -> Table:
    """One line per site and local hour."""
    table = Table(title=f"{load.round_code} · by hour 按小时", title_justify="left")
    table.add_column("site\n采样点", no_wrap=True)
    table.add_column("hour (local)\n小时", no_wrap=True)
    for name in ("scans\n采样人次", "load\n负荷", "outside hours\n非开放时间"):
        table.add_column(name, justify="right")
    for site in load.sites:
        for hour in site.hours:
            share = f"{hour.scans / site.capacity_per_hour * 100:.0f}%"
            table.add_row(
                site.code,
                hour.hour.strftime("%Y-%m-%d %H:00"),
                f"{hour.scans:,}",
                f"[bold red]{share}[/]" if hour.over_capacity else share,
                f"{hour.outside_hours:,}" if hour.outside_hours else "",
            )
    return table


@domain_errors
def site_load_command(
    round_ref: str = typer.Argument(..., metavar="ROUND", help="A round id, code or 'latest'"),
    region: str | None = typer.Option(None, help="Only the sites in this region's subtree"),
    hours: bool = typer.Option(False, "--hours", help="Also list every site's hours"),
) -> None:
    """Each site's scans in the round against its capacity per hour: the busiest hour, the
    hours over capacity and the scans recorded outside its opening hours (local time)."""
    with transaction() as session:
        load = site_load.site_load(
            db_session=session, principal=system_principal(), ref=round_ref, region_code=region
        )
    if not load.sites:
        console.print(f"no scans at any site in round {load.round_code}")
        return
    console.print(sites_table(load))
    if hours:
        console.print(hours_table(load))


def register(app: typer.Typer) -> None:
    """Add the site-load command to the ``testing`` group."""
    app.command("site-load")(site_load_command)
