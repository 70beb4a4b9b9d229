"""Boxes and their hand-overs, lab receipt, results, conflicts and lab figures."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["transport and labs"])
