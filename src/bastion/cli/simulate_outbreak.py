"""``bastion simulate outbreak``: an outbreak grown day by day in the demo province through the
tracing, isolation and health-code services (:mod:`bastion.simulate.outbreak`).

:func:`register` adds the command to the ``simulate`` command group
(``simulate_outbreak.register(simulate_app)`` in bastion.cli.simulate). Each day is committed
on its own, so an interrupted run keeps the days it finished and a second run continues.
"""

from __future__ import annotations

import time
from datetime import date

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from bastion.cli.common import console, domain_errors, err_console
from bastion.core.db import transaction
from bastion.core.errors import InvalidInput
from bastion.core.i18n import Language, t

PROVINCE = "220000"
TYPES = {
    "mild": "sim.outbreak_type_mild",
    "ordinary": "sim.outbreak_type_ordinary",
    "severe": "sim.outbreak_type_severe",
    "critical": "sim.outbreak_type_critical",
    "asymptomatic": "sim.outbreak_type_asymptomatic",
}


def parse_day(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput.one("start", "field.bad_date", value=value[:40]) from None


def run_outbreak(
    *, region: str, seed: int, days: int, start: date | None, quiet: bool = False
) -> tuple[int, int, date, date]:
    """Run (or continue) the outbreak, a transaction and a progress bar per day. Returns (days
    written, days already there, first day, last day)."""
    from bastion.simulate.outbreak import OutbreakRun

    with transaction() as session:
        run = OutbreakRun(db_session=session, region_code=region, seed=seed, days=days, start=start)
    written = replayed = 0
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=quiet,
    ) as bar:
        for n in range(1, days + 1):
            label = f"{t('sim.outbreak_day', 'en', n=n, days=days)} {run.date_of(n).isoformat()}"
            task = bar.add_task(label, total=8, stage="")

            def tell(stage: str, done: int, total: int, task: TaskID = task) -> None:
                bar.update(task, completed=done, total=total, stage=stage)

            with transaction() as session:
                out = run.advance(session, tell)
            if out is None:
                replayed += 1
                bar.update(task, completed=8, stage="(already simulated)")
            else:
                written += 1
            bar.remove_task(task)
    return written, replayed, run.start, run.date_of(days)


@domain_errors
def simulate_outbreak_command(
    days: int = typer.Option(..., "--days", help="Days to simulate (1–60), ending yesterday"),
    seed: int = typer.Option(
        1, help="The same seed over the same province gives the same outbreak"
    ),
    region: str = typer.Option(PROVINCE, "--region", help="Region code the outbreak spreads in"),
    start: str | None = typer.Option(
        None,
        help="First day (YYYY-MM-DD, local) [default: the running outbreak's first day, "
        "else DAYS days ago]",
    ),
    lang: str = typer.Option("zh", help="Language of the summary's labels: zh or en"),
) -> None:
    """Grow an outbreak day by day: cases from the last testing round's positives and from
    fever clinics and hospitals, their contacts by setting, placements, transfers, test days,
    releases, reclassifications and discharges, all through the services, under a clock frozen
    at each day's moments. Running it again over the same days changes nothing."""
    began = time.perf_counter()
    written, replayed, first, last = run_outbreak(
        region=region.strip(), seed=seed, days=days, start=parse_day(start)
    )
    print_summary(region.strip(), first, last, "en" if lang.startswith("en") else "zh-CN")
    console.print(
        t(
            "sim.outbreak_done",
            "en",
            written=written,
            replayed=replayed,
            seconds=f"{time.perf_counter() - began:.1f}",
        )
    )


