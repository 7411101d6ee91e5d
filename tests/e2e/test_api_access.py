"""Access as an operator sets it up: `nubes user create`, sign-in, a proxy in front.

Real `nubes serve`, real HTTP: the command-line user signs in through the
API, and the rate limit counts the client address a trusted proxy names in
X-Forwarded-For, not the proxy's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_cli_user_signs_in_and_limits_follow_the_forwarded_address(
    nubes_factory: Any, tmp_path: Path
) -> None:
    nubes = nubes_factory({"NUBES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/nubes.db"})
    nubes.start("serve")
    assert "first start: created user admin@localhost" in nubes.logs()
    nubes.run(
        "user",
        "create",
        "--email",
        "ops@example.com",
        "--password",
        "a long secret",
        "--org",
        "acme",
        "--role",
        "admin",
    )
    with httpx.Client(base_url=nubes.api_url, timeout=10) as client:
        login = client.post(
            "/v1/auth/login", json={"email": "ops@example.com", "password": "a long secret"}
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
        assert [(o["organization_name"], o["role"]) for o in me["organizations"]] == [
            ("acme", "admin")
        ]

        guesser = {"X-Forwarded-For": "203.0.113.7", "X-API-Key": "nbk_guessing"}
        statuses = {client.get("/v1/auth/me", headers=guesser).status_code for _ in range(20)}
        assert statuses == {401}
        blocked = client.get("/v1/auth/me", headers={**guesser, "X-API-Key": "nbk_again"})
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) > 0
        neighbour = client.get(
            "/v1/auth/me",
            headers={"X-Forwarded-For": "203.0.113.8", "Authorization": f"Bearer {token}"},
        )
        assert neighbour.status_code == 200
    # The generated admin password is in the log once, and no other secret is.
    logs = nubes.logs()
    assert logs.count("with password") == 1
    assert "a long secret" not in logs
    assert token not in logs
