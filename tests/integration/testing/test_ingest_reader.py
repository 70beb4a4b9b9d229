"""Large files on PostgreSQL have their people looked up on a second, reading connection
(``testing.ingest.resolve``) that sees only what is committed. Whatever it cannot see — people
and members this very transaction wrote — the writer must still judge exactly as the live path
does. These tests commit their setup (the reader must see it) in a database of their own."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import make_engine
from bastion.registry.models import Person
from bastion.testing import ingest
from bastion.testing.ingest import RawScan, resolve, statements
from bastion.testing.ingest.rows import ScanContext, check_row
from bastion.testing.models import Tube, TubeMember
from tests.support import factories, world
from tests.support.world import NANGUAN_GRID_2

START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)
NOW = START + timedelta(hours=6)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def committed(fresh_database_url):
    """A round, a site and people, committed; one person already sampled, committed too."""
    engine = make_engine(fresh_database_url)
    with Session(engine) as session, session.begin():
        world.build(session)
        rnd = factories.round_(session, starts_at=START)
        site = factories.site(session)
        people = [factories.person(session) for _ in range(12)]
        stranger = factories.person(session, region_code=NANGUAN_GRID_2)
        refs = (rnd.code, site.code, [p.token for p in people], stranger.token)
    with Session(engine) as session, session.begin():
        report = ingest.ingest_scans(
            db_session=session,
            principal=system_principal(),
            key="committed-before",
            source="test",
            scans=_scans(refs[0], refs[1], "TF00000001", refs[2][:1]),
        )
        assert report.accepted == 1
    yield engine, refs
    engine.dispose()


def _scans(rnd, site, tube, tokens, *, start_row=1):
    at = START + timedelta(hours=1)
    return [
        RawScan(
            row=start_row + i,
            round=rnd,
            site=site,
            tube=tube,
            person=token,
            scanned_at=at + timedelta(seconds=start_row + i),
        )
        for i, token in enumerate(tokens)
    ]


def _batch(rnd, site, tokens, stranger, newcomer):
    rows = _scans(rnd, site, "TF00000002", tokens[1:4])  # good
    rows += _scans(rnd, site, "TF00000002", tokens[1:2], start_row=4)  # double beep
    rows += _scans(rnd, site, "TF00000003", tokens[2:3], start_row=5)  # person twice
    rows += _scans(rnd, site, "TF00000004", tokens[:1], start_row=6)  # already sampled
    rows += _scans(rnd, site, "TF00000001", tokens[:1], start_row=7)  # unchanged
    rows += _scans(rnd, site, "TF00000005", [stranger], start_row=8)  # off-grid
    rows.append(dataclasses.replace(rows[0], row=9, person="f" * 24))  # unknown
    rows += [
        dataclasses.replace(r, capacity=2)  # the third is one too many
        for r in _scans(rnd, site, "TF00000006", tokens[4:7], start_row=10)
    ]
    # Registered in this transaction: the reader cannot see them; the writer must.
    rows += _scans(rnd, site, "TF00000007", [newcomer, newcomer], start_row=13)
    # Two chunks later (chunks of 5 rows), a person of the first chunk again, in another tube:
    # the reader cannot see the first chunk's members either.
    rows += _scans(rnd, site, "TF00000008", tokens[3:4] + tokens[7:9], start_row=15)
    rows += _scans(rnd, site, "TF00000001", tokens[9:10], start_row=18)  # a committed tube
    return rows


def _judge(engine, refs, *, pipelined: bool) -> tuple:
    """The batch in chunks of five, read in a thread (``pipelined``: the reader may run) or not
    (the same chunks, judged by the writer alone); the answer, refusals and tubes."""
    rnd, site, tokens, stranger = refs
    with Session(engine) as session:
        session.begin()
        newcomer_row = factories.person(session)
        newcomer = newcomer_row.token
        report = ingest.ingest_scans(
            db_session=session,
            principal=system_principal(),
            key="the-batch",
            source="test",
            scans=iter(_batch(rnd, site, tokens, stranger, newcomer)),
            chunk=5,
            pipelined=pipelined,
        )
        tubes = {}
        for barcode in ("TF00000001", "TF00000002", "TF00000006", "TF00000007", "TF00000008"):
            tube = session.execute(select(Tube).where(Tube.barcode == barcode)).scalar_one()
            members = session.execute(
                select(TubeMember.person_id, TubeMember.position, TubeMember.off_grid)
                .where(TubeMember.tube_id == tube.id)
                .order_by(TubeMember.position)
            ).all()
            tubes[barcode] = (
                tube.member_count,
                # The newcomer's id differs from run to run (sequences ignore rollbacks).
                [("newcomer" if p == newcomer_row.id else p, pos, off) for p, pos, off in members],
            )
        session.rollback()
    answer = (report.accepted, report.refused, report.unchanged, report.flagged)
    problems = [(p.row, p.field, p.reason) for p in report.problems + report.flags]
    return answer, problems, tubes


def test_a_file_judged_with_the_reader_answers_as_the_writer_alone(committed, backend, monkeypatch):
    engine, refs = committed
    monkeypatch.setattr(ingest, "SMALL", 1)  # every chunk is "large": the files' statements
    alone = _judge(engine, refs, pipelined=False)

    resolved: list[int] = []
    real = resolve.Resolver.resolve

    def counted(self, rows):
        resolved.append(len(rows))
        return real(self, rows)

    monkeypatch.setattr(resolve.Resolver, "resolve", counted)
    with_reader = _judge(engine, refs, pipelined=True)

    assert with_reader == alone
    answer, problems, tubes = with_reader
    assert answer == (10, 5, 3, 1)  # accepted, refused, unchanged, flagged
    assert problems == [
        (5, "person", "scan.person_twice"),
        (6, "person", "scan.already_sampled"),  # committed before
        (9, "person", "scan.unknown_person"),
        (12, "tube", "scan.tube_full"),  # the tube was made one chunk earlier
        (15, "person", "scan.already_sampled"),  # landed two chunks earlier, not committed
        (8, "person", "scan.off_grid"),
    ]
    assert [position for _, position, _ in tubes["TF00000001"][1]] == [1, 2]
    assert tubes["TF00000001"][0] == 2  # the committed member, then row 18
    assert len(tubes["TF00000007"][1]) == 1  # the newcomer once (row 14 is a double beep)
    assert tubes["TF00000006"][0] == 2
    if backend == "postgresql":
        # The reader resolved the first chunk (its double beep and its person twice are the
        # reader's ranks) and the second; the second had to be judged again (row 6's person
        # was sampled before: the unique index said so, not a lookup), and from then on the
        # writer judges alone, whatever the reader, a chunk ahead, may have resolved unused.
        assert resolved[:2] == [5, 5]
    else:
        assert resolved == []  # SQLite has no second connection to lend


def test_a_clean_file_lands_on_the_reader_path_alone(committed, backend, monkeypatch):
    # A tube whose scans straddle two chunks (the writer made it; the reader cannot see it) and
    # a person registered in this transaction: neither needs the whole verdicts again.
    engine, refs = committed
    rnd, site, tokens, _ = refs
    monkeypatch.setattr(ingest, "SMALL", 1)
    resolved: list[int] = []
    real = resolve.Resolver.resolve

    def counted(self, rows):
        resolved.append(len(rows))
        return real(self, rows)

    monkeypatch.setattr(resolve.Resolver, "resolve", counted)
    with Session(engine) as session:
        session.begin()
        newcomer = factories.person(session)
        rows = _scans(rnd, site, "TG00000001", tokens[1:8])  # rows 1-7: chunks one and two
        rows += _scans(rnd, site, "TG00000002", [newcomer.token, *tokens[8:10]], start_row=8)
        rows += _scans(rnd, site, "TG00000003", tokens[10:12], start_row=11)
        report = ingest.ingest_scans(
            db_session=session,
            principal=system_principal(),
            key="clean",
            source="test",
            scans=iter(rows),
            chunk=5,
        )
        assert (report.accepted, report.refused, report.unchanged) == (12, 0, 0)
        members = session.execute(
            select(Tube.barcode, Tube.member_count, TubeMember.position, TubeMember.person_id)
            .join(TubeMember, TubeMember.tube_id == Tube.id)
            .where(Tube.barcode.in_(["TG00000001", "TG00000002"]))
            .order_by(Tube.barcode, TubeMember.position)
        ).all()
        ids = dict(
            session.execute(select(Person.token, Person.id).where(Person.token.in_(tokens))).all()
        )
        session.rollback()
    assert [(b, n, pos, pid) for b, n, pos, pid in members] == [
        ("TG00000001", 7, i + 1, ids[t]) for i, t in enumerate(tokens[1:8])
    ] + [
        ("TG00000002", 3, i + 1, pid)
        for i, pid in enumerate([newcomer.id, ids[tokens[8]], ids[tokens[9]]])
    ]
    # Every chunk went through the reader: none had to be judged again.
    assert resolved == ([5, 5, 2] if backend == "postgresql" else [])


def test_a_reader_that_fails_midway_leaves_the_writer_to_judge_alone(
    committed, backend, monkeypatch
):
    # The reader only ever saves work: its connection dropped after the first chunk, the file
    # still lands with the same answers.
    engine, refs = committed
    monkeypatch.setattr(ingest, "SMALL", 1)
    alone = _judge(engine, refs, pipelined=False)

    answered: list[bool] = []
    real = resolve.Resolver.resolve

    def dropping(self, rows):
        data = real(self, rows)
        answered.append(data is not None)
        self._raw.close()  # the server went away, say
        return data

    monkeypatch.setattr(resolve.Resolver, "resolve", dropping)
    assert _judge(engine, refs, pipelined=True) == alone
    if backend == "postgresql":
        assert answered[:2] == [True, False]
    else:
        assert answered == []


def test_the_readers_places_are_taken_only_where_they_hold(committed, backend, monkeypatch):
    # The reader counts each row's place in its tube; the writer takes those places without a
    # sort of its own, except in a chunk where they may be wrong: a barcode scanned at two
    # sites (the other site's rows take no place), or a person only the writer can see (the
    # reader counted them out). Either way the tubes come out as the writer alone makes them.
    engine, refs = committed
    rnd, site, tokens, _ = refs
    monkeypatch.setattr(ingest, "SMALL", 1)
    judged: list[str] = []
    real_write = ingest._write_bulk

    def spied(raw, statement, *, household):
        judged.append(
            {
                statements.PG_CLASSIFY_PLACED: "placed",
                statements.PG_CLASSIFY_RESOLVED: "window",
            }.get(statement, "whole")
        )
        return real_write(raw, statement, household=household)

    monkeypatch.setattr(ingest, "_write_bulk", spied)

    def land(pipelined: bool):
        with Session(engine) as session:
            session.begin()
            other = factories.site(session, code="SITE-2")
            newcomer = factories.person(session)
            rows = _scans(rnd, site, "TH00000001", tokens[1:3])  # chunk one: clean
            rows += _scans(rnd, site, "TH00000002", tokens[3:6], start_row=3)
            rows += _scans(rnd, other.code, "TH00000001", tokens[6:7], start_row=6)  # refused
            rows += _scans(rnd, site, "TH00000001", tokens[7:8], start_row=7)  # third place
            rows += _scans(rnd, site, "TH00000003", tokens[8:11], start_row=8)
            rows += _scans(rnd, site, "TH00000004", [newcomer.token, tokens[11]], start_row=11)
            report = ingest.ingest_scans(
                db_session=session,
                principal=system_principal(),
                key="places",
                source="test",
                scans=iter(rows),
                chunk=5,
                pipelined=pipelined,
            )
            ids = dict(session.execute(select(Person.token, Person.id)).all())
            names = {pid: token for token, pid in ids.items()}
            names[newcomer.id] = "newcomer"
            tubes = session.execute(
                select(Tube.barcode, Tube.member_count, TubeMember.position, TubeMember.person_id)
                .join(TubeMember, TubeMember.tube_id == Tube.id)
                .where(Tube.barcode.like("TH%"))
                .order_by(Tube.barcode, TubeMember.position)
            ).all()
            session.rollback()
        problems = [(p.row, p.reason) for p in report.problems]
        return report.accepted, problems, [(b, n, pos, names[p]) for b, n, pos, p in tubes]

    alone = land(pipelined=False)
    del judged[:]
    with_reader = land(pipelined=True)
    assert with_reader == alone
    accepted, problems, tubes = with_reader
    assert accepted == 11
    assert problems == [(6, "scan.tube_other_site")]
    assert tubes == [
        ("TH00000001", 3, 1, tokens[1]),
        ("TH00000001", 3, 2, tokens[2]),
        ("TH00000001", 3, 3, tokens[7]),
        ("TH00000002", 3, 1, tokens[3]),
        ("TH00000002", 3, 2, tokens[4]),
        ("TH00000002", 3, 3, tokens[5]),
        ("TH00000003", 3, 1, tokens[8]),
        ("TH00000003", 3, 2, tokens[9]),
        ("TH00000003", 3, 3, tokens[10]),
        ("TH00000004", 2, 1, "newcomer"),
        ("TH00000004", 2, 2, tokens[11]),
    ]
    if backend == "postgresql":
        assert judged == ["placed", "window", "window"]
    else:
        assert judged == []  # SQLite judges with its own statements


def test_the_reader_leaves_nothing_behind_between_chunks(committed, backend):
    # Each chunk the reader stages is gone once it is answered: rolled back, its rows stayed as
    # dead tuples that the next chunk's scan read again (a city's file, millions a chunk).
    if backend != "postgresql":
        pytest.skip("the reader is PostgreSQL's")
    engine, refs = committed
    rnd, site, tokens, _ = refs
    with Session(engine) as session:
        context = ScanContext(session, system_principal())
        rows = [(1, *check_row(context, s)) for s in _scans(rnd, site, "TJ00000001", tokens[1:6])]
        reader = resolve.open_resolver(session)
        assert reader is not None
        try:
            for _ in range(3):
                assert reader.resolve(rows)
            size = reader._raw.execute("SELECT pg_relation_size('scan_stage')").fetchone()[0]
        finally:
            reader.close()
    assert size == 0
