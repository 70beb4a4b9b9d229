"""What other domains hand to isolation: people who must be placed (and so moved).

Tracing creates cases and contacts; each needs a placement, and a transfer task appears as soon
as the person must move. This module is the contract between them (pure data, no database):
``bastion.isolation.service.place_needs(db_session=..., principal=..., needs=[...])`` takes a
batch of these, set-based, and is idempotent per (person, source).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

#: Why the person is placed.
Reason = Literal["case", "close_contact", "secondary_contact"]
#: Where they go: a treatment site for cases, a centralised site or home for contacts.
Destination = Literal["hospital", "makeshift", "centralised", "home"]


@dataclass(frozen=True)
class PlacementNeed:
    person_id: int
    #: The person's region of residence (a grid code): decides which sites and teams serve them.
    region_code: str
    reason: Reason
    #: The record it rests on: ("case", case id) or ("contact", contact id).
    source_type: Literal["case", "contact"]
    source_id: int
    destination: Destination
    #: Day 1 of the period (for contacts, the day after the last exposure or the day identified,
    #: as the profile says; for cases, the day the case was reported).
    starts_on: date
    #: Special needs noted for the transfer (一人一策), free text.
    special_needs: str = ""


@dataclass(frozen=True)
class PlacementReport:
    """What :func:`bastion.isolation.service.place_needs` did with a batch of needs."""

    #: Placements created now.
    created: int
    #: Needs already placed (same person and source): left as they were.
    unchanged: int
    #: Transfer tasks created now (a person who must move to a site).
    transfers: int
    #: Open contact placements closed (cancelled) because the person became a case.
    superseded: int = 0
    #: Needs the profile in force does not manage (e.g. secondary contacts from Nov 2022).
    not_managed: int = 0
    #: The placement of each need, in the order given (None where not managed).
    placement_ids: tuple[int | None, ...] = ()
