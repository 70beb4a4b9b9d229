"""The outbreak as a process (pure: no database): who infects whom, where, when they are found,
who is named as a contact, and how each case's course ends.

Days are numbers: day 1 is the first simulated day (the caller maps them onto dates). The
people come from a :class:`~bastion.simulate.outbreak_world.World` (households, workplaces,
classes, communities), loaded on demand.

Each day (:meth:`Outbreak.step`):

1. **Transmission.** Every infected person who is infectious (from :data:`INFECTIOUS_FROM` to
   :data:`INFECTIOUS_DAYS` days after infection) and not yet isolated or found infects others by
   setting: household members each with :data:`HOUSEHOLD_DAILY`; colleagues or classmates each
   with :data:`WORKPLACE_DAILY` / :data:`SCHOOL_DAILY`; random people of the community met in a
   sampling queue and on public transport (Poisson means :data:`QUEUE_DAILY`,
   :data:`TRANSPORT_DAILY`; transport reaches other communities of the district). From
   :data:`CONTROL_FROM` on, zones are controlled: work, school and transport drop to
   :data:`CONTROLLED` of their rate, queues to half (mass testing keeps people queuing).
2. **Detection.** Isolated infected people are found on their isolation tests
   (:data:`ISOLATION_DETECT`, ``found_by`` isolation or control); others by community screening
   (:data:`SCREEN_DETECT`, higher once zones are controlled), at a fever clinic once symptomatic
   (:data:`FEVER_CLINIC`) or in hospital when severe.
3. **Investigation.** A new case names close contacts: every household member, a handful of
   colleagues or classmates, a few people of the sampling queue and of transport (most of the
   people it infected there among them); the household members of the non-household close
   contacts are secondary contacts. Contacts are isolated from the next day, which is what
   bends the curve: their infections are cut short and found in isolation.
4. **Course.** About :data:`ASYMPTOMATIC_SHARE` of infections never show symptoms; the others
   have onset :data:`INCUBATION` days after infection and a clinical type from
   :data:`CLINICAL_MIX` (March 2022: almost all mild). A symptomatic person found before onset
   is reported asymptomatic and reclassified as confirmed on the onset day (counted once).
   Confirmed cases are discharged after :data:`DISCHARGE_AFTER` days, asymptomatic ones released
   after :data:`RELEASE_AFTER`; rarely a critical case dies.

Determinism: every draw comes from a generator keyed by the seed, the day, the person and the
purpose, never from the order of the work, so a seed gives the same outbreak over the same
population, and replaying days 1..k in memory gives the state a later run continues from.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from bastion.simulate.outbreak_world import Resident, World, stable_hash

__all__ = ["Resident", "World", "stable_hash"]

#: Days after infection when a person starts, and stops, being infectious.
INFECTIOUS_FROM = 1
INFECTIOUS_DAYS = 8
#: Days (low, high) from infection to onset, for the symptomatic.
INCUBATION = (2, 5)
#: Share of infections that never show symptoms.
ASYMPTOMATIC_SHARE = 0.5
#: Clinical types of confirmed cases (share), after the Jilin bulletins of March 2022
#: (25 March: 1,112 mild and 10 ordinary of 1,122).
CLINICAL_MIX: tuple[tuple[str, float], ...] = (
    ("mild", 0.978),
    ("ordinary", 0.019),
    ("severe", 0.0025),
    ("critical", 0.0005),
)
#: Daily chance of infecting each household member, colleague, classmate.
HOUSEHOLD_DAILY = 0.15
WORKPLACE_DAILY = 0.02
SCHOOL_DAILY = 0.015
#: Daily Poisson means of infections in sampling queues and on transport.
QUEUE_DAILY = 0.35
TRANSPORT_DAILY = 0.5
#: Share of transport infections in another community of the district.
TRANSPORT_ELSEWHERE = 0.6
#: From this day on zones are controlled: work, school and transport at this share.
CONTROL_FROM = 4
CONTROLLED = 0.15
#: Daily chances of being found: in isolation (tests on the isolation days), by community
#: screening (before and after control), at a fever clinic once symptomatic.
ISOLATION_DETECT = 0.6
SCREEN_DETECT = (0.1, 0.4)
FEVER_CLINIC = 0.35
#: Days (low, high) from the report to discharge (confirmed) or release (asymptomatic).
DISCHARGE_AFTER = (10, 15)
SEVERE_DISCHARGE_AFTER = (18, 26)
RELEASE_AFTER = (7, 10)
#: Share of critical cases who die (about twenty days after the report).
CRITICAL_DEATHS = 0.2
#: Contacts an investigation names, (low, high) per setting, besides the whole household.
WORKPLACE_NAMED = (2, 5)
SCHOOL_NAMED = (3, 6)
QUEUE_NAMED = (0, 2)
TRANSPORT_NAMED = (0, 2)
#: Chance that an investigation finds a person the case infected, by setting.
TRACED = {
    "household": 1.0,
    "workplace": 0.9,
    "school": 0.9,
    "sampling_queue": 0.4,
    "transport": 0.3,
}
#: Share of close contacts whose transfer waits (pending today): one day, or for a third of
#: them two days (a bed or vehicle not ready; flagged red under the daily closure).
TRANSFER_WAITS = 0.15
TRANSFER_WAITS_TWO_DAYS = 1 / 3

SETTINGS = ("household", "workplace", "school", "sampling_queue", "transport")
FOUND_BY = ("community_screening", "isolation", "control", "fever_clinic", "hospital")


@dataclass
class Infection:
    """One infected person and their course."""

    person_id: int
    community: str
    infected_on: int
    infector: int | None
    setting: str
    #: Onset day (None: asymptomatic course) and the clinical type once confirmed.
    onset_on: int | None
    clinical_type: str | None
    #: Where they infected others, by setting, and whom (for the investigation).
    infected: dict[str, list[int]] = field(default_factory=dict)
    isolated_on: int | None = None
    isolated_home: bool = False
    found_on: int | None = None
    found_by: str | None = None
    #: Known before the process started (a positive of the testing round): the caller reports
    #: it through the testing flow.
    known: bool = False
    #: Seen at a fever clinic on day 1 (the report that opens the outbreak there).
    reported: bool = False
    reclassified_on: int | None = None
    closed_on: int | None = None
    closed_as: str | None = None


@dataclass(frozen=True)
class NewCase:
    person_id: int
    community: str
    found_by: str
    classification: str  # confirmed / asymptomatic
    clinical_type: str | None
    onset_on: int | None
    #: A positive of the testing round (reported through the testing flow).
    known: bool


@dataclass(frozen=True)
class Exposure:
    """A close contact named by a case's investigation."""

    case_person: int
    person_id: int
    setting: str
    on: int


