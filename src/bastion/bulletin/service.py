"""The bulletin's operations: read a day's figures and texts, publish them (frozen), correct a
published day (a new revision with its reason and what changed), list revisions.

A city's figures need that city in the user's region; the province's need the province. A
published day is always answered from its latest revision, so generating it again gives the
same; the record is only consulted again with ``live`` (to see whether it has drifted) or by
a correction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.bulletin import charts, formats
from bastion.bulletin import diff as figure_diff
from bastion.bulletin import figures as figure_store
from bastion.bulletin.labels import label, names_of
from bastion.bulletin.models import BulletinRevision
from bastion.bulletin.place import Place, place_of, province_code
from bastion.bulletin.schemas import BulletinRead, Change, Figures, RevisionRead
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import Conflict, InvalidInput
from bastion.core.i18n import LANGUAGES, Language

FIRST_DAY = date(2000, 1, 1)
MAX_REASON = 500


@dataclass(frozen=True)
class Day:
    """A day's bulletin as it stands: the place, the figures, and the latest revision if any."""

    place: Place
    figures: Figures
    latest: BulletinRevision | None
    #: True when ``figures`` are the latest revision's (False: computed now).
    frozen: bool


def _place(db_session: Session, principal: Principal, region_code: str | None) -> Place:
    """The bulletin region: the one asked, else the user's own (the province for a user who
    sees everything). Refuses a region outside the user's subtree."""
    if region_code is None:
        region_code = principal.region_code or province_code(db_session)
    place = place_of(db_session=db_session, code=region_code)
    principal.require_region(place.code)
    return place


def _check_day(day: date) -> None:
    if day < FIRST_DAY:
        raise InvalidInput.one(
            "date", "field.out_of_range", min=FIRST_DAY.isoformat(), max=clock.today().isoformat()
        )
    if day > clock.today():
        raise InvalidInput.one("date", "bulletin.day_in_future", day=day.isoformat())


def _latest(db_session: Session, place: Place, day: date) -> BulletinRevision | None:
    return db_session.execute(
        select(BulletinRevision)
        .where(BulletinRevision.region_code == place.code, BulletinRevision.day == day)
        .order_by(BulletinRevision.revision.desc())
        .limit(1)
    ).scalar_one_or_none()


def _meta(revision: BulletinRevision | None) -> formats.Meta:
    if revision is None:
        return formats.Meta()
    return formats.Meta(
        revision=revision.revision,
        published_at=revision.published_at,
        reason=revision.reason,
        changes=[Change.model_validate(c) for c in json.loads(revision.changes)],
    )


def _day(
    db_session: Session, principal: Principal, day: date, region_code: str | None, *, live: bool
) -> tuple[Day, bool | None]:
    principal.require(Perm.bulletin_read)
    _check_day(day)
    place = _place(db_session, principal, region_code)
    latest = _latest(db_session, place, day)
    if latest is not None and not live:
        return Day(place, figure_store.parse(latest.figures), latest, True), None
    figures = figure_store.compute(db_session, place, day)
    drift = None
    if latest is not None:
        drift = figure_store.canonical(figures) != latest.figures
    return Day(place, figures, latest, False), drift


def get(
    *,
    db_session: Session,
    principal: Principal,
    day: date,
    region_code: str | None = None,
    live: bool = False,
) -> BulletinRead:
    """The figures of ``day``: the latest published revision's, else computed now (a draft).
    With ``live``, computed now in any case, and ``drift`` says whether they differ from the
    published ones. Refuses a user without bulletin_read, a region outside their subtree or
    below a city, and a day to come."""
    state, drift = _day(db_session, principal, day, region_code, live=live)
    meta = _meta(state.latest)
    return BulletinRead(
        day=day,
        region_code=state.place.code,
        published=state.latest is not None,
        revision=meta.revision,
        drift=drift,
        figures=state.figures,
        changes=meta.changes,
    )


