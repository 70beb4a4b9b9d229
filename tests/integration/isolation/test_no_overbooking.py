"""Two batches racing for a site's last bed: one gets it, the other is refused (the site row lock
in ``transfers._locked_site``), never both. Runs on committed data in a database of its own."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import make_engine
from bastion.core.errors import Conflict
from bastion.isolation import sites, transfers
from bastion.isolation.models import Placement, TransferTask
from bastion.isolation.schemas import BatchCreate, SiteCreate
from bastion.regions import service as region_service
from tests.integration.isolation.helpers import NOW, need, place


def _batch(session: Session, code: str, task_id: int) -> Any:
    return transfers.create_batch(
        db_session=session,
        principal=system_principal(),
        data=BatchCreate(code=code, vehicle="吉A9", escort="周", site="LAST-BED", tasks=[task_id]),
    )


def test_two_batches_never_overbook_the_last_bed(fresh_database_url):
    engine = make_engine(fresh_database_url)
    try:
        with clock.frozen(NOW):
            with Session(engine) as setup, setup.begin():
                region_service.load_base_regions(db_session=setup)
                sites.create_site(
                    db_session=setup,
                    principal=system_principal(),
                    data=SiteCreate(
                        code="LAST-BED",
                        name="酒店",
                        kind="hotel",
                        region_code="220102",
                        rooms=1,
                        beds=1,
                    ),
                )
                place(setup, need(setup, region="220102"), need(setup, region="220102"))
                task_ids = list(
                    setup.execute(select(TransferTask.id).order_by(TransferTask.id)).scalars()
                )
            outcome: dict[str, Any] = {}

            def second() -> None:
                try:
                    with Session(engine) as other, other.begin():
                        _batch(other, "B-SECOND", task_ids[1])
                    outcome["second"] = "ok"
                except Conflict as err:
                    outcome["second"] = err.key
                except Exception as err:  # noqa: BLE001 - SQLite refuses the stale writer
                    outcome["second"] = type(err).__name__

            with Session(engine) as first, first.begin():
                _batch(first, "B-FIRST", task_ids[0])
                racer = threading.Thread(target=second)
                racer.start()
                # Give the second batch time to reach the lock (it waits there on PostgreSQL).
                time.sleep(0.5)
            racer.join(timeout=60)
        with Session(engine) as check:
            held = check.execute(
                select(func.count()).select_from(Placement).where(Placement.site_id.is_not(None))
            ).scalar_one()
        assert held == 1
        assert outcome["second"] != "ok"
        if engine.dialect.name == "postgresql":
            assert outcome["second"] == "transfer.site_full"
    finally:
        engine.dispose()
