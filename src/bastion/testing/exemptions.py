"""Who a round does not require: the pure rules of a round's exemptions.

A round requires everyone living in its region subtree except those its exemption rules name.
Rules are JSON objects stored on the round (``Round.exemptions``):

- ``{"kind": "age_under", "years": N}``: younger than N on the round's first (local) day;
- ``{"kind": "age_over", "years": N}``: older than N, i.e. N + 1 or more (so "80 and over" is
  written ``{"kind": "age_over", "years": 79}``);
- ``{"kind": "special_group", "group": G}``: anyone in the special group G (``bedridden``,
  ``disabled``, …). Bedridden people are sampled at home and stay required unless a round says
  otherwise: exempting them is a decision, taken only when configured;
- ``{"kind": "region", "code": CODE}``: anyone living in CODE's subtree (a compound tested on its
  own schedule, an area handled by another round).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from bastion.core.errors import FieldProblem, InvalidInput
from bastion.regions.codes import is_valid_code
from bastion.registry.enums import SpecialGroup

KINDS = ("age_under", "age_over", "special_group", "region")
MAX_YEARS = 150
MAX_RULES = 50


@dataclass(frozen=True)
class Exemption:
    """One parsed rule; only the field its kind uses is set."""

    kind: str
    years: int = 0
    group: str = ""
    code: str = ""

    @property
    def needs_person(self) -> bool:
        """Whether the rule looks at the person (age, groups) rather than only where they live."""
        return self.kind in ("age_under", "age_over", "special_group")

    @property
    def group_bit(self) -> int:
        return SpecialGroup[self.group].value if self.kind == "special_group" else 0


def problems(raw: object) -> list[FieldProblem]:
    """Every problem in a list of rules, each named ``exemptions.N.<field>``; empty when valid."""
    return _parse(raw)[1]


def parse(raw: object) -> list[Exemption]:
    """The rules in ``raw`` (a list, or its JSON text). Refuses, all at once, a value that is not
    a list, an unknown kind, years that are not a whole number from 0 to 150, an unknown special
    group and a malformed region code."""
    rules, found = _parse(raw)
    if found:
        raise InvalidInput(problems=found)
    return rules


def _parse(raw: object) -> tuple[list[Exemption], list[FieldProblem]]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else []
        except ValueError:
            return [], [FieldProblem("exemptions", "round.exemptions_not_a_list")]
    if not isinstance(raw, list) or len(raw) > MAX_RULES:
        return [], [FieldProblem("exemptions", "round.exemptions_not_a_list")]
    rules: list[Exemption] = []
    found: list[FieldProblem] = []
    for i, item in enumerate(raw):
        parsed = _one(f"exemptions.{i}", item)
        if isinstance(parsed, FieldProblem):
            found.append(parsed)
        else:
            rules.append(parsed)
    return rules, found


def _one(where: str, item: object) -> Exemption | FieldProblem:
    if not isinstance(item, dict):
        return FieldProblem(where, "round.exemptions_not_a_list")
    kind = item.get("kind")
    if kind not in KINDS:
        return FieldProblem(
            f"{where}.kind", "round.exemption_unknown_kind", {"value": _shown(kind)}
        )
    if kind in ("age_under", "age_over"):
        years = item.get("years")
        if isinstance(years, bool) or not isinstance(years, int) or not 0 <= years <= MAX_YEARS:
            return FieldProblem(
                f"{where}.years", "field.out_of_range", {"min": 0, "max": MAX_YEARS}
            )
        return Exemption(kind=kind, years=years)
    if kind == "special_group":
        group = item.get("group")
        if not isinstance(group, str) or group not in SpecialGroup.__members__:
            return FieldProblem(f"{where}.group", "person.unknown_group", {"value": _shown(group)})
        return Exemption(kind=kind, group=group)
    code = item.get("code")
    if not isinstance(code, str) or not is_valid_code(code):
        return FieldProblem(f"{where}.code", "error.region_unknown", {"region": _shown(code)})
    return Exemption(kind=kind, code=code)


def _shown(value: object) -> str:
    return str(value)[:40]


def born_on_or_before(day: date, years: int) -> date:
    """The latest birth date of someone at least ``years`` old on ``day`` (born on 29 February,
    one turns a year older on 1 March in common years)."""
    year = day.year - years
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def exempts(
    rule: Exemption,
    *,
    born: date,
    groups: int,
    region_code: str,
    on: date,
    region_contains: Callable[[str, str], bool],
) -> bool:
    """Whether ``rule`` exempts a person (the rules in Python; the SQL in coverage.py says the
    same, and the tests hold one against the other). ``region_contains(code, region)`` tells
    whether ``region`` lies in ``code``'s subtree."""
    if rule.kind == "age_under":
        return born > born_on_or_before(on, rule.years)
    if rule.kind == "age_over":
        return born <= born_on_or_before(on, rule.years + 1)
    if rule.kind == "special_group":
        return bool(groups & rule.group_bit)
    return region_contains(rule.code, region_code)
