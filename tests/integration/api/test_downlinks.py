"""Downlinks over the API: queue, list, show with the device's answer, cancel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
import sqlalchemy as sa

from api_kit import Api, add_test_device, insert_messages
from nubes import flap
from nubes.codec import codec_from_yaml, codec_hash, hash_hex, yaml_to_cbor
from nubes.store import tables as t

pytestmark = pytest.mark.integration

ENCODER = resources.files("nubes.sim").joinpath("codecs", "demo.encoder.yaml").read_text()


def _path(device: dict[str, Any]) -> str:
    return f"/v1/devices/{device['id']}/downlinks"


async def _changed_at(api: Api, device: dict[str, Any]) -> datetime:
    async with api.engine.connect() as conn:
        query = sa.select(t.devices.c.changed_at).where(t.devices.c.id == device["id"])
        value: datetime = (await conn.execute(query)).scalar_one()
    return value


async def _audit_actions(api: Api) -> list[tuple[str, str | None]]:
    a = t.audit_log
    query = (
        sa.select(a.c.action, a.c.object_id).where(a.c.action.like("downlink.%")).order_by(a.c.id)
    )
    async with api.engine.connect() as conn:
        return [(row[0], row[1]) for row in await conn.execute(query)]


async def _add_encoder(api: Api, device: dict[str, Any]) -> str:
    cbor = yaml_to_cbor(ENCODER)
    encoder_hash = hash_hex(codec_hash(cbor))
    now = datetime.now(UTC)
    async with api.engine.begin() as conn:
        await conn.execute(
            sa.insert(t.codecs).values(
                id=uuid.uuid4(),
                organization_id=device["organization_id"],
                hash=encoder_hash,
                kind="encoder",
                name=codec_from_yaml(ENCODER).name,
                cbor=cbor,
                source="device",
                created_at=now,
                updated_at=now,
            )
        )
        await conn.execute(
            sa.update(t.devices)
            .where(t.devices.c.id == device["id"])
            .values(encoder_hash=encoder_hash)
        )
    return encoder_hash


async def test_queue_each_kind_stores_the_flap_message_and_touches_the_device(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 3001)
    headers = api.a.headers("write")
    before = await _changed_at(api, device)
    config = await api.client.post(
        _path(device), headers=headers, json={"kind": "config", "lines": ["app config interval 5"]}
    )
    assert config.status_code == 201, config.text
    body = config.json()
    assert body["kind"] == "config"
    assert body["state"] == "pending"
    assert body["request"] == ["app config interval 5"]
    assert body["attempts"] == 0
    assert body["reply"] is None
    assert body["expires_at"] > body["created_at"]
    assert await _changed_at(api, device) > before
    async with api.engine.connect() as conn:
        query = sa.select(t.downlinks.c.message).where(t.downlinks.c.id == uuid.UUID(body["id"]))
        message = (await conn.execute(query)).scalar_one()
    assert message == flap.encode_download_config(["app config interval 5"])

    shell = await api.client.post(
        _path(device), headers=headers, json={"kind": "shell", "commands": ["app config show"]}
    )
    assert shell.status_code == 201, shell.text
    assert shell.json()["request"] == ["app config show"]

    encoder_hash = await _add_encoder(api, device)
    data = await api.client.post(
        _path(device), headers=headers, json={"kind": "data", "data": {"led_r": 1, "led_y": 0}}
    )
    assert data.status_code == 201, data.text
    async with api.engine.connect() as conn:
        query = sa.select(t.downlinks.c.message).where(
            t.downlinks.c.id == uuid.UUID(data.json()["id"])
        )
        message = (await conn.execute(query)).scalar_one()
    assert message == bytes.fromhex("86" + encoder_hash + "a200010200")
    assert [action for action, _ in await _audit_actions(api)] == ["downlink.queue"] * 3


async def test_what_cannot_be_queued_answers_422_in_the_error_shape(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 3002)
    headers = api.a.headers("write")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kind": "config", "lines": ["config save"]}, "downlink_error"),
        ({"kind": "data", "data": {"led_r": 1}}, "downlink_error"),  # no encoder yet
        ({"kind": "config", "lines": ["nul \u0000 inside"]}, "downlink_error"),
        ({"kind": "config", "lines": []}, "validation_error"),
        ({"kind": "shell"}, "validation_error"),
        ({"kind": "firmware", "url": "x"}, "validation_error"),
        ({"lines": ["a"]}, "validation_error"),
    ]
    for body, code in cases:
        response = await api.client.post(_path(device), headers=headers, json=body)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == code, body
        assert error["message"]
    await _add_encoder(api, device)
    unknown = await api.client.post(
        _path(device), headers=headers, json={"kind": "data", "data": {"nothing": 1}}
    )
    assert unknown.status_code == 422
    assert "nothing" in unknown.json()["error"]["message"]
    assert await _audit_actions(api) == []


async def test_list_newest_first_with_state_filter_and_reply(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 3003)
    headers = api.a.headers("write")
    ids = []
    for command in ("first", "second", "third"):
        created = await api.client.post(
            _path(device), headers=headers, json={"kind": "shell", "commands": [command]}
        )
        ids.append(created.json()["id"])
    [reply_id] = await insert_messages(
        api.engine, device, 1, type_name="shell", body={"results": [{"command": "first"}]}
    )
    now = datetime.now(UTC)
    async with api.engine.begin() as conn:
        await conn.execute(
            sa.update(t.downlinks)
            .where(t.downlinks.c.id == uuid.UUID(ids[0]))
            .values(
                state="delivered",
                attempts=1,
                sent_at=now,
                delivered_at=now,
                reply_message_id=reply_id,
            )
        )
    listed = await api.client.get(_path(device), headers=api.a.headers("read"))
    assert listed.status_code == 200, listed.text
    assert [d["id"] for d in listed.json()] == ids[::-1]
    assert listed.headers["x-total"] == "3"
    delivered = await api.client.get(
        _path(device), headers=api.a.headers("read"), params={"state": "delivered"}
    )
    assert [d["id"] for d in delivered.json()] == [ids[0]]
    assert delivered.headers["x-total"] == "1"
    one = await api.client.get(f"/v1/downlinks/{ids[0]}", headers=api.a.headers("read"))
    assert one.status_code == 200
    body = one.json()
    assert body["state"] == "delivered"
    assert body["reply_message_id"] == str(reply_id)
    assert body["reply"] == {"results": [{"command": "first"}]}
    assert body["sent_at"] is not None
    assert body["delivered_at"] is not None
    bad = await api.client.get(_path(device), headers=headers, params={"state": "lost"})
    assert bad.status_code == 422


async def test_cancel_pending_then_409_for_final_states(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 3004)
    headers = api.a.headers("write")
    created = [
        (
            await api.client.post(
                _path(device), headers=headers, json={"kind": "shell", "commands": [c]}
            )
        ).json()["id"]
        for c in ("a", "b")
    ]
    before = await _changed_at(api, device)
    cancelled = await api.client.post(f"/v1/downlinks/{created[0]}/cancel", headers=headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    assert await _changed_at(api, device) > before
    again = await api.client.post(f"/v1/downlinks/{created[0]}/cancel", headers=headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    async with api.engine.begin() as conn:
        await conn.execute(
            sa.update(t.downlinks)
            .where(t.downlinks.c.id == uuid.UUID(created[1]))
            .values(state="delivered")
        )
    delivered = await api.client.delete(f"/v1/downlinks/{created[1]}", headers=headers)
    assert delivered.status_code == 409
    assert "delivered" in delivered.json()["error"]["message"]
    audit = await _audit_actions(api)
    assert audit[-1] == ("downlink.cancel", created[0])
    assert [action for action, _ in audit].count("downlink.cancel") == 1


async def test_delete_cancels_like_post(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 3005)
    created = await api.client.post(
        _path(device), headers=api.a.headers("write"), json={"kind": "config", "lines": ["x"]}
    )
    deleted = await api.client.delete(
        f"/v1/downlinks/{created.json()['id']}", headers=api.a.headers("write")
    )
    assert deleted.status_code == 200
    assert deleted.json()["state"] == "cancelled"


async def test_levels_and_tenants(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 3006)
    shell = {"kind": "shell", "commands": ["app config show"]}
    refused = await api.client.post(_path(device), headers=api.a.headers("read"), json=shell)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    created = await api.client.post(_path(device), headers=api.a.headers("write"), json=shell)
    downlink_id = created.json()["id"]
    read = api.a.headers("read")
    assert (await api.client.get(_path(device), headers=read)).status_code == 200
    assert (await api.client.get(f"/v1/downlinks/{downlink_id}", headers=read)).status_code == 200
    cancel = await api.client.post(f"/v1/downlinks/{downlink_id}/cancel", headers=read)
    assert cancel.status_code == 403
    other = api.b.headers("admin")
    for method, path, body in (
        ("POST", _path(device), shell),
        ("GET", _path(device), None),
        ("GET", f"/v1/downlinks/{downlink_id}", None),
        ("POST", f"/v1/downlinks/{downlink_id}/cancel", None),
        ("DELETE", f"/v1/downlinks/{downlink_id}", None),
        ("GET", f"/v1/downlinks/{uuid.uuid4()}", None),
        ("POST", f"/v1/devices/{uuid.uuid4()}/downlinks", shell),
    ):
        response = await api.client.request(method, path, headers=other, json=body)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"
    still = await api.client.get(f"/v1/downlinks/{downlink_id}", headers=read)
    assert still.json()["state"] == "pending"
