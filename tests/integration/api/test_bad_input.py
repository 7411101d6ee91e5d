"""Hostile values that once reached the database or the clock: 4xx, never 500."""

from __future__ import annotations

import pytest

from api_kit import Api, add_test_device

pytestmark = pytest.mark.integration


async def test_times_beyond_what_utc_can_hold_are_refused(api: Api) -> None:
    headers = api.a.headers("admin")
    audit = f"/v1/organizations/{api.a.organization_id}/audit"
    for value in ("9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+10:00"):
        response = await api.client.get(audit, headers=headers, params={"since": value})
        assert response.status_code == 422, value
        assert response.json()["error"]["code"] == "validation_error"
    device = await add_test_device(api.engine, api.a, 700000002)
    counts = f"/v1/devices/{device['id']}/message-counts"
    for before in ("0001-01-01T00:00:00Z", "-62135596800000"):
        response = await api.client.get(counts, headers=headers, params={"before": before})
        assert response.status_code in (200, 422), before
        if response.status_code == 200:
            assert response.json() == []


async def test_a_resume_id_from_the_far_future_is_not_found(api: Api) -> None:
    response = await api.client.get(
        "/v1/messages/stream",
        headers={**api.a.headers("read"), "Last-Event-ID": "ffffffff-ffff-7fff-bfff-ffffffffffff"},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_totp_codes_in_other_digits_are_refused(api: Api) -> None:
    from nubes.services import auth

    await auth.create_user(
        api.engine, email="t@example.com", password="password-t", organization=api.a.name
    )
    login = await api.client.post(
        "/v1/auth/login", json={"email": "t@example.com", "password": "password-t"}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    await api.client.post("/v1/auth/totp/setup", headers=headers)
    for code in (
        "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
    ):
        response = await api.client.post(
            "/v1/auth/totp/enable", headers=headers, json={"code": code}
        )
        assert response.status_code == 422, code
