"""Generation (pure: no database): the province's rows, district by district, in batches ready
for the bulk path."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from bastion.core import crypto
from bastion.registry.enums import IdType, SpecialGroup
from bastion.registry.idnumber import mask_id
from bastion.simulate import names
from bastion.simulate.province.params import (
    FLUSH_PERSONS,
    KOREAN_SHARE,
    KOREAN_SHARE_ELSEWHERE,
    LOW_INCOME_HOUSEHOLDS,
    MAX_CHILDREN,
    RURAL_SHARE,
    SEQUENCES_PER_DATE,
)
from bastion.simulate.province.residents import (
    PHONE_SHARE_BY_AGE,
    ResidentIds,
    compose_household,
    special_groups,
)
from bastion.simulate.province.tree import household_sizes, plan_tree


@dataclass(frozen=True)
class DistrictPlan:
    """One district (or county-level city) to fill, and how."""

    code: str
    city: str
    persons: int
    kind: str  # a key of RURAL_SHARE
    #: The first free street number below it (streets added by hand keep their codes).
    first_street: int = 1
    #: A region row to add first, when the district is not in the table yet (市辖区).
    new_region: tuple[str, str, str, str, str, None] | None = None


@dataclass(frozen=True)
class StartingPoint:
    """Everything generation needs besides the plans (picklable, for the second process)."""

    seed: int
    today: date
    #: The persons' created_at / updated_at, as the database stores it
    #: (see build._stored_timestamp).
    created_at: datetime | str
    next_building: int
    next_household: int


@dataclass
class Batch:
    """Rows for one bulk write, in the order the foreign keys need them."""

    regions: list[tuple[Any, ...]] = field(default_factory=list)
    buildings: list[tuple[Any, ...]] = field(default_factory=list)
    households: list[tuple[Any, ...]] = field(default_factory=list)
    persons: list[tuple[Any, ...]] = field(default_factory=list)


def generate(start: StartingPoint, plans: Sequence[DistrictPlan]) -> Iterator[Batch]:
    """The province's rows, district by district, in batches of about FLUSH_PERSONS persons."""
    state = _Ids(start.next_building, start.next_household)
    for plan in plans:
        rng = random.Random(f"bastion/province/{start.seed}/{plan.code}")
        yield from _district(plan, rng, start, state)


@dataclass
class _Ids:
    next_building: int
    next_household: int


def _district(
    plan: DistrictPlan, rng: random.Random, start: StartingPoint, ids: _Ids
) -> Iterator[Batch]:
    sizes = household_sizes(rng, plan.persons)
    tree = plan_tree(rng, len(sizes), max_streets=MAX_CHILDREN - plan.first_street + 1)
    urban_streets = math.ceil(len(tree) * (1 - RURAL_SHARE[plan.kind]))
    street_stems = names.distinct_stems(rng, len(tree))
    batch = Batch()
    if plan.new_region is not None:
        batch.regions.append(plan.new_region)
    layout: list[tuple[bool, list[tuple[str, list[tuple[str, int]]]]]] = []
    for s, communities in enumerate(tree):
        number = plan.first_street + s
        street = f"{plan.code}{number:03d}"
        rural = s >= urban_streets
        zh, en = ("镇", "Town") if rural else ("街道", "Street")
        batch.regions.append(
            (street, plan.code, "street", f"{street_stems[s]}{zh}", f"{en} {number}", None)
        )
        community_stems = names.distinct_stems(rng, len(communities))
        laid: list[tuple[str, list[tuple[str, int]]]] = []
        for c, grids in enumerate(communities, start=1):
            community = f"{street}{c:03d}"
            zh, en = ("村", "Village") if rural else ("社区", "Community")
            name = f"{community_stems[c - 1]}{zh}"
            batch.regions.append((community, street, "community", name, f"{en} {c}", None))
            grid_codes: list[tuple[str, int]] = []
            for g, households in enumerate(grids, start=1):
                grid = f"{community}{g:03d}"
                batch.regions.append((grid, community, "grid", f"第{g}网格", f"Grid {g}", None))
                grid_codes.append((grid, households))
            laid.append((name, grid_codes))
        layout.append((rural, laid))

    people = _People(plan, rng, start, ids)
    cursor = 0
    for rural, laid in layout:
        for community_name, grid_codes in laid:
            addresses = _Addresses(rng, community_name, rural=rural)
            for grid, count in grid_codes:
                people.grid(batch, grid, sizes[cursor : cursor + count], addresses)
                cursor += count
            if len(batch.persons) >= FLUSH_PERSONS:
                yield batch
                batch = Batch()
    yield batch