def render(
    *,
    db_session: Session,
    principal: Principal,
    day: date,
    lang: Language,
    fmt: str,
    region_code: str | None = None,
    live: bool = False,
) -> str | bytes:
    """The bulletin of ``day`` as Markdown, HTML or XLSX in ``lang``. A published day's
    Markdown is the text stored at publication, byte for byte. Refuses as :func:`get` does, and
    an unknown format."""
    if fmt not in formats.FORMATS:
        raise InvalidInput.one("format", "bulletin.unknown_format", value=fmt[:20])
    state, _ = _day(db_session, principal, day, region_code, live=live)
    if not state.frozen:
        return formats.render(state.figures, lang, fmt, formats.Meta())
    assert state.latest is not None
    if fmt == "md":
        stored: dict[str, str] = json.loads(state.latest.texts)
        if lang in stored:
            return stored[lang]
    return formats.render(state.figures, lang, fmt, _meta(state.latest))


def chart(
    *,
    db_session: Session,
    principal: Principal,
    day: date,
    name: str,
    kind: str,
    lang: Language = "zh-CN",
    region_code: str | None = None,
) -> bytes:
    """The epidemic curve (30 days to ``day``, from the record) or the day's cases by city
    (from the bulletin's figures), as PNG or SVG."""
    if name not in charts.CHARTS or kind not in charts.KINDS:
        raise InvalidInput.one("chart", "bulletin.unknown_chart", value=f"{name[:20]}.{kind[:5]}")
    state, _ = _day(db_session, principal, day, region_code, live=False)
    if name == "cities":
        return charts.cities(state.figures, lang, kind)
    from bastion.bulletin import queries, sections

    if "cases" not in {s.key for s in sections.available(db_session)}:
        points = [
            {"day": day - timedelta(days=i), "confirmed": 0, "asymptomatic": 0}
            for i in range(29, -1, -1)
        ]
    else:
        points = queries.curve(db_session, state.place, day)
    return charts.curve(points, day, lang, kind)


def _store(
    db_session: Session,
    principal: Principal,
    place: Place,
    day: date,
    figures: Figures,
    revision: int,
    reason: str,
    changes: list[Change],
) -> BulletinRevision:
    now = clock.now().replace(microsecond=0)
    meta = formats.Meta(revision=revision, published_at=now, reason=reason, changes=changes)
    texts = {lang: formats.markdown(figures, lang, meta) for lang in LANGUAGES}
    row = BulletinRevision(
        day=day,
        region_code=place.code,
        revision=revision,
        figures=figure_store.canonical(figures),
        texts=json.dumps(texts, ensure_ascii=False, sort_keys=True),
        reason=reason,
        changes=json.dumps([c.model_dump(mode="json") for c in changes], ensure_ascii=False),
        published_by_id=principal.user_id,
        published_by=principal.username,
        published_at=now,
    )
    db_session.add(row)
    # Two publications of the same day racing each other: the unique (region, day, revision)
    # refuses the second at flush, so a revision number is never used twice.
    db_session.flush()
    return row


def _read(row: BulletinRevision) -> RevisionRead:
    return RevisionRead(
        id=row.id,
        day=row.day,
        region_code=row.region_code,
        revision=row.revision,
        reason=row.reason,
        published_by=row.published_by,
        published_at=row.published_at,
        changes=[Change.model_validate(c) for c in json.loads(row.changes)],
    )


def _publishable(
    db_session: Session, principal: Principal, day: date, region_code: str | None
) -> Place:
    principal.require(Perm.bulletin_publish)
    _check_day(day)
    if day >= clock.today():
        raise InvalidInput.one("date", "bulletin.day_not_over", day=day.isoformat())
    return _place(db_session, principal, region_code)


