"""The chain of transmission drawn on the server as an SVG graph (no script): from a case both
ways, or from a contact to the cases it was traced from and any later case of its person."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from bastion.core.auth import Principal
from bastion.tracing import service as tracing_service
from bastion.tracing.chains import Chain

NODE_W, NODE_H, COL, ROW = 118, 34, 170, 48
MAX_DRAWN = 400


def layout(chain: Chain, root: str) -> dict[str, Any]:
    """Columns by steps from ``root`` along the edges (an edge's target one column to the right
    of its source), rows in order within a column; the SVG's geometry."""
    level = {root: 0}
    frontier = [root]
    forward: dict[str, list[str]] = {}
    backward: dict[str, list[str]] = {}
    for a, b, _ in sorted(chain.edges):
        forward.setdefault(a, []).append(b)
        backward.setdefault(b, []).append(a)
    while frontier:
        nxt = []
        for key in frontier:
            steps = [(b, 1) for b in forward.get(key, [])] + [
                (a, -1) for a in backward.get(key, [])
            ]
            for other, step in steps:
                if other not in level and len(level) < MAX_DRAWN:
                    level[other] = level[key] + step
                    nxt.append(other)
        frontier = nxt
    low = min(level.values())
    columns: dict[int, list[str]] = {}
    for key in sorted(level, key=lambda k: (level[k], k)):
        columns.setdefault(level[key] - low, []).append(key)
    pos: dict[str, tuple[int, int]] = {}
    for col, keys in columns.items():
        for row, key in enumerate(keys):
            pos[key] = (12 + col * COL, 12 + row * ROW)
    nodes = []
    for key, (x, y) in pos.items():
        node = chain.nodes[key]
        is_case = node["kind"] == "case"
        nodes.append(
            {
                "key": key,
                "x": x,
                "y": y,
                "kind": node["kind"],
                "label": node["code"] if is_case else f"#{node['id']}",
                "status": node["status"],
                "classification": node["classification"],
                "href": f"/cases/{node['id']}/chain"
                if is_case
                else f"/contacts/{node['id']}/chain",
                "root": key == root,
            }
        )
    edges = [
        {
            "x1": pos[a][0] + NODE_W,
            "y1": pos[a][1] + NODE_H // 2,
            "x2": pos[b][0],
            "y2": pos[b][1] + NODE_H // 2,
            "kind": kind,
        }
        for a, b, kind in sorted(chain.edges)
        if a in pos and b in pos
    ]
    rows = max((len(keys) for keys in columns.values()), default=1)
    return {
        "nodes": nodes,
        "edges": edges,
        "w": NODE_W,
        "h": NODE_H,
        "width": 24 + len(columns) * COL,
        "height": 24 + rows * ROW,
        "truncated": chain.truncated or len(level) < len(chain.nodes),
    }


def _merged(*chains: Chain) -> Chain:
    out = Chain()
    for chain in chains:
        for key, node in chain.nodes.items():
            out.nodes.setdefault(key, node)
        out.edges |= chain.edges
        out.truncated = out.truncated or chain.truncated
    return out


def case_chain_view(session: Session, principal: Principal, ref: str) -> dict[str, Any]:
    """Both ways from a case: where it was traced from and all traced from it."""
    case = tracing_service.get_case(db_session=session, principal=principal, ref=ref)
    down = tracing_service.chain_down(db_session=session, principal=principal, ref=case.id)
    up = tracing_service.chain_up(db_session=session, principal=principal, case=str(case.id))
    return {"title": case.code, "case": case, "graph": layout(_merged(up, down), f"case:{case.id}")}


def contact_chain_view(session: Session, principal: Principal, contact_id: int) -> dict[str, Any]:
    """From a contact: the cases and contacts it was traced from, and any later case of its
    person with what was traced from that case."""
    contact = tracing_service.get_contact(
        db_session=session, principal=principal, contact_id=contact_id
    )
    up = tracing_service.chain_up(
        db_session=session, principal=principal, person_id=contact.person_id
    )
    later = [n for n in up.nodes.values() if n["kind"] == "case"]
    downs = [
        tracing_service.chain_down(db_session=session, principal=principal, ref=n["id"])
        for n in later
        if n["person_id"] == contact.person_id and principal.scope.contains(n["region_code"])
    ]
    chain = _merged(up, *downs)
    chain.add_contact(contact)
    return {
        "title": f"#{contact.id}",
        "contact": contact,
        "graph": layout(chain, f"contact:{contact.id}"),
    }
