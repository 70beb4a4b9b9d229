"""The region a bulletin speaks for (the province or one city) and the cities below it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.core.errors import InvalidInput
from bastion.regions import service as region_service
from bastion.regions.codes import Scope, is_valid_code
from bastion.regions.models import Region

#: Bulletins speak for the province or a city (cases are attributed to a reporting city).
LEVELS = ("province", "city")

#: The short names the press releases use where the register's full name is long.
SHORT_NAMES: dict[str, tuple[str, str]] = {"222400": ("延边州", "Yanbian")}


@dataclass(frozen=True)
class Place:
    code: str
    level: str
    name_zh: str
    name_en: str
    scope: Scope
    #: Every 6-digit region: code → (parent code, level, short zh name, en name).
    six: dict[str, tuple[str | None, str, str, str]]

    def city_of(self, code: str | None) -> str:
        """The city a reported code belongs to (a district's city; a city itself)."""
        if not code:
            return ""
        node = code[:6]
        seen = 0
        while node in self.six and seen < 8:
            parent, level, _, _ = self.six[node]
            if level in ("city", "province") or parent is None:
                return node
            if parent in self.six and self.six[parent][1] == "province":
                return node
            node = parent
            seen += 1
        return code[:6]

    def names(self, code: str) -> tuple[str, str]:
        entry = self.six.get(code)
        return (entry[2], entry[3]) if entry else (code, code)


def place_of(*, db_session: Session, code: str) -> Place:
    """The bulletin region ``code``: refuses a malformed or unknown code and one below a city."""
    if not is_valid_code(code):
        raise InvalidInput.one("region", "error.region_unknown", region=code[:20])
    region = region_service.get_or_404(db_session=db_session, code=code)
    if region.level not in LEVELS:
        raise InvalidInput.one("region", "bulletin.region_level", region=code)
    six: dict[str, tuple[str | None, str, str, str]] = {}
    for r in db_session.execute(select(Region).where(func.length(Region.code) == 6)).scalars():
        zh, en = SHORT_NAMES.get(r.code, (r.name_zh, r.name_en))
        six[r.code] = (r.parent_code, r.level, zh, en)
    zh, en = SHORT_NAMES.get(region.code, (region.name_zh, region.name_en))
    return Place(
        code=region.code,
        level=region.level,
        name_zh=zh,
        name_en=en,
        scope=region_service.scope_of(db_session=db_session, code=region.code),
        six=six,
    )


def province_code(db_session: Session) -> str:
    """The deployment's province (the one region of level ``province``)."""
    code = db_session.execute(
        select(Region.code).where(Region.level == "province").order_by(Region.code).limit(1)
    ).scalar_one_or_none()
    if code is None:
        raise InvalidInput.one("region", "bulletin.no_province")
    return code
