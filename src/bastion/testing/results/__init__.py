"""The one bulk path for lab results: the API's JSON lists and ``bastion testing import-results``
files both land here.

A result row names the lab, the tube, the result (negative / positive / invalid, or 阴性 / 阳性 /
无效), the Ct values for ORF1ab and N, the receipt time (optional) and the test time; the upload
time is now. Rows are checked in two stages, a chunk at a time so a file of millions keeps
memory flat:

1. row by row in Python, for what a row alone tells: the lab is known and in the user's
   subtree, the barcode is well formed, the result is one of the three, Ct values are numbers in
   range (0 < Ct ≤ 45), a positive carries at least one Ct value, times parse;
2. against the record, with the chunk's barcodes staged in a temporary table and the tubes,
   their boxes and their conflicts read back in one query each; the pure rules
   (:func:`bastion.testing.rules.check_result_times`) then judge each row, and the verdicts are
   applied set-based (one UPDATE … FROM a temporary table, one bulk insert of conflicts).

Decisions (issue #3):

- A result is accepted only from the lab that received the tube. A tube with no receipt yet
  (it was missing from its lab's receipt scan) is received from the result row itself when the
  row carries ``received_at`` and the lab is the one that received the tube's box. A row from
  any other lab is refused ("wrong lab"); one for a tube whose box no lab has received, or
  without ``received_at`` when the tube has no receipt, is refused ("not received").
  When the tube already has a receipt, the box scan's time is authoritative and the row's
  ``received_at`` is only checked for form.
- Times must run sampling → receipt → test → upload; the test time may run ahead of the
  server's clock by :data:`CLOCK_SKEW` (lab instruments' clocks drift), never more.
- A second result equal to the one on record (same result, same Ct values to within 0.005; the test
  time is not compared) is "unchanged", so a re-uploaded file changes nothing. A different one
  becomes a :class:`~bastion.testing.models.ResultConflict` for a person to resolve, never an
  overwrite; the same contradicting value sent again is unchanged too (one conflict per value).
  This holds for a first result of "invalid" as well: re-runs of an invalid tube go through
  conflict resolution or, better, a new retest tube.
- Capacity is never a reason to refuse: overload shows in the lab's load figure.
- After each chunk lands, :func:`bastion.testing.pools.process_results` is called with the
  tubes that got a new result (holds and retests for positive pools are that module's work).
"""

from bastion.testing.results.conflicts import (
    ConflictView,
    TubeResult,
    get_tube_result,
    list_conflicts,
    resolve_conflict,
)
from bastion.testing.results.rows import CHUNK, COLUMNS, RawResult, ResultReport
from bastion.testing.results.upload import import_results_file, upload_results

__all__ = [
    "CHUNK",
    "COLUMNS",
    "ConflictView",
    "RawResult",
    "ResultReport",
    "TubeResult",
    "get_tube_result",
    "import_results_file",
    "list_conflicts",
    "resolve_conflict",
    "upload_results",
]
