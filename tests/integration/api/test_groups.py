"""Groups over the API: the routes of routers/groups.py, on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from api_kit import Api, Tenant, add_test_device

pytestmark = pytest.mark.integration


async def _create(api: Api, tenant: Tenant, name: str) -> dict[str, Any]:
    response = await api.client.post(
        "/v1/groups", headers=tenant.headers("write"), json={"name": name}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_show_and_the_v1_list_shape(api: Api) -> None:
    group = await _create(api, api.a, "lab")
    assert group["organization_id"] == str(api.a.organization_id)
    assert group["device_count"] == 0
    assert set(group) == {
        "id",
        "organization_id",
        "name",
        "created_at",
        "updated_at",
        "device_count",
    }
    listing = await api.client.get(
        "/v1/groups",
        headers=api.a.headers("read"),
        params={"organization_id": str(api.a.organization_id)},
    )
    assert listing.status_code == 200
    assert listing.headers["x-total"] == "2"
    assert [g["name"] for g in listing.json()] == ["default", "lab"]
    for path in (f"/v1/groups/{group['id']}", f"/v1/group/{group['id']}"):
        shown = await api.client.get(path, headers=api.a.headers("read"))
        assert shown.json() == group


async def test_sorting_paging_and_device_count(api: Api) -> None:
    for name in ("b", "c", "a"):
        await _create(api, api.a, name)
    await add_test_device(api.engine, api.a, 1)
    await add_test_device(api.engine, api.a, 2)
    headers = api.a.headers("read")
    desc = await api.client.get(
        "/v1/groups", headers=headers, params={"sort_field": "name", "sort_order": "desc"}
    )
    assert [g["name"] for g in desc.json()] == ["default", "c", "b", "a"]
    by_time = await api.client.get(
        "/v1/groups", headers=headers, params={"sort_field": "created_at", "limit": 2}
    )
    assert [g["name"] for g in by_time.json()] == ["default", "b"]
    assert by_time.headers["x-total"] == "4"
    default = next(g for g in desc.json() if g["name"] == "default")
    assert default["device_count"] == 2


async def test_v1_put_renames_and_duplicates_conflict(api: Api) -> None:
    group = await _create(api, api.a, "lab")
    renamed = await api.client.put(
        f"/v1/group/{group['id']}", headers=api.a.headers("write"), json={"name": "field"}
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "field"
    assert renamed.json()["updated_at"] is not None
    patched = await api.client.patch(
        f"/v1/groups/{group['id']}", headers=api.a.headers("write"), json={"name": "yard"}
    )
    assert patched.json()["name"] == "yard"
    taken = await api.client.put(
        f"/v1/groups/{group['id']}", headers=api.a.headers("write"), json={"name": "default"}
    )
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "conflict"
    twice = await api.client.post(
        "/v1/groups", headers=api.a.headers("write"), json={"name": "yard"}
    )
    assert twice.status_code == 409
    # Another organization may use the same name.
    await _create(api, api.b, "yard")


async def test_deleting_a_group_with_devices_conflicts(api: Api) -> None:
    group = await api.client.get(f"/v1/groups/{api.a.group_id}", headers=api.a.headers("read"))
    await add_test_device(api.engine, api.a, 3)
    path = f"/v1/groups/{group.json()['id']}"
    busy = await api.client.delete(path, headers=api.a.headers("write"))
    assert busy.status_code == 409
    empty = await _create(api, api.a, "empty")
    gone = await api.client.delete(f"/v1/group/{empty['id']}", headers=api.a.headers("write"))
    assert gone.status_code == 204
    after = await api.client.get(f"/v1/groups/{empty['id']}", headers=api.a.headers("read"))
    assert after.status_code == 404


async def test_a_group_whose_devices_were_deleted_can_be_deleted(api: Api) -> None:
    group = await _create(api, api.a, "short-lived")
    headers = api.a.headers("write")
    device = await api.client.post(
        "/v1/devices",
        headers=headers,
        json={"serial": 4, "claim_token": "00" * 16, "group_id": group["id"]},
    )
    assert device.json()["group_id"] == group["id"]
    await api.client.delete(f"/v1/devices/{device.json()['id']}", headers=headers)
    assert (
        await api.client.delete(f"/v1/groups/{group['id']}", headers=headers)
    ).status_code == 204


async def test_other_tenants_groups_answer_404(api: Api) -> None:
    group = await _create(api, api.a, "private")
    headers = api.b.headers("admin")
    for path in (f"/v1/groups/{group['id']}", f"/v1/group/{group['id']}"):
        assert (await api.client.get(path, headers=headers)).status_code == 404
        put = await api.client.put(path, headers=headers, json={"name": "mine"})
        assert put.status_code == 404
        assert (await api.client.delete(path, headers=headers)).status_code == 404
    listing = await api.client.get(
        "/v1/groups", headers=headers, params={"organization_id": str(api.a.organization_id)}
    )
    assert listing.status_code == 404
    into = await api.client.post(
        "/v1/groups",
        headers=headers,
        json={"name": "x", "organization_id": str(api.a.organization_id)},
    )
    assert into.status_code == 404
    own = await api.client.get("/v1/groups", headers=headers)
    assert [g["organization_id"] for g in own.json()] == [str(api.b.organization_id)]


async def test_read_keys_cannot_change_groups(api: Api) -> None:
    group = await _create(api, api.a, "ro")
    headers = api.a.headers("read")
    post = await api.client.post("/v1/groups", headers=headers, json={"name": "x"})
    assert post.status_code == 403
    put = await api.client.put(f"/v1/groups/{group['id']}", headers=headers, json={"name": "x"})
    assert put.status_code == 403
    assert (
        await api.client.delete(f"/v1/groups/{group['id']}", headers=headers)
    ).status_code == 403


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 201}, {"name": 5}])
async def test_invalid_group_bodies_answer_422(api: Api, body: dict[str, Any]) -> None:
    response = await api.client.post("/v1/groups", headers=api.a.headers("write"), json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_group_writes_are_audited(api: Api) -> None:
    group = await _create(api, api.a, "audited")
    headers = api.a.headers("admin")
    await api.client.put(f"/v1/groups/{group['id']}", headers=headers, json={"name": "renamed"})
    await api.client.delete(f"/v1/groups/{group['id']}", headers=headers)
    audit = await api.client.get(
        f"/v1/organizations/{api.a.organization_id}/audit",
        headers=headers,
        params={"action": "group"},
    )
    entries = audit.json()
    assert [e["action"] for e in entries] == ["group.delete", "group.update", "group.create"]
    assert entries[1]["details"] == {"name": "renamed", "was": "audited"}
    assert {e["object_id"] for e in entries} == {group["id"]}
    assert entries[2]["actor_type"] == "api_key"
