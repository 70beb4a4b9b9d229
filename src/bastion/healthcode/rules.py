"""Health-code rules as data (pure: no database).

A rule set is versioned and dated, one line of sets per protocol profile
(:mod:`bastion.protocols.profiles`). Its rules are a table: each names the kind of evidence it
reads, the colour it gives, the reason shown to the person and the pop-up flag it raises. The
status store (:mod:`bastion.healthcode.store`) gathers evidence with one SQL source per kind and
ranks it in SQL by the same table; :func:`decide` is the same decision for one person, in Python
(the tests hold both to each other).

Deciding: the strictest colour wins (red > yellow > green); among rules of that colour the one
earlier in the table; among records of that rule the oldest (smallest id). The pop-up is the
flag of the earliest popup-bearing rule with evidence, whatever colour won. No evidence: green,
rule ``default``, no record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

Colour = Literal["green", "yellow", "red"]
SEVERITY: MappingProxyType[str, int] = MappingProxyType({"green": 0, "yellow": 1, "red": 2})


class Kind(StrEnum):
    """Kinds of evidence, one SQL source each (bastion.healthcode.sources)."""

    case = "case"  # an open case
    close_contact = "close_contact"  # an active close contact
    secondary_contact = "secondary_contact"  # an active secondary contact
    placement_case = "placement_case"  # placed (pending/active) as a case
    placement_close = "placement_close"  # placed as a close contact
    placement_secondary = "placement_secondary"  # placed as a secondary contact
    health_monitoring = "health_monitoring"  # home health monitoring (居家健康监测)
    manual_red = "manual_red"  # an approved manual change to red
    manual_yellow = "manual_yellow"  # an approved manual change to yellow
    pool_hold = "pool_hold"  # in a positive pool, own retest still owed
    antigen_positive = "antigen_positive"  # positive antigen, PCR still owed
    missed_round_test = "missed_round_test"  # required in a round, not sampled by its deadline
    zone_no_test = "zone_no_test"  # lives in a zone that needs a recent negative test, has none
    symptoms = "symptoms"  # symptoms recorded (no source yet)


#: The record type each kind names as its evidence (red kinds name a case or a contact).
EVIDENCE_TYPE: MappingProxyType[str, str] = MappingProxyType(
    {
        Kind.case: "case",
        Kind.close_contact: "contact",
        Kind.secondary_contact: "contact",
        Kind.placement_case: "case",
        Kind.placement_close: "contact",
        Kind.placement_secondary: "placement",
        Kind.health_monitoring: "placement",
        Kind.manual_red: "contact",  # or "case": the request's evidence record
        Kind.manual_yellow: "manual_request",
        Kind.pool_hold: "pool_hold",
        Kind.antigen_positive: "antigen",
        Kind.missed_round_test: "round",
        Kind.zone_no_test: "zone",
        Kind.symptoms: "symptom_report",
    }
)

#: Record types a red status may rest on.
RED_EVIDENCE = ("case", "contact")


@dataclass(frozen=True)
class Popup:
    """A pop-up flag (弹窗): its own reason and the rule that clears it."""

    key: str
    reason_key: str
    clears_key: str


POPUPS: MappingProxyType[str, Popup] = MappingProxyType(
    {
        "pool_hold": Popup(
            "pool_hold", "healthcode.popup.pool_hold", "healthcode.popup.pool_hold_clears"
        ),
        "antigen": Popup("antigen", "healthcode.popup.antigen", "healthcode.popup.antigen_clears"),
        "case": Popup("case", "healthcode.popup.case", "healthcode.popup.case_clears"),
    }
)


@dataclass(frozen=True)
class Rule:
    key: str
    kind: Kind
    colour: Colour
    reason_key: str
    popup: str | None = None


@dataclass(frozen=True)
class RuleSet:
    """One version of the rules, in force for ``profile`` from ``effective_from``."""

    version: str
    profile: str
    effective_from: date
    rules: tuple[Rule, ...]
    #: A negative test counts for this many hours from sampling (24 / 48 / 72).
    test_window_hours: int
    #: Zone kinds whose residents need a negative test within the window (else yellow).
    zone_test_kinds: tuple[str, ...]
    #: A missed round test counts for this many days after the round's deadline.
    missed_test_days: int

    def rule_for(self, kind: Kind | str) -> Rule | None:
        for rule in self.rules:
            if rule.kind == kind:
                return rule
        return None

    def position(self, kind: Kind | str) -> int:
        for i, rule in enumerate(self.rules):
            if rule.kind == kind:
                return i
        raise KeyError(kind)

    def rule_name(self, key: str) -> str:
        return f"{self.version}:{key}"


def _r(key: str, colour: Colour, popup: str | None = None) -> Rule:
    return Rule(key, Kind(key), colour, f"healthcode.reason.{key}", popup)


#: The common table, strictest first (position breaks ties within a colour).
_BASE: tuple[Rule, ...] = (
    _r("case", "red", "case"),
    _r("placement_case", "red", "case"),
    _r("close_contact", "red"),
    _r("placement_close", "red"),
    _r("manual_red", "red"),
    _r("pool_hold", "yellow", "pool_hold"),
    _r("antigen_positive", "yellow", "antigen"),
    _r("secondary_contact", "yellow"),
    _r("placement_secondary", "yellow"),
    _r("health_monitoring", "yellow"),
    _r("symptoms", "yellow"),
    _r("missed_round_test", "yellow"),
    _r("zone_no_test", "yellow"),
    _r("manual_yellow", "yellow"),
)

RULE_SETS: MappingProxyType[str, tuple[RuleSet, ...]] = MappingProxyType(
    {
        "jilin-2022-03": (
            RuleSet(
                version="jl22.1",
                profile="jilin-2022-03",
                effective_from=date(2022, 3, 1),
                rules=_BASE,
                test_window_hours=24,
                zone_test_kinds=("lockdown", "control"),
                missed_test_days=3,
            ),
        ),
        "national-9": (
            RuleSet(
                version="n9.1",
                profile="national-9",
                effective_from=date(2022, 6, 28),
                rules=_BASE,
                test_window_hours=48,
                zone_test_kinds=("high", "medium"),
                missed_test_days=3,
            ),
        ),
        "national-2022-11": (
            RuleSet(
                version="n20.1",
                profile="national-2022-11",
                effective_from=date(2022, 11, 11),
                # Secondary contacts are no longer traced under the twenty measures.
                rules=tuple(r for r in _BASE if r.kind != Kind.secondary_contact),
                test_window_hours=72,
                zone_test_kinds=("high",),
                missed_test_days=2,
            ),
        ),
    }
)


def rule_set_for(profile: str, day: date) -> RuleSet:
    """The rule set in force for ``profile`` on ``day`` (the earliest one before any is)."""
    sets = RULE_SETS[profile]
    chosen = sets[0]
    for candidate in sets:
        if candidate.effective_from <= day:
            chosen = candidate
    return chosen


@dataclass(frozen=True)
class Evidence:
    """One record that a rule may read: its kind, the record it is, when it lapses."""

    kind: Kind
    record_id: int
    valid_until: datetime | None = None
    #: For red evidence of manual changes: the request's record type (case / contact).
    record_type: str | None = None
    #: The manual request behind manual kinds.
    request_id: int | None = None

    @property
    def evidence_type(self) -> str:
        return self.record_type or EVIDENCE_TYPE[self.kind]


@dataclass(frozen=True)
class Decision:
    colour: Colour
    rule: str
    reason_key: str
    evidence_type: str | None
    evidence_id: str | None
    popup: str | None
    valid_until: datetime | None


def manual_rule_key(kind: Kind | str, request_id: int | None) -> str:
    """Manual rules name the request: ``manual_red#12``."""
    return f"{kind}#{request_id}" if request_id is not None else str(kind)


