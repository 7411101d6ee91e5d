"""Messages: the v1 list, cursors, filters, tenancy, deletes, exports, counts per day."""

from __future__ import annotations

import base64
import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from api_kit import Api, Tenant, add_test_device, insert_messages
from nubes.services import auth
from nubes.services import messages as service
from nubes.services.devices import add_device
from nubes.store import tables as t

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


async def _device(api: Api, tenant: Tenant, serial: int) -> dict[str, Any]:
    return await add_test_device(api.engine, tenant, serial)


async def _get(
    api: Api, params: dict[str, Any] | list[tuple[str, Any]], tenant: Tenant | None = None
) -> httpx.Response:
    headers = (tenant or api.a).headers("read")
    return await api.client.get("/v1/messages", params=params, headers=headers)


def _counters(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [message["data"]["counter"] for message in response.json()]


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


async def _audit(api: Api, action: str) -> list[Any]:
    a = t.audit_log
    async with api.engine.connect() as conn:
        rows = await conn.execute(sa.select(a).where(a.c.action == action).order_by(a.c.id))
        return list(rows.mappings())


# --- the v1 list --------------------------------------------------------------


async def test_v1_list_is_an_array_newest_first_with_the_total(api: Api) -> None:
    device = await _device(api, api.a, 1001)
    ids = await insert_messages(api.engine, device, 5, start=T0, step=MINUTE)
    response = await _get(api, {"device_id": str(device["id"])})
    assert response.headers["x-total"] == "5"
    assert response.headers["x-has-more"] == "false"
    assert "x-next-cursor" not in response.headers
    body = response.json()
    assert [m["id"] for m in body] == [str(i) for i in reversed(ids)]
    first = body[0]
    assert first["created_at"] == "2024-05-01T00:04:00Z"
    assert first["label"] == "hsn:1001"
    assert first["data"] == {"counter": 4}
    assert first["device_id"] == str(device["id"])
    assert first["type"] == "data"
    assert first["direction"] == "up"
    assert base64.b64decode(first["raw"]) == bytes([4])


async def test_since_and_before_take_milliseconds_and_iso(api: Api) -> None:
    device = await _device(api, api.a, 1002)
    await insert_messages(api.engine, device, 10, start=T0, step=MINUTE)
    base = {"device_id": str(device["id"])}
    by_ms = await _get(api, base | {"since": _ms(T0 + 2 * MINUTE), "before": _ms(T0 + 5 * MINUTE)})
    assert _counters(by_ms) == [4, 3, 2]  # since inclusive, before exclusive
    assert by_ms.headers["x-total"] == "3"
    iso = {"since": "2024-05-01T00:02:00Z", "before": "2024-05-01T02:05:00+02:00"}
    assert _counters(await _get(api, base | iso)) == [4, 3, 2]
    naive = {"since": "2024-05-01T00:08:00"}  # no offset: UTC
    assert _counters(await _get(api, base | naive)) == [9, 8]
    # A "+" that was not URL-encoded arrives as a space.
    raw = f"/v1/messages?device_id={device['id']}&since=2024-05-01T02:09:00+02:00"
    unencoded = await api.client.get(raw, headers=api.a.headers("read"))
    assert _counters(unencoded) == [9]


async def test_sort_order_offset_and_limit(api: Api) -> None:
    device = await _device(api, api.a, 1003)
    await insert_messages(api.engine, device, 10, start=T0, step=MINUTE)
    base = {"device_id": str(device["id"]), "sort_field": "created_at"}
    ascending = await _get(api, base | {"sort_order": "asc", "offset": 2, "limit": 3})
    assert _counters(ascending) == [2, 3, 4]
    assert ascending.headers["x-total"] == "10"
    assert ascending.headers["x-has-more"] == "true"
    tail = await _get(api, base | {"sort_order": "desc", "offset": 8, "limit": 5})
    assert _counters(tail) == [1, 0]
    assert tail.headers["x-has-more"] == "false"
    assert "x-next-cursor" not in tail.headers
    assert _counters(await _get(api, base | {"limit": 1})) == [9]  # desc by default


async def test_total_can_be_skipped(api: Api) -> None:
    device = await _device(api, api.a, 1004)
    await insert_messages(api.engine, device, 3)
    response = await _get(api, {"device_id": str(device["id"]), "total": "false"})
    assert len(response.json()) == 3
    assert "x-total" not in response.headers
    assert response.headers["x-has-more"] == "false"


# --- cursors --------------------------------------------------------------------


async def _walk(api: Api, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    response = await _get(api, params | {"limit": limit})
    assert "x-total" in response.headers
    while True:
        assert response.status_code == 200, response.text
        seen += response.json()
        if response.headers["x-has-more"] == "false":
            assert "x-next-cursor" not in response.headers
            return seen
        assert len(response.json()) == limit
        cursor = response.headers["x-next-cursor"]
        response = await _get(api, params | {"limit": limit, "cursor": cursor})
        assert "x-total" not in response.headers


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_a_cursor_walk_gives_every_message_once(api: Api, order: str) -> None:
    device = await _device(api, api.a, 1010)
    # Twelve messages share one timestamp: the id must break the tie.
    same = await insert_messages(api.engine, device, 12, start=T0, step=timedelta(0))
    later = await insert_messages(api.engine, device, 13, start=T0 + MINUTE, step=MINUTE)
    walked = await _walk(api, {"device_id": str(device["id"]), "sort_order": order}, limit=5)
    ids = [m["id"] for m in walked]
    assert len(ids) == len(set(ids)) == 25
    assert set(ids) == {str(i) for i in same + later}
    keys = [(m["created_at"], m["id"]) for m in walked]
    assert keys == sorted(keys, reverse=order == "desc")


async def test_cursor_walk_over_all_organizations_of_a_user(api: Api) -> None:
    await auth.create_user(
        api.engine, email="ada@example.com", password="correct horse", organization="tenant-a"
    )
    async with api.engine.begin() as conn:
        user_id = await conn.scalar(sa.select(t.users.c.id))
        await conn.execute(
            sa.insert(t.memberships).values(
                user_id=user_id,
                organization_id=api.b.organization_id,
                role="viewer",
                created_at=datetime.now(UTC),
            )
        )
    login = await api.client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": "correct horse"}
    )
    token = login.json()["access_token"]
    a = await insert_messages(api.engine, await _device(api, api.a, 1011), 7, start=T0)
    b = await insert_messages(api.engine, await _device(api, api.b, 2011), 6, start=T0)
    headers = {"Authorization": f"Bearer {token}"}
    response = await api.client.get("/v1/messages", params={"limit": 4}, headers=headers)
    assert response.headers["x-total"] == "13"
    seen = response.json()
    while response.headers["x-has-more"] == "true":
        cursor = response.headers["x-next-cursor"]
        params = {"limit": 4, "cursor": cursor}
        response = await api.client.get("/v1/messages", params=params, headers=headers)
        seen += response.json()
    assert sorted(m["id"] for m in seen) == sorted(str(i) for i in a + b)
    keys = [(m["created_at"], m["id"]) for m in seen]
    assert keys == sorted(keys, reverse=True)


async def test_cursor_mistakes_are_4xx(api: Api) -> None:
    device = await _device(api, api.a, 1012)
    await insert_messages(api.engine, device, 3)
    base = {"device_id": str(device["id"]), "limit": 1}
    cursor = (await _get(api, base)).headers["x-next-cursor"]
    error = _assert_error(await _get(api, base | {"cursor": "garbage!"}), 422, "validation_error")
    assert "cursor" in error["message"]
    truncated = await _get(api, base | {"cursor": cursor[:-4]})
    _assert_error(truncated, 422, "validation_error")
    with_offset = await _get(api, base | {"cursor": cursor, "offset": 1})
    assert "offset" in _assert_error(with_offset, 400, "bad_request")["message"]
    reversed_order = await _get(api, base | {"cursor": cursor, "sort_order": "asc"})
    _assert_error(reversed_order, 400, "bad_request")


# --- filters ----------------------------------------------------------------------


async def test_type_and_direction_filters(api: Api) -> None:
    device = await _device(api, api.a, 1020)
    await insert_messages(api.engine, device, 3, type_name="data")
    await insert_messages(api.engine, device, 2, type_name="config", direction="down")
    await insert_messages(api.engine, device, 1, type_name="stats")
    base = [("device_id", str(device["id"]))]

    async def types(extra: list[tuple[str, str]]) -> list[str]:
        response = await _get(api, base + extra)
        assert response.status_code == 200, response.text
        assert response.headers["x-total"] == str(len(response.json()))
        return sorted(m["type"] for m in response.json())

    assert await types([("type", "config")]) == ["config", "config"]
    assert await types([("type", "data"), ("type", "stats")]) == ["data"] * 3 + ["stats"]
    assert await types([("direction", "down")]) == ["config", "config"]
    assert await types([("direction", "up")]) == ["data"] * 3 + ["stats"]
    assert await types([("type", "data"), ("direction", "down")]) == []


async def test_group_and_organization_filters(api: Api) -> None:
    plain = await _device(api, api.a, 1030)
    field = await add_device(
        api.engine,
        serial=1031,
        claim_token=bytes(16),
        organization=api.a.name,
        group="field",
    )
    await insert_messages(api.engine, plain, 2)
    field_ids = await insert_messages(api.engine, field, 3)
    in_group = await _get(api, {"group_id": str(field["group_id"])})
    assert sorted(m["id"] for m in in_group.json()) == sorted(str(i) for i in field_ids)
    assert in_group.headers["x-total"] == "3"
    in_org = await _get(api, {"organization_id": str(api.a.organization_id)})
    assert in_org.headers["x-total"] == "5"
    both = await _get(api, {"group_id": str(api.a.group_id), "device_id": str(field["id"])})
    assert both.json() == []


# --- tenancy ------------------------------------------------------------------------


async def test_other_tenants_ids_answer_404_and_lists_stay_apart(api: Api) -> None:
    mine = await insert_messages(api.engine, await _device(api, api.a, 1040), 2)
    theirs_device = await _device(api, api.b, 2040)
    theirs = await insert_messages(api.engine, theirs_device, 3)
    for params in (
        {"device_id": str(theirs_device["id"])},
        {"group_id": str(api.b.group_id)},
        {"organization_id": str(api.b.organization_id)},
        {"device_id": str(uuid.uuid4())},
        {"group_id": str(uuid.uuid4())},
    ):
        _assert_error(await _get(api, params), 404, "not_found")
    one = await api.client.get(f"/v1/messages/{theirs[0]}", headers=api.a.headers("admin"))
    _assert_error(one, 404, "not_found")
    gone = await api.client.delete(f"/v1/messages/{theirs[0]}", headers=api.a.headers("admin"))
    _assert_error(gone, 404, "not_found")
    counts = f"/v1/devices/{theirs_device['id']}/message-counts"
    _assert_error(await api.client.get(counts, headers=api.a.headers()), 404, "not_found")
    export = await api.client.get(
        "/v1/messages/export",
        params={"device_id": str(theirs_device["id"])},
        headers=api.a.headers(),
    )
    _assert_error(export, 404, "not_found")
    unscoped = await _get(api, {})
    assert sorted(m["id"] for m in unscoped.json()) == sorted(str(i) for i in mine)
    assert unscoped.headers["x-total"] == "2"
    everything = await api.client.get("/v1/messages/export", headers=api.a.headers("read"))
    assert len(everything.content.splitlines()) == 2
    theirs_view = await _get(api, {}, api.b)
    assert sorted(m["id"] for m in theirs_view.json()) == sorted(str(i) for i in theirs)


async def test_one_message_by_id(api: Api) -> None:
    device = await _device(api, api.a, 1041)
    (message_id,) = await insert_messages(api.engine, device, 1, body={"t": 21.5})
    response = await api.client.get(f"/v1/messages/{message_id}", headers=api.a.headers("read"))
    assert response.status_code == 200
    assert response.json()["data"] == {"t": 21.5}
    assert response.json()["label"] == "hsn:1041"
    missing = await api.client.get(f"/v1/messages/{uuid.uuid4()}", headers=api.a.headers())
    _assert_error(missing, 404, "not_found")


# --- deleting -------------------------------------------------------------------------


async def test_delete_one_message(api: Api) -> None:
    device = await _device(api, api.a, 1050)
    first, second = await insert_messages(api.engine, device, 2)
    refused = await api.client.delete(f"/v1/messages/{first}", headers=api.a.headers("read"))
    _assert_error(refused, 403, "forbidden")
    deleted = await api.client.delete(f"/v1/messages/{first}", headers=api.a.headers("write"))
    assert deleted.status_code == 204
    again = await api.client.get(f"/v1/messages/{first}", headers=api.a.headers())
    _assert_error(again, 404, "not_found")
    left = await _get(api, {"device_id": str(device["id"])})
    assert [m["id"] for m in left.json()] == [str(second)]
    (row,) = await _audit(api, "message.delete")
    assert row["object_id"] == str(first)
    assert row["organization_id"] == api.a.organization_id
    assert row["actor_type"] == "api_key"


async def test_delete_a_filtered_set(api: Api) -> None:
    device = await _device(api, api.a, 1051)
    other = await _device(api, api.a, 1052)
    await insert_messages(api.engine, device, 6, start=T0, step=MINUTE)
    await insert_messages(api.engine, device, 2, type_name="stats", start=T0, step=MINUTE)
    await insert_messages(api.engine, other, 4, start=T0, step=MINUTE)
    params = {"device_id": str(device["id"]), "type": "data", "since": _ms(T0 + 2 * MINUTE)}
    url = "/v1/messages"
    refused = await api.client.delete(url, params=params, headers=api.a.headers("read"))
    _assert_error(refused, 403, "forbidden")
    response = await api.client.delete(url, params=params, headers=api.a.headers("write"))
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 4}
    left = await _get(api, {"device_id": str(device["id"])})
    assert sorted(m["data"]["counter"] for m in left.json() if m["type"] == "data") == [0, 1]
    assert left.headers["x-total"] == "4"
    assert (await _get(api, {"device_id": str(other["id"])})).headers["x-total"] == "4"
    (row,) = await _audit(api, "message.delete")
    assert row["details"]["deleted"] == 4
    assert row["details"]["filter"]["device_id"] == str(device["id"])
    assert row["details"]["filter"]["types"] == ["data"]
    assert "counter" not in orjson.dumps(row["details"]).decode()


