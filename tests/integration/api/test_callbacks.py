"""Callbacks over the API: the routes of routers/callbacks.py, on both backends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from api_kit import Api, Tenant, add_test_device, insert_messages, running_api
from nubes.callbacks.model import DEFAULT_RETRY_DELAYS
from nubes.callbacks.request import verify
from nubes.store import tables as t
from nubes.store.database import Database

pytestmark = pytest.mark.integration

SECRET = "s3cret-signing-key-0123456789"
TOKEN = "Bearer tok-9f8e7d6c5b4a"
CLIME = {
    "hygrometer": {"temperature": 21.5, "humidity": 40.2},
    "accelerometer": {"orientation": 3},
    "battery": {"voltage": 3.6},
}
EXAMPLE = (
    '{"external_temperature": data.hygrometer.temperature,'
    ' "external_humidity": data.hygrometer.humidity,'
    ' "device_orientation": data.accelerometer.orientation}'
)


@pytest.fixture
async def api_private(migrated_db: Database) -> AsyncIterator[Api]:
    """The API with callbacks allowed to reach loopback (the receiver of the test)."""
    async with running_api(migrated_db.engine, callback_allow_private=True) as running:
        yield running


async def _create(api: Api, tenant: Tenant, scope: str = "write", **fields: Any) -> dict[str, Any]:
    body = {"name": "farm", "url": "https://farm.example.com/hook", **fields}
    response = await api.client.post(
        f"/v1/groups/{tenant.group_id}/callbacks", headers=tenant.headers(scope), json=body
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _device_with_message(
    api: Api, tenant: Tenant, serial: int = 2159018247, body: dict[str, Any] | None = None
) -> tuple[dict[str, Any], uuid.UUID]:
    device = await add_test_device(api.engine, tenant, serial, name="greenhouse")
    [message_id] = await insert_messages(api.engine, device, 1, body=body or CLIME)
    return device, message_id


async def _audit(api: Api, tenant: Tenant) -> list[dict[str, Any]]:
    a = t.audit_log
    query = sa.select(a).where(a.c.organization_id == tenant.organization_id).order_by(a.c.id)
    async with api.engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


# --- configuration ---------------------------------------------------------------


async def test_create_with_defaults(api: Api) -> None:
    created = await _create(api, api.a)
    assert set(created) == {
        "id",
        "organization_id",
        "group_id",
        "name",
        "enabled",
        "note",
        "method",
        "url",
        "query_params",
        "headers",
        "content_type",
        "payload",
        "triggers",
        "timeout",
        "retry_delays",
        "has_secret",
        "version",
        "created_at",
        "updated_at",
        "last_success_at",
        "last_failure_at",
        "failure_streak",
        "paused_until",
        "state",
    }
    assert created["organization_id"] == str(api.a.organization_id)
    assert created["group_id"] == str(api.a.group_id)
    assert created["enabled"] is True
    assert created["note"] is None
    assert created["method"] == "POST"
    assert created["query_params"] == []
    assert created["headers"] == []
    assert created["content_type"] == "application/json"
    assert created["payload"] == ""
    assert created["triggers"] == ["data"]
    assert created["timeout"] == 10
    assert created["retry_delays"] == list(DEFAULT_RETRY_DELAYS)
    assert created["has_secret"] is False
    assert created["version"] == 1
    assert created["failure_streak"] == 0
    assert created["state"] == "healthy"
    assert created["last_success_at"] is None
    assert created["paused_until"] is None


async def test_every_field_and_the_secret_is_never_shown(api: Api) -> None:
    fields = {
        "name": "clime",
        "enabled": False,
        "note": "to the farm server",
        "method": "PUT",
        "url": "https://farm.example.com/{{device.serial_number}}?t={{data.hygrometer.temperature}}",
        "query_params": [{"name": "site", "value": "north {{label}}"}],
        "headers": [{"name": "Authorization", "value": TOKEN}, {"name": "X-Site", "value": "n"}],
        "content_type": "application/x-www-form-urlencoded",
        "payload": EXAMPLE,
        "triggers": ["data", "stats", "data"],
        "timeout": 2.5,
        "retry_delays": [1, 2.5, 604800],
        "secret": SECRET,
    }
    created = await _create(api, api.a, **fields)
    for key, value in fields.items():
        if key not in ("secret", "triggers"):
            assert created[key] == value, key
    assert created["triggers"] == ["data", "stats"]
    assert created["has_secret"] is True
    headers = api.a.headers("read")
    responses = [
        await api.client.get(f"/v1/callbacks/{created['id']}", headers=api.a.headers("write")),
        await api.client.get(f"/v1/groups/{api.a.group_id}/callbacks", headers=headers),
        await api.client.patch(
            f"/v1/callbacks/{created['id']}", headers=api.a.headers("admin"), json={"name": "x"}
        ),
    ]
    for response in responses:
        assert response.status_code == 200
        assert SECRET not in response.text
    assert "secret" not in responses[0].json()
    # Readers see credentials of headers redacted; writers see them to edit them.
    assert responses[0].json()["headers"][0]["value"] == TOKEN
    shown = responses[1].json()[0]["headers"]
    assert shown == [
        {"name": "Authorization", "value": "[redacted]"},
        {"name": "X-Site", "value": "n"},
    ]
    audit = await _audit(api, api.a)
    assert [row["action"] for row in audit if row["action"].startswith("callback")] == [
        "callback.create",
        "callback.update",
    ]
    assert SECRET not in str(audit)
    assert "tok-9f8e7d6c5b4a" not in str(audit)


async def test_put_and_patch_change_the_fields_given_and_bump_the_version(api: Api) -> None:
    created = await _create(api, api.a, note="memo")
    path = f"/v1/callbacks/{created['id']}"
    headers = api.a.headers("write")
    put = await api.client.put(path, headers=headers, json={"name": "renamed", "method": "GET"})
    assert put.status_code == 200, put.text
    assert put.json()["name"] == "renamed"
    assert put.json()["method"] == "GET"
    assert put.json()["url"] == created["url"]
    assert put.json()["note"] == "memo"
    assert put.json()["version"] == 2
    assert put.json()["updated_at"] >= created["updated_at"]
    patched = await api.client.patch(
        path, headers=headers, json={"enabled": False, "note": "", "name": None, "timeout": 60}
    )
    assert patched.status_code == 200
    body = patched.json()
    assert body["enabled"] is False
    assert body["note"] is None
    assert body["name"] == "renamed"
    assert body["timeout"] == 60
    assert body["version"] == 3
    deleted = await api.client.delete(path, headers=headers)
    assert deleted.status_code == 204
    assert (await api.client.get(path, headers=headers)).status_code == 404
    assert (await api.client.patch(path, headers=headers, json={"name": "y"})).status_code == 404
    listing = await api.client.get(f"/v1/groups/{api.a.group_id}/callbacks", headers=headers)
    assert listing.json() == []
    assert listing.headers["x-total"] == "0"
    actions = [row["action"] for row in await _audit(api, api.a)]
    assert actions[-4:] == [
        "callback.create",
        "callback.update",
        "callback.update",
        "callback.delete",
    ]


async def test_listing_sorts_and_pages(api: Api) -> None:
    for name in ("b", "c", "a"):
        await _create(api, api.a, name=name)
    await _create(api, api.b, name="other")
    path = f"/v1/groups/{api.a.group_id}/callbacks"
    headers = api.a.headers("read")
    listing = await api.client.get(path, headers=headers)
    assert [c["name"] for c in listing.json()] == ["a", "b", "c"]
    assert listing.headers["x-total"] == "3"
    page = await api.client.get(
        path, headers=headers, params={"sort_order": "desc", "offset": 1, "limit": 1}
    )
    assert [c["name"] for c in page.json()] == ["b"]
    by_time = await api.client.get(path, headers=headers, params={"sort_field": "created_at"})
    assert [c["name"] for c in by_time.json()] == ["b", "c", "a"]


async def test_the_secret_is_changed_by_admins_only(api: Api) -> None:
    created = await _create(api, api.a, secret=SECRET)
    path = f"/v1/callbacks/{created['id']}"
    refused = await api.client.patch(path, headers=api.a.headers("write"), json={"secret": "new"})
    assert refused.status_code == 403
    changed = await api.client.patch(path, headers=api.a.headers("admin"), json={"secret": "new"})
    assert changed.status_code == 200
    assert changed.json()["has_secret"] is True
    removed = await api.client.put(path, headers=api.a.headers("admin"), json={"secret": ""})
    assert removed.json()["has_secret"] is False
    async with api.engine.connect() as conn:
        stored = await conn.scalar(sa.select(t.callbacks.c.secret))
    assert stored is None


@pytest.mark.parametrize(
    ("fields", "field", "position", "code"),
    [
        ({"payload": '{"a": data.x,'}, "payload", 13, "S0203"),
        ({"payload": "data.("}, "payload", None, None),
        ({"url": "ftp://farm.example.com/"}, "url", 0, "invalid_url"),
        ({"url": "farm.example.com/hook"}, "url", 0, "invalid_url"),
        ({"url": "https:///hook"}, "url", 8, "invalid_url"),
        ({"url": "https://farm.example.com/a b"}, "url", 26, "invalid_url"),
        ({"url": "https://farm.example.com/?t={{data..t}}"}, "url", 35, "invalid_template"),
        ({"url": "https://farm.example.com/?t={{data.t"}, "url", 28, "invalid_template"),
        (
            {"headers": [{"name": "X-Ok", "value": "a"}, {"name": "X-Ok", "value": "a\r\nb: c"}]},
            "headers[1].value",
            1,
            "invalid_header_value",
        ),
        (
            {"headers": [{"name": "X-Ok", "value": "a\x00"}]},
            "headers[0].value",
            1,
            "invalid_header_value",
        ),
        (
            {"headers": [{"name": "X Bad", "value": "a"}]},
            "headers[0].name",
            1,
            "invalid_header_name",
        ),
        ({"headers": [{"name": "X:y", "value": "a"}]}, "headers[0].name", 1, "invalid_header_name"),
        (
            {"headers": [{"name": "Content-Length", "value": "1"}]},
            "headers[0].name",
            None,
            "reserved_header",
        ),
        (
            {"headers": [{"name": "X-T", "value": "{{ data.a b }}"}]},
            "headers[0].value",
            9,
            "invalid_template",
        ),
        (
            {"headers": [{"name": "X-T", "value": "café"}]},
            "headers[0].value",
            3,
            "invalid_header_value",
        ),
        (
            {"headers": [{"name": "X-Nubes-Signature", "value": "forged"}]},
            "headers[0].name",
            None,
            "reserved_header",
        ),
        (
            {"query_params": [{"name": "t", "value": "a\x00"}]},
            "query_params[0].value",
            1,
            "invalid_text",
        ),
        (
            {"query_params": [{"name": "t", "value": "{{}}"}]},
            "query_params[0].value",
            0,
            "invalid_template",
        ),
    ],
)
async def test_invalid_settings_are_refused_with_the_position(
    api: Api, fields: dict[str, Any], field: str, position: int | None, code: str | None
) -> None:
    body = {"name": "bad", "url": "https://farm.example.com/", **fields}
    path = f"/v1/groups/{api.a.group_id}/callbacks"
    response = await api.client.post(path, headers=api.a.headers("write"), json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(f"{field}: ")
    assert error["details"]["field"] == field
    if position is not None:
        assert error["details"]["position"] == position
    if code is not None:
        assert error["details"]["code"] == code
    # The same checks guard changes.
    created = await _create(api, api.a)
    changed = await api.client.patch(
        f"/v1/callbacks/{created['id']}", headers=api.a.headers("write"), json=fields
    )
    assert changed.status_code == 422
    assert changed.json()["error"]["details"] == error["details"]
    async with api.engine.connect() as conn:
        versions = (await conn.execute(sa.select(t.callbacks.c.version))).scalars().all()
    assert versions == [1]


@pytest.mark.parametrize(
    "fields",
    [
        {"method": "DELETE"},
        {"content_type": "text/plain"},
        {"triggers": ["nonsense"]},
        {"triggers": []},
        {"timeout": 0},
        {"timeout": 61},
        {"retry_delays": [0]},
        {"retry_delays": [604801]},
        {"retry_delays": [1] * 21},
        {"name": ""},
        {"name": "a\x00b"},
        {"secret": ""},
        {"url": ""},
    ],
)
async def test_out_of_bounds_fields_are_refused(api: Api, fields: dict[str, Any]) -> None:
    body = {"name": "bad", "url": "https://farm.example.com/", **fields}
    path = f"/v1/groups/{api.a.group_id}/callbacks"
    response = await api.client.post(path, headers=api.a.headers("write"), json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


# --- preview ---------------------------------------------------------------------


async def test_preview_of_the_cloud_md_example(api: Api) -> None:
    device, message_id = await _device_with_message(api, api.a)
    path = f"/v1/groups/{api.a.group_id}/callbacks/preview"
    response = await api.client.post(path, headers=api.a.headers("read"), json={"payload": EXAMPLE})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["error"] is None
    assert answer["skipped"] is False
    assert answer["transformed"] == {
        "external_temperature": 21.5,
        "external_humidity": 40.2,
        "device_orientation": 3,
    }
    original = answer["original"]
    assert original["id"] == str(message_id)
    assert original["data"] == CLIME
    assert original["type"] == "data"
    assert original["device"] == {
        "id": str(device["id"]),
        "name": "greenhouse",
        "serial_number": 2159018247,
        "label": "hsn:2159018247",
    }
    same = await api.client.post(
        path, headers=api.a.headers("read"), json={"payload": "", "message_id": str(message_id)}
    )
    assert same.json()["transformed"] == original
    skipped = await api.client.post(
        path, headers=api.a.headers("read"), json={"payload": "data.nothing"}
    )
    assert skipped.json()["skipped"] is True
    assert skipped.json()["transformed"] is None


async def test_preview_takes_the_latest_or_the_chosen_message(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 7)
    first, latest = await insert_messages(api.engine, device, 2)
    path = f"/v1/groups/{api.a.group_id}/callbacks/preview"
    headers = api.a.headers("read")
    answer = await api.client.post(path, headers=headers, json={"payload": "data.counter"})
    assert answer.json()["transformed"] == 1
    assert answer.json()["original"]["id"] == str(latest)
    chosen = await api.client.post(
        path, headers=headers, json={"payload": "data.counter", "message_id": str(first)}
    )
    assert chosen.json()["original"]["id"] == str(first)
    assert chosen.json()["skipped"] is False
    assert chosen.json()["transformed"] == 0


async def test_preview_answers_errors_with_their_position(api: Api) -> None:
    await _device_with_message(api, api.a)
    path = f"/v1/groups/{api.a.group_id}/callbacks/preview"
    headers = api.a.headers("read")
    bad = await api.client.post(path, headers=headers, json={"payload": '{"a": data.x,'})
    assert bad.status_code == 200
    assert bad.json()["error"]["position"] == 13
    assert bad.json()["error"]["code"] == "S0203"
    assert bad.json()["error"]["message"]
    assert bad.json()["original"]["data"] == CLIME
    assert bad.json()["transformed"] is None
    failed = await api.client.post(path, headers=headers, json={"payload": '$number("x")'})
    assert failed.status_code == 200
    assert failed.json()["error"]["message"]
    assert failed.json()["transformed"] is None


async def test_preview_of_a_group_without_messages(api: Api) -> None:
    path = f"/v1/groups/{api.a.group_id}/callbacks/preview"
    answer = await api.client.post(path, headers=api.a.headers("read"), json={"payload": "data"})
    assert answer.status_code == 200
    assert answer.json()["original"] is None
    assert answer.json()["transformed"] is None
    assert "no messages" in answer.json()["error"]["message"]
    assert answer.json()["error"]["code"] == "no_message"


async def test_preview_refuses_messages_of_other_groups_and_tenants(api: Api) -> None:
    _, theirs = await _device_with_message(api, api.b, serial=99)
    created = await api.client.post(
        "/v1/groups", headers=api.a.headers("write"), json={"name": "elsewhere"}
    )
    other_group = uuid.UUID(created.json()["id"])
    device = await add_test_device(api.engine, api.a, 5)
    async with api.engine.begin() as conn:
        d = t.devices
        await conn.execute(sa.update(d).where(d.c.id == device["id"]).values(group_id=other_group))
    device["group_id"] = other_group
    [elsewhere] = await insert_messages(api.engine, device, 1)
    path = f"/v1/groups/{api.a.group_id}/callbacks/preview"
    for message_id in (theirs, elsewhere, uuid.uuid4()):
        answer = await api.client.post(
            path, headers=api.a.headers("read"), json={"payload": "", "message_id": str(message_id)}
        )
        assert answer.status_code == 404, answer.text


# --- test requests ---------------------------------------------------------------


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A minimal HTTP/1.1 endpoint on loopback that records what it gets."""

    requests: list[Received] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Received(method, target, headers, body))
        answer = b'{"stored":true}'
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Receiver: yes\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(answer), answer)
        )
        await writer.drain()
        writer.close()


@asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    endpoint = Receiver()
    server = await asyncio.start_server(endpoint.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield endpoint, f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_test_sends_one_real_request(api_private: Api) -> None:
    api = api_private
    _, message_id = await _device_with_message(api, api.a)
    async with receiver() as (endpoint, url):
        created = await _create(
            api,
            api.a,
            url=url + "/hook/{{device.serial_number}}",
            query_params=[{"name": "t", "value": "{{data.hygrometer.temperature}}"}],
            headers=[{"name": "Authorization", "value": TOKEN}],
            payload=EXAMPLE,
            secret=SECRET,
        )
        response = await api.client.post(
            f"/v1/callbacks/{created['id']}/test", headers=api.a.headers("write")
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["ok"] is True
    assert answer["error"] is None
    assert answer["skipped"] is False
    assert answer["response"]["status"] == 201
    assert answer["response"]["body"] == '{"stored":true}'
    assert ["x-receiver", "yes"] in [[n.lower(), v] for n, v in answer["response"]["headers"]]
    assert answer["duration_ms"] > 0
    [received] = endpoint.requests
    assert received.method == "POST"
    assert received.target == "/hook/2159018247?t=21.5"
    assert received.headers["authorization"] == TOKEN
    assert received.headers["x-nubes-message"] == str(message_id)
    assert received.headers["user-agent"].startswith("nubes/")
    timestamp = received.headers["x-nubes-timestamp"]
    assert verify(SECRET, timestamp, received.body, received.headers["x-nubes-signature"])
    logged = answer["request"]
    assert logged["method"] == "POST"
    assert logged["url"].endswith("/hook/2159018247?t=21.5")
    assert ["Authorization", "[redacted]"] in logged["headers"]
    assert TOKEN not in response.text
    assert SECRET not in response.text
    async with api.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(t.deliveries)) == 0
    audit = await _audit(api, api.a)
    assert audit[-1]["action"] == "callback.test"
    assert audit[-1]["details"]["status"] == 201


async def test_test_with_a_chosen_message_and_a_skipping_payload(api_private: Api) -> None:
    api = api_private
    device, _ = await _device_with_message(api, api.a)
    [chosen] = await insert_messages(
        api.engine,
        device,
        1,
        body={"hygrometer": {"temperature": -3}},
        start=datetime(2020, 1, 1, tzinfo=UTC),
    )
    async with receiver() as (endpoint, url):
        created = await _create(api, api.a, url=url, method="GET", payload="data.hygrometer")
        path = f"/v1/callbacks/{created['id']}/test"
        response = await api.client.post(
            path, headers=api.a.headers("write"), json={"message_id": str(chosen)}
        )
        assert response.json()["ok"] is True
        assert endpoint.requests[0].target == "/?temperature=-3"
        assert endpoint.requests[0].method == "GET"
        await api.client.patch(
            f"/v1/callbacks/{created['id']}",
            headers=api.a.headers("write"),
            json={"payload": "data.nothing"},
        )
        skipped = await api.client.post(path, headers=api.a.headers("write"))
    assert skipped.json()["skipped"] is True
    assert skipped.json()["request"] is None
    assert "skipped" in skipped.json()["error"]
    assert len(endpoint.requests) == 1


async def test_test_refuses_loopback_unless_allowed(api: Api) -> None:
    await _device_with_message(api, api.a)
    created = await _create(api, api.a, url="http://127.0.0.1:9/hook")
    response = await api.client.post(
        f"/v1/callbacks/{created['id']}/test", headers=api.a.headers("write"), json={}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["ok"] is False
    assert answer["response"] is None
    assert "loopback" in answer["error"]
    assert answer["request"]["url"] == "http://127.0.0.1:9/hook"


async def test_test_needs_a_message(api: Api) -> None:
    created = await _create(api, api.a)
    response = await api.client.post(
        f"/v1/callbacks/{created['id']}/test", headers=api.a.headers("write")
    )
    assert response.status_code == 409
    assert "no messages" in response.json()["error"]["message"]


# --- the delivery log and replay -----------------------------------------------------


async def _seed_deliveries(
    api: Api, tenant: Tenant, callback_id: str, messages: list[uuid.UUID], states: list[str]
) -> list[uuid.UUID]:
    """One delivery per message (oldest first), each with one failed attempt."""
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in messages]
    deliveries, attempts = [], []
    for i, (delivery_id, message_id, state) in enumerate(zip(ids, messages, states, strict=True)):
        at = now - timedelta(minutes=10 - i)
        deliveries.append(
            {
                "id": delivery_id,
                "organization_id": tenant.organization_id,
                "callback_id": uuid.UUID(callback_id),
                "message_id": message_id,
                "state": state,
                "attempts": 3,
                "next_attempt_at": None,
                "last_status": 500,
                "last_error": "HTTP 500",
                "created_at": at,
                "updated_at": at,
            }
        )
        attempts.append(
            {
                "delivery_id": delivery_id,
                "callback_id": uuid.UUID(callback_id),
                "at": at,
                "duration_ms": 12.5,
                "outcome": "failure",
                "request": {"method": "POST", "url": "https://x/", "headers": [], "body": "{}"},
                "response": {"status": 500, "headers": [], "body": "oops"},
                "error": "HTTP 500",
            }
        )
    async with api.engine.begin() as conn:
        await conn.execute(sa.insert(t.deliveries), deliveries)
        await conn.execute(sa.insert(t.delivery_attempts), attempts)
    return ids


async def test_deliveries_and_replay(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 3)
    messages = await insert_messages(api.engine, device, 3)
    created = await _create(api, api.a)
    failed_old, succeeded, failed_new = await _seed_deliveries(
        api, api.a, created["id"], messages, ["failed", "succeeded", "failed"]
    )
    path = f"/v1/callbacks/{created['id']}/deliveries"
    headers = api.a.headers("read")
    listing = await api.client.get(path, headers=headers)
    assert listing.status_code == 200, listing.text
    assert [d["id"] for d in listing.json()] == [str(failed_new), str(succeeded), str(failed_old)]
    assert listing.headers["x-total"] == "3"
    first = listing.json()[0]
    assert first["state"] == "failed"
    assert first["attempts"] == 3
    assert first["last_status"] == 500
    assert first["last_error"] == "HTTP 500"
    assert first["message_id"] == str(messages[2])
    assert first["callback_name"] == "farm"
    only_failed = await api.client.get(path, headers=headers, params={"state": "failed"})
    assert only_failed.headers["x-total"] == "2"
    oldest = await api.client.get(path, headers=headers, params={"sort_order": "asc", "limit": 1})
    assert [d["id"] for d in oldest.json()] == [str(failed_old)]

    per_message = await api.client.get(f"/v1/messages/{messages[1]}/deliveries", headers=headers)
    assert per_message.status_code == 200
    [delivery] = per_message.json()
    assert delivery["id"] == str(succeeded)
    [attempt] = delivery["attempt_log"]
    assert attempt["outcome"] == "failure"
    assert attempt["duration_ms"] == 12.5
    assert attempt["response"]["status"] == 500
    assert attempt["error"] == "HTTP 500"
    one = await api.client.get(f"/v1/deliveries/{failed_old}", headers=headers)
    assert one.json()["attempt_log"][0]["request"]["method"] == "POST"

    replay = f"/v1/callbacks/{created['id']}/replay"
    write = api.a.headers("write")
    not_failed = await api.client.post(replay, headers=write, json={"delivery_id": str(succeeded)})
    assert not_failed.status_code == 409
    unknown = await api.client.post(replay, headers=write, json={"delivery_id": str(uuid.uuid4())})
    assert unknown.status_code == 404
    one_back = await api.client.post(replay, headers=write, json={"delivery_id": str(failed_old)})
    assert one_back.json() == {"replayed": 1}
    shown = (await api.client.get(f"/v1/deliveries/{failed_old}", headers=headers)).json()
    assert shown["state"] == "pending"
    assert shown["next_attempt_at"] is not None
    assert len(shown["attempt_log"]) == 1
    rest = await api.client.post(replay, headers=write)
    assert rest.json() == {"replayed": 1}
    again = await api.client.post(replay, headers=write, json={})
    assert again.json() == {"replayed": 0}
    states = await api.client.get(path, headers=headers, params={"state": "pending"})
    assert states.headers["x-total"] == "2"
    actions = [row["action"] for row in await _audit(api, api.a)]
    assert actions.count("callback.replay") == 3


async def test_deleting_a_callback_cancels_its_waiting_deliveries(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 4)
    messages = await insert_messages(api.engine, device, 3)
    created = await _create(api, api.a)
    pending, delivering, succeeded = await _seed_deliveries(
        api, api.a, created["id"], messages, ["pending", "delivering", "succeeded"]
    )
    deleted = await api.client.delete(
        f"/v1/callbacks/{created['id']}", headers=api.a.headers("write")
    )
    assert deleted.status_code == 204
    async with api.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.deliveries))).mappings().all()
    found = {row["id"]: row for row in rows}
    assert found[pending]["state"] == found[delivering]["state"] == "cancelled"
    assert found[pending]["last_error"] == "the callback was deleted"
    assert found[succeeded]["state"] == "succeeded"


