"""A day's figures for a region, from the record (no permission checks: see service)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from bastion.bulletin import sections as section_registry
from bastion.bulletin.place import Place
from bastion.bulletin.schemas import Figures
from bastion.core.config import get_settings


def compute(db_session: Session, place: Place, day: date) -> Figures:
    """Every available section's figures for ``day`` (local calendar day) in ``place``."""
    sections: dict[str, dict[str, Any]] = {}
    for section in section_registry.available(db_session):
        sections[section.key] = section.compute(db_session, place, day).model_dump(mode="json")
    return Figures(
        day=day,
        region_code=place.code,
        region_name_zh=place.name_zh,
        region_name_en=place.name_en,
        level=place.level,
        timezone=get_settings().timezone,
        sections=sections,
    )


def canonical(figures: Figures) -> str:
    """The figures as canonical JSON (sorted keys): equal figures give equal text."""
    return json.dumps(figures.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)


def parse(text: str) -> Figures:
    """Figures stored by :func:`canonical`, in section order of the registry."""
    data = json.loads(text)
    order = {s.key: i for i, s in enumerate(section_registry.SECTIONS)}
    data["sections"] = dict(
        sorted(data.get("sections", {}).items(), key=lambda kv: order.get(kv[0], len(order)))
    )
    return Figures.model_validate(data)
