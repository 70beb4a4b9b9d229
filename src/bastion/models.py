"""Imports every domain's tables so that ``Base.metadata`` is complete (Alembic, tests)."""

from bastion.accounts.models import User
from bastion.audit.models import AuditEntry, AuditHead
from bastion.core.db import Base
from bastion.regions.models import Region, Zone
from bastion.registry.models import Building, Household, ImportBatch, Person

metadata = Base.metadata

__all__ = [
    "AuditEntry",
    "AuditHead",
    "Building",
    "Household",
    "ImportBatch",
    "Person",
    "Region",
    "User",
    "Zone",
    "metadata",
]
