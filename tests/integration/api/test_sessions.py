"""Sessions and the communication log: the routes of routers/sessions.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from api_kit import Api, add_test_device, insert_messages
from nubes import flap
from nubes.store import tables as t

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def _session(api: Api, device: dict[str, Any], session_id: int, start: datetime) -> None:
    async with api.engine.begin() as conn:
        await conn.execute(
            sa.insert(t.sessions).values(
                id=session_id,
                device_id=device["id"],
                organization_id=device["organization_id"],
                envelope="base64",
                remote_address="192.0.2.7",
                remote_port=40000,
                started_at=start,
                last_activity_at=start + timedelta(seconds=5),
                packets_in=3,
                attributes={"fw_version": "v3.1.0"},
            )
        )


async def _log(
    api: Api, device: dict[str, Any], session_id: int | None, rows: list[tuple[str, str, int]]
) -> None:
    """Log rows `(direction, outcome, flags)`, one second apart from T0, ids in reverse."""
    values = [
        {
            "session_id": session_id,
            "device_id": device["id"],
            "at": T0 + timedelta(seconds=i),
            "direction": direction,
            "envelope": "base64",
            "remote": "192.0.2.7:40000",
            "flags": flags,
            "seq": i,
            "size": 40 + i,
            "outcome": outcome,
            "detail": None,
            "message_id": None,
        }
        for i, (direction, outcome, flags) in enumerate(rows)
    ]
    async with api.engine.begin() as conn:
        # Inserted newest first: the log must follow the time, not the ids.
        for row in reversed(values):
            await conn.execute(sa.insert(t.session_log).values(row))


async def test_sessions_of_a_device_newest_first_and_one_session(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 2001)
    for i, session_id in enumerate((11, 12, 13)):
        await _session(api, device, session_id, T0 + timedelta(minutes=i))
    headers = api.a.headers("read")
    listed = await api.client.get(f"/v1/devices/{device['id']}/sessions", headers=headers)
    assert listed.status_code == 200, listed.text
    assert [s["id"] for s in listed.json()] == [13, 12, 11]
    assert listed.headers["x-total"] == "3"
    paged = await api.client.get(
        f"/v1/devices/{device['id']}/sessions",
        headers=headers,
        params={"offset": 1, "limit": 1, "sort_order": "asc"},
    )
    assert [s["id"] for s in paged.json()] == [12]
    assert paged.headers["x-total"] == "3"
    one = await api.client.get("/v1/sessions/12", headers=headers)
    assert one.status_code == 200
    body = one.json()
    assert body["device_id"] == str(device["id"])
    assert body["envelope"] == "base64"
    assert body["packets_in"] == 3
    assert body["attributes"] == {"fw_version": "v3.1.0"}
    assert body["ended_at"] is None


async def test_session_log_in_time_order_with_filters(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 2002)
    await _session(api, device, 21, T0)
    await _log(
        api,
        device,
        21,
        [("in", "accepted", flap.F), ("out", "ack", flap.A), ("in", "duplicate", flap.F)],
    )
    path = "/v1/sessions/21/log"
    headers = api.a.headers("read")
    log = await api.client.get(path, headers=headers)
    assert log.status_code == 200, log.text
    assert log.headers["x-total"] == "3"
    entries = log.json()
    assert [e["outcome"] for e in entries] == ["accepted", "ack", "duplicate"]
    first = entries[0]
    assert first["flags"] == flap.F
    assert first["flags_text"] == flap.flag_text(flap.F)
    assert first["flags_text"].startswith("[F")
    assert first["session_id"] == 21
    assert first["remote"] == "192.0.2.7:40000"
    assert first["size"] == 40
    assert {"at", "direction", "envelope", "seq", "detail", "message_id"} <= set(first)
    incoming = await api.client.get(path, headers=headers, params={"direction": "in"})
    assert [e["outcome"] for e in incoming.json()] == ["accepted", "duplicate"]
    assert incoming.headers["x-total"] == "2"
    acks = await api.client.get(path, headers=headers, params={"outcome": "ack"})
    assert [e["direction"] for e in acks.json()] == ["out"]
    page = await api.client.get(path, headers=headers, params={"offset": 2, "limit": 1000})
    assert [e["outcome"] for e in page.json()] == ["duplicate"]
    too_many = await api.client.get(path, headers=headers, params={"limit": 1001})
    assert too_many.status_code == 422
    assert too_many.json()["error"]["code"] == "validation_error"
    bad = await api.client.get(path, headers=headers, params={"direction": "sideways"})
    assert bad.status_code == 422


async def test_device_log_spans_sessions_newest_first(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 2003)
    await _session(api, device, 31, T0)
    await _log(api, device, None, [("in", "bad_mac", 0)])
    async with api.engine.begin() as conn:
        await conn.execute(
            sa.insert(t.session_log).values(
                session_id=31,
                device_id=device["id"],
                at=T0 + timedelta(minutes=1),
                direction="in",
                envelope="base64",
                remote="192.0.2.7:40000",
                flags=None,
                seq=None,
                size=12,
                outcome="invalid",
                detail="too short",
            )
        )
    log = await api.client.get(f"/v1/devices/{device['id']}/log", headers=api.a.headers("read"))
    assert log.status_code == 200, log.text
    entries = log.json()
    assert [e["outcome"] for e in entries] == ["invalid", "bad_mac"]
    assert entries[0]["flags"] is None
    assert entries[0]["flags_text"] is None
    assert entries[1]["session_id"] is None
    assert log.headers["x-total"] == "2"
    filtered = await api.client.get(
        f"/v1/devices/{device['id']}/log",
        headers=api.a.headers("read"),
        params={"outcome": "bad_mac", "sort_order": "asc"},
    )
    assert [e["outcome"] for e in filtered.json()] == ["bad_mac"]


async def test_other_tenants_and_missing_objects_answer_404(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 2004)
    await _session(api, device, 41, T0)
    await _log(api, device, 41, [("in", "accepted", flap.F)])
    other = api.b.headers("admin")
    for path in (
        f"/v1/devices/{device['id']}/sessions",
        f"/v1/devices/{device['id']}/log",
        "/v1/sessions/41",
        "/v1/sessions/41/log",
        f"/v1/devices/{uuid.uuid4()}/sessions",
        f"/v1/devices/{uuid.uuid4()}/log",
        "/v1/sessions/999999",
        "/v1/sessions/999999/log",
    ):
        response = await api.client.get(path, headers=other)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    missing = await api.client.get("/v1/sessions/999999", headers=api.a.headers("read"))
    assert missing.json() == (await api.client.get("/v1/sessions/41", headers=other)).json()
    assert (await api.client.get("/v1/sessions/41")).status_code == 401


async def test_bad_ids_are_validation_errors_not_crashes(api: Api) -> None:
    headers = api.a.headers("read")
    for path in (
        "/v1/sessions/-1",
        "/v1/sessions/99999999999999999999999",
        "/v1/sessions/abc/log",
        "/v1/devices/not-a-uuid/sessions",
    ):
        response = await api.client.get(path, headers=headers)
        assert response.status_code == 422, path
    nul = await api.client.get("/v1/sessions/1/log", headers=headers, params={"outcome": "a\x00b"})
    assert nul.status_code == 422


async def test_the_bluetooth_passkey_is_for_admins_only(api: Api) -> None:
    """The session attributes and the session message both carry it; viewers see neither."""
    device = await add_test_device(api.engine, api.a, 700000001)
    async with api.engine.begin() as conn:
        await conn.execute(
            sa.insert(t.sessions).values(
                id=77,
                device_id=device["id"],
                organization_id=device["organization_id"],
                envelope="base64",
                remote_address="192.0.2.7",
                remote_port=40000,
                started_at=T0,
                last_activity_at=T0,
                attributes={"fw_version": "v3.1.0", "ble_passkey": "654321"},
            )
        )
    await insert_messages(
        api.engine,
        device,
        1,
        type_name="session",
        body={"fw_version": "v3.1.0", "ble_passkey": "654321"},
    )
    paths = [
        "/v1/sessions/77",
        f"/v1/devices/{device['id']}/sessions",
        f"/v1/messages?device_id={device['id']}",
        f"/v1/messages/export?device_id={device['id']}&format=ndjson",
        f"/v1/messages/export?device_id={device['id']}&format=csv",
    ]
    for scope in ("read", "write"):
        for path in paths:
            response = await api.client.get(path, headers=api.a.headers(scope))
            assert response.status_code == 200, path
            assert "654321" not in response.text, (scope, path)
            assert "v3.1.0" in response.text, (scope, path)
    for path in paths:
        response = await api.client.get(path, headers=api.a.headers("admin"))
        assert "654321" in response.text, path
    listed = await api.client.get(
        f"/v1/messages?device_id={device['id']}", headers=api.a.headers("read")
    )
    assert listed.json()[0]["raw"] == ""  # the device's bytes hold the passkey too
