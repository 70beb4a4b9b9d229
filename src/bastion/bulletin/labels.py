"""Names of single figures (``cases.confirmed_by_city.220100``) in either language, for the
changes a correction lists and for the XLSX table."""

from __future__ import annotations

from typing import Any

from bastion.bulletin.diff import flatten
from bastion.core.i18n import Language, catalog, t


def _names(figures: dict[str, Any], lang: Language) -> dict[str, str]:
    """City and round codes → names, from the figures themselves."""
    names: dict[str, str] = {}

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "code" in value and ("name_zh" in value or "name" in value):
                name = value.get("name") or value.get("name_zh" if lang == "zh-CN" else "name_en")
                names[str(value["code"])] = str(name)
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(figures.get("sections", {}))
    return names


def label(path: str, lang: Language, names: dict[str, str]) -> str:
    """``rounds.rounds.R1.required`` → "应检人数（第一轮）"; unknown figures keep their path."""
    parts = path.split(".")
    section = parts[0]
    if section == "rounds" and len(parts) == 4:
        key, what = f"bulletin.f_rounds_{parts[3]}", names.get(parts[2], parts[2])
    elif len(parts) >= 2:
        key = f"bulletin.f_{section}_{parts[1]}"
        what = ""
        if len(parts) == 3:
            qualifier = parts[2]
            type_key = f"bulletin.tn_{qualifier}"
            what = (
                t(type_key, lang) if type_key in catalog(lang) else names.get(qualifier, qualifier)
            )
    else:
        return path
    if key not in catalog(lang):
        return path
    text = t(key, lang)
    return t("bulletin.label_with", lang, label=text, what=what) if what else text


def labelled(figures: dict[str, Any], lang: Language) -> list[tuple[str, str, Any]]:
    """(path, label, value) of every figure, in section order."""
    names = _names(figures, lang)
    return [(path, label(path, lang, names), value) for path, value in flatten(figures).items()]


def names_of(*figures: dict[str, Any], lang: Language) -> dict[str, str]:
    merged: dict[str, str] = {}
    for f in figures:
        merged.update(_names(f, lang))
    return merged
