"""Small SQL helpers shared by isolation's set-based paths."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from bastion.core.db import is_postgres

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

_CHUNK = 5_000
_PG_CHUNK = 100_000


def among(db_session: Session, column: Any, values: list[int]) -> Any:
    """``column IN values``; on PostgreSQL as ``= ANY(array)`` with one parameter, so a big
    batch does not become a statement of thousands of placeholders."""
    if is_postgres(db_session):
        return column == any_(bindparam(None, values, type_=ARRAY(BigInteger)))
    return column.in_(values)


def chunks(db_session: Session, values: list[int]) -> list[list[int]]:
    """``values`` in pieces small enough for one statement (SQLite's variable limit)."""
    size = _PG_CHUNK if is_postgres(db_session) else _CHUNK
    return [values[i : i + size] for i in range(0, len(values), size)]


def expire(db_session: Session, model: type[Any]) -> None:
    """Expire the loaded ``model`` objects after a Core UPDATE changed their rows, so a caller
    reading them again sees the new values."""
    for obj in list(db_session.identity_map.values()):
        if isinstance(obj, model):
            db_session.expire(obj)
