"""The bulletin as sentences, in the register of an official provincial press release (zh-CN)
and in English. A part with nothing in it is left out, never written as zero; cities are listed
with their counts, largest first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from bastion.bulletin.rules import en_big, zh_big
from bastion.bulletin.schemas import (
    CasesFigures,
    CityCount,
    ContactsFigures,
    CountsFigures,
    Figures,
    IsolationFigures,
    RecoveriesFigures,
    RoundsFigures,
    ScreeningFigures,
)
from bastion.core.i18n import Language, t


def _t(lang: Language, key: str, count: int | None = None, **params: Any) -> str:
    """``key`` in ``lang``; in English the ``_one`` form when ``count`` is 1."""
    if lang == "en" and count == 1:
        key += "_one"
    if count is not None:
        params["count"] = _n(lang, count)
    return t(key, lang, **params)


def _n(lang: Language, n: int) -> str:
    return str(n) if lang == "zh-CN" else f"{n:,}"


def date_text(lang: Language, day: date, *, year: bool = False) -> str:
    if lang == "zh-CN":
        return f"{day.year}年{day.month}月{day.day}日" if year else f"{day.month}月{day.day}日"
    return f"{day.day} {day.strftime('%B')} {day.year}"


class Ctx:
    """What every sentence needs: the language, the day, and who speaks (全省 / 长春市)."""

    def __init__(self, figures: Figures, lang: Language) -> None:
        self.lang = lang
        self.day = figures.day
        self.province = figures.level == "province"
        if lang == "zh-CN":
            self.where = "全省" if self.province else figures.region_name_zh
        else:
            self.where = "the province" if self.province else figures.region_name_en

    def join(self, parts: list[str]) -> str:
        return ("、" if self.lang == "zh-CN" else ", ").join(parts)

    def cities(self, rows: list[CityCount], unit_key: str) -> str:
        """ ", of which Jilin City 560, Changchun 554" — only in a province's bulletin."""
        if not self.province or not rows:
            return ""
        items = [
            t(
                unit_key,
                self.lang,
                city=r.name_zh if self.lang == "zh-CN" else r.name_en,
                count=_n(self.lang, r.count),
            )
            for r in rows
        ]
        return t("bulletin.of_which_cities", self.lang, list=self.join(items))


def _cases(f: CasesFigures, c: Ctx) -> list[str]:
    clauses = []
    if f.confirmed:
        detail = [
            t(f"bulletin.type_{k}", c.lang, count=_n(c.lang, v)) for k, v in f.by_type.items() if v
        ]
        inner = c.join(detail)
        if f.reclassified:
            recl = _t(c.lang, "bulletin.reclassified", f.reclassified)
            inner = f"{inner}；{recl}" if c.lang == "zh-CN" else f"{inner}; {recl}"
        clauses.append(
            _t(
                c.lang,
                "bulletin.new_confirmed",
                f.confirmed,
                detail=t("bulletin.parenthesis", c.lang, text=inner) if inner else "",
                cities=c.cities(f.confirmed_by_city, "bulletin.city_cases"),
            )
        )
    if f.asymptomatic:
        clauses.append(
            _t(
                c.lang,
                "bulletin.new_asymptomatic",
                f.asymptomatic,
                cities=c.cities(f.asymptomatic_by_city, "bulletin.city_cases"),
            )
        )
    if not clauses:
        return []
    sep = "；" if c.lang == "zh-CN" else "; "
    return [t("bulletin.sentence_cases", c.lang, where=c.where, clauses=sep.join(clauses))]


def _recoveries(f: RecoveriesFigures, c: Ctx) -> list[str]:
    clauses = []
    if f.day:
        parts = []
        if f.discharged:
            parts.append(t("bulletin.discharged", c.lang, count=_n(c.lang, f.discharged)))
        if f.released:
            parts.append(t("bulletin.released", c.lang, count=_n(c.lang, f.released)))
        clauses.append(
            _t(
                c.lang,
                "bulletin.recovered_day",
                f.day,
                detail=t("bulletin.parenthesis", c.lang, text=c.join(parts)),
                cities=c.cities(f.by_city, "bulletin.city_cases"),
            )
        )
    if f.cumulative:
        clauses.append(_t(c.lang, "bulletin.recovered_total", f.cumulative))
    if not clauses:
        return []
    sep = "；" if c.lang == "zh-CN" else "; "
    return [t("bulletin.sentence", c.lang, text=sep.join(clauses))]


