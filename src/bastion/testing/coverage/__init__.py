"""Coverage and timeliness of a round: required, sampled, in time, results out, positives.

A city's view must answer in well under a second on a full round (9 M people, 900 k tubes), so
it never counts tube members: it reads ``round_coverage``, one row per round and home region
(a grid), whose counters are kept as the record changes, set-based, in the writer's transaction:

- :func:`snapshot_required` when the round opens (who must be tested, by the round's exemption
  rules, see :mod:`bastion.testing.exemptions`);
- :func:`add_sampled_from_verdict` from the scan ingest, right after it lands a chunk (it reads
  the ingest's temporary table ``scan_verdict``);
- :func:`add_results` (and :func:`remove_results` before a recorded result is changed) from the
  result path.

``required`` counts who the round's rules name. People under isolation control (a pending or
active placement, any setting) or with an open case, and not sampled in the round, are *excused*:
tested on their own schedule. They are taken out live, as of the moment a figure or the list is
read (:func:`excused_by_home` joined to the counters in :func:`counts_by_region`,
``RoundRules.required(..., person=)`` in the not-tested list), never written into the counters:
no writer of placements or cases has to call coverage (ADR 0009). Every reader of the required
figure goes through :func:`counts_by_region` (the views) or :func:`figures` (a region's totals:
the bulletin's round section, the simulator's summary), so none of them disagrees.

:func:`rebuild` recomputes every figure from the record: the repair path, and the oracle the
tests hold the counters to. The view rolls grids up to any ancestor by code prefix, reading only
the round's rows inside the asked region (a range on the primary key).

The bulletin's "screened that day" and cumulative person-times come from
``round_screening_hours`` (scans per round, UTC hour and home district), kept by the same ingest
hook, so a province's day is a sum over a few thousand rows.
"""

from bastion.testing.coverage.counters import (
    add_results,
    add_sampled_from_verdict,
    excused,
    excused_by_home,
    excused_by_region,
    freeze_excused,
    rebuild,
    remove_results,
    snapshot_required,
)
from bastion.testing.coverage.schemas import (
    CoverageFigures,
    CoverageRow,
    CoverageView,
    RoundStatus,
    Screened,
)
from bastion.testing.coverage.views import (
    MAX_PAGE,
    counts_by_region,
    figures,
    get_round,
    not_tested,
    round_status,
    screened,
    screened_cumulative,
    screened_on,
    view,
)

__all__ = [
    "MAX_PAGE",
    "CoverageFigures",
    "CoverageRow",
    "CoverageView",
    "RoundStatus",
    "Screened",
    "add_results",
    "add_sampled_from_verdict",
    "counts_by_region",
    "excused",
    "excused_by_home",
    "excused_by_region",
    "figures",
    "freeze_excused",
    "get_round",
    "not_tested",
    "rebuild",
    "remove_results",
    "round_status",
    "screened",
    "screened_cumulative",
    "screened_on",
    "snapshot_required",
    "view",
]
