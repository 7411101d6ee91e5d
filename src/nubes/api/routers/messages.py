"""Routes of the messages resource (to be filled)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["messages"])