async def test_delete_needs_a_scope_and_stays_in_the_tenant(api: Api) -> None:
    theirs = await insert_messages(api.engine, await _device(api, api.b, 2050), 2)
    unscoped = await api.client.delete("/v1/messages", headers=api.a.headers("admin"))
    _assert_error(unscoped, 400, "bad_request")
    typed_only = await api.client.delete(
        "/v1/messages", params={"type": "data"}, headers=api.a.headers("admin")
    )
    _assert_error(typed_only, 400, "bad_request")
    other_org = await api.client.delete(
        "/v1/messages",
        params={"organization_id": str(api.b.organization_id)},
        headers=api.a.headers("admin"),
    )
    _assert_error(other_org, 404, "not_found")
    own_org = await api.client.delete(
        "/v1/messages",
        params={"organization_id": str(api.a.organization_id)},
        headers=api.a.headers("admin"),
    )
    assert own_org.json() == {"deleted": 0}
    still = await _get(api, {}, api.b)
    assert sorted(m["id"] for m in still.json()) == sorted(str(i) for i in theirs)


# --- exports -----------------------------------------------------------------------------


async def test_export_ndjson_streams_every_message(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "EXPORT_CHUNK", 4)  # several chunks, walked by keyset
    device = await _device(api, api.a, 1060)
    ids = await insert_messages(api.engine, device, 11, start=T0, step=timedelta(seconds=30))
    response = await api.client.get(
        "/v1/messages/export",
        params={"device_id": str(device["id"]), "sort_order": "asc"},
        headers=api.a.headers("read"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert disposition.endswith('.ndjson"')
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert [line["id"] for line in lines] == [str(i) for i in ids]
    assert lines[0]["data"] == {"counter": 0}
    assert lines[0]["label"] == "hsn:1060"
    limited = await api.client.get(
        "/v1/messages/export",
        params={"device_id": str(device["id"]), "limit": 6, "since": "2024-05-01T00:01:00Z"},
        headers=api.a.headers("read"),
    )
    counters = [orjson.loads(line)["data"]["counter"] for line in limited.content.splitlines()]
    assert counters == [10, 9, 8, 7, 6, 5]


async def test_export_csv(api: Api) -> None:
    device = await _device(api, api.a, 1061)
    ids = await insert_messages(api.engine, device, 3, start=T0, step=MINUTE)
    await insert_messages(api.engine, device, 1, type_name="config", direction="down")
    response = await api.client.get(
        "/v1/messages/export",
        params={"device_id": str(device["id"]), "format": "csv", "type": "data"},
        headers=api.a.headers("read"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].endswith('.csv"')
    header, *rows = list(csv.reader(io.StringIO(response.text)))
    assert header == [
        "id",
        "created_at",
        "device_id",
        "label",
        "type",
        "direction",
        "session_id",
        "data",
        "raw",
    ]
    assert [row[0] for row in rows] == [str(i) for i in reversed(ids)]
    newest = dict(zip(header, rows[0], strict=True))
    assert newest["created_at"] == "2024-05-01T00:02:00Z"
    assert newest["device_id"] == str(device["id"])
    assert newest["label"] == "hsn:1061"
    assert (newest["type"], newest["direction"], newest["session_id"]) == ("data", "up", "")
    assert orjson.loads(newest["data"]) == {"counter": 2}
    assert base64.b64decode(newest["raw"]) == bytes([2])


# --- messages per day ----------------------------------------------------------------------


async def test_message_counts_per_utc_day(api: Api) -> None:
    device = await _device(api, api.a, 1070)
    await insert_messages(api.engine, device, 3, start=T0 - MINUTE, step=MINUTE)  # 04-30, 05-01 x2
    await insert_messages(api.engine, device, 2, start=T0 + timedelta(days=3, hours=23))
    url = f"/v1/devices/{device['id']}/message-counts"
    params = {"since": "2024-04-01T00:00:00Z", "before": _ms(T0 + timedelta(days=30))}
    response = await api.client.get(url, params=params, headers=api.a.headers("read"))
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"date": "2024-04-30", "count": 1},
        {"date": "2024-05-01", "count": 2},
        {"date": "2024-05-04", "count": 2},
    ]
    narrow = {"since": "2024-05-01", "before": "2024-05-02"}
    response = await api.client.get(url, params=narrow, headers=api.a.headers("read"))
    assert response.json() == [{"date": "2024-05-01", "count": 2}]


async def test_message_counts_default_to_the_last_year(api: Api) -> None:
    device = await _device(api, api.a, 1071)
    now = datetime.now(UTC)
    await insert_messages(api.engine, device, 1, start=now - timedelta(days=400))
    await insert_messages(api.engine, device, 4, start=now - timedelta(minutes=10))
    url = f"/v1/devices/{device['id']}/message-counts"
    response = await api.client.get(url, headers=api.a.headers("read"))
    assert response.status_code == 200
    counts = response.json()
    assert sum(day["count"] for day in counts) == 4
    assert counts[-1]["date"] in {
        now.date().isoformat(),
        (now - timedelta(minutes=10)).date().isoformat(),
    }
    too_wide = await api.client.get(
        url, params={"since": "2000-01-01", "before": "2024-01-01"}, headers=api.a.headers()
    )
    _assert_error(too_wide, 400, "bad_request")
    missing = f"/v1/devices/{uuid.uuid4()}/message-counts"
    _assert_error(await api.client.get(missing, headers=api.a.headers()), 404, "not_found")


# --- invalid parameters and the document ------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"since": "yesterday"}, "since"),
        ({"before": "2024-13-01T00:00:00Z"}, "before"),
        ({"since": "9" * 30}, "since"),
        ({"before": "9999-12-31T23:59:59-01:00"}, "before"),
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort_field": "label"}, "sort_field"),
        ({"sort_order": "sideways"}, "sort_order"),
        ({"type": "bogus"}, "type"),
        ({"direction": "left"}, "direction"),
        ({"device_id": "not-a-uuid"}, "device_id"),
    ],
)
async def test_invalid_parameters_answer_422(api: Api, params: dict[str, Any], word: str) -> None:
    error = _assert_error(await _get(api, params), 422, "validation_error")
    assert word in error["message"]


async def test_invalid_export_format_and_message_id(api: Api) -> None:
    export = await api.client.get(
        "/v1/messages/export", params={"format": "xml"}, headers=api.a.headers()
    )
    _assert_error(export, 422, "validation_error")
    bad_id = await api.client.get("/v1/messages/12345", headers=api.a.headers())
    _assert_error(bad_id, 422, "validation_error")
    anonymous = await api.client.get("/v1/messages")
    _assert_error(anonymous, 401, "unauthorized")


async def test_openapi_documents_the_list_and_its_headers(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    listing = document["paths"]["/v1/messages"]["get"]
    ok = listing["responses"]["200"]
    schema = ok["content"]["application/json"]["schema"]
    assert schema["type"] == "array"
    assert schema["items"]["$ref"].endswith("/Message")
    assert set(ok["headers"]) == {"x-total", "x-has-more", "x-next-cursor"}
    names = {p["name"] for p in listing["parameters"]}
    assert {"since", "before", "cursor", "type", "device_id", "sort_field"} <= names
    assert all(p.get("description") for p in listing["parameters"])
    assert "delete" in document["paths"]["/v1/messages"]
    assert "/v1/messages/export" in document["paths"]
    assert "/v1/devices/{device_id}/message-counts" in document["paths"]
