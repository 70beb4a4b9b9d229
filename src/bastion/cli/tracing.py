"""``bastion tracing …``: cases, contacts, chains and contact expansion (as the system)."""

from __future__ import annotations

from datetime import date

import typer
from rich.table import Table

from bastion.cli.common import console, domain_errors
from bastion.core.auth import system_principal
from bastion.core.db import transaction

tracing_app = typer.Typer(
    help="Tracing: cases, contacts, chains of transmission, contact expansion.",
    no_args_is_help=True,
)


@tracing_app.command("cases")
@domain_errors
def list_cases(
    region: str | None = typer.Option(None, help="Residence region (subtree)."),
    status: str | None = typer.Option(None, help="open, discharged, released or died."),
    classification: str | None = typer.Option(None, help="confirmed or asymptomatic."),
    reported_on: str | None = typer.Option(None, "--day", help="Reported on (YYYY-MM-DD)."),
    limit: int = typer.Option(50, min=1, max=500),
) -> None:
    """List cases, newest first."""
    from bastion.tracing import service as tracing_service

    day = date.fromisoformat(reported_on) if reported_on else None
    with transaction() as session:
        items, total = tracing_service.list_cases(
            db_session=session,
            principal=system_principal(),
            region_code=region,
            status=status,
            classification=classification,
            reported_from=day,
            reported_to=day,
            limit=limit,
        )
        table = Table("code", "classification", "type", "city", "found by", "reported", "status")
        for c in items:
            table.add_row(
                c.code,
                c.classification,
                c.clinical_type or "",
                c.reporting_city,
                c.found_by,
                c.reported_on.isoformat(),
                c.status + (f" {c.closed_on}" if c.closed_on else ""),
            )
    console.print(table)
    console.print(f"{len(items)} of {total} cases")


@tracing_app.command("case")
@domain_errors
def show_case(code: str = typer.Argument(..., help="Case code (C00000001) or id.")) -> None:
    """One case, with its contacts by level."""
    from bastion.tracing import service as tracing_service

    with transaction() as session:
        principal = system_principal()
        c = tracing_service.get_case(db_session=session, principal=principal, ref=code)
        contacts, total = tracing_service.list_contacts(
            db_session=session, principal=principal, case=str(c.id), limit=500
        )
        console.print(
            f"[bold]{c.code}[/] person {c.person_id} · {c.classification}"
            f"{' (' + c.clinical_type + ')' if c.clinical_type else ''} · {c.origin}"
        )
        console.print(
            f"residence {c.region_code} · reporting city {c.reporting_city} · found by {c.found_by}"
        )
        console.print(
            f"onset {c.onset_on or '-'} · sampled {c.sampled_on or '-'} · reported "
            f"{c.reported_on} · reclassified {c.reclassified_on or '-'} · {c.status}"
            f"{' ' + str(c.closed_on) if c.closed_on else ''}"
        )
        levels: dict[str, int] = {}
        for contact in contacts:
            levels[contact.level] = levels.get(contact.level, 0) + 1
        console.print(
            f"contacts: {total} ({levels.get('close', 0)} close, "
            f"{levels.get('secondary', 0)} secondary shown)"
        )


@tracing_app.command("expand")
@domain_errors
def expand(
    cases: list[str] = typer.Argument(None, help="Case codes; default: every open case."),
) -> None:
    """Expand close and secondary contacts of cases over the exposure graph, store them and
    hand the new ones to isolation."""
    from sqlalchemy import select

    from bastion.tracing import handover
    from bastion.tracing import service as tracing_service
    from bastion.tracing.models import Case

    with transaction() as session:
        refs: list[str | int] = list(cases or [])
        if not refs:
            refs = list(session.execute(select(Case.id).where(Case.status == "open")).scalars())
        if not refs:
            console.print("no open cases")
            return
        result = tracing_service.expand(
            db_session=session, principal=system_principal(), case_refs=refs
        )
        handover.hand_over(
            session, case_ids=[], contact_ids=result.close_ids + result.secondary_ids
        )
    console.print(
        f"{result.cases} cases ({result.profile}): {len(result.close_ids)} new close contacts, "
        f"{len(result.secondary_ids)} new secondary contacts"
        + ("" if result.secondary_traced else " (secondary contacts not traced)")
        + f", {result.links_created} links"
    )


@tracing_app.command("chain")
@domain_errors
def chain(case: str = typer.Argument(..., help="Case code or id.")) -> None:
    """The chain of a case, both ways: where it came from and what was traced from it."""
    from bastion.tracing import service as tracing_service

    with transaction() as session:
        principal = system_principal()
        down = tracing_service.chain_down(db_session=session, principal=principal, ref=case)
        up = tracing_service.chain_up(db_session=session, principal=principal, case=case)
    nodes = {**up.nodes, **down.nodes}

    def label(key: str) -> str:
        node = nodes[key]
        return node["code"] or f"{node['kind']} contact {node['id']} (person {node['person_id']})"

    for title, graph in (("up", up), ("down", down)):
        console.print(f"[bold]{title}[/] ({len(graph.edges)} links)")
        for source, target, kind in sorted(graph.edges):
            console.print(f"  {label(source)} —{kind}→ {label(target)}")
        if graph.truncated:
            console.print("  … truncated")
