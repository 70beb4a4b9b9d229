"""``bastion protocol show|choose``: the protocol profiles and the dated choice of one."""

from __future__ import annotations

from datetime import date

import typer
from rich.table import Table

from bastion.cli.common import console, domain_errors
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import transaction
from bastion.core.i18n import t
from bastion.protocols import service as protocol_service
from bastion.protocols.profiles import PROFILES

app = typer.Typer(
    help="Protocol profiles: show them, choose one from a date.", no_args_is_help=True
)


@app.command("show")
def show() -> None:
    """Every profile's rules, the history of choices and the profile in force today."""
    with transaction() as session:
        history = protocol_service.history(session)
        current = protocol_service.profile_on(session, clock.today()).key
    table = Table("profile", "close contacts", "secondary", "tests (close)", "zones")
    for key, p in PROFILES.items():
        secondary = (
            f"{p.secondary.days} d {p.secondary.setting}" if p.secondary.traced else "not traced"
        )
        table.add_row(
            f"[bold]{key}[/]" if key == current else key,
            f"{p.close.days} d {p.close.setting} + {p.close.monitoring_days} d monitoring",
            secondary,
            ", ".join(map(str, p.close.test_days)),
            ", ".join(f"{k} {d} d" for k, d in p.zone_lift_days.items()),
        )
    console.print(table)
    for c in history:
        since = c.effective_from.isoformat() if c.effective_from else "default"
        console.print(f"  {since}: {c.profile} ({c.reason})")
    console.print(f"in force today: [bold]{current}[/] — {t(PROFILES[current].name_key, 'en')}")


@app.command("choose")
@domain_errors
def choose(
    profile: str = typer.Argument(..., help=f"One of: {', '.join(PROFILES)}"),
    effective_from: str = typer.Option(..., "--from", help="Local date it takes effect"),
    reason: str = typer.Option(..., help="Why (kept in the history)"),
) -> None:
    """Put a profile in force from a date (not in the past). Running placements keep theirs."""
    with transaction() as session:
        choice = protocol_service.choose(
            db_session=session,
            principal=system_principal(),
            profile=profile,
            effective_from=date.fromisoformat(effective_from),
            reason=reason,
        )
    since = choice.effective_from.isoformat() if choice.effective_from else ""
    console.print(f"[green]{choice.profile}[/] in force from {since}")
    console.print(t("placement.profile_change_new_only", "en"))
