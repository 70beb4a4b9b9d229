"""Binding people to tubes through the one bulk path: what lands, what is refused, and why."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from bastion.core import clock, crypto
from bastion.core.auth import system_principal
from bastion.healthcode import keys as health_keys
from bastion.healthcode import signing
from bastion.testing import ingest
from bastion.testing import service as testing_service
from bastion.testing.ingest import RawScan
from bastion.testing.models import ScanBatch, Tube, TubeMember
from tests.support import factories
from tests.support.world import CHANGYI_GRID, NANGUAN_GRID_2

START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)
NOW = START + timedelta(hours=6)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def setup(db):
    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db)
    people = [factories.person(db) for _ in range(12)]
    return rnd, site, people


def scans(rnd, site, tube, people, *, start_row=1, at=None):
    at = at or (START + timedelta(hours=1))
    return [
        RawScan(
            row=start_row + i,
            round=rnd.code,
            site=site.code,
            tube=tube,
            person=p.token,
            scanned_at=at + timedelta(seconds=i),
        )
        for i, p in enumerate(people)
    ]


def run(db, batch, key="batch-0001", principal=None):
    return ingest.ingest_scans(
        db_session=db,
        principal=principal or system_principal(),
        key=key,
        source="test",
        scans=batch,
    )


def members_of(db, barcode):
    tube = db.execute(select(Tube).where(Tube.barcode == barcode)).scalar_one()
    rows = (
        db.execute(
            select(TubeMember).where(TubeMember.tube_id == tube.id).order_by(TubeMember.position)
        )
        .scalars()
        .all()
    )
    return tube, rows


def test_a_tube_of_ten_lands_in_scan_order(db, setup):
    rnd, site, people = setup
    report = run(db, scans(rnd, site, "TB00000001", people[:10]))
    assert (report.accepted, report.refused, report.unchanged) == (10, 0, 0)
    tube, rows = members_of(db, "TB00000001")
    assert tube.member_count == 10
    assert tube.capacity == 10
    assert [m.person_id for m in rows] == [p.id for p in people[:10]]
    assert [m.position for m in rows] == list(range(1, 11))


def test_the_eleventh_person_in_a_ten_tube_is_refused_with_its_row(db, setup):
    rnd, site, people = setup
    report = run(db, scans(rnd, site, "TB00000002", people[:11]))
    assert report.accepted == 10
    assert report.refused == 1
    (problem,) = report.problems
    assert (problem.row, problem.field, problem.reason) == (11, "tube", "scan.tube_full")


def test_a_resent_batch_changes_nothing_and_gets_the_same_answer(db, setup):
    rnd, site, people = setup
    first = run(db, scans(rnd, site, "TB00000003", people[:5]), key="same-key-1")
    again = run(db, scans(rnd, site, "TB00000003", people[:5]), key="same-key-1")
    assert again.replayed
    assert again.accepted == first.accepted == 5
    assert db.execute(select(func.count()).select_from(TubeMember)).scalar_one() == 5
    assert db.execute(select(func.count()).select_from(ScanBatch)).scalar_one() == 1


def test_the_same_scans_under_a_new_key_count_as_unchanged(db, setup):
    rnd, site, people = setup
    run(db, scans(rnd, site, "TB00000004", people[:5]), key="file-import-a")
    again = run(db, scans(rnd, site, "TB00000004", people[:5]), key="file-import-b")
    assert (again.accepted, again.unchanged, again.refused) == (0, 5, 0)
    tube, _ = members_of(db, "TB00000004")
    assert tube.member_count == 5


def test_a_person_already_sampled_in_the_round_is_refused_in_another_tube(db, setup):
    rnd, site, people = setup
    run(db, scans(rnd, site, "TB00000005", people[:3]), key="k-aaaaaaa1")
    report = run(db, scans(rnd, site, "TB00000006", people[2:4]), key="k-aaaaaaa2")
    assert report.accepted == 1
    assert [(p.row, p.field, p.reason) for p in report.problems] == [
        (1, "person", "scan.already_sampled")
    ]


def test_the_same_person_twice_in_one_batch_keeps_the_first(db, setup):
    rnd, site, people = setup
    batch = scans(rnd, site, "TB00000007", people[:2]) + scans(
        rnd, site, "TB00000008", people[:1], start_row=3
    )
    report = run(db, batch)
    assert report.accepted == 2
    assert [(p.row, p.reason) for p in report.problems] == [(3, "scan.person_twice")]


def test_a_double_beep_into_the_same_tube_is_harmless(db, setup):
    rnd, site, people = setup
    batch = scans(rnd, site, "TB00000009", [people[0], people[0], people[1]])
    report = run(db, batch)
    assert (report.accepted, report.unchanged, report.refused) == (2, 1, 0)


def test_people_can_be_named_by_id_number(db, setup):
    rnd, site, people = setup
    number = crypto.decrypt(people[0].id_cipher)
    batch = [
        RawScan(
            row=1,
            round=rnd.code,
            site=site.code,
            tube="TB00000010",
            person=number,
            scanned_at=START + timedelta(hours=2),
        )
    ]
    assert run(db, batch).accepted == 1


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"tube": "bad code!"}, "tube", "scan.bad_barcode"),
        ({"person": "220102198005170010"}, "person", "id.bad_check_char"),
        ({"person": "ffffffffffffffffffffffff"}, "person", "scan.unknown_person"),
        ({"person": "someone"}, "person", "scan.bad_person_code"),
        ({"round": "NO-SUCH-ROUND"}, "round", "scan.unknown_round"),
        ({"site": "NO-SUCH-SITE"}, "site", "scan.unknown_site"),
        ({"scanned_at": "yesterday"}, "scanned_at", "field.bad_datetime"),
        ({"scanned_at": "2022-03-26T12:00:00+08:00"}, "scanned_at", "scan.in_future"),
        ({"scanned_at": "2022-03-24T12:00:00+08:00"}, "scanned_at", "scan.before_round"),
        ({"kind": "quantum"}, "kind", "scan.bad_kind"),
        ({"capacity": 20}, "capacity", "scan.pool_too_large"),
        ({"capacity": 0}, "capacity", "field.out_of_range"),
    ],
)
def test_each_bad_scan_is_refused_with_its_field_and_the_good_rows_land(
    db, setup, change, field, reason
):
    rnd, site, people = setup
    good = scans(rnd, site, "TB00000011", people[:2])
    bad = dataclasses.replace(scans(rnd, site, "TB00000012", people[2:3], start_row=3)[0], **change)
    report = run(db, [*good, bad])
    assert report.accepted == 2
    assert [(p.row, p.field, p.reason) for p in report.problems] == [(3, field, reason)]


def test_a_person_sampled_outside_their_grid_is_accepted_and_flagged(db, setup):
    rnd, site, _ = setup
    stranger = factories.person(db, region_code=NANGUAN_GRID_2)
    report = run(db, scans(rnd, site, "TB00000013", [stranger]))
    assert (report.accepted, report.flagged) == (1, 1)
    _, (member,) = members_of(db, "TB00000013")
    assert member.off_grid


def test_a_sampler_cannot_scan_at_a_site_outside_their_region(db, setup, principal):
    rnd, site, people = setup
    report = run(
        db, scans(rnd, site, "TB00000014", people[:1]), principal=principal("sampler", "out")
    )
    assert report.accepted == 0
    assert report.problems[0].reason in ("error.region_outside", "scan.unknown_round")


def test_lockdown_zones_get_single_tubes(db, setup):
    rnd, _, people = setup
    _lock_down(db)
    locked_site = factories.site(db, code="SITE-LOCK")
    report = run(db, scans(rnd, locked_site, "TB00000015", people[:2]))
    assert report.accepted == 1
    assert report.problems[0].reason == "scan.tube_full"


def _lock_down(db):
    from bastion.regions import service as region_service

    region_service.designate_zone(
        db_session=db,
        principal=system_principal(),
        region_code="220102001",
        kind="lockdown",
        starts_on=START.date(),
        reason="outbreak cluster",
    )


@pytest.mark.parametrize("path", ["live", "bulk"])
def test_a_household_tube_holds_one_household(db, setup, monkeypatch, path):
    # Lockdown zones test one tube per household: a household tube takes the household of its
    # first member; anyone else is refused and the members after them keep counting 1, 2, 3.
    if path == "bulk":
        monkeypatch.setattr(ingest, "SMALL", 1)  # the files' statements
    rnd, site, _ = setup
    home = [factories.person(db, household="HH-1") for _ in range(4)]
    neighbour = factories.person(db, household="HH-2")
    nobody = factories.person(db)  # no household registered
    order = [home[0], neighbour, home[1], nobody, home[2]]
    batch = [
        dataclasses.replace(scan, kind="household")
        for scan in scans(rnd, site, "TH00000001", order)
    ]
    report = run(db, batch, key=f"household-{path}")
    assert report.accepted == 3
    assert [(p.row, p.field, p.reason) for p in report.problems] == [
        (2, "person", "scan.household_mixed"),
        (4, "person", "scan.household_mixed"),
    ]
    tube, members = members_of(db, "TH00000001")
    assert (tube.kind, tube.member_count) == ("household", 3)
    assert [(m.person_id, m.position) for m in members] == [
        (home[0].id, 1),
        (home[1].id, 2),
        (home[2].id, 3),
    ]
    # Later, the same tube: its household is its first member's, already in the record.
    later = [
        dataclasses.replace(scan, kind="household")
        for scan in scans(
            rnd, site, "TH00000001", [neighbour, home[3]], at=START + timedelta(hours=2)
        )
    ]
    report = run(db, later, key=f"household-later-{path}")
    assert report.accepted == 1
    assert [(p.row, p.reason) for p in report.problems] == [(1, "scan.household_mixed")]
    assert [(m.person_id, m.position) for m in members_of(db, "TH00000001")[1]][-1] == (
        home[3].id,
        4,
    )


def test_a_round_that_pools_lockdown_zones_by_household_makes_household_tubes(db):
    rnd = factories.round_(
        db, code="R-HOUSEHOLD", starts_at=START, pool_policy={"lockdown": "household"}
    )
    _lock_down(db)
    locked_site = factories.site(db, code="SITE-HH")
    family = [factories.person(db, household="HH-9") for _ in range(12)]
    outsider = factories.person(db, household="HH-10")
    # Twelve people of one household in one tube (more than any pool of the zone would allow),
    # then someone from elsewhere: refused for the household, not for the size.
    report = run(db, scans(rnd, locked_site, "TH00000002", [*family, outsider]))
    assert report.accepted == 12
    assert [(p.row, p.reason) for p in report.problems] == [(13, "scan.household_mixed")]
    tube, members = members_of(db, "TH00000002")
    assert (tube.kind, tube.capacity, tube.member_count) == ("household", 20, 12)
    assert [m.person_id for m in members] == [p.id for p in family]
    # A pool size sent by the scanner may not exceed 20, household or not.
    too_many = [
        dataclasses.replace(scan, capacity=21)
        for scan in scans(rnd, locked_site, "TH00000003", family[:1], start_row=14)
    ]
    report = run(db, too_many, key="household-too-many")
    assert [(p.field, p.reason) for p in report.problems] == [("capacity", "field.out_of_range")]


def test_a_tube_belongs_to_one_round(db, setup):
    rnd, site, people = setup
    other = factories.round_(db, code="R-TEST-2", starts_at=START)
    run(db, scans(rnd, site, "TB00000016", people[:1]), key="k-round-one")
    report = run(db, scans(other, site, "TB00000016", people[1:2]), key="k-round-two")
    assert report.problems[0].reason == "scan.tube_other_round"


def test_nothing_is_written_for_a_batch_of_only_bad_rows(db, setup):
    rnd, site, _ = setup
    stranger = factories.person(db, region_code=CHANGYI_GRID)
    before = db.execute(select(func.count()).select_from(Tube)).scalar_one()
    report = run(
        db,
        [
            RawScan(
                row=1,
                round=rnd.code,
                site=site.code,
                tube="TB00000017",
                person="ffffffffffffffffffffffff",
                scanned_at=NOW,
            )
        ],
    )
    assert report.refused == 1
    assert db.execute(select(func.count()).select_from(Tube)).scalar_one() == before
    assert stranger.id


@pytest.mark.parametrize("ref", ["99999999999999999999", "R\x00X", "x" * 500])
def test_a_round_reference_that_cannot_exist_is_simply_unknown(db, setup, ref):
    _, site, people = setup
    batch = [
        RawScan(
            row=1,
            round=ref,
            site=site.code,
            tube="TB00000019",
            person=people[0].token,
            scanned_at=NOW,
        )
    ]
    report = run(db, batch)
    assert [(p.field, p.reason) for p in report.problems] == [("round", "scan.unknown_round")]


def test_a_stream_read_in_a_thread_over_several_chunks_judges_like_one_batch(db, setup):
    rnd, site, people = setup
    rows = scans(rnd, site, "TC00000090", people[:6]) + scans(
        rnd, site, "TC00000091", people[6:12], start_row=7
    )
    rows[3] = dataclasses.replace(rows[3], tube="not a barcode")  # row 4: refused early
    # Row 1's person again, three chunks later: refused as already sampled (row 1 has landed).
    rows.append(dataclasses.replace(rows[0], row=13, tube="TC00000091"))
    report = ingest.ingest_scans(
        db_session=db,
        principal=system_principal(),
        key="batch-stream",
        source="test",
        scans=iter(rows),  # a stream: read and checked in the feed's thread
        chunk=4,
    )
    assert report.accepted == 11
    assert [(p.row, p.field, p.reason) for p in report.problems] == [
        (4, "tube", "scan.bad_barcode"),
        (13, "person", "scan.already_sampled"),
    ]
    positions = (
        db.execute(
            select(TubeMember.position)
            .join(Tube, Tube.id == TubeMember.tube_id)
            .where(Tube.barcode == "TC00000091")
            .order_by(TubeMember.position)
        )
        .scalars()
        .all()
    )
    assert positions == [1, 2, 3, 4, 5, 6]


def test_a_files_tube_is_checked_anew_whenever_it_changes(db, setup):
    # A file names a tube on many rows in a row; each change of tube is checked again, however
    # it is spelt, and a bad one between good ones is refused alone.
    rnd, site, people = setup
    rows = scans(rnd, site, "tc00000095", people[:5])
    rows[1] = dataclasses.replace(rows[1], tube=" TC00000095 ")  # the same tube, spelt apart
    rows[2] = dataclasses.replace(rows[2], tube="")  # empty: refused
    rows[3] = dataclasses.replace(rows[3], tube="")  # and again, right after
    rows[4] = dataclasses.replace(rows[4], tube="TC00000095")
    report = ingest.ingest_scans(
        db_session=db,
        principal=system_principal(),
        key="tubes-in-a-row",
        source="test",
        scans=iter(rows),
        chunk=2,
    )
    assert report.accepted == 3
    assert [(p.row, p.reason) for p in report.problems] == [
        (3, "scan.bad_barcode"),
        (4, "scan.bad_barcode"),
    ]
    members = db.execute(
        select(Tube.barcode, TubeMember.position)
        .join(Tube, Tube.id == TubeMember.tube_id)
        .where(Tube.barcode == "TC00000095")
    ).all()
    assert sorted(members) == [("TC00000095", 1), ("TC00000095", 2), ("TC00000095", 3)]


def live(db, cache, key, batch):
    """One group as the live API's writer lands it, with the writer's cache."""
    (report,) = ingest.ingest_batches(
        db_session=db,
        batches=[ingest.BatchIn(system_principal(), key, "api", batch)],
        sites=cache,
    )
    return report


def test_a_round_closed_while_the_live_cache_holds_it_is_refused_from_the_next_group(db, setup):
    rnd, site, people = setup
    cache = ingest.SiteCache()
    assert live(db, cache, "live-1", scans(rnd, site, "TD00000001", people[:2])).accepted == 2
    assert cache.round(rnd.code) is not None  # the round is now known to the writer
    testing_service.close_round(db_session=db, principal=system_principal(), ref=rnd.code)
    after = NOW + timedelta(minutes=1)
    report = live(db, cache, "live-2", scans(rnd, site, "TD00000002", people[2:4], at=after))
    assert report.accepted == 0
    assert {(p.field, p.reason) for p in report.problems} == {("round", "scan.round_closed")}


@pytest.mark.parametrize("cached", [True, False])
def test_scans_made_offline_before_the_round_closed_still_land(db, setup, cached):
    rnd, site, people = setup
    testing_service.close_round(db_session=db, principal=system_principal(), ref=rnd.code)
    cache = ingest.SiteCache() if cached else None
    if cache is not None:
        live(db, cache, "warm", scans(rnd, site, "TD00000005", people[:1]))  # cached as closed
    early = START + timedelta(hours=2)  # before the close at NOW, sent after it
    late = NOW + timedelta(minutes=2)
    batch = scans(rnd, site, "TD00000006", people[1:3], at=early) + scans(
        rnd, site, "TD00000007", people[3:4], start_row=3, at=late
    )
    report = live(db, cache, "offline", batch)
    assert report.accepted == 2
    assert [(p.row, p.field, p.reason) for p in report.problems] == [
        (3, "round", "scan.round_closed")
    ]


def test_a_rolled_back_group_leaves_the_next_one_working(db, setup):
    rnd, site, people = setup
    # The staging tables are created once per connection; a group rolled back takes them with
    # it, and the next group on the same connection must create them again.
    with db.begin_nested() as group:
        assert run(db, scans(rnd, site, "TD00000003", people[:2]), key="gone").accepted == 2
        group.rollback()
    report = run(db, scans(rnd, site, "TD00000004", people[2:4]), key="kept")
    assert report.accepted == 2
    assert len(members_of(db, "TD00000004")[1]) == 2


def _code(db, person, *, issued: datetime, ttl: int = 300, key=None) -> str:
    """The health code a resident shows at the site, signed with the active key (or ``key``)."""
    row = health_keys.ensure_active(db_session=db)
    private = key or health_keys.private_key(row)
    at = int(issued.timestamp())
    return signing.sign(signing.Claims(row.kid, "green", at, at + ttl, person.token), private)


def test_a_signed_personal_code_names_its_person_and_a_bad_one_is_refused(db, setup):
    rnd, site, people = setup
    scanned = START + timedelta(hours=1)  # an offline scan, sent five hours later
    good = _code(db, people[0], issued=scanned - timedelta(minutes=1))
    expired = _code(db, people[1], issued=scanned - timedelta(hours=2))
    forged = _code(db, people[2], issued=scanned, key=Ed25519PrivateKey.generate())
    body = signing.unb64(good[len(signing.PREFIX) :])
    swapped = b"0" if body[-70:-69] != b"0" else b"1"  # one character of the token changed
    altered = signing.PREFIX + signing.b64(body[:-70] + swapped + body[-69:])
    batch = [
        RawScan(row=n, round=rnd.code, site=site.code, tube="TE00000001", person=p, scanned_at=t)
        for n, (p, t) in enumerate(
            [
                (good, scanned),
                (expired, scanned),
                (forged, scanned),
                (altered, scanned),
                ("BHC1.bm90IGEgY29kZQ", scanned),
            ],
            start=1,
        )
    ]
    report = run(db, batch)
    assert report.accepted == 1
    assert [m.person_id for m in members_of(db, "TE00000001")[1]] == [people[0].id]
    assert [(p.row, p.field, p.reason) for p in report.problems] == [
        (2, "person", "scan.code_expired"),
        (3, "person", "scan.code_forged"),
        (4, "person", "scan.code_forged"),
        (5, "person", "scan.bad_person_code"),
    ]


def test_the_bulk_verdict_statement_judges_as_the_live_one(db, setup, monkeypatch):
    # Files land in chunks of thousands, judged on PostgreSQL by a statement of their own
    # (statements.PG_CLASSIFY_BULK); the live API's small groups by CLASSIFY. Same batch, both
    # ways, the same answers and members (the threshold lowered to reach the bulk statement).
    rnd, site, people = setup
    stranger = factories.person(db, region_code=NANGUAN_GRID_2)
    run(db, scans(rnd, site, "TF00000001", people[:1]), key="before-both")  # already sampled

    def batch():
        rows = scans(rnd, site, "TF00000002", people[1:4])  # good
        rows += scans(rnd, site, "TF00000002", people[1:2], start_row=4)  # double beep
        rows += scans(rnd, site, "TF00000003", people[2:3], start_row=5)  # person twice
        rows += scans(rnd, site, "TF00000004", people[:1], start_row=6)  # already sampled
        rows += scans(rnd, site, "TF00000001", people[:1], start_row=7)  # unchanged
        rows += scans(rnd, site, "TF00000005", [stranger], start_row=8)  # off-grid
        unknown = dataclasses.replace(rows[0], row=9, person="f" * 24)
        full = [
            dataclasses.replace(r, capacity=2)
            for r in scans(rnd, site, "TF00000006", people[4:7], start_row=10)
        ]
        return [*rows, unknown, *full]

    def judged(key):
        report = run(db, batch(), key=key)
        tubes = {
            barcode: [(m.person_id, m.position) for m in members_of(db, barcode)[1]]
            for barcode in ("TF00000002", "TF00000005", "TF00000006")
        }
        answer = (report.accepted, report.refused, report.unchanged, report.flagged)
        problems = [(p.row, p.field, p.reason) for p in report.problems + report.flags]
        return answer, problems, tubes

    with db.begin_nested() as live:
        first = judged("both-live")
        live.rollback()
    monkeypatch.setattr(ingest, "SMALL", 1)
    with db.begin_nested() as bulk:
        second = judged("both-bulk")
        bulk.rollback()
    assert first == second
    answer, problems, tubes = first
    assert answer == (6, 4, 2, 1)
    assert problems == [
        (2, "person", "scan.person_twice"),  # row 5 was scanned first (a second earlier)
        (6, "person", "scan.already_sampled"),
        (9, "person", "scan.unknown_person"),
        (12, "tube", "scan.tube_full"),
        (8, "person", "scan.off_grid"),
    ]
    assert [p for p, _ in tubes["TF00000006"]] == [people[4].id, people[5].id]
