"""Comparing two revisions of a day's figures, figure by figure (pure)."""

from __future__ import annotations

from typing import Any


def flatten(figures: dict[str, Any]) -> dict[str, Any]:
    """The sections of a figures dict as ``section.figure[.key]`` → value. City lists become one
    figure per city code, round lists one per round code, so a change names its city or round."""
    flat: dict[str, Any] = {}
    for section, body in figures.get("sections", {}).items():
        _walk(flat, section, body)
    return flat


def _walk(flat: dict[str, Any], path: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _walk(flat, f"{path}.{key}", inner)
    elif isinstance(value, list) and all(isinstance(v, dict) and "code" in v for v in value):
        for item in value:
            code = item["code"]
            if "count" in item:
                flat[f"{path}.{code}"] = item["count"]
            else:
                for key, inner in item.items():
                    if key not in ("code", "name", "name_zh", "name_en"):
                        _walk(flat, f"{path}.{code}.{key}", inner)
    else:
        flat[path] = value


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(figure, before, after) for every figure that differs; a figure missing on one side
    counts as None there. Sorted by figure."""
    a, b = flatten(before), flatten(after)
    out = []
    for key in sorted(set(a) | set(b)):
        old, new = a.get(key), b.get(key)
        if old != new:
            out.append((key, old, new))
    return out
