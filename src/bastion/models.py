"""Imports every domain's tables so that ``Base.metadata`` is complete (Alembic, tests)."""

from bastion.accounts.models import User
from bastion.audit.models import AuditEntry, AuditHead
from bastion.core.db import Base
from bastion.protocols.models import ProtocolChoice
from bastion.regions.models import Region, Zone
from bastion.registry.models import Building, Household, ImportBatch, Person
from bastion.testing.models import (
    AntigenReport,
    Box,
    BoxEvent,
    Lab,
    PoolHold,
    ResultConflict,
    RetestTask,
    Round,
    ScanBatch,
    Site,
    SiteGrid,
    Tube,
    TubeMember,
)

metadata = Base.metadata

__all__ = [
    "AntigenReport",
    "AuditEntry",
    "AuditHead",
    "Box",
    "BoxEvent",
    "Building",
    "Household",
    "ImportBatch",
    "Lab",
    "Person",
    "PoolHold",
    "ProtocolChoice",
    "Region",
    "ResultConflict",
    "RetestTask",
    "Round",
    "ScanBatch",
    "Site",
    "SiteGrid",
    "Tube",
    "TubeMember",
    "User",
    "Zone",
    "metadata",
]
