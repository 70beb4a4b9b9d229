"""Boxes and their hand-overs, lab receipt, results, conflicts and lab figures.

Thin: parse, call one service, shape the answer. Permissions and region scopes are checked by
the services (``bastion.testing.transport``, ``.results``, ``.labs``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, File, Path, Query, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from bastion.api.deps import CurrentPrincipal, LangDep, SessionDep
from bastion.core.auth import Perm
from bastion.core.config import get_settings
from bastion.core.errors import FieldProblem, TooLarge
from bastion.core.i18n import Language
from bastion.testing import flows, results, transport
from bastion.testing import labs as lab_figures
from bastion.testing.results.conflicts import ResolvedConflict
from bastion.testing.transport import delays

router = APIRouter(tags=["transport and labs"])

Ref = Annotated[str, Field(max_length=64)]
Barcode = Annotated[str, Field(max_length=64)]
MAX_RESULTS_PER_REQUEST = 10_000


# Boxes -------------------------------------------------------------------------------------


class BoxPackIn(BaseModel):
    code: Ref
    round: Ref
    site: Ref
    tubes: list[Barcode] = Field(max_length=transport.MAX_TUBES_PER_BOX)
    declared_tubes: int
    at: datetime | None = None


class PickUpIn(BaseModel):
    tubes_counted: int | None = None
    tubes: list[Barcode] | None = Field(default=None, max_length=transport.MAX_TUBES_PER_BOX)
    at: datetime | None = None


class ReceiveIn(PickUpIn):
    lab: Ref


class HandOverOut(BaseModel):
    event: str
    at: datetime
    actor_id: int | None
    tubes_counted: int | None
    tubes_scanned: int | None


class MismatchOut(BaseModel):
    stage: str
    kind: str
    tube: str | None
    expected: int | None
    counted: int | None


class BoxOut(BaseModel):
    code: str
    round: str
    site: str
    lab: str | None
    region_code: str
    state: str
    declared_tubes: int
    packed_at: datetime
    picked_up_at: datetime | None
    received_at: datetime | None
    tubes: list[str]
    tubes_received: int
    events: list[HandOverOut]
    reconciled: bool
    mismatches: list[MismatchOut]


def box_out(view: transport.BoxView) -> BoxOut:
    box = view.box
    return BoxOut(
        code=box.code,
        round=view.round_code,
        site=view.site_code,
        lab=view.lab_code,
        region_code=box.region_code,
        state=box.state,
        declared_tubes=box.declared_tubes,
        packed_at=box.packed_at,
        picked_up_at=box.picked_up_at,
        received_at=box.received_at,
        tubes=view.tubes,
        tubes_received=view.tubes_received,
        events=[HandOverOut(**e.__dict__) for e in view.events],
        reconciled=view.reconciled,
        mismatches=[MismatchOut(**m.__dict__) for m in view.mismatches],
    )


@router.post("/boxes", response_model=BoxOut, status_code=201)
def pack_box(body: BoxPackIn, session: SessionDep, principal: CurrentPrincipal) -> BoxOut:
    """Pack scanned tubes into a box at a site (site staff). All-or-nothing: every refused tube
    is listed; re-sending the same pack returns the box unchanged."""
    view = transport.pack_box(
        db_session=session,
        principal=principal,
        code=body.code,
        round_ref=body.round,
        site_code=body.site,
        tubes=body.tubes,
        declared_tubes=body.declared_tubes,
        at=body.at,
    )
    return box_out(view)


@router.post("/boxes/{code}/pick-up", response_model=BoxOut)
def pick_up_box(
    code: Annotated[str, Path(max_length=64)],
    body: PickUpIn,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> BoxOut:
    """A courier scans the box out of its site (count, and barcodes if the scanner sends them)."""
    view = transport.pick_up_box(
        db_session=session,
        principal=principal,
        code=code,
        tubes_counted=body.tubes_counted,
        tubes=body.tubes,
        at=body.at,
    )
    return box_out(view)


@router.post("/boxes/{code}/receive", response_model=BoxOut)
def receive_box(
    code: Annotated[str, Path(max_length=64)],
    body: ReceiveIn,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> BoxOut:
    """A lab scans the box in; the answer carries the reconciliation (missing and extra tubes,
    counts that differ)."""
    view = transport.receive_box(
        db_session=session,
        principal=principal,
        code=code,
        lab_code=body.lab,
        tubes_counted=body.tubes_counted,
        tubes=body.tubes,
        at=body.at,
    )
    return box_out(view)


@router.get("/boxes/{code}", response_model=BoxOut)
def read_box(
    code: Annotated[str, Path(max_length=64)], session: SessionDep, principal: CurrentPrincipal
) -> BoxOut:
    """A box, its hand-overs and its reconciliation."""
    return box_out(transport.get_box(db_session=session, principal=principal, code=code))


class UnboxedOut(BaseModel):
    site: str
    region_code: str
    tubes: int
    oldest_scan_at: datetime


class LateBoxOut(BaseModel):
    code: str
    state: str
    site: str
    lab: str | None
    region_code: str
    declared_tubes: int
    since: datetime
    hours: float


class DelaysOut(BaseModel):
    round: str
    at: datetime
    unboxed_tubes: int
    unboxed: list[UnboxedOut]
    late_boxes: list[LateBoxOut]


Hours = Annotated[float | None, Query(gt=0, le=delays.MAX_HOURS)]


@router.get("/rounds/{ref}/transport-delays", response_model=DelaysOut)
def transport_delays(
    ref: Annotated[str, Path(max_length=64)],
    session: SessionDep,
    principal: CurrentPrincipal,
    unboxed_hours: Hours = None,
    waiting_hours: Hours = None,
    on_road_hours: Hours = None,
) -> DelaysOut:
    """Transport delays of a round in the user's subtree (转运延误): per site, tubes sampled
    before ``unboxed_hours`` (default 2) still in no box; boxes packed and not picked up after
    ``waiting_hours`` (2), and on the road without receipt after ``on_road_hours`` (4)."""
    found = delays.transport_delays(
        db_session=session,
        principal=principal,
        ref=ref,
        unboxed_hours=unboxed_hours,
        waiting_hours=waiting_hours,
        on_road_hours=on_road_hours,
    )
    return DelaysOut(
        round=found.round_code,
        at=found.at,
        unboxed_tubes=found.unboxed_tubes,
        unboxed=[UnboxedOut(**vars(u)) for u in found.unboxed],
        late_boxes=[LateBoxOut(**vars(b)) for b in found.late_boxes],
    )


# Results -----------------------------------------------------------------------------------


class ResultIn(BaseModel):
    lab: Ref
    tube: Barcode
    result: Annotated[str, Field(max_length=32)]
    ct_orf1ab: float | Annotated[str, Field(max_length=32)] | None = None
    ct_n: float | Annotated[str, Field(max_length=32)] | None = None
    received_at: datetime | Annotated[str, Field(max_length=64)] | None = None
    tested_at: datetime | Annotated[str, Field(max_length=64)]


class ResultsIn(BaseModel):
    results: list[ResultIn] = Field(max_length=MAX_RESULTS_PER_REQUEST)


class ProblemOut(BaseModel):
    row: int | None
    field: str
    reason: str
    code: str


class ResultReportOut(BaseModel):
    rows: int
    accepted: int
    unchanged: int
    conflicts: int
    refused: int
    received_from_file: int
    stopped: bool
    problems: list[ProblemOut]


def report_out(
    report: results.ResultReport, lang: Language, *, list_path: bool = False
) -> ResultReportOut:
    """The API view of an upload report; for JSON lists, row N becomes ``results.N-1.field``."""

    def problem(p: FieldProblem) -> ProblemOut:
        rendered = p.render(lang)
        name = rendered["field"]
        if list_path and p.row is not None:
            name = f"results.{p.row - 1}.{name}"
        return ProblemOut(
            row=rendered.get("row"), field=name, reason=rendered["reason"], code=rendered["code"]
        )

    return ResultReportOut(
        rows=report.rows,
        accepted=report.accepted,
        unchanged=report.unchanged,
        conflicts=report.conflicts,
        refused=report.refused,
        received_from_file=report.received_from_file,
        stopped=report.stopped,
        problems=[problem(p) for p in report.problems],
    )


@router.post("/results", response_model=ResultReportOut)
def post_results(
    body: ResultsIn, session: SessionDep, principal: CurrentPrincipal, lang: LangDep
) -> ResultReportOut:
    """Record a list of results (lab staff). Good rows land; each refused row is named
    ``results.I.field``; a result equal to the one on record is unchanged, a different one
    becomes a conflict."""
    rows = [
        results.RawResult(
            row=i + 1,
            lab=item.lab,
            tube=item.tube,
            result=item.result,
            tested_at=item.tested_at,
            ct_orf1ab=item.ct_orf1ab,
            ct_n=item.ct_n,
            received_at=item.received_at,
        )
        for i, item in enumerate(body.results)
    ]
    report = flows.upload_results(db_session=session, principal=principal, rows=rows)
    return report_out(report, lang, list_path=True)


@router.post("/results/file", response_model=ResultReportOut)
def post_results_file(
    file: Annotated[UploadFile, File()],
    session: SessionDep,
    principal: CurrentPrincipal,
    lang: LangDep,
) -> ResultReportOut:
    """Record the results of a CSV file (columns ``lab, tube, result, ct_orf1ab, ct_n,
    received_at, tested_at``; UTF-8 or GBK), streamed from the upload's spool."""
    principal.require(Perm.results_write)
    limit = get_settings().max_upload_bytes
    size = file.size
    if size is None:
        file.file.seek(0, 2)
        size = file.file.tell()
        file.file.seek(0)
    if size > limit:
        raise TooLarge()
    report = flows.import_results_file(db_session=session, principal=principal, binary=file.file)
    return report_out(report, lang)


class TubeResultOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    barcode: str
    state: str
    region_code: str
    lab_code: str | None
    received_at: datetime | None
    tested_at: datetime | None
    uploaded_at: datetime | None
    result: str | None
    ct_orf1ab: float | None
    ct_n: float | None
    open_conflicts: int


@router.get("/tubes/{barcode}/result", response_model=TubeResultOut)
def read_tube_result(
    barcode: Annotated[str, Path(max_length=64)], session: SessionDep, principal: CurrentPrincipal
) -> object:
    """A tube's result and its times (receipt, test, upload)."""
    return results.get_tube_result(db_session=session, principal=principal, barcode=barcode)


# Conflicts ---------------------------------------------------------------------------------


class ResolveIn(BaseModel):
    pick: Annotated[str, Field(max_length=16)]
    note: Annotated[str, Field(max_length=400)]


@router.get("/results/conflicts", response_model=list[results.ConflictView])
def list_conflicts(
    session: SessionDep,
    principal: CurrentPrincipal,
    include_resolved: bool = False,
    limit: Annotated[int, Query(ge=1, le=5_000)] = 500,
) -> object:
    """Result conflicts in the user's subtree (open ones unless ``include_resolved``)."""
    return results.list_conflicts(
        db_session=session, principal=principal, open_only=not include_resolved, limit=limit
    )


