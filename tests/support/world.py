"""The small world every integration test starts from: the real base regions, a few generated
regions below two districts, and a cast of users per role inside and outside Changchun."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from bastion.accounts.models import User
from bastion.core import clock
from bastion.core.auth import ROLES, hash_password
from bastion.regions import service as region_service
from bastion.regions.models import Region

#: Inside: Changchun (220100). Outside: Jilin City (220200).
INSIDE = "220100"
OUTSIDE = "220200"
PASSWORD = "correct-horse-9"

#: Generated regions below the real districts: street → community → two grids.
NANGUAN_STREET = "220102001"
NANGUAN_COMMUNITY = "220102001001"
NANGUAN_GRID = "220102001001001"
NANGUAN_GRID_2 = "220102001001002"
CHANGYI_GRID = "220202001001001"
MEIHEKOU_GRID = "220581001001001"


def _tree(district: str) -> list[Region]:
    street, community = f"{district}001", f"{district}001001"
    return [
        Region(
            code=street,
            parent_code=district,
            level="street",
            name_zh="测试街道",
            name_en="Test Street",
        ),
        Region(
            code=community,
            parent_code=street,
            level="community",
            name_zh="测试社区",
            name_en="Test Community",
        ),
        Region(
            code=f"{community}001",
            parent_code=community,
            level="grid",
            name_zh="第1网格",
            name_en="Grid 1",
        ),
        Region(
            code=f"{community}002",
            parent_code=community,
            level="grid",
            name_zh="第2网格",
            name_en="Grid 2",
        ),
    ]


@dataclass(frozen=True)
class Cast:
    """user ids by (role, "in" | "out")."""

    ids: dict[tuple[str, str], int]


def build(session: Session) -> Cast:
    region_service.load_base_regions(db_session=session)
    for district in ("220102", "220202", "220581"):
        session.add_all(_tree(district))
    session.flush()
    pw = hash_password(PASSWORD)
    ids: dict[tuple[str, str], int] = {}
    for where, region in (("in", INSIDE), ("out", OUTSIDE)):
        for role in ROLES:
            user = User(
                username=f"{role}_{where}",
                display_name=f"{role} {where}",
                password_hash=pw,
                role=role,
                region_code=region,
                active=True,
                token_version=0,
                created_at=clock.now(),
            )
            session.add(user)
            session.flush()
            ids[(role, where)] = user.id
    # A province-wide administrator and a grid-level worker.
    for username, role, region in (
        ("admin_province", "admin", "220000"),
        ("grid_worker_grid", "grid_worker", NANGUAN_GRID),
    ):
        user = User(
            username=username,
            display_name=username,
            password_hash=pw,
            role=role,
            region_code=region,
            active=True,
            token_version=0,
            created_at=clock.now(),
        )
        session.add(user)
        session.flush()
        ids[(role, username)] = user.id
    return Cast(ids=ids)