class _Addresses:
    """Buildings of one community: urban compounds, one per grid (「新华路12号3栋2单元501」),
    or village groups numbered across the village's grids (「新华村3组27号」)."""

    def __init__(self, rng: random.Random, community_name: str, *, rural: bool) -> None:
        self.rng = rng
        self.rural = rural
        self.village = community_name
        stem = names.PLACE_STEMS[int(rng.random() * len(names.PLACE_STEMS))]
        suffix = names.ROAD_SUFFIXES[int(rng.random() * len(names.ROAD_SUFFIXES))]
        self.road = f"{stem}{suffix}"
        self.number = 1 + int(rng.random() * 40)
        self.building = 0

    def next_grid(self) -> None:
        """An urban grid is its own compound: the next number along the road, buildings
        numbered from 1 again."""
        if not self.rural:
            self.number += 2 + 2 * int(self.rng.random() * 5)
            self.building = 0

    def building_slots(self) -> tuple[str, str, list[tuple[str, str]]]:
        """The next building: its name, its address, and its (household number, address)s."""
        self.building += 1
        b = self.building
        rand = self.rng.random
        if self.rural:
            name = f"{b}组"
            address = f"{self.village}{b}组"
            count = 20 + int(rand() * 41)
            return name, address, [(f"{b}-{h}", f"{address}{h}号") for h in range(1, count + 1)]
        name = f"{b}栋"
        address = f"{self.road}{self.number}号{b}栋"
        units = 2 + int(rand() * 3)
        floors = 5 + int(rand() * 3)
        slots = [
            (f"{b}-{u}-{f}0{d}", f"{address}{u}单元{f}0{d}")
            for u in range(1, units + 1)
            for f in range(1, floors + 1)
            for d in (1, 2)
        ]
        return name, address, slots


class _People:
    """Fills one district's grids with buildings, households and persons."""

    def __init__(
        self, plan: DistrictPlan, rng: random.Random, start: StartingPoint, ids: _Ids
    ) -> None:
        self.rng = rng
        self.start = start
        self.ids = ids
        self.korean_share = KOREAN_SHARE.get(plan.city, KOREAN_SHARE_ELSEWHERE)
        self.picker = names.NamePicker()
        self.hasher = crypto.hasher()
        self.resident_ids = ResidentIds(plan.code)
        # Resident ID numbers are unique by (district, birth date, sequence): counting the
        # sequences used per birth date and sex within the district is enough, and the
        # counter goes with the district.
        self.used: dict[int, int] = {}

    def grid(self, batch: Batch, grid: str, sizes: list[int], addresses: _Addresses) -> None:
        rng, ids = self.rng, self.ids
        rand = rng.random
        getrandbits = rng.getrandbits
        surname_of, given_of = self.picker.surname, self.picker.given
        today_ord = self.start.today.toordinal()
        now = self.start.created_at
        resident_ids = self.resident_ids.number
        used = self.used
        per_date = SEQUENCES_PER_DATE
        base_hash = self.hasher
        encrypt = crypto.encrypt
        mobile = names.mobile
        phone_shares = PHONE_SHARE_BY_AGE
        resident_id = IdType.resident_id.value
        low_income_bit = int(SpecialGroup.low_income)
        korean_share = self.korean_share
        buildings, households, persons = batch.buildings, batch.households, batch.persons
        addresses.next_grid()
        slots: list[tuple[str, str]] = []
        building_id = 0
        for size in sizes:
            if not slots:
                name, address, slots = addresses.building_slots()
                slots.reverse()  # pop() from the end hands them out in order
                building_id = ids.next_building
                ids.next_building += 1
                buildings.append((building_id, grid, name, address))
            household_no, address = slots.pop()
            household_id = ids.next_household
            ids.next_household += 1
            households.append((household_id, grid, household_no, building_id, address))
            korean = rand() < korean_share
            low_income = low_income_bit if rand() < LOW_INCOME_HOUSEHOLDS else 0
            family = surname_of(rng, korean=korean)
            alone = size == 1
            for age, sex, own_surname in compose_household(rng, size):
                born_ord = today_ord - int((age + rand()) * 365.2425)
                key = born_ord * 2 + (sex == "M")
                k = used.get(key, 0)
                while k >= per_date:
                    # Every sequence of this sex on this birth date is taken here: a day older.
                    born_ord -= 1
                    key -= 2
                    k = used.get(key, 0)
                used[key] = k + 1
                born, number = resident_ids(born_ord, 2 * k + 1 if sex == "M" else 2 * k + 2)
                h = base_hash.copy()
                h.update(number.encode())
                surname = surname_of(rng, korean=korean) if own_surname else family
                persons.append(
                    (
                        f"{getrandbits(96):024x}",
                        surname + given_of(rng, sex, born.year, korean=korean),
                        resident_id,
                        encrypt(number),
                        h.hexdigest(),
                        mask_id(number),
                        sex,
                        born,
                        mobile(rng) if rand() < phone_shares[age] else None,
                        grid,
                        household_id,
                        address,
                        special_groups(rng, age, sex, alone=alone) | low_income,
                        now,
                        now,
                    )
                )
