"""The population an outbreak moves through (pure: no database): residents of the communities
touched so far, loaded on demand through a function the caller gives (the database, or a
synthetic population in tests). Households come from the registry; workplaces (people 18–59)
and school classes (children 6–17, one age a class) are formed inside a community from ages and
a stable hash of the person, so they never depend on the seed or on the order of loading."""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

#: Sizes of workplaces (people 18–59) and classes (children 6–17) inside a community.
WORKPLACE_SIZE = 20
CLASS_SIZE = 40


@dataclass(frozen=True)
class Resident:
    """A person as the process sees them."""

    person_id: int
    household_id: int
    age: int
    grid: str

    @property
    def community(self) -> str:
        return self.grid[:12]


Loader = Callable[[str], Sequence[Resident]]
"""Residents of a community (12-digit code), in any order."""


def stable_hash(*parts: object) -> int:
    """A hash that is the same in every process (Python's own is salted per process)."""
    return zlib.crc32("/".join(str(p) for p in parts).encode())


class World:
    """The residents of the communities touched so far, with their households, workplaces and
    classes. ``communities`` maps every community of the region to its number of residents."""

    def __init__(self, communities: Mapping[str, int], load: Loader) -> None:
        self.communities = dict(sorted((c, n) for c, n in communities.items() if n > 0))
        self._load = load
        self._loaded: dict[str, list[int]] = {}
        self.residents: dict[int, Resident] = {}
        self._households: dict[int, tuple[int, ...]] = {}
        self._groups: dict[tuple[str, str, int], tuple[int, ...]] = {}
        self._group_of: dict[int, tuple[str, str, int]] = {}
        by_district: dict[str, list[str]] = {}
        for code in self.communities:
            by_district.setdefault(code[:6], []).append(code)
        self._by_district = by_district

    def community(self, code: str) -> list[int]:
        """Person ids of a community (sorted), loading it on first use."""
        found = self._loaded.get(code)
        if found is not None:
            return found
        people = sorted(self._load(code), key=lambda r: r.person_id)
        households: dict[int, list[int]] = {}
        workers: list[Resident] = []
        pupils: dict[int, list[Resident]] = {}
        for r in people:
            self.residents[r.person_id] = r
            households.setdefault(r.household_id, []).append(r.person_id)
            if 18 <= r.age <= 59:
                workers.append(r)
            elif 6 <= r.age <= 17:
                pupils.setdefault(r.age, []).append(r)
        for members in households.values():
            group = tuple(members)
            for person in members:
                self._households[person] = group
        workers.sort(key=lambda r: (stable_hash("work", r.person_id), r.person_id))
        self._chunk(code, "workplace", workers, WORKPLACE_SIZE)
        for age, same_age in sorted(pupils.items()):
            self._chunk(code, f"school{age}", same_age, CLASS_SIZE)
        ids = [r.person_id for r in people]
        self._loaded[code] = ids
        return ids

    def _chunk(self, code: str, kind: str, people: list[Resident], size: int) -> None:
        groups = max(1, round(len(people) / size))
        for g in range(groups):
            members = tuple(r.person_id for r in people[g::groups])
            key = (code, kind, g)
            self._groups[key] = members
            for person in members:
                self._group_of[person] = key

    def household(self, person: int) -> tuple[int, ...]:
        return self._households.get(person, (person,))

    def group(self, person: int) -> tuple[str, tuple[int, ...]]:
        """("workplace" or "school", the others in it), or ("", ()) for neither."""
        key = self._group_of.get(person)
        if key is None:
            return "", ()
        setting = "workplace" if key[1] == "workplace" else "school"
        return setting, tuple(p for p in self._groups[key] if p != person)

    def pick_in(self, community: str, rng: random.Random) -> int | None:
        people = self.community(community)
        return people[int(rng.random() * len(people))] if people else None

    def pick_community(self, rng: random.Random, near: str | None = None) -> str:
        """A community weighted by residents: of ``near``'s district when given."""
        codes = self._by_district.get(near[:6], []) if near else list(self.communities)
        if not codes:
            codes = list(self.communities)
        total = sum(self.communities[c] for c in codes)
        u = rng.random() * total
        for code in codes:
            u -= self.communities[code]
            if u < 0:
                return code
        return codes[-1]
