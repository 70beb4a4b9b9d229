"""The numbers a simulated round is played by: attendance, arrivals by hour, site and lab
sizes, the minutes between the steps of a box, Ct values and the lead a round needs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import time, timedelta

#: Share of the residents who come to be sampled, drawn once per round from this range.
ATTENDANCE = (0.92, 0.97)
#: Share of households sampled at the neighbouring site (accepted, flagged off-grid).
OFF_GRID = 0.01
#: Within an infected household, the chance that each member is infected.
HOUSEHOLD_ATTACK = 0.8
#: Share of tubes found positive though nobody in them is infected: contamination from positive
#: samples in the lab, so only in a round with infected people (prevalence above 0).
FALSE_POSITIVE = 0.0002
#: Share of tubes whose result is invalid.
INVALID = 0.0005
#: Relative arrivals by local hour: sites open 07:00–22:00; people come before work, few at
#: lunch, most after work.
ARRIVALS_BY_HOUR: Mapping[int, float] = {
    7: 9,
    8: 11,
    9: 9,
    10: 7,
    11: 5,
    12: 3,
    13: 3,
    14: 4,
    15: 5,
    16: 6,
    17: 8,
    18: 10,
    19: 10,
    20: 7,
    21: 3,
}
OPENS, CLOSES = time(7, 0), time(22, 0)
#: A community larger than this gets a site per this many residents.
RESIDENTS_PER_SITE = 2_000
#: People one sampling team takes in an hour (about 1,800 a day, faster at the peak).
TEAM_PER_HOUR = 150
#: Lab capacity: one tube a day per this many residents of the city in the round (enough for a
#: 10-in-1 round and its retests at about 60% load; 5-in-1 or single tubes load it more).
RESIDENTS_PER_LAB_TUBE = 6
MIN_LAB_CAPACITY = 100
#: Minutes (low, high) between the steps of a box: packing → pick-up → receipt; hours after
#: receipt when the lab runs it; minutes from the run to the upload.
PICK_UP_AFTER = (20, 60)
TRANSIT = (30, 90)
TESTED_AFTER = (60, 240)
UPLOAD_AFTER = (5, 30)
#: A scanner's batch goes up a minute after its last scan; the box is packed five minutes later.
SYNC_AFTER = 60
PACK_AFTER = 300
#: Minutes (low, high) from a retest task to the person's retest, and seconds between retests.
RETEST_AFTER = (60, 180)
RETEST_SPACING = 30
#: Retest tasks of one home site made within the same window of this many hours go out together.
RETEST_WAVE_HOURS = 3
#: Ct values of positives (ORF1ab and N); false positives are weak (late cycles).
CT_RANGE = (18.0, 35.0)
CT_MODE = 27.0
CT_WEAK = 31.0
#: How long ago a round must have started: its sampling, results and retests all lie in the past.
LEAD = timedelta(hours=48)
#: How long before the start the round is opened.
OPENED_BEFORE = timedelta(hours=1)
DEFAULT_POLICY: Mapping[str, int | str] = {"lockdown": 1, "control": 5, "elsewhere": 10}
SOURCE = "simulation"

Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total): ``"sampling"`` counts residents whose community is done,
``"results"`` and ``"retests"`` count tubes resulted."""
