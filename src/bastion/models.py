"""Imports every domain's tables so that ``Base.metadata`` is complete (Alembic, tests)."""

from bastion.accounts.models import User
from bastion.audit.models import AuditEntry, AuditHead
from bastion.bulletin.models import BulletinRevision
from bastion.core.db import Base
from bastion.healthcode.models import (
    CodeAlarm,
    CodeBatch,
    CodeHistory,
    CodeStatus,
    ManualRequest,
    ManualRequestPerson,
    ProxyBinding,
    ReviewRequest,
)
from bastion.healthcode.signing_models import SigningKey
from bastion.isolation.models import (
    IsolationSite,
    Placement,
    PlacementTest,
    SiteBasic,
    TransferBatch,
    TransferTask,
)
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
from bastion.tracing.models import (
    Case,
    Contact,
    ContactDayCount,
    ContactLink,
    Exposure,
    ExposureEdge,
)

metadata = Base.metadata

__all__ = [
    "AntigenReport",
    "AuditEntry",
    "AuditHead",
    "Box",
    "BoxEvent",
    "Building",
    "BulletinRevision",
    "Case",
    "CodeAlarm",
    "CodeBatch",
    "CodeHistory",
    "CodeStatus",
    "Contact",
    "ContactDayCount",
    "ContactLink",
    "Exposure",
    "ExposureEdge",
    "Household",
    "ImportBatch",
    "IsolationSite",
    "Lab",
    "ManualRequest",
    "ManualRequestPerson",
    "Person",
    "Placement",
    "PlacementTest",
    "PoolHold",
    "ProtocolChoice",
    "ProxyBinding",
    "Region",
    "ResultConflict",
    "RetestTask",
    "ReviewRequest",
    "Round",
    "ScanBatch",
    "SigningKey",
    "Site",
    "SiteBasic",
    "SiteGrid",
    "TransferBatch",
    "TransferTask",
    "Tube",
    "TubeMember",
    "User",
    "Zone",
    "metadata",
]