def print_summary(region: str, first: date, last: date, lang: Language = "zh-CN") -> None:
    """The outbreak's figures from the record, as tables."""
    from bastion.simulate.outbreak_summary import summarise

    with transaction() as session:
        s = summarise(db_session=session, region_code=region, start=first, end=last)
    title = t("sim.outbreak_title", lang, region=region, first=first, last=last)
    table = Table(title=title, title_justify="left")
    table.add_column(t("sim.outbreak_what", lang))
    table.add_column(t("sim.outbreak_figure", lang), justify="right")
    types = ", ".join(f"{t(key, lang)} {s.cases_by_type.get(k, 0):,}" for k, key in TYPES.items())
    table.add_row(t("sim.outbreak_cases", lang), f"{s.cases:,} ({types})")
    for code, name, confirmed, asymptomatic in s.cases_by_city:
        table.add_row(
            f"  {name} {code}",
            t("sim.outbreak_city", lang, confirmed=confirmed, asymptomatic=asymptomatic),
        )
    table.add_row(t("sim.outbreak_reclassified", lang), f"{s.reclassified:,}")
    table.add_row(
        t("sim.outbreak_closed", lang),
        t(
            "sim.outbreak_closed_split",
            lang,
            discharged=s.closed.get("discharged", 0),
            released=s.closed.get("released", 0),
            died=s.closed.get("died", 0),
        ),
    )
    table.add_row(
        t("sim.outbreak_contacts", lang),
        t(
            "sim.outbreak_contacts_split",
            lang,
            close=s.contacts.get("close", 0),
            secondary=s.contacts.get("secondary", 0),
            released=s.contacts_released,
        ),
    )
    table.add_row(
        t("sim.outbreak_placements", lang),
        ", ".join(f"{k} {v:,}" for k, v in sorted(s.placements.items())),
    )
    table.add_row(
        t("sim.outbreak_placement_status", lang),
        ", ".join(f"{k} {v:,}" for k, v in sorted(s.placement_status.items())),
    )
    table.add_row(
        t("sim.outbreak_transfers", lang),
        t(
            "sim.outbreak_transfers_split",
            lang,
            batches=s.batches,
            failed=s.failed_batches,
            arrived=s.transfers.get("arrived", 0),
            pending=s.transfers.get("pending", 0) + s.transfers.get("failed", 0),
            red=s.red,
        ),
    )
    curve = " ".join(f"{c + a}" for _, c, a in s.curve)
    table.add_row(t("sim.outbreak_curve", lang), curve)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("outbreak")(simulate_outbreak_command)


# For `bastion demo` ------------------------------------------------------------------------------

#: The demo's testing round (over Changchun) and outbreak (over the province).
DEMO_ROUND_REGION = "220100"
DEMO_PREVALENCE = 0.0001
DEMO_DAYS = 5


def demo_record(*, seed: int, days: int = DEMO_DAYS) -> None:
    """The earlier simulations, when the record has none yet: a testing round over Changchun
    (ending before the outbreak's first day), then ``days`` days of outbreak over the province
    ending yesterday. A record that holds a round, or an outbreak, keeps it (an interrupted
    demo outbreak is continued)."""
    from datetime import datetime, timedelta
    from datetime import time as day_time

    from sqlalchemy import select

    from bastion.core import clock
    from bastion.simulate.outbreak import default_start, markers
    from bastion.simulate.round import simulate_round
    from bastion.testing.models import Round

    if days <= 0:
        return
    first = default_start(days)
    with transaction() as session:
        has_round = session.execute(select(Round.id).limit(1)).first() is not None
        done = markers(session)
    if has_round:
        console.print(t("sim.demo_round_kept", "en"))
    else:
        start = datetime.combine(first - timedelta(days=3), day_time(0), tzinfo=clock.local_tz())
        with transaction() as session:
            summary = simulate_round(
                db_session=session,
                region_code=DEMO_ROUND_REGION,
                prevalence=DEMO_PREVALENCE,
                seed=seed,
                start=start,
            )
        console.print(t("sim.demo_round", "en", positives=summary.positive_people))
    mine = [m for m in done.get(PROVINCE, []) if m.seed == seed]
    if done and not mine:
        console.print(t("sim.demo_outbreak_kept", "en"))
        return
    start_day = mine[0].start if mine else first
    began = time.perf_counter()
    written, replayed, first_day, last_day = run_outbreak(
        region=PROVINCE, seed=seed, days=days, start=start_day
    )
    print_summary(PROVINCE, first_day, last_day, "en")
    seconds = f"{time.perf_counter() - began:.1f}"
    console.print(t("sim.outbreak_done", "en", written=written, replayed=replayed, seconds=seconds))


def print_latest_bulletin() -> None:
    """The latest day's bulletin in Chinese, then English, each under a line naming its day
    (left out, with a note, while the bulletin service is not there)."""
    try:
        from bastion.bulletin import service as bulletin_service
    except ImportError:
        console.print(t("sim.demo_no_bulletin", "en"))
        return
    render_latest = getattr(bulletin_service, "render_latest", None)
    latest_day = getattr(bulletin_service, "latest_day", None)
    if render_latest is None:
        console.print(t("sim.demo_no_bulletin", "en"))
        return
    languages: tuple[Language, ...] = ("zh-CN", "en")
    for lang in languages:
        with transaction() as session:
            day = latest_day(session) if latest_day is not None else None
            text = render_latest(session, lang)
        console.rule(t("sim.demo_bulletin", lang, day=day or "", lang=lang))
        console.print(text, markup=False, highlight=False, soft_wrap=True)