def _lasting(valid_until: datetime | None) -> tuple[int, float]:
    """Sort key part: evidence without expiry before evidence that lapses, later before earlier."""
    return (0, 0.0) if valid_until is None else (1, -valid_until.timestamp())


def decide(evidence: Iterable[Evidence], rules: RuleSet) -> Decision:
    """The status the evidence gives under ``rules`` (see the module's doc)."""
    ranked: list[tuple[int, int, int, Evidence, Rule]] = []
    for item in evidence:
        rule = rules.rule_for(item.kind)
        if rule is None:
            continue
        ranked.append(
            (-SEVERITY[rule.colour], rules.position(item.kind), item.record_id, item, rule)
        )
    if not ranked:
        return Decision(
            "green", rules.rule_name("default"), "healthcode.reason.default", None, None, None, None
        )
    # Ties (the same record given twice) go to the evidence that lasts longest: no expiry first,
    # then the latest, so the answer never depends on the order the sources returned rows in.
    ranked.sort(key=lambda r: (r[0], r[1], r[2], *_lasting(r[3].valid_until)))
    _, _, _, item, rule = ranked[0]
    popups = [r for r in ranked if r[4].popup is not None]
    popup = min(popups, key=lambda r: r[1])[4].popup if popups else None
    key = rule.key
    if item.kind in (Kind.manual_red, Kind.manual_yellow):
        key = manual_rule_key(item.kind, item.request_id)
    return Decision(
        colour=rule.colour,
        rule=rules.rule_name(key),
        reason_key=rule.reason_key,
        evidence_type=item.evidence_type,
        evidence_id=str(item.record_id),
        popup=popup,
        valid_until=item.valid_until,
    )
