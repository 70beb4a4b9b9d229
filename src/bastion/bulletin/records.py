"""The other domains' tables the bulletin reads. Only the columns docs/dev/shared-records.md
guarantees are used (see bastion.bulletin.queries)."""

from __future__ import annotations

from bastion.isolation.models import Placement
from bastion.tracing.models import Case, Contact

CASES = Case.__table__
CONTACTS = Contact.__table__
PLACEMENTS = Placement.__table__
