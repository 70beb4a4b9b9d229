"""Small SQL helpers shared by isolation's set-based paths."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

#: The columns of a transfer task that the bulk paths write (placements and releases).
TASK_COLUMNS = (
    "person_id",
    "placement_id",
    "region_code",
    "kind",
    "destination",
    "status",
    "special_needs",
    "created_on",
    "created_at",
)


def expire(db_session: Session, model: type[Any]) -> None:
    """Expire the loaded ``model`` objects after a Core UPDATE changed their rows, so a caller
    reading them again sees the new values."""
    for obj in list(db_session.identity_map.values()):
        if isinstance(obj, model):
            db_session.expire(obj)
