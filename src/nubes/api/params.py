"""Path parameters shared by several routers, described once for the OpenAPI document."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path

DeviceIdPath = Annotated[uuid.UUID, Path(description="The device's id")]
DownlinkIdPath = Annotated[uuid.UUID, Path(description="The downlink's id")]
OrganizationIdPath = Annotated[uuid.UUID, Path(description="The organization's id")]
ApiKeyIdPath = Annotated[uuid.UUID, Path(description="The API key's id (not the key itself)")]
