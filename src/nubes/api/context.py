"""What the API's routes share: the settings and the adapters of the process.

Built once by `bootstrap` and stored on `app.state.ctx`; routes reach it
through the dependencies of `nubes.api.deps`, never through globals.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from nubes.config import Settings
from nubes.pipeline.cache import Cache
from nubes.pipeline.live import Live


@dataclass(slots=True)
class ApiContext:
    settings: Settings
    engine: AsyncEngine
    cache: Cache
    live: Live
