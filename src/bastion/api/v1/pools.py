"""Positive pools, holds, retest tasks and antigen self-tests."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["positive pools and retests"])