# --- tenancy and levels ------------------------------------------------------------------


async def test_other_tenants_get_404_and_readers_403(api: Api) -> None:
    device, message_id = await _device_with_message(api, api.a)
    created = await _create(api, api.a)
    [delivery_id] = await _seed_deliveries(api, api.a, created["id"], [message_id], ["failed"])
    group = f"/v1/groups/{api.a.group_id}"
    callback = f"/v1/callbacks/{created['id']}"
    reads = [
        ("GET", f"{group}/callbacks", None),
        ("POST", f"{group}/callbacks/preview", {"payload": ""}),
        ("GET", callback, None),
        ("GET", f"{callback}/deliveries", None),
        ("GET", f"/v1/messages/{message_id}/deliveries", None),
        ("GET", f"/v1/deliveries/{delivery_id}", None),
    ]
    writes = [
        ("POST", f"{group}/callbacks", {"name": "x", "url": "https://x.example/"}),
        ("PUT", callback, {"name": "y"}),
        ("PATCH", callback, {"name": "y"}),
        ("POST", f"{callback}/test", {}),
        ("POST", f"{callback}/replay", {}),
        ("DELETE", callback, None),
    ]
    for method, path, body in reads + writes:
        answer = await api.client.request(method, path, headers=api.b.headers("admin"), json=body)
        assert answer.status_code == 404, f"{method} {path}: {answer.text}"
    for method, path, body in writes:
        answer = await api.client.request(method, path, headers=api.a.headers("read"), json=body)
        assert answer.status_code == 403, f"{method} {path}: {answer.text}"
    for method, path, body in reads:
        answer = await api.client.request(method, path, headers=api.a.headers("read"), json=body)
        assert answer.status_code == 200, f"{method} {path}: {answer.text}"
    # Tenant b's own deliveries list does not show tenant a's.
    theirs = await _create(api, api.b)
    listing = await api.client.get(
        f"/v1/callbacks/{theirs['id']}/deliveries", headers=api.b.headers("read")
    )
    assert listing.json() == []
    assert device["organization_id"] == api.a.organization_id
