"""The transfer board (转运): open tasks with a red flag on anything still open from before today
(日清日结), batches (vehicle, escort, people, special needs per person) and their journey —
dispatch, arrive, or fail with a reason — through :mod:`bastion.isolation.transfers` exactly
as ``/api/v1/isolation/transfers`` does. A refusal (a full site names its free beds) is shown
above the form, which keeps what was typed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core.auth import Perm, Principal
from bastion.core.errors import InvalidInput
from bastion.core.i18n import t
from bastion.isolation import sites, transfers, views
from bastion.isolation.enums import TransferStatus
from bastion.isolation.schemas import BatchCreate
from bastion.web.common import NavItem, Viewer, WebRoute, add_nav, render
from bastion.web.forms import Csrf, FormPage, form_int

router = APIRouter(include_in_schema=False, route_class=WebRoute)
add_nav(
    NavItem(
        "/transfers",
        "web.nav_transfers",
        Perm.isolation_read,
        frozenset({"transfer", "isolation", "commander", "analyst", "admin"}),
    )
)

Text = Annotated[str, Form(max_length=64)]
Note = Annotated[str, Form(max_length=500)]
Many = Annotated[list[str], Form(max_length=500)]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
#: The list's status filter: the open tasks (pending, dispatched, failed) unless asked.
STATUSES = ("open", *TransferStatus.__members__)
DONE = ("create", "dispatch", "arrive", "fail")


def transfer_summary(session: Session, principal: Principal) -> dict[str, int]:
    """For the dashboard: open transfer tasks and, of them, those red (open from before
    today: 日清日结)."""
    open_tasks = transfers.list_tasks(db_session=session, principal=principal, status="open")
    red = transfers.list_tasks(db_session=session, principal=principal, red_only=True)
    return {"open": len(open_tasks), "red": len(red)}


def board_view(session: Session, principal: Principal, status: str = "open") -> dict[str, Any]:
    """Tasks (by status), the batches they are in, the sites with their free beds, and which
    forms the caller gets."""
    principal.require(Perm.isolation_read)
    rows = transfers.list_tasks(db_session=session, principal=principal, status=status)
    tasks = views.tasks(session, principal, rows)
    batch_ids = sorted({r.batch_id for r in rows if r.batch_id is not None}, reverse=True)
    batches = [
        views.batch(
            session, transfers.get_batch(db_session=session, principal=principal, batch_id=b)
        )
        for b in batch_ids
    ]
    site_rows = sites.list_sites(db_session=session, principal=principal)
    taken = sites.occupancy(session, [s.id for s in site_rows])
    red = transfers.list_tasks(db_session=session, principal=principal, red_only=True)
    return {
        "tasks": tasks,
        "red_total": len(red),
        "batches": batches,
        "sites": [sites.to_read(session, s, taken[s.id]) for s in site_rows],
        "status": status,
        "statuses": STATUSES,
        # Tasks that may join a batch: pending outside a batch, or failed (waiting again).
        "batchable": [
            x
            for x, r in zip(tasks, rows, strict=True)
            if (x.status == "pending" and r.batch_id is None) or x.status == "failed"
        ],
        "can_write": principal.can(Perm.transfers_write),
    }


FORMS = FormPage(
    "transfers.html", lambda _request, session, principal: board_view(session, principal)
)


def _done(what: str) -> Callable[[Any], str]:
    """Where a batch's form sends the browser: the board, saying what was done to which batch."""
    return lambda row: f"/transfers?done={what}&batch={row.code}"


@router.get("/transfers", response_class=HTMLResponse)
def transfers_page(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    status: Annotated[str, Query(max_length=16)] = "open",
    done: Annotated[str | None, Query(max_length=20)] = None,
    batch: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    context = board_view(session, principal, status if status in STATUSES else "open")
    if done in DONE:
        context["notice"] = t(f"web.tr_done_{done}", request_language(request), batch=batch)
    return render(request, "transfers.html", context)


def _batch_data(
    code: str,
    vehicle: str,
    escort: str,
    site: str,
    tasks: list[str],
    need_task: list[str],
    need_text: list[str],
) -> BatchCreate:
    """The form as the API's body; special needs come as (task, text) pairs, one per row."""
    ids = [form_int("tasks", x, low=1, high=2**62) for x in tasks]
    chosen = sorted({i for i in ids if i is not None})
    if not chosen:
        raise InvalidInput.one("tasks", "field.required")
    needs: dict[int, str] = {}
    for task, text in zip(need_task, need_text, strict=False):
        task_id = form_int("special_needs", task, low=1, high=2**62)
        if task_id in chosen and text.strip():
            needs[task_id] = text.strip()
    return BatchCreate(
        code=code.strip(),
        vehicle=vehicle,
        escort=escort,
        site=site.strip() or None,
        tasks=chosen[:500],
        special_needs=needs,
    )


@router.post("/transfers/batches", response_class=HTMLResponse)
def create_batch(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    csrf: Csrf = "",
    code: Text = "",
    vehicle: Text = "",
    escort: Text = "",
    site: Text = "",
    tasks: Many = [],  # noqa: B006 - FastAPI copies the default
    need_task: Many = [],  # noqa: B006
    need_text: Annotated[list[str], Form(max_length=500)] = [],  # noqa: B006
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: transfers.create_batch(
            db_session=session,
            principal=principal,
            data=_batch_data(code, vehicle, escort, site, tasks, need_task, need_text),
        ),
        done=_done("create"),
        form={"code": code, "vehicle": vehicle, "escort": escort, "site": site, "tasks": tasks},
    )


@router.post("/transfers/batches/{batch_id}/dispatch", response_class=HTMLResponse)
def dispatch(
    request: Request, session: SessionDep, principal: Viewer, batch_id: RowId, csrf: Csrf = ""
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: transfers.dispatch(db_session=session, principal=principal, batch_id=batch_id),
        done=_done("dispatch"),
    )


@router.post("/transfers/batches/{batch_id}/arrive", response_class=HTMLResponse)
def arrive(
    request: Request, session: SessionDep, principal: Viewer, batch_id: RowId, csrf: Csrf = ""
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: transfers.arrive(db_session=session, principal=principal, batch_id=batch_id),
        done=_done("arrive"),
    )


@router.post("/transfers/batches/{batch_id}/fail", response_class=HTMLResponse)
def fail(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    batch_id: RowId,
    csrf: Csrf = "",
    reason: Note = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: transfers.fail(
            db_session=session, principal=principal, batch_id=batch_id, reason=reason
        ),
        done=_done("fail"),
    )
