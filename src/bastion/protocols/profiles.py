"""The protocol profiles as data (pure: no database).

Each profile is what a deployment follows from the day it is chosen. Days are counted from 1
(the first day of a period is day 1); test days are days of that period. Sources: the Jilin
command's March 2022 practice (8th edition of the national protocol), the national 9th edition
(June 2022) and the twenty measures of November 2022 (DOMAIN.md, "Rules").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from bastion.core.errors import InvalidInput

Setting = Literal["centralised", "home"]


class ContactLevel(StrEnum):
    close = "close"
    secondary = "secondary"


@dataclass(frozen=True)
class ContactRule:
    """How one level of contact is managed."""

    #: Whether this level is traced at all (secondary contacts stopped being traced in Nov 2022).
    traced: bool
    #: Where the main period is spent.
    setting: Setting
    #: Length of the main period, in days.
    days: int
    #: Days of home health monitoring after the main period (0: none).
    monitoring_days: int
    #: Days of the main period with a PCR test.
    test_days: tuple[int, ...]
    #: Days of the home-monitoring period with a PCR test.
    monitoring_test_days: tuple[int, ...] = ()

    @property
    def total_days(self) -> int:
        return self.days + self.monitoring_days


@dataclass(frozen=True)
class Profile:
    key: str
    #: Message key of the profile's display name.
    name_key: str
    close: ContactRule
    secondary: ContactRule
    #: Contacts are counted from this many days before onset (or sampling, when asymptomatic).
    lookback_days: int
    #: The zone kinds this profile designates, strictest first.
    zone_kinds: tuple[str, ...]
    #: Consecutive days without a new infection before a zone of that kind may be lifted.
    zone_lift_days: MappingProxyType[str, int]
    #: Where a new case is placed, by clinical type ("asymptomatic" included).
    case_destination: MappingProxyType[str, str]
    #: Discharge / release: this many consecutive tests with both Ct values at or above the
    #: threshold, at least 24 h apart.
    discharge_tests: int
    discharge_ct: float
    notes: tuple[str, ...] = field(default=())
    #: Days of home health monitoring after a case's discharge or release from observation
    #: (0: none), and the days of that period with a PCR test.
    discharge_monitoring_days: int = 0
    discharge_monitoring_test_days: tuple[int, ...] = ()

    def rule(self, level: ContactLevel | str) -> ContactRule:
        return self.close if ContactLevel(level) is ContactLevel.close else self.secondary


def _frozen(mapping: dict[str, int] | dict[str, str]) -> MappingProxyType:  # type: ignore[type-arg]
    return MappingProxyType(dict(mapping))


_OLD_ZONES = ("lockdown", "control", "precaution")
_RISK_AREAS = ("high", "medium", "low")

PROFILES: MappingProxyType[str, Profile] = MappingProxyType(
    {
        "jilin-2022-03": Profile(
            key="jilin-2022-03",
            name_key="protocol.jilin_2022_03",
            close=ContactRule(
                traced=True,
                setting="centralised",
                days=14,
                monitoring_days=7,
                test_days=(1, 4, 7, 10, 14),
                monitoring_test_days=(2, 7),
            ),
            secondary=ContactRule(
                traced=True, setting="centralised", days=7, monitoring_days=0, test_days=(1, 4, 7)
            ),
            lookback_days=4,
            zone_kinds=_OLD_ZONES,
            zone_lift_days=_frozen({"lockdown": 14, "control": 14, "precaution": 0}),
            case_destination=_frozen(
                {
                    "asymptomatic": "makeshift",
                    "mild": "makeshift",
                    "ordinary": "hospital",
                    "severe": "hospital",
                    "critical": "hospital",
                }
            ),
            discharge_tests=2,
            discharge_ct=40.0,
        ),
        "national-9": Profile(
            key="national-9",
            name_key="protocol.national_9",
            close=ContactRule(
                traced=True,
                setting="centralised",
                days=7,
                monitoring_days=3,
                test_days=(1, 2, 3, 5, 7),
                monitoring_test_days=(3,),
            ),
            secondary=ContactRule(
                traced=True, setting="home", days=7, monitoring_days=0, test_days=(1, 4, 7)
            ),
            lookback_days=4,
            zone_kinds=_RISK_AREAS,
            zone_lift_days=_frozen({"high": 7, "medium": 3, "low": 0}),
            case_destination=_frozen(
                {
                    "asymptomatic": "makeshift",
                    "mild": "makeshift",
                    "ordinary": "hospital",
                    "severe": "hospital",
                    "critical": "hospital",
                }
            ),
            discharge_tests=2,
            discharge_ct=35.0,
            # 9th edition: 7 days of home health monitoring after discharge, tests on 3 and 7.
            discharge_monitoring_days=7,
            discharge_monitoring_test_days=(3, 7),
        ),
        "national-2022-11": Profile(
            key="national-2022-11",
            name_key="protocol.national_2022_11",
            close=ContactRule(
                traced=True,
                setting="centralised",
                days=5,
                monitoring_days=3,
                test_days=(1, 2, 3, 5),
                monitoring_test_days=(3,),
            ),
            secondary=ContactRule(
                traced=False, setting="home", days=0, monitoring_days=0, test_days=()
            ),
            lookback_days=4,
            zone_kinds=("high", "low"),
            zone_lift_days=_frozen({"high": 5, "low": 0}),
            case_destination=_frozen(
                {
                    "asymptomatic": "makeshift",
                    "mild": "makeshift",
                    "ordinary": "hospital",
                    "severe": "hospital",
                    "critical": "hospital",
                }
            ),
            discharge_tests=2,
            discharge_ct=35.0,
            # 9th edition: 7 days of home health monitoring after discharge, tests on 3 and 7.
            discharge_monitoring_days=7,
            discharge_monitoring_test_days=(3, 7),
        ),
    }
)


def get_profile(key: str, *, field_name: str = "profile") -> Profile:
    """The profile named ``key``; an unknown key is refused naming the field."""
    try:
        return PROFILES[key]
    except KeyError:
        raise InvalidInput.one(
            field_name, "error.protocol_unknown", profile=key, known=", ".join(PROFILES)
        ) from None
