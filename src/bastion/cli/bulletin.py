"""``bastion bulletin``: print a day's bulletin, publish it, correct it, list its revisions,
draw its charts.

``bastion bulletin --date D --lang zh|en --format md|html|xlsx [--out FILE]`` prints (or writes)
the bulletin; ``publish``, ``correct``, ``revisions`` and ``charts`` are subcommands.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import typer

from bastion.bulletin import service as bulletin_service
from bastion.cli.common import console, domain_errors, err_console
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import transaction
from bastion.core.errors import InvalidInput
from bastion.core.i18n import Language

app = typer.Typer(
    help="The daily bulletin (疫情通报): print, publish, correct.",
    invoke_without_command=True,
)

DATE_HELP = "Local day D (YYYY-MM-DD); default: yesterday"
REGION_HELP = "Province or city code; default: the province"


def _day(value: str | None) -> date:
    if value is None:
        return clock.today() - timedelta(days=1)
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise InvalidInput.one("date", "field.bad_date", value=value[:20]) from None


def _lang(value: str) -> Language:
    if value.lower() in ("zh", "zh-cn", "zh_cn"):
        return "zh-CN"
    if value.lower() == "en":
        return "en"
    raise InvalidInput.one("lang", "field.out_of_range", min="zh", max="en")


@app.callback()
@domain_errors
def bulletin(
    ctx: typer.Context,
    day: str | None = typer.Option(None, "--date", help=DATE_HELP),
    lang: str = typer.Option("zh", "--lang", help="zh or en"),
    fmt: str = typer.Option("md", "--format", help="md, html or xlsx"),
    out: Path | None = typer.Option(None, "--out", help="Write to FILE instead of printing"),
    region: str | None = typer.Option(None, "--region", help=REGION_HELP),
    live: bool = typer.Option(
        False, "--live", help="Figures from the record now, even if published"
    ),
) -> None:
    """Print the bulletin of a day (the published revision once published, else a draft)."""
    if ctx.invoked_subcommand is not None:
        return
    the_day, language = _day(day), _lang(lang)
    if fmt == "xlsx" and out is None:
        raise InvalidInput.one("out", "bulletin.xlsx_needs_out")
    with transaction() as session:
        rendered = bulletin_service.render(
            db_session=session,
            principal=system_principal(),
            day=the_day,
            lang=language,
            fmt=fmt,
            region_code=region,
            live=live,
        )
    if out is not None:
        data = rendered if isinstance(rendered, bytes) else rendered.encode("utf-8")
        out.write_bytes(data)
        err_console.print(f"wrote {out} ({len(data):,} bytes)")
    else:
        assert isinstance(rendered, str)
        print(rendered, end="")


@app.command("publish")
@domain_errors
def publish(
    day: str | None = typer.Option(None, "--date", help=DATE_HELP),
    region: str | None = typer.Option(None, "--region", help=REGION_HELP),
) -> None:
    """Publish (freeze) the figures and texts of a day that is over."""
    with transaction() as session:
        revision = bulletin_service.publish(
            db_session=session, principal=system_principal(), day=_day(day), region_code=region
        )
    console.print(
        f"published the bulletin of [bold]{revision.day}[/] for {revision.region_code} "
        f"(revision {revision.revision})"
    )


@app.command("correct")
@domain_errors
def correct(
    reason: str = typer.Option(..., "--reason", help="Why the published figures are corrected"),
    day: str | None = typer.Option(None, "--date", help=DATE_HELP),
    region: str | None = typer.Option(None, "--region", help=REGION_HELP),
) -> None:
    """Publish a correction: the figures the record gives now, with the reason and every
    figure that changed."""
    with transaction() as session:
        revision = bulletin_service.correct(
            db_session=session,
            principal=system_principal(),
            day=_day(day),
            reason=reason,
            region_code=region,
        )
    console.print(
        f"revision [bold]{revision.revision}[/] of {revision.day} ({revision.region_code}): "
        f"{len(revision.changes)} figure(s) changed"
    )
    for change in revision.changes:
        console.print(f"  {change.label_en}: {change.before} → {change.after}")


@app.command("revisions")
@domain_errors
def revisions(
    day: str | None = typer.Option(None, "--date", help=DATE_HELP),
    region: str | None = typer.Option(None, "--region", help=REGION_HELP),
) -> None:
    """List the published revisions of a day."""
    with transaction() as session:
        rows = bulletin_service.revisions(
            db_session=session, principal=system_principal(), day=_day(day), region_code=region
        )
    if not rows:
        console.print("not published")
    for row in rows:
        at = clock.to_local(row.published_at).strftime("%Y-%m-%d %H:%M")
        console.print(
            f"revision {row.revision} · {at} · {row.published_by}"
            + (f" · {row.reason} ({len(row.changes)} changed)" if row.reason else "")
        )


@app.command("charts")
@domain_errors
def charts(
    out_dir: Path = typer.Option(Path("."), "--out-dir", help="Directory to write into"),
    day: str | None = typer.Option(None, "--date", help=DATE_HELP),
    lang: str = typer.Option("en", "--lang", help="zh or en"),
    region: str | None = typer.Option(None, "--region", help=REGION_HELP),
) -> None:
    """Write the epidemic curve and the cases by city as PNG and SVG."""
    the_day, language = _day(day), _lang(lang)
    out_dir.mkdir(parents=True, exist_ok=True)
    with transaction() as session:
        for name in ("curve", "cities"):
            for kind in ("png", "svg"):
                data = bulletin_service.chart(
                    db_session=session,
                    principal=system_principal(),
                    day=the_day,
                    name=name,
                    kind=kind,
                    lang=language,
                    region_code=region,
                )
                path = out_dir / f"bulletin-{the_day.isoformat()}-{name}.{kind}"
                path.write_bytes(data)
                console.print(f"wrote {path}")


@app.command("rebuild-counters")
@domain_errors
def rebuild_counters() -> None:
    """Recount the daily counters the figures sum (contacts identified and released per day,
    district and level) from the record."""
    from bastion.bulletin.counters import rebuild_counters as rebuild

    with transaction() as session:
        rows = rebuild(db_session=session, principal=system_principal())
    for table, count in rows.items():
        console.print(f"{table}: {count} rows")
