"""Isolation vocabularies."""

from __future__ import annotations

from enum import StrEnum


class SiteKind(StrEnum):
    hotel = "hotel"
    makeshift = "makeshift"  # 方舱医院
    hospital = "hospital"
    other = "other"


class Basic(StrEnum):
    """The basics every centralised site needs tracked."""

    water = "water"
    power = "power"
    heating = "heating"
    network = "network"


class BasicStatus(StrEnum):
    ok = "ok"
    problem = "problem"


class Setting(StrEnum):
    centralised = "centralised"
    home = "home"
    home_monitoring = "home_monitoring"
    hospital = "hospital"
    makeshift = "makeshift"


class PlacementReason(StrEnum):
    case = "case"
    close_contact = "close_contact"
    secondary_contact = "secondary_contact"


class PlacementStatus(StrEnum):
    pending = "pending"  # waiting for transfer
    active = "active"
    released = "released"
    cancelled = "cancelled"


class TestResult(StrEnum):
    negative = "negative"
    positive = "positive"
    invalid = "invalid"


class TransferKind(StrEnum):
    to_site = "to_site"
    to_home = "to_home"


class TransferStatus(StrEnum):
    pending = "pending"
    dispatched = "dispatched"
    arrived = "arrived"
    failed = "failed"
    cancelled = "cancelled"


#: Transfer statuses that still need work (daily closure flags them red from the next day).
OPEN_TRANSFER = (TransferStatus.pending, TransferStatus.dispatched, TransferStatus.failed)

#: Where each setting a person is moved to goes: a site of these kinds.
SITE_KINDS_FOR = {
    Setting.centralised: (SiteKind.hotel, SiteKind.other),
    Setting.makeshift: (SiteKind.makeshift,),
    Setting.hospital: (SiteKind.hospital,),
}