@dataclass(frozen=True)
class Secondary:
    """A secondary contact: a household member of a close contact."""

    close_person: int
    person_id: int
    on: int


@dataclass
class DayEvents:
    day: int
    infections: int = 0
    infections_by_setting: dict[str, int] = field(default_factory=dict)
    cases: list[NewCase] = field(default_factory=list)
    exposures: list[Exposure] = field(default_factory=list)
    secondary: list[Secondary] = field(default_factory=list)
    #: Close contacts whose transfer waits, and how many days (1 or 2).
    transfer_waits: dict[int, int] = field(default_factory=dict)
    #: (person, clinical type) of asymptomatic cases confirmed today.
    reclassified: list[tuple[int, str]] = field(default_factory=list)
    #: (person, "discharged" / "released" / "died").
    closed: list[tuple[int, str]] = field(default_factory=list)


def clinical_type(rng: random.Random) -> str:
    u = rng.random()
    for kind, share in CLINICAL_MIX:
        if u < share:
            return kind
        u -= share
    return CLINICAL_MIX[0][0]


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method: the means here are small)."""
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class Outbreak:
    """The state of the outbreak, advanced a day at a time by :meth:`step`."""

    def __init__(self, world: World, seed: int) -> None:
        self.world = world
        self.seed = seed
        self.infections: dict[int, Infection] = {}
        #: People named as contacts so far (close or secondary), and when they are isolated.
        self.contacts: dict[int, int] = {}
        self.day = 0

    def rng(self, *names: object) -> random.Random:
        return random.Random(f"bastion/outbreak/{self.seed}/" + "/".join(map(str, names)))

    # Seeding ----------------------------------------------------------------------------------

    def infect(
        self, person: int, day: int, *, infector: int | None, setting: str, known: bool = False
    ) -> Infection | None:
        """Infect ``person`` on ``day`` (nothing if already infected); draws the course."""
        if person in self.infections:
            return None
        rng = self.rng("course", person)
        onset = None
        kind = None
        if rng.random() >= ASYMPTOMATIC_SHARE:
            onset = day + rng.randint(*INCUBATION)
            kind = clinical_type(rng)
        infection = Infection(
            person_id=person,
            community=self.world.residents[person].community,
            infected_on=day,
            infector=infector,
            setting=setting,
            onset_on=onset,
            clinical_type=kind,
            known=known,
        )
        isolated = self.contacts.get(person)
        if isolated is not None:
            infection.isolated_on = isolated
        self.infections[person] = infection
        return infection

    def seed_known(self, persons: Iterable[tuple[int, str]]) -> None:
        """Positives already found (by the testing round), as (person, grid or community):
        infected two days before day 1, reported on day 1."""
        for person, where in sorted(persons):
            self.world.community(where[:12])
            if person in self.world.residents:
                self.infect(person, -1, infector=None, setting="seed", known=True)

    def seed_hidden(self, count: int) -> list[int]:
        """``count`` infections nobody knows of yet, in communities weighted by residents
        (the ones the fever clinics and screening will find)."""
        rng = self.rng("hidden")
        seeded: list[int] = []
        for _ in range(count):
            community = self.world.pick_community(rng)
            person = self.world.pick_in(community, rng)
            if person is not None and self.infect(
                person, -rng.randint(2, 5), infector=None, setting="seed"
            ):
                seeded.append(person)
        return seeded

    def seed_reported(self, count: int) -> list[int]:
        """``count`` people with symptoms who come to a fever clinic on day 1, in communities
        weighted by residents: infected three or four days before, onset since."""
        rng = self.rng("reported")
        seeded: list[int] = []
        for _ in range(count):
            community = self.world.pick_community(rng)
            person = self.world.pick_in(community, rng)
            if person is None or person in self.infections:
                continue
            inf = self.infect(person, -rng.randint(3, 4), infector=None, setting="seed")
            if inf is None:
                continue
            # Symptomatic by day 1, whatever course was drawn: that is why they came.
            inf.onset_on = 1 if inf.onset_on is None else min(inf.onset_on, 1)
            inf.clinical_type = inf.clinical_type or clinical_type(self.rng("reported", person))
            inf.reported = True
            seeded.append(person)
        return seeded

    # The day ----------------------------------------------------------------------------------

    def step(self) -> DayEvents:
        """Advance one day and return what happened on it."""
        self.day += 1
        events = DayEvents(self.day)
        self._transmit(events)
        self._detect(events)
        self._course(events)
        return events

    def free(self, inf: Infection, day: int) -> bool:
        """Whether ``inf`` still moves among others on ``day``."""
        return (inf.found_on is None or inf.found_on > day) and (
            inf.isolated_on is None or inf.isolated_on > day
        )

    def _transmit(self, events: DayEvents) -> None:
        day = self.day
        controlled = day >= CONTROL_FROM
        outside = CONTROLLED if controlled else 1.0
        for person in sorted(self.infections):
            inf = self.infections[person]
            age = day - inf.infected_on
            if not (INFECTIOUS_FROM <= age <= INFECTIOUS_DAYS) or not self.free(inf, day):
                continue
            rng = self.rng("transmit", day, person)
            targets: list[tuple[str, int]] = []
            for other in self.world.household(person):
                if other != person and rng.random() < HOUSEHOLD_DAILY:
                    targets.append(("household", other))
            setting, group = self.world.group(person)
            daily = (WORKPLACE_DAILY if setting == "workplace" else SCHOOL_DAILY) * outside
            for other in group:
                if rng.random() < daily:
                    targets.append((setting, other))
            for _ in range(poisson(rng, QUEUE_DAILY * (0.5 if controlled else 1.0))):
                met = self.world.pick_in(inf.community, rng)
                if met is not None:
                    targets.append(("sampling_queue", met))
            for _ in range(poisson(rng, TRANSPORT_DAILY * outside)):
                community = inf.community
                if rng.random() < TRANSPORT_ELSEWHERE:
                    community = self.world.pick_community(rng, near=inf.community)
                met = self.world.pick_in(community, rng)
                if met is not None:
                    targets.append(("transport", met))
            for where, other in targets:
                if other in self.infections or self._isolated(other, day):
                    continue
                if self.infect(other, day, infector=person, setting=where) is None:
                    continue
                inf.infected.setdefault(where, []).append(other)
                events.infections += 1
                by_setting = events.infections_by_setting
                by_setting[where] = by_setting.get(where, 0) + 1

    def _isolated(self, person: int, day: int) -> bool:
        since = self.contacts.get(person)
        return since is not None and since <= day

    def _detect(self, events: DayEvents) -> None:
        day = self.day
        screen = SCREEN_DETECT[1] if day >= CONTROL_FROM else SCREEN_DETECT[0]
        found: list[Infection] = []
        for person in sorted(self.infections):
            inf = self.infections[person]
            if inf.found_on is not None or day - inf.infected_on < 2:
                continue
            rng = self.rng("detect", day, person)
            how: str | None = None
            if inf.known:
                how = "community_screening"
            elif inf.reported:
                how = "fever_clinic"
            elif inf.isolated_on is not None and inf.isolated_on <= day:
                if rng.random() < ISOLATION_DETECT:
                    how = "control" if inf.isolated_home else "isolation"
            elif (
                inf.onset_on is not None
                and day > inf.onset_on
                and inf.clinical_type in ("severe", "critical")
            ):
                how = "hospital"
            elif inf.onset_on is not None and day >= inf.onset_on and rng.random() < FEVER_CLINIC:
                how = "fever_clinic"
            elif rng.random() < screen:
                how = "community_screening"
            if how is not None:
                inf.found_on, inf.found_by = day, how
                found.append(inf)
        for inf in found:
            confirmed = inf.onset_on is not None and inf.onset_on <= day
            events.cases.append(
                NewCase(
                    person_id=inf.person_id,
                    community=inf.community,
                    found_by=inf.found_by or "other",
                    classification="confirmed" if confirmed else "asymptomatic",
                    clinical_type=inf.clinical_type if confirmed else None,
                    onset_on=inf.onset_on if confirmed else None,
                    known=inf.known,
                )
            )
        known_contacts = set(self.contacts)
        for inf in found:
            self._investigate(inf, events)
        self._secondaries(events, known_contacts)

    def _investigate(self, case: Infection, events: DayEvents) -> None:
        day = self.day
        rng = self.rng("investigate", case.person_id)
        named: dict[int, str] = {}

        def name(person: int, setting: str) -> None:
            if person == case.person_id or person in named:
                return
            other = self.infections.get(person)
            if other is not None and other.found_on is not None and other.found_on <= day:
                return  # a case already, not a contact
            named[person] = setting

        for member in self.world.household(case.person_id):
            name(member, "household")
        setting, group = self.world.group(case.person_id)
        if group:
            low, high = WORKPLACE_NAMED if setting == "workplace" else SCHOOL_NAMED
            for person in rng.sample(group, min(len(group), rng.randint(low, high))):
                name(person, setting)
        for _ in range(rng.randint(*QUEUE_NAMED)):
            met = self.world.pick_in(case.community, rng)
            if met is not None:
                name(met, "sampling_queue")
        for _ in range(rng.randint(*TRANSPORT_NAMED)):
            met = self.world.pick_in(self.world.pick_community(rng, case.community), rng)
            if met is not None:
                name(met, "transport")
        for where, people in sorted(case.infected.items()):
            for person in people:
                if rng.random() < TRACED[where]:
                    name(person, where)
        close = sorted(named)
        for person in close:
            events.exposures.append(Exposure(case.person_id, person, named[person], day))
            wait = 0
            if rng.random() < TRANSFER_WAITS:
                wait = 2 if rng.random() < TRANSFER_WAITS_TWO_DAYS else 1
                events.transfer_waits[person] = wait
            self._isolate(person, day + 1 + wait, home=False)

    def _secondaries(self, events: DayEvents, known_contacts: set[int]) -> None:
        """The household members of today's close contacts named outside their home, unless
        they are cases, close contacts today or contacts already."""
        day = self.day
        close = {e.person_id for e in events.exposures}
        named: set[int] = set()
        for exposure in events.exposures:
            if exposure.setting == "household":
                continue
            for member in self.world.household(exposure.person_id):
                if member in close or member in named or member in known_contacts:
                    continue
                other = self.infections.get(member)
                if other is not None and other.found_on is not None and other.found_on <= day:
                    continue
                named.add(member)
                events.secondary.append(Secondary(exposure.person_id, member, day))
                self._isolate(member, day + 1, home=False)

    def _isolate(self, person: int, day: int, *, home: bool) -> None:
        if person not in self.contacts or self.contacts[person] > day:
            self.contacts[person] = day
        inf = self.infections.get(person)
        if inf is not None and (inf.isolated_on is None or inf.isolated_on > day):
            inf.isolated_on, inf.isolated_home = day, home

    def _course(self, events: DayEvents) -> None:
        day = self.day
        for person in sorted(self.infections):
            inf = self.infections[person]
            if inf.found_on is None or inf.closed_on is not None or inf.found_on > day:
                continue
            rng = self.rng("course-end", person)
            symptomatic = inf.onset_on is not None
            if symptomatic and inf.found_on < (inf.onset_on or 0) and inf.onset_on == day:
                inf.reclassified_on = day
                events.reclassified.append((person, inf.clinical_type or "mild"))
            confirmed_on = inf.reclassified_on or inf.found_on
            if symptomatic and inf.onset_on is not None and inf.onset_on > day:
                continue  # still asymptomatic, reclassified later
            if not symptomatic:
                ends, status = inf.found_on + rng.randint(*RELEASE_AFTER), "released"
            elif inf.clinical_type in ("severe", "critical"):
                ends, status = confirmed_on + rng.randint(*SEVERE_DISCHARGE_AFTER), "discharged"
                if inf.clinical_type == "critical" and rng.random() < CRITICAL_DEATHS:
                    status = "died"
            else:
                ends, status = confirmed_on + rng.randint(*DISCHARGE_AFTER), "discharged"
            if ends == day:
                inf.closed_on, inf.closed_as = day, status
                events.closed.append((person, status))


def run(
    world: World,
    seed: int,
    days: int,
    *,
    known: Iterable[tuple[int, str]] = (),
    hidden: int = 0,
    reported: int = 0,
) -> list[DayEvents]:
    """The whole process for ``days`` days from the given seeds: a convenience for tests and
    for replaying days already written."""
    outbreak = Outbreak(world, seed)
    outbreak.seed_known(known)
    outbreak.seed_hidden(hidden)
    outbreak.seed_reported(reported)
    return [outbreak.step() for _ in range(days)]
