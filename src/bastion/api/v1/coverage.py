"""Round coverage and timeliness, and the people not yet tested."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["coverage"])
