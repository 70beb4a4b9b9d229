"""The bulletin as Markdown, HTML and an XLSX table."""

from __future__ import annotations

import html
import io
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.writer.excel import ExcelWriter

from bastion.bulletin import text
from bastion.bulletin.schemas import CasesFigures, Change, Figures, RecoveriesFigures
from bastion.core import clock
from bastion.core.i18n import Language, t

FORMATS = ("md", "html", "xlsx")
MEDIA_TYPES = {
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class Meta:
    """Where the figures stand: a draft, or a published revision (with its correction)."""

    revision: int | None = None
    published_at: datetime | None = None
    reason: str = ""
    changes: list[Change] = field(default_factory=list)


def _value(lang: Language, value: Any) -> str:
    if value is None:
        return t("bulletin.absent", lang)
    if isinstance(value, float):
        return f"{value * 100:.1f}%"
    return str(value) if lang == "zh-CN" or not isinstance(value, int) else f"{value:,}"


def notes(meta: Meta, lang: Language) -> list[str]:
    """The lines under the text: the revision and, for a correction, why and what changed."""
    if meta.revision is None or meta.published_at is None:
        return []
    at = clock.to_local(meta.published_at).strftime("%Y-%m-%d %H:%M")
    lines = [t("bulletin.published_note", lang, revision=meta.revision, at=at)]
    if meta.reason:
        lines.append(t("bulletin.correction", lang, reason=meta.reason))
        for change in meta.changes:
            lines.append(
                t(
                    "bulletin.change",
                    lang,
                    label=change.label_zh if lang == "zh-CN" else change.label_en,
                    before=_value(lang, change.before),
                    after=_value(lang, change.after),
                )
            )
    return lines


def markdown(figures: Figures, lang: Language, meta: Meta) -> str:
    out = [f"# {text.title(figures, lang)}", ""]
    if meta.revision is None:
        out += [f"> {t('bulletin.draft', lang)}", ""]
    for paragraph in text.paragraphs(figures, lang):
        out += [paragraph, ""]
    extra = notes(meta, lang)
    if extra:
        out += ["---", "", extra[0], ""]
        if len(extra) > 1:
            out += [extra[1], ""]
            out += [f"- {line}" for line in extra[2:]]
            if len(extra) > 2:
                out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def html_page(figures: Figures, lang: Language, meta: Meta) -> str:
    e = html.escape
    title = e(text.title(figures, lang))
    body = [f"<h1>{title}</h1>"]
    if meta.revision is None:
        body.append(f'<p class="draft"><strong>{e(t("bulletin.draft", lang))}</strong></p>')
    body += [f"<p>{e(p)}</p>" for p in text.paragraphs(figures, lang)]
    extra = notes(meta, lang)
    if extra:
        body.append("<footer>")
        body += [f"<p>{e(line)}</p>" for line in extra[:2]]
        if len(extra) > 2:
            body.append("<ul>" + "".join(f"<li>{e(line)}</li>" for line in extra[2:]) + "</ul>")
        body.append("</footer>")
    html_lang = "zh-CN" if lang == "zh-CN" else "en"
    return (
        f'<!doctype html>\n<html lang="{html_lang}">\n<head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n<article>\n"
        + "\n".join(body)
        + "\n</article>\n</body>\n</html>\n"
    )


def xlsx(figures: Figures, lang: Language, meta: Meta) -> bytes:
    """A workbook: every figure with its name, the cities' counts, and the text."""
    from bastion.bulletin.labels import labelled

    wb = Workbook()
    # Fixed document times, so the same figures give the same file.
    stamp = meta.published_at or datetime.combine(figures.day, time(), tzinfo=UTC)
    bold = Font(bold=True)
    ws = wb.active
    assert ws is not None
    ws.title = t("bulletin.xlsx_sheet_figures", lang)
    ws.append([text.title(figures, lang)])
    ws.append([t("bulletin.xlsx_figure", lang), t("bulletin.xlsx_value", lang)])
    for cell in ws[2]:
        cell.font = bold
    for _, name, value in labelled(figures.model_dump(mode="json"), lang):
        ws.append([name, value])
    ws.column_dimensions["A"].width = 48
    cities = wb.create_sheet(t("bulletin.xlsx_sheet_cities", lang))
    header = [
        t("bulletin.xlsx_city", lang),
        t("bulletin.f_cases_confirmed", lang),
        t("bulletin.f_cases_asymptomatic", lang),
        t("bulletin.f_recoveries_day", lang),
    ]
    cities.append(header)
    for cell in cities[1]:
        cell.font = bold
    for row in city_rows(figures, lang):
        cities.append(row)
    cities.column_dimensions["A"].width = 20
    sheet = wb.create_sheet(t("bulletin.xlsx_sheet_text", lang))
    sheet.append([text.title(figures, lang)])
    for paragraph in text.paragraphs(figures, lang):
        sheet.append([paragraph])
    for line in notes(meta, lang):
        sheet.append([line])
    return _pinned_bytes(wb, stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp)


def _pinned_bytes(wb: Workbook, stamp: datetime) -> bytes:
    """The workbook's bytes with every time in them fixed to `stamp`.

    `Workbook.save` stamps the document "modified now", and `ZipFile.writestr` gives each entry
    the local time of writing: two renders a second apart differed. The writer is driven directly
    and each entry is copied with the stamp as its time."""
    wb.properties.created = wb.properties.modified = stamp
    loose = io.BytesIO()
    with zipfile.ZipFile(loose, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).save()
    pinned = io.BytesIO()
    when = (max(stamp.year, 1980), stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
    with (
        zipfile.ZipFile(loose) as source,
        zipfile.ZipFile(pinned, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for entry in source.infolist():
            info = zipfile.ZipInfo(entry.filename, date_time=when)
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, source.read(entry))
    return pinned.getvalue()


def city_rows(figures: Figures, lang: Language) -> list[list[Any]]:
    """One row per city with a count: name, new confirmed, new asymptomatic, recovered that day;
    largest new confirmed first."""
    cases = CasesFigures.model_validate(figures.sections.get("cases", {}))
    recoveries = RecoveriesFigures.model_validate(figures.sections.get("recoveries", {}))
    rows: dict[str, list[Any]] = {}
    for column, items in (
        (1, cases.confirmed_by_city),
        (2, cases.asymptomatic_by_city),
        (3, recoveries.by_city),
    ):
        for item in items:
            name = item.name_zh if lang == "zh-CN" else item.name_en
            row = rows.setdefault(item.code, [name, 0, 0, 0])
            row[column] = item.count
    return sorted(rows.values(), key=lambda r: (-r[1], -r[2], -r[3], r[0]))


def render(figures: Figures, lang: Language, fmt: str, meta: Meta) -> str | bytes:
    if fmt == "md":
        return markdown(figures, lang, meta)
    if fmt == "html":
        return html_page(figures, lang, meta)
    return xlsx(figures, lang, meta)
