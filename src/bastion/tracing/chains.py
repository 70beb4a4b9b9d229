"""Chains of transmission: walked down from a case and up from a person or case."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core.auth import Perm, Principal
from bastion.core.errors import InvalidInput, NotFound
from bastion.registry.models import Person
from bastion.tracing.cases import get_case
from bastion.tracing.models import Case, Contact, ContactLink, case_code

#: A chain is walked this many steps at most (case → contact → case … ) and stops growing past
#: this many nodes: enough for an investigator's screen, bounded for a super-spreader.
CHAIN_DEPTH = 6
CHAIN_NODES = 2_000


# Chains ----------------------------------------------------------------------------------------


@dataclass
class Chain:
    """A graph of cases and contacts: nodes keyed ``case:<id>`` / ``contact:<id>``; edges
    (from, to, kind) with kind ``close`` (case → contact), ``secondary`` (close contact →
    contact) or ``became_case`` (a contact's person → their later case)."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: set[tuple[str, str, str]] = field(default_factory=set)
    truncated: bool = False

    def add_case(self, case: Case) -> str:
        key = f"case:{case.id}"
        self.nodes.setdefault(
            key,
            {
                "kind": "case",
                "id": case.id,
                "code": case_code(case.id),
                "person_id": case.person_id,
                "region_code": case.region_code,
                "classification": case.classification,
                "status": case.status,
            },
        )
        return key

    def add_contact(self, contact: Contact) -> str:
        key = f"contact:{contact.id}"
        self.nodes.setdefault(
            key,
            {
                "kind": contact.level,
                "id": contact.id,
                "code": None,
                "person_id": contact.person_id,
                "region_code": contact.region_code,
                "classification": None,
                "status": contact.status,
            },
        )
        return key

    @property
    def full(self) -> bool:
        if len(self.nodes) >= CHAIN_NODES:
            self.truncated = True
        return self.truncated


def _link_edges(chain: Chain, db_session: Session, links: Sequence[ContactLink]) -> None:
    ids = {link.contact_id for link in links} | {
        link.via_contact_id for link in links if link.via_contact_id
    }
    contacts = {
        c.id: c for c in db_session.execute(select(Contact).where(Contact.id.in_(ids))).scalars()
    }
    case_ids = {link.case_id for link in links if link.via_contact_id is None}
    cases = {
        c.id: c for c in db_session.execute(select(Case).where(Case.id.in_(case_ids))).scalars()
    }
    for link in links:
        to = chain.add_contact(contacts[link.contact_id])
        if link.via_contact_id is None:
            chain.edges.add((chain.add_case(cases[link.case_id]), to, "close"))
        else:
            chain.edges.add((chain.add_contact(contacts[link.via_contact_id]), to, "secondary"))


def chain_down(*, db_session: Session, principal: Principal, ref: str | int) -> Chain:
    """Everything traced from a case: its close contacts, their secondary contacts, and, where a
    contact later became a case, that case's own contacts, level by level (one query per
    level, at most :data:`CHAIN_DEPTH` levels and :data:`CHAIN_NODES` nodes)."""
    root = get_case(db_session=db_session, principal=principal, ref=ref)
    chain = Chain()
    chain.add_case(root)
    frontier = [root.id]
    for _ in range(CHAIN_DEPTH):
        if not frontier or chain.full:
            break
        links = list(
            db_session.execute(
                select(ContactLink).where(ContactLink.case_id.in_(frontier)).limit(CHAIN_NODES)
            ).scalars()
        )
        _link_edges(chain, db_session, links)
        persons = {n["person_id"]: k for k, n in chain.nodes.items() if n["kind"] != "case"}
        later = (
            db_session.execute(
                select(Case).where(
                    Case.person_id.in_(list(persons)),
                    Case.id.notin_([n["id"] for n in chain.nodes.values() if n["kind"] == "case"]),
                )
            )
            .scalars()
            .all()
        )
        frontier = []
        for case in later:
            chain.edges.add((persons[case.person_id], chain.add_case(case), "became_case"))
            frontier.append(case.id)
    return chain


def chain_up(
    *,
    db_session: Session,
    principal: Principal,
    case: str | None = None,
    person_id: int | None = None,
) -> Chain:
    """Where a person (or a case's person) was traced from: their contact rows, the close
    contacts and cases behind them, and on up through cases whose people were themselves
    contacts (at most :data:`CHAIN_DEPTH` levels)."""
    principal.require(Perm.tracing_read)
    chain = Chain()
    if case is not None:
        start = get_case(db_session=db_session, principal=principal, ref=case)
        chain.add_case(start)
        people = [start.person_id]
    elif person_id is not None:
        person = db_session.get(Person, person_id)
        if person is None or not principal.scope.contains(person.region_code):
            raise NotFound("person.not_found")
        people = [person_id]
    else:
        raise InvalidInput.one("case", "field.required")
    seen: set[int] = set(people)
    for _ in range(CHAIN_DEPTH):
        if not people or chain.full:
            break
        contacts = list(
            db_session.execute(select(Contact).where(Contact.person_id.in_(people))).scalars()
        )
        links = list(
            db_session.execute(
                select(ContactLink).where(ContactLink.contact_id.in_([c.id for c in contacts]))
            ).scalars()
        )
        # The close contacts a secondary link came through, and their own links to cases.
        vias = [link.via_contact_id for link in links if link.via_contact_id]
        if vias:
            links += list(
                db_session.execute(
                    select(ContactLink).where(
                        ContactLink.contact_id.in_(vias), ContactLink.via_contact_id.is_(None)
                    )
                ).scalars()
            )
        _link_edges(chain, db_session, links)
        for c in contacts:
            later = (
                db_session.execute(
                    select(Case).where(
                        Case.person_id == c.person_id, Case.created_at >= c.created_at
                    )
                )
                .scalars()
                .all()
            )
            for k in later:
                chain.edges.add((chain.add_contact(c), chain.add_case(k), "became_case"))
        root_cases = [n for n in chain.nodes.values() if n["kind"] == "case"]
        people = [n["person_id"] for n in root_cases if n["person_id"] not in seen]
        seen.update(people)
    return chain


__all__ = ["CHAIN_DEPTH", "CHAIN_NODES", "Chain", "chain_down", "chain_up"]
