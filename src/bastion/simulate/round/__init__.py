"""A whole mass-testing round over the demo province, through the paths real data takes.

:func:`simulate_round` plays one round of 采、送、检、报 for the residents of a region:

1. **Set-up.** The round over the region (pool policy lockdown 1, control 5, elsewhere 10 unless
   given), one lab per city in the region (「长春市第1检测实验室」, one tube a day per
   :data:`RESIDENTS_PER_LAB_TUBE` residents), and sampling sites: one per community, or one per
   ~:data:`RESIDENTS_PER_SITE` residents of a larger one, each serving a run of the community's
   grids, open 07:00–22:00, with enough teams for its peak hour. Each is created through
   :mod:`bastion.testing.service` unless its code exists already.
2. **Sampling.** Per community (its residents read in one set-based query), most residents
   (a share drawn from :data:`ATTENDANCE`) come to their site within the round's window, at
   times that follow a daily curve (:data:`ARRIVALS_BY_HOUR`: morning peak, lunch dip, evening
   peak). The members of a household who come arrive together; a few households
   (:data:`OFF_GRID`) go to the neighbouring site instead, one that does not serve their grid
   (accepted, flagged off-grid). A site serves its queue at its hourly capacity; tubes are
   filled in scan order (k people a pooled tube, one a single tube, one household a household
   tube where the zone's policy says so) and closed at each hourly packing. Each site's hour of
   scans is one batch through :func:`bastion.testing.ingest.ingest_scans`, under a key made from
   the round code.
3. **Transport.** Each hour's tubes are packed into a box five minutes after the scanner's batch
   went up, picked up by a courier 20–60 minutes later and received by the city's lab 30–90
   minutes after that (:mod:`bastion.testing.transport`).
4. **Results.** Infection is clustered by household: a household is infected with probability
   ``prevalence / HOUSEHOLD_ATTACK``, each of its members then with :data:`HOUSEHOLD_ATTACK`, so
   about ``prevalence`` of the people are. A tube is positive if it holds an infected person,
   or, rarely, falsely (:data:`FALSE_POSITIVE` of tubes, contamination from positive samples,
   so never in a round without infection); a few are invalid (:data:`INVALID`).
   Positives carry Ct values of 18–35 for ORF1ab and N. A box is run 1–4 hours after its
   receipt, and each lab uploads the runs of an hour together minutes after the hour ends, through
   :func:`bastion.testing.results.upload_results`, which holds the members of positive pools and
   makes their retest tasks (:mod:`bastion.testing.pools`). Results go up once every box is
   received, lab by lab in time order.
5. **Retests.** Every open retest task of the round gets a single-tube retest (kind ``retest``)
   at the person's home site 1–3 hours after the task was made, through the same ingest, boxes
   and upload; it is positive exactly when the person is infected, which closes the task and,
   with the last of a pool's, the hold (``confirmed``, or ``reversed`` for a false positive).

Every hand-over happens with the clock frozen at its own moment
(:func:`bastion.core.clock.frozen`), so receipt, test and upload times are realistic and no
record is dated after the clock it was written under. A round must therefore have started at
least :data:`LEAD` ago: its sampling, results and retests all lie in the past.

Determinism: every draw comes from a generator keyed by the seed and a stable name (a community
code, a site, a box, a tube barcode), never from the order of the work, so the same seed over the
same registry gives the same tubes holding the same people, the same results and the same
figures. Every write goes under a code or key derived from the round code, so running the same
round again changes nothing (scan batches replay, boxes and results are found as they are).

Memory stays flat: one community's residents (a few thousand) and one site's queue at a time;
what is kept for the whole round is the grid → site map, the boxes awaiting their lab run, and
the infected people sampled and their tubes (for the results and the retests).
"""

from __future__ import annotations

import bastion.models  # noqa: F401 - every table mapped: rounds and boxes name users
from bastion.simulate.round.layout import split_grids, teams_for
from bastion.simulate.round.params import (
    ARRIVALS_BY_HOUR,
    ATTENDANCE,
    CLOSES,
    CT_MODE,
    CT_RANGE,
    CT_WEAK,
    DEFAULT_POLICY,
    FALSE_POSITIVE,
    HOUSEHOLD_ATTACK,
    INVALID,
    LEAD,
    MIN_LAB_CAPACITY,
    OFF_GRID,
    OPENED_BEFORE,
    OPENS,
    PACK_AFTER,
    PICK_UP_AFTER,
    RESIDENTS_PER_LAB_TUBE,
    RESIDENTS_PER_SITE,
    RETEST_AFTER,
    RETEST_SPACING,
    RETEST_WAVE_HOURS,
    SOURCE,
    SYNC_AFTER,
    TEAM_PER_HOUR,
    TESTED_AFTER,
    TRANSIT,
    UPLOAD_AFTER,
    Progress,
)
from bastion.simulate.round.people import Member, plan_community
from bastion.simulate.round.service import default_start, simulate_round
from bastion.simulate.round.summary import RoundSummary, summarise
from bastion.simulate.round.tubes import Value, ct_pair, fill_tubes, tube_result
from bastion.simulate.round.window import arrival_window

__all__ = [
    "ARRIVALS_BY_HOUR",
    "ATTENDANCE",
    "CLOSES",
    "CT_MODE",
    "CT_RANGE",
    "CT_WEAK",
    "DEFAULT_POLICY",
    "FALSE_POSITIVE",
    "HOUSEHOLD_ATTACK",
    "INVALID",
    "LEAD",
    "MIN_LAB_CAPACITY",
    "OFF_GRID",
    "OPENED_BEFORE",
    "OPENS",
    "PACK_AFTER",
    "PICK_UP_AFTER",
    "RESIDENTS_PER_LAB_TUBE",
    "RESIDENTS_PER_SITE",
    "RETEST_AFTER",
    "RETEST_SPACING",
    "RETEST_WAVE_HOURS",
    "SOURCE",
    "SYNC_AFTER",
    "TEAM_PER_HOUR",
    "TESTED_AFTER",
    "TRANSIT",
    "UPLOAD_AFTER",
    "Member",
    "Progress",
    "RoundSummary",
    "Value",
    "arrival_window",
    "ct_pair",
    "default_start",
    "fill_tubes",
    "plan_community",
    "simulate_round",
    "split_grids",
    "summarise",
    "teams_for",
    "tube_result",
]
