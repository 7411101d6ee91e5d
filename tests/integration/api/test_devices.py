"""Devices over the API: the routes of routers/devices.py, on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from api_kit import Api, Tenant, add_test_device
from nubes.store import tables as t

pytestmark = pytest.mark.integration

TOKEN = "98a8856ba6534bd5212176b22f3acbb3"
PSK = "00112233445566778899aabbccddeeff0011223344556677"


async def _create(api: Api, tenant: Tenant, serial: int, **extra: Any) -> dict[str, Any]:
    body = {"serial": serial, "claim_token": TOKEN, **extra}
    response = await api.client.post("/v1/devices", headers=tenant.headers("write"), json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _changed_at(api: Api, device_id: str) -> Any:
    async with api.engine.connect() as conn:
        query = sa.select(t.devices.c.changed_at).where(t.devices.c.id == uuid.UUID(device_id))
        return (await conn.execute(query)).scalar_one()


async def test_create_answers_the_device_with_defaults_and_no_secrets(api: Api) -> None:
    response = await api.client.post(
        "/v1/devices",
        headers=api.a.headers("write"),
        json={"serial": 2159018247, "claim_token": TOKEN, "psk": PSK},
    )
    assert response.status_code == 201
    device = response.json()
    assert device["serial"] == 2159018247
    assert device["label"] == "hsn:2159018247"
    assert device["name"] == "CHESTER 2159018247"
    assert device["organization_id"] == str(api.a.organization_id)
    assert device["group_id"] == str(api.a.group_id)
    assert device["enabled"] is True
    assert device["has_psk"] is True
    assert device["created_at"].endswith("Z") or device["created_at"].endswith("+00:00")
    assert TOKEN not in response.text
    assert PSK not in response.text
    assert "claim_token" not in device
    assert "psk" not in device


async def test_list_is_an_array_with_x_total_filtered_searched_and_sorted(api: Api) -> None:
    for serial, name in ((30, "bravo"), (10, "alpha"), (20, "charlie")):
        await _create(api, api.a, serial, name=name)
    await _create(api, api.b, 40, name="alpha-of-b")
    headers = api.a.headers("read")
    listing = await api.client.get(
        "/v1/devices", headers=headers, params={"sort_field": "name", "sort_order": "desc"}
    )
    assert listing.status_code == 200
    assert listing.headers["x-total"] == "3"
    assert [d["name"] for d in listing.json()] == ["charlie", "bravo", "alpha"]
    by_serial = await api.client.get(
        "/v1/devices", headers=headers, params={"sort_field": "serial", "limit": 2, "offset": 1}
    )
    assert [d["serial"] for d in by_serial.json()] == [20, 30]
    assert by_serial.headers["x-total"] == "3"
    found = await api.client.get("/v1/devices", headers=headers, params={"q": "ALPH"})
    assert [d["serial"] for d in found.json()] == [10]
    by_label = await api.client.get("/v1/devices", headers=headers, params={"q": "hsn:2"})
    assert [d["serial"] for d in by_label.json()] == [20]
    in_group = await api.client.get(
        "/v1/devices", headers=headers, params={"group_id": str(api.a.group_id)}
    )
    assert in_group.headers["x-total"] == "3"


async def test_v1_put_changes_only_the_fields_given_and_touches_the_device(api: Api) -> None:
    device = await _create(api, api.a, 77, name="before", label="L1")
    before = await _changed_at(api, device["id"])
    response = await api.client.put(
        f"/v1/device/{device['id']}", headers=api.a.headers("write"), json={"name": "after"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "after"
    assert response.json()["label"] == "L1"
    assert await _changed_at(api, device["id"]) > before
    patched = await api.client.patch(
        f"/v1/devices/{device['id']}", headers=api.a.headers("write"), json={"enabled": False}
    )
    assert patched.json()["enabled"] is False
    disabled = await api.client.get(
        "/v1/devices", headers=api.a.headers("read"), params={"enabled": "false"}
    )
    assert [d["id"] for d in disabled.json()] == [device["id"]]
    single = await api.client.get(f"/v1/device/{device['id']}", headers=api.a.headers("read"))
    assert single.json()["name"] == "after"


async def test_moving_to_a_group_of_another_organization_is_refused(api: Api) -> None:
    device = await _create(api, api.a, 78)
    other = await api.client.put(
        f"/v1/devices/{device['id']}",
        headers=api.a.headers("write"),
        json={"group_id": str(api.b.group_id)},
    )
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
    group = await api.client.post(
        "/v1/groups", headers=api.a.headers("write"), json={"name": "lab"}
    )
    moved = await api.client.put(
        f"/v1/devices/{device['id']}",
        headers=api.a.headers("write"),
        json={"group_id": group.json()["id"]},
    )
    assert moved.json()["group_id"] == group.json()["id"]


async def test_other_tenants_devices_answer_404_like_missing_ones(api: Api) -> None:
    device = await _create(api, api.a, 79)
    path = f"/v1/devices/{device['id']}"
    headers = api.b.headers("admin")
    assert (await api.client.get(path, headers=headers)).status_code == 404
    assert (await api.client.get(f"/v1/device/{device['id']}", headers=headers)).status_code == 404
    assert (await api.client.put(path, headers=headers, json={"name": "x"})).status_code == 404
    assert (await api.client.delete(path, headers=headers)).status_code == 404
    assert (await api.client.post(f"{path}/reveal", headers=headers)).status_code == 404
    missing = await api.client.get(
        "/v1/devices/00000000-0000-0000-0000-000000000000", headers=headers
    )
    assert missing.status_code == 404
    listing = await api.client.get(
        "/v1/devices", headers=headers, params={"organization_id": str(api.a.organization_id)}
    )
    assert listing.status_code == 404


async def test_read_keys_cannot_write_and_write_keys_cannot_set_secrets(api: Api) -> None:
    read = await api.client.post(
        "/v1/devices", headers=api.a.headers("read"), json={"serial": 5, "claim_token": TOKEN}
    )
    assert read.status_code == 403
    assert read.json()["error"]["code"] == "forbidden"
    device = await _create(api, api.a, 6)
    path = f"/v1/devices/{device['id']}"
    put = await api.client.put(path, headers=api.a.headers("read"), json={"name": "x"})
    assert put.status_code == 403
    assert (await api.client.delete(path, headers=api.a.headers("read"))).status_code == 403
    secret = await api.client.put(path, headers=api.a.headers("write"), json={"psk": PSK})
    assert secret.status_code == 403
    admin = await api.client.put(path, headers=api.a.headers("admin"), json={"psk": PSK})
    assert admin.status_code == 200
    assert admin.json()["has_psk"] is True
    assert PSK not in admin.text


async def test_reveal_needs_admin_shows_secrets_and_is_audited(api: Api) -> None:
    device = await _create(api, api.a, 7, psk=PSK)
    path = f"/v1/devices/{device['id']}/reveal"
    assert (await api.client.post(path, headers=api.a.headers("write"))).status_code == 403
    revealed = await api.client.post(path, headers=api.a.headers("admin"))
    assert revealed.status_code == 200
    assert revealed.json() == {"claim_token": TOKEN, "psk": PSK}
    audit = await api.client.get(
        f"/v1/organizations/{api.a.organization_id}/audit",
        headers=api.a.headers("admin"),
        params={"action": "device"},
    )
    assert [e["action"] for e in audit.json()] == ["device.reveal", "device.create"]
    assert TOKEN not in audit.text
    assert PSK not in audit.text


async def test_secrets_never_appear_outside_reveal(api: Api) -> None:
    device = await _create(api, api.a, 8, psk=PSK)
    new_token = "ffeeddccbbaa99887766554433221100"
    headers = api.a.headers("admin")
    changed = await api.client.patch(
        f"/v1/devices/{device['id']}", headers=headers, json={"claim_token": new_token}
    )
    answers = [
        changed,
        await api.client.get("/v1/devices", headers=headers),
        await api.client.get(f"/v1/devices/{device['id']}", headers=headers),
        await api.client.get(f"/v1/organizations/{api.a.organization_id}/audit", headers=headers),
    ]
    for answer in answers:
        assert answer.status_code == 200
        for secret in (TOKEN, new_token, PSK):
            assert secret not in answer.text.lower()
    revealed = await api.client.post(f"/v1/devices/{device['id']}/reveal", headers=headers)
    assert revealed.json()["claim_token"] == new_token


async def test_ble_passkey_is_shown_to_admins_only(api: Api) -> None:
    device = await _create(api, api.a, 9)
    async with api.engine.begin() as conn:
        await conn.execute(
            sa.update(t.devices)
            .where(t.devices.c.id == uuid.UUID(device["id"]))
            .values(ble_passkey="123456")
        )
    path = f"/v1/devices/{device['id']}"
    assert (await api.client.get(path, headers=api.a.headers("admin"))).json()[
        "ble_passkey"
    ] == "123456"
    for scope in ("read", "write"):
        assert (await api.client.get(path, headers=api.a.headers(scope))).json()[
            "ble_passkey"
        ] is None


async def test_delete_hides_the_device_and_the_serial_can_be_added_again(api: Api) -> None:
    device = await _create(api, api.a, 11, name="first")
    path = f"/v1/devices/{device['id']}"
    before = await _changed_at(api, device["id"])
    assert (await api.client.delete(path, headers=api.a.headers("write"))).status_code == 204
    assert (await api.client.get(path, headers=api.a.headers("read"))).status_code == 404
    listing = await api.client.get("/v1/devices", headers=api.a.headers("read"))
    assert listing.headers["x-total"] == "0"
    async with api.engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    sa.select(t.devices).where(t.devices.c.id == uuid.UUID(device["id"]))
                )
            )
            .mappings()
            .one()
        )
    assert row["deleted_at"] is not None
    assert row["enabled"] is False
    assert row["changed_at"] > before
    again = await _create(api, api.b, 11, name="second")
    assert again["id"] != device["id"]
    assert again["serial"] == 11
    assert (await api.client.get(path, headers=api.a.headers("read"))).status_code == 404


async def test_a_serial_in_use_is_a_conflict(api: Api) -> None:
    await add_test_device(api.engine, api.b, 12)
    response = await api.client.post(
        "/v1/devices", headers=api.a.headers("write"), json={"serial": 12, "claim_token": TOKEN}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    "body",
    [
        {"serial": 0, "claim_token": TOKEN},
        {"serial": 2**32, "claim_token": TOKEN},
        {"serial": 1, "claim_token": "abc"},
        {"serial": 1, "claim_token": "zz" * 16},
        {"serial": 1, "claim_token": TOKEN, "psk": "00" * 15},
        {"serial": 1, "claim_token": TOKEN, "name": "x" * 101},
        {"claim_token": TOKEN},
    ],
)
async def test_invalid_bodies_answer_422_with_the_error_shape(
    api: Api, body: dict[str, Any]
) -> None:
    response = await api.client.post("/v1/devices", headers=api.a.headers("write"), json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"]


async def test_writes_are_audited_without_secret_values(api: Api) -> None:
    device = await _create(api, api.a, 13, psk=PSK)
    headers = api.a.headers("admin")
    await api.client.put(f"/v1/devices/{device['id']}", headers=headers, json={"psk": ""})
    await api.client.delete(f"/v1/devices/{device['id']}", headers=headers)
    audit = await api.client.get(
        f"/v1/organizations/{api.a.organization_id}/audit",
        headers=headers,
        params={"action": "device"},
    )
    entries = audit.json()
    assert [e["action"] for e in entries] == ["device.delete", "device.update", "device.create"]
    assert entries[1]["details"] == {"fields": ["psk"]}
    assert entries[2]["details"]["serial"] == 13
    assert entries[0]["object_id"] == device["id"]
    assert PSK not in audit.text


async def test_a_new_psk_keeps_the_replaced_one_valid_for_its_grace(api: Api) -> None:
    device = await _create(api, api.a, 9, psk=PSK)
    path = f"/v1/devices/{device['id']}"
    headers = api.a.headers("admin")
    assert device["psk_previous_until"] is None
    newer = "ab" * 32
    before = datetime.now(UTC)
    changed = await api.client.patch(path, headers=headers, json={"psk": newer})
    assert changed.status_code == 200, changed.text
    until = datetime.fromisoformat(changed.json()["psk_previous_until"])
    assert timedelta(days=7) <= until - before < timedelta(days=7, minutes=1)
    assert PSK not in changed.text
    async with api.engine.connect() as conn:
        row = (await conn.execute(sa.select(t.devices).where(t.devices.c.serial == 9))).one()
    assert (row.psk.hex(), row.psk_previous.hex()) == (newer, PSK)
    revealed = await api.client.post(f"{path}/reveal", headers=headers)
    assert revealed.json()["psk"] == newer
    at_once = await api.client.patch(
        path, headers=headers, json={"psk": PSK, "psk_grace_seconds": 0}
    )
    assert at_once.json()["psk_previous_until"] is None
    too_long = await api.client.patch(
        path, headers=headers, json={"psk": newer, "psk_grace_seconds": 10**9}
    )
    assert too_long.status_code == 422