@router.post("/results/conflicts/{conflict_id}/resolve", response_model=ResolvedConflict)
def resolve_conflict(
    conflict_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    body: ResolveIn,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> object:
    """Pick the ``first`` or the ``second`` result, with a reason (command staff; audited).
    A pick that changes the tube's result runs what an upload of it runs, in this request's
    transaction (holds and retests, cases, contacts, placements, health codes); ``effects``
    says what it did, and ``effects.cases_left_open`` lists open cases that rested on a
    positive result taken back (not closed automatically: a clinical decision)."""
    return results.resolve_conflict(
        db_session=session,
        principal=principal,
        conflict_id=conflict_id,
        pick=body.pick,
        note=body.note,
    )


# Lab figures -------------------------------------------------------------------------------


@router.get("/lab-figures", response_model=list[lab_figures.LabDay])
def read_lab_figures(
    session: SessionDep,
    principal: CurrentPrincipal,
    day: Annotated[date | None, Query(alias="date")] = None,
    late_hours: Annotated[float, Query(gt=0, le=720)] = lab_figures.DEFAULT_LATE_HOURS,
    lab: Annotated[str | None, Query(max_length=64)] = None,
) -> object:
    """Each lab's figures for a local day (default today): load against capacity, turnaround,
    positive, reversal and late rates, and its green / yellow / red rating."""
    return lab_figures.lab_figures(
        db_session=session, principal=principal, day=day, late_hours=late_hours, lab_code=lab
    )