def publish(
    *, db_session: Session, principal: Principal, day: date, region_code: str | None = None
) -> RevisionRead:
    """Freeze the figures of ``day`` (a day already over) and their texts in both languages as
    revision 1. Refuses a user without bulletin_publish, a region outside their subtree, a day
    not over yet, and a day already published (correct it instead)."""
    place = _publishable(db_session, principal, day, region_code)
    latest = _latest(db_session, place, day)
    if latest is not None:
        raise Conflict("bulletin.already_published", day=day.isoformat(), revision=latest.revision)
    figures = figure_store.compute(db_session, place, day)
    row = _store(db_session, principal, place, day, figures, 1, "", [])
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="bulletin.publish",
        target_type="bulletin",
        target_id=row.id,
        region_code=place.code,
        details={"day": day.isoformat(), "revision": 1},
    )
    return _read(row)


def correct(
    *,
    db_session: Session,
    principal: Principal,
    day: date,
    reason: str,
    region_code: str | None = None,
) -> RevisionRead:
    """Publish the figures the record gives now for a published day as its next revision,
    listing every figure that changed and why (``reason``). Refuses a missing reason, a day not
    published yet, and a record that gives the same figures (nothing to correct)."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput.one("reason", "bulletin.reason_required")
    if len(reason) > MAX_REASON:
        raise InvalidInput.one("reason", "field.too_long", max=MAX_REASON)
    place = _publishable(db_session, principal, day, region_code)
    latest = _latest(db_session, place, day)
    if latest is None:
        raise Conflict("bulletin.not_published", day=day.isoformat())
    before = json.loads(latest.figures)
    figures = figure_store.compute(db_session, place, day)
    after = figures.model_dump(mode="json")
    found = figure_diff.changes(before, after)
    if not found:
        raise Conflict("bulletin.nothing_changed", revision=latest.revision)
    zh, en = names_of(before, after, lang="zh-CN"), names_of(before, after, lang="en")
    changes = [
        Change(
            figure=path,
            before=old,
            after=new,
            label_zh=label(path, "zh-CN", zh),
            label_en=label(path, "en", en),
        )
        for path, old, new in found
    ]
    row = _store(db_session, principal, place, day, figures, latest.revision + 1, reason, changes)
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="bulletin.correct",
        target_type="bulletin",
        target_id=row.id,
        region_code=place.code,
        details={
            "day": day.isoformat(),
            "revision": row.revision,
            "reason": reason,
            "changes": {c.figure: [c.before, c.after] for c in changes[:100]},
        },
    )
    return _read(row)


def revisions(
    *, db_session: Session, principal: Principal, day: date, region_code: str | None = None
) -> list[RevisionRead]:
    """Every published revision of ``day``, first to last."""
    principal.require(Perm.bulletin_read)
    _check_day(day)
    place = _place(db_session, principal, region_code)
    rows = db_session.execute(
        select(BulletinRevision)
        .where(BulletinRevision.region_code == place.code, BulletinRevision.day == day)
        .order_by(BulletinRevision.revision)
    ).scalars()
    return [_read(r) for r in rows]


def latest_day(db_session: Session) -> date:
    """The latest day worth a bulletin: the last day a case was reported, reclassified or
    closed (never after today), else the last published day, else yesterday."""
    today = clock.today()
    candidates: list[date] = []
    from bastion.bulletin import sections
    from bastion.bulletin.records import CASES

    if "cases" in {s.key for s in sections.available(db_session)}:
        c = CASES.c
        for col in (c.reported_on, c.reclassified_on, c.closed_on):
            found = db_session.execute(select(func.max(col)).where(col <= today)).scalar()
            if found is not None:
                candidates.append(found if isinstance(found, date) else date.fromisoformat(found))
    if not candidates:
        published = db_session.execute(select(func.max(BulletinRevision.day))).scalar()
        if published is not None:
            candidates.append(published)
    return max(candidates) if candidates else today - timedelta(days=1)


def render_latest(db_session: Session, lang: Language) -> str:
    """The province's bulletin of :func:`latest_day` as Markdown in ``lang`` (its title names
    the date): what ``bastion demo`` prints."""
    from bastion.core.auth import system_principal

    system = system_principal()
    return str(
        render(
            db_session=db_session,
            principal=system,
            day=latest_day(db_session),
            lang=lang,
            fmt="md",
            region_code=province_code(db_session),
        )
    )
