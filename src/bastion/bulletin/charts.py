"""Charts of the bulletin: the epidemic curve (new confirmed and asymptomatic per day) and the
day's new cases by reporting city, as PNG or SVG (matplotlib, no GUI backend, no pyplot).

No font is ever downloaded: Chinese labels are used only when a CJK font is installed on the
machine; otherwise the labels are English (city names in their English form)."""

from __future__ import annotations

import io
from datetime import date
from functools import cache
from typing import Any

from matplotlib import font_manager, rc_context
from matplotlib.figure import Figure

from bastion.bulletin.schemas import CasesFigures, Figures
from bastion.core.i18n import Language, t

CHARTS = ("curve", "cities")
KINDS = {"png": "image/png", "svg": "image/svg+xml"}
_CJK_HINTS = (
    "cjk",
    "wenquanyi",
    "source han",
    "simhei",
    "simsun",
    "yahei",
    "pingfang",
    "droid sans fallback",
    "ar pl",
    "noto sans sc",
    "hiragino",
)
CONFIRMED_COLOUR = "#c0392b"
ASYMPTOMATIC_COLOUR = "#e9a23b"


@cache
def cjk_font() -> str | None:
    """The family name of an installed font that has Chinese glyphs, if any. Matplotlib's font
    list is cached from its first run: a font installed since is looked for on disk and added."""
    for entry in font_manager.fontManager.ttflist:
        name = entry.name.lower()
        if any(hint in name for hint in _CJK_HINTS):
            return str(entry.name)
    for path in font_manager.findSystemFonts():
        lowered = path.lower()
        if any(hint in lowered for hint in ("wqy", "cjk", "droid", "wenquanyi")):
            try:
                font_manager.fontManager.addfont(path)
                return str(font_manager.FontProperties(fname=path).get_name())
            except (OSError, RuntimeError, ValueError):
                continue
    return None


def chart_language(lang: Language) -> Language:
    """Chinese labels only where a CJK font can draw them."""
    return lang if lang == "en" or cjk_font() else "en"


def _figure(lang: Language) -> Figure:
    return Figure(figsize=(9, 4.5), dpi=100)


def _settings(lang: Language) -> Any:  # matplotlib types its keys as a Literal
    # No random ids in SVG: the same figures give the same file.
    settings: dict[str, Any] = {"svg.hashsalt": "bastion-bulletin"}
    font = cjk_font()
    if lang == "zh-CN" and font:
        settings["font.family"] = [font, "DejaVu Sans"]
    return settings


def _save(fig: Figure, kind: str) -> bytes:
    buffer = io.BytesIO()
    with_meta: dict[str, Any] = {"Date": None} if kind == "svg" else {"Software": None}
    fig.savefig(buffer, format=kind, metadata=with_meta, bbox_inches="tight")
    return buffer.getvalue()


def curve(points: list[dict[str, Any]], day: date, lang: Language, kind: str) -> bytes:
    """Stacked bars per day: new local confirmed and new local asymptomatic."""
    lang = chart_language(lang)
    with rc_context(_settings(lang)):
        return _curve(points, day, lang, kind)


def _curve(points: list[dict[str, Any]], day: date, lang: Language, kind: str) -> bytes:
    fig = _figure(lang)
    ax = fig.subplots()
    days = [p["day"].strftime("%m-%d") for p in points]
    confirmed = [p["confirmed"] for p in points]
    asymptomatic = [p["asymptomatic"] for p in points]
    ax.bar(days, confirmed, color=CONFIRMED_COLOUR, label=t("bulletin.chart_confirmed", lang))
    ax.bar(
        days,
        asymptomatic,
        bottom=confirmed,
        color=ASYMPTOMATIC_COLOUR,
        label=t("bulletin.chart_asymptomatic", lang),
    )
    ax.set_title(t("bulletin.chart_curve", lang, date=day.isoformat()))
    ax.set_ylabel(t("bulletin.chart_cases", lang))
    ax.legend(loc="upper left")
    ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, kind)


def cities(figures: Figures, lang: Language, kind: str) -> bytes:
    """Horizontal stacked bars: the day's new confirmed and asymptomatic per reporting city."""
    lang = chart_language(lang)
    with rc_context(_settings(lang)):
        return _cities(figures, lang, kind)


def _cities(figures: Figures, lang: Language, kind: str) -> bytes:
    cases = CasesFigures.model_validate(figures.sections.get("cases", {}))
    counts: dict[str, list[Any]] = {}
    for column, items in ((1, cases.confirmed_by_city), (2, cases.asymptomatic_by_city)):
        for item in items:
            name = item.name_zh if lang == "zh-CN" else item.name_en
            counts.setdefault(item.code, [name, 0, 0])[column] = item.count
    rows = sorted(counts.values(), key=lambda r: (r[1] + r[2], r[0]))
    fig = _figure(lang)
    ax = fig.subplots()
    names = [r[0] for r in rows]
    confirmed = [r[1] for r in rows]
    asymptomatic = [r[2] for r in rows]
    ax.barh(names, confirmed, color=CONFIRMED_COLOUR, label=t("bulletin.chart_confirmed", lang))
    ax.barh(
        names,
        asymptomatic,
        left=confirmed,
        color=ASYMPTOMATIC_COLOUR,
        label=t("bulletin.chart_asymptomatic", lang),
    )
    ax.set_title(t("bulletin.chart_cities", lang, date=figures.day.isoformat()))
    ax.set_xlabel(t("bulletin.chart_cases", lang))
    if rows:
        ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, kind)
