"""Routes of the live resource (to be filled)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["live"])
