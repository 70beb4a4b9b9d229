"""Translations. Every user-facing string is a message key with a zh-CN and an en text.

Catalogs live in ``bastion/locales/<lang>.json`` (flat ``key → text`` with ``{name}``
placeholders); a domain may keep its own messages in ``bastion/locales/<domain>.<lang>.json``,
merged into the language's catalog (a key defined twice is an error).

zh-CN is the default language; a key missing from a catalog falls back to the
other language and then to the key itself, so a missing translation never breaks a page.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Literal

Language = Literal["zh-CN", "en"]
LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")


@cache
def catalog(lang: Language) -> dict[str, str]:
    suffix = "zh_CN.json" if lang == "zh-CN" else "en.json"
    merged: dict[str, str] = {}
    files = sorted(
        (f for f in resources.files("bastion.locales").iterdir() if f.name.endswith(suffix)),
        key=lambda f: f.name,
    )
    for file in files:
        if file.name != suffix and not file.name.endswith("." + suffix):
            continue
        data: dict[str, str] = json.loads(file.read_text(encoding="utf-8"))
        twice = sorted(set(data) & set(merged))
        if twice:
            raise ValueError(f"{file.name} defines keys already defined elsewhere: {twice}")
        merged.update(data)
    return merged


def normalise(lang: str | None) -> Language:
    """Map an Accept-Language value or a ?lang= parameter onto a shipped language."""
    if not lang:
        return "zh-CN"
    first = lang.split(",")[0].strip().lower()
    return "en" if first.startswith("en") else "zh-CN"


def t(key: str, lang: Language = "zh-CN", /, **params: Any) -> str:
    """The text of ``key`` in ``lang`` with ``params`` filled in."""
    other: Language = "en" if lang == "zh-CN" else "zh-CN"
    text = catalog(lang).get(key) or catalog(other).get(key) or key
    if params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            return text
    return text
