"""Positive pools, holds and single-tube retests: what happens after results land.

:func:`process_results` is called right after results are recorded for a set of tubes. Every
step is one set-based statement over the tubes given (loaded into a temporary table), so a
whole round's 9,000 positive pools cost the same dozen statements as one:

- a **positive pooled tube** (pooled or household with room for more than one, or any tube with
  more than one member) holds all its members at once: one :class:`PoolHold` per tube (the event
  the health-code and tracing work consume) and a ``positive_pool`` retest task per member in the
  member's own grid, due within :data:`RETEST_WITHIN`;
- a **positive single tube** (not a retest) holds no one: its person is a positive, listed in the
  summary for the tracing work;
- a **retest** result closes the person's open task (pending or sampled): negative releases them,
  positive escalates them (listed in the summary); an invalid retest keeps the task open with a
  new deadline (or opens an ``invalid_result`` task for someone who had none). When every task
  of a hold is closed the hold closes as ``confirmed`` (a member was positive) or ``reversed``
  (all negative: a false-positive pool, the figure behind a lab's reversal rate);
- an **invalid** pooled or single tube sends each member to a retest (``invalid_result``), with no
  hold;
- a pool whose result is no longer positive (a conflict resolved for the other result) has its
  open hold **withdrawn**: closed with outcome ``withdrawn``, its members no longer held and their
  open tasks no longer owed (kept in the record, left out of the work lists);
- a **retest whose result changed** (a conflict resolved for the other result) carries the
  tasks it answered with it between negative and positive (released ↔ escalated), and the
  closed holds of those tasks are judged again (``confirmed`` / ``reversed``); cases opened
  meanwhile are left to the clinicians.

Processing the same tubes again changes nothing: holds are unique per tube, hold tasks per hold
and person, and every other task records the tube whose result made it owed
(``source_tube_id``). Tasks become ``sampled`` when a retest scan of the person lands after the
task was made (:func:`mark_retests_sampled`, for the ingest of retest scans or a periodic job;
:func:`process_results` runs the same sweep first for the people whose retest is invalid).

Concurrency: the caller has just written the results of these tubes, so their rows are locked by
its transaction and two calls never process one tube at once; holds about to close are locked
(see :data:`LOCK_CLOSING_HOLDS`).
"""

from bastion.testing.pools.holds import (
    held_person_ids,
    holds_for_person,
    lab_hold_outcomes,
    owed_clause,
)
from bastion.testing.pools.process import (
    MAX_ID,
    PoolsSummary,
    mark_retests_sampled,
    mark_retests_sampled_from_scans,
    process_results,
    unowed_retest_scans,
)
from bastion.testing.pools.views import (
    MAX_PAGE,
    HoldView,
    TaskView,
    get_hold,
    is_overdue,
    list_holds,
    list_tasks,
    my_tasks,
)

__all__ = [
    "MAX_ID",
    "MAX_PAGE",
    "HoldView",
    "PoolsSummary",
    "TaskView",
    "get_hold",
    "held_person_ids",
    "holds_for_person",
    "is_overdue",
    "lab_hold_outcomes",
    "list_holds",
    "list_tasks",
    "mark_retests_sampled",
    "mark_retests_sampled_from_scans",
    "my_tasks",
    "owed_clause",
    "process_results",
    "unowed_retest_scans",
]
