"""Commands of `bastion healthcode` (see bastion.cli.healthcode): a person's status and history,
recompute, manual change requests and their approval (as a named user: four eyes)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from bastion.accounts import service as account_service
from bastion.accounts.models import User
from bastion.cli.common import console, domain_errors, report_error
from bastion.core import clock
from bastion.core.auth import Principal, system_principal
from bastion.core.db import transaction
from bastion.core.errors import BastionError, NotFound
from bastion.healthcode import manual, store, views

_COLOUR = {
    "green": "[bold green]green 绿码[/]",
    "yellow": "[bold yellow]yellow 黄码[/]",
    "red": "[bold red]red 红码[/]",
}


def _as(session: object, username: str | None) -> Principal:
    if not username:
        return system_principal()
    user = session.execute(  # type: ignore[attr-defined]
        select(User).where(User.username == username, User.active.is_(True))
    ).scalar_one_or_none()
    if user is None:
        raise NotFound("error.not_found")
    return account_service.principal_for(db_session=session, user=user)  # type: ignore[arg-type]


@domain_errors
def status(
    person_id: Annotated[int, typer.Argument(help="The person's id.")],
    history: Annotated[bool, typer.Option(help="Also list the history of changes.")] = False,
) -> None:
    """A person's status, the rule and record behind it, and (optionally) its history."""
    with transaction() as session:
        view = views.get_status(
            db_session=session, principal=system_principal(), person_id=person_id, lang="en"
        )
        rows = (
            views.get_history(
                db_session=session, principal=system_principal(), person_id=person_id, lang="en"
            )
            if history
            else []
        )
    console.print(f"person {view.person_id}: {_COLOUR[view.colour]} (version {view.version})")
    console.print(f"  rule: {view.rule}")
    console.print(f"  reason: {view.reason}")
    if view.evidence_type:
        console.print(f"  evidence: {view.evidence_type} {view.evidence_id}")
    if view.popup:
        console.print(f"  pop-up: {view.popup_reason} ({view.popup_clears})")
    if view.valid_until:
        console.print(f"  valid until: {clock.to_local(view.valid_until):%Y-%m-%d %H:%M}")
    if rows:
        table = Table(title="history", title_justify="left")
        for name in ("at", "from", "to", "rule", "evidence", "cause"):
            table.add_column(name)
        for r in rows:
            table.add_row(
                f"{clock.to_local(r.at):%Y-%m-%d %H:%M}",
                r.old_colour or "green",
                r.new_colour,
                r.rule,
                f"{r.evidence_type or ''} {r.evidence_id or ''}".strip(),
                r.cause,
            )
        console.print(table)


@domain_errors
def recompute(
    region: Annotated[str | None, typer.Option(help="Region code (default: everyone).")] = None,
    person: Annotated[list[int] | None, typer.Option(help="Person id (repeatable).")] = None,
) -> None:
    """Recompute statuses (set-based); writes only what changed."""
    with transaction() as session:
        result = store.recompute(
            db_session=session,
            principal=system_principal(),
            region_code=region,
            person_ids=person or None,
        )
    console.print(
        f"rules {result.rule_set}: [bold]{result.changed:,}[/] statuses changed "
        f"(batch {result.batch_id})"
    )


@domain_errors
def requests(
    status_filter: Annotated[
        str | None, typer.Option("--status", help="pending / approved / refused")
    ] = "pending",
) -> None:
    """Manual change requests (newest first)."""
    with transaction() as session:
        rows = manual.list_requests(
            db_session=session, principal=system_principal(), status=status_filter
        )
        table = Table(title="manual change requests", title_justify="left")
        for name in ("id", "colour", "people", "evidence", "status", "requested by", "reason"):
            table.add_column(name)
        for r in rows:
            table.add_row(
                str(r.id),
                r.colour,
                str(r.people),
                f"{r.evidence_type} {r.evidence_id}",
                r.status,
                str(r.requested_by or ""),
                r.reason[:60],
            )
    console.print(table)


def approve(
    request_id: Annotated[int, typer.Argument(help="The request's id.")],
    as_user: Annotated[str, typer.Option("--as", help="The approving user (not the requester).")],
    refuse: Annotated[bool, typer.Option(help="Refuse instead of approving.")] = False,
    note: Annotated[str, typer.Option(help="Decision note.")] = "",
) -> None:
    """Approve (or refuse) a manual change as a second, different user. A refusal of the
    attempt itself (self-approval, no permission) is audited and exits 1."""
    refused: BastionError | None = None
    try:
        with transaction() as session:
            try:
                req = manual.decide(
                    db_session=session,
                    principal=_as(session, as_user),
                    request_id=request_id,
                    approve=not refuse,
                    note=note,
                )
                console.print(f"request {req.id}: [bold]{req.status}[/] ({req.people} people)")
            except BastionError as err:
                if not manual.is_audited(err):
                    raise
                refused = err  # the audit entry is committed with the transaction
    except BastionError as err:
        report_error(err)
        raise typer.Exit(1) from None
    if refused is not None:
        report_error(refused)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("status")(status)
    app.command("recompute")(recompute)
    app.command("requests")(requests)
    app.command("approve")(approve)
