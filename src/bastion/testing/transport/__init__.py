"""Boxes of tubes and their hand-overs (转运): packed at a site, picked up by a courier, received
by a lab; and the reconciliation of what the system put in a box against what people counted
and scanned at each hand-over.

The chain of custody, as decided for issue #3:

- **Pack** (site staff: ``transport.write`` and ``scans.write``). Every tube scanned into the
  box must exist, belong to the box's round and site, have people bound to it, and be in no
  box yet. Packing is all-or-nothing: one bad tube refuses the box with every problem listed,
  so the physical box and the record never disagree from the start. The declared count is kept
  as counted; a difference from the tubes scanned is a reconciliation mismatch, not a refusal.
  Re-sending the same pack (same code, round, site and tubes) returns the box unchanged.
- **Pick-up** (``transport.write``): packed → in transit; only once.
- **Receipt** (lab staff: ``transport.write`` and ``results.write``): packed or in transit →
  received. A lab may receive a box straight from the site (no courier scan: small sites carry
  their own boxes), but never twice. The lab's region must lie in the user's subtree; the box's
  site need not (cross-city lab allocation is normal).
- Each hand-over records the number of tubes the scanner counted and, when the scanner sends
  them, the barcodes it scanned. At receipt with barcodes, only the box's tubes that were
  scanned become "received" at that lab; tubes missing from the scan stay in transit and extra
  tubes are not taken in: both are reported, never silently accepted. (A missing tube found
  later can be received through its lab's result upload, see :mod:`bastion.testing.results`.)
"""

from __future__ import annotations

from bastion.testing.transport.delays import Delays, LateBox, UnboxedAtSite, transport_delays
from bastion.testing.transport.handovers import pick_up_box, receive_box
from bastion.testing.transport.inputs import (
    BOX_CODE_RE,
    CLOCK_SKEW,
    MAX_TUBES_PER_BOX,
    PACKED,
    PICKED_UP,
    RECEIVED,
)
from bastion.testing.transport.pack import pack_box
from bastion.testing.transport.views import (
    BoxView,
    HandOver,
    Mismatch,
    box_view,
    get_box,
    reconcile,
)

__all__ = [
    "BOX_CODE_RE",
    "CLOCK_SKEW",
    "MAX_TUBES_PER_BOX",
    "PACKED",
    "PICKED_UP",
    "RECEIVED",
    "BoxView",
    "Delays",
    "HandOver",
    "LateBox",
    "Mismatch",
    "UnboxedAtSite",
    "box_view",
    "get_box",
    "pack_box",
    "pick_up_box",
    "receive_box",
    "reconcile",
    "transport_delays",
]