def _contacts(f: ContactsFigures, c: Ctx) -> list[str]:
    clauses = []
    for level, total, released in (
        ("close", f.close, f.close_released),
        ("secondary", f.secondary, f.secondary_released),
    ):
        if not total:
            continue
        text = _t(c.lang, f"bulletin.{level}_contacts", total, where=c.where)
        if released:
            text += t("bulletin.contacts_released", c.lang, count=_n(c.lang, released))
        clauses.append(text)
    if not clauses:
        return []
    sep = "；" if c.lang == "zh-CN" else "; "
    return [t("bulletin.sentence", c.lang, text=sep.join(clauses))]


def _isolation(f: IsolationFigures, c: Ctx) -> list[str]:
    if not f.total:
        return []
    parts = []
    if f.centralised:
        parts.append(t("bulletin.centralised", c.lang, count=_n(c.lang, f.centralised)))
    if f.home:
        parts.append(t("bulletin.home", c.lang, count=_n(c.lang, f.home)))
    return [
        _t(
            c.lang,
            "bulletin.isolation",
            f.total,
            date=date_text(c.lang, c.day),
            where=c.where,
            detail=t("bulletin.of_which", c.lang, list=c.join(parts)),
        )
    ]


def _screening(f: ScreeningFigures, c: Ctx) -> list[str]:
    big = zh_big if c.lang == "zh-CN" else en_big
    clauses = []
    if f.screened:
        clauses.append(
            t(
                "bulletin.screened",
                c.lang,
                date=date_text(c.lang, c.day),
                where=c.where,
                count=big(f.screened),
            )
        )
    if f.cumulative:
        clauses.append(t("bulletin.screened_total", c.lang, count=big(f.cumulative)))
    if not clauses:
        return []
    sep = "，" if c.lang == "zh-CN" else "; "
    return [t("bulletin.sentence", c.lang, text=sep.join(clauses))]


def _rounds(f: RoundsFigures, c: Ctx) -> list[str]:
    out = []
    for r in f.rounds:
        share = "—" if r.coverage is None else f"{r.coverage * 100:.1f}%"
        out.append(
            t(
                "bulletin.round",
                c.lang,
                name=r.name,
                required=_n(c.lang, r.required),
                sampled=_n(c.lang, r.sampled),
                share=share,
                resulted=_n(c.lang, r.resulted),
            )
        )
    return out


def _counts(section: str) -> Callable[[CountsFigures, Ctx], list[str]]:
    def render(f: CountsFigures, c: Ctx) -> list[str]:
        parts = [
            t(f"bulletin.{section}_{name}", c.lang, count=_n(c.lang, n))
            for name, n in f.counts.items()
            if n
        ]
        if not parts:
            return []
        return [t("bulletin.sentence", c.lang, text=c.join(parts))]

    return render


RENDERERS: dict[str, tuple[type[Any], Callable[[Any, Ctx], list[str]]]] = {
    "cases": (CasesFigures, _cases),
    "recoveries": (RecoveriesFigures, _recoveries),
    "contacts": (ContactsFigures, _contacts),
    "isolation": (IsolationFigures, _isolation),
    "screening": (ScreeningFigures, _screening),
    "rounds": (RoundsFigures, _rounds),
    "appeals": (CountsFigures, _counts("appeals")),
    "supplies": (CountsFigures, _counts("supplies")),
}


def title(figures: Figures, lang: Language) -> str:
    name = figures.region_name_zh if lang == "zh-CN" else figures.region_name_en
    return t("bulletin.title", lang, region=name, date=date_text(lang, figures.day, year=True))


def paragraphs(figures: Figures, lang: Language) -> list[str]:
    """The bulletin's sentences, one paragraph each, in section order; the first opens with the
    period (3月25日0—24时，…). Nothing to report gives one sentence saying so."""
    c = Ctx(figures, lang)
    out: list[str] = []
    for key, body in figures.sections.items():
        entry = RENDERERS.get(key)
        if entry is None:
            continue
        model, render = entry
        out.extend(render(model.model_validate(body), c))
    period = t("bulletin.period", lang, date=date_text(lang, figures.day, year=lang == "en"))
    if not out:
        return [period + t("bulletin.nothing", lang, where=c.where)]
    if lang == "en":
        # English sentences are written to follow the period ("From 00:00 to 24:00 on …, the
        # province reported …"); standing alone they start with a capital.
        out = [s[:1].upper() + s[1:] for s in out]
        if out[0].split(" ", 1)[0] in _LOWER:
            out[0] = out[0][:1].lower() + out[0][1:]
    out[0] = period + out[0]
    return out


#: English openings that are lower-cased again after the period.
_LOWER = ("The", "At", "On", "In")
