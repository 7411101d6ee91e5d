"""Organizations, members and the audit log: the routes of routers/organizations.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from api_kit import Api
from nubes.services import auth
from nubes.store import tables as t

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


async def _signed_in(api: Api, email: str, role: str) -> dict[str, str]:
    """A user of tenant a with `role`, signed in: their request headers."""
    await auth.create_user(
        api.engine, email=email, password=PASSWORD, organization=api.a.name, role=role
    )
    login = await api.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _path(api: Api, tail: str = "") -> str:
    return f"/v1/organizations/{api.a.organization_id}{tail}"


async def _user_id(api: Api, headers: dict[str, str]) -> str:
    me = await api.client.get("/v1/auth/me", headers=headers)
    user_id: str = me.json()["id"]
    return user_id


async def test_list_shows_only_the_callers_organizations_in_v1_shape(api: Api) -> None:
    response = await api.client.get("/v1/organizations", headers=api.a.headers("read"))
    assert response.status_code == 200
    assert response.headers["x-total"] == "1"
    [organization] = response.json()
    assert organization["id"] == str(api.a.organization_id)
    assert organization["name"] == "tenant-a"
    assert set(organization) == {"id", "name", "created_at"}


async def test_a_user_creates_an_organization_owns_it_and_gets_a_default_group(api: Api) -> None:
    headers = await _signed_in(api, "ada@example.com", "member")
    created = await api.client.post("/v1/organizations", headers=headers, json={"name": "zeta"})
    assert created.status_code == 201, created.text
    organization_id = created.json()["id"]
    listing = await api.client.get(
        "/v1/organizations", headers=headers, params={"sort_field": "name", "sort_order": "desc"}
    )
    assert [o["name"] for o in listing.json()] == ["zeta", "tenant-a"]
    members = await api.client.get(f"/v1/organizations/{organization_id}/members", headers=headers)
    assert [(m["email"], m["role"]) for m in members.json()] == [("ada@example.com", "owner")]
    groups = await api.client.get(
        "/v1/groups", headers=headers, params={"organization_id": organization_id}
    )
    assert [g["name"] for g in groups.json()] == ["default"]
    taken = await api.client.post("/v1/organizations", headers=headers, json={"name": "zeta"})
    assert taken.status_code == 409


async def test_api_keys_cannot_create_organizations(api: Api) -> None:
    response = await api.client.post(
        "/v1/organizations", headers=api.a.headers("admin"), json={"name": "nope"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_show_and_rename_with_plural_and_singular_paths(api: Api) -> None:
    singular = f"/v1/organization/{api.a.organization_id}"
    shown = await api.client.get(singular, headers=api.a.headers("read"))
    assert shown.json()["name"] == "tenant-a"
    weak = await api.client.put(singular, headers=api.a.headers("write"), json={"name": "x"})
    assert weak.status_code == 403
    renamed = await api.client.put(singular, headers=api.a.headers("admin"), json={"name": "acme"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "acme"
    patched = await api.client.patch(
        _path(api), headers=api.a.headers("admin"), json={"name": "acme2"}
    )
    assert patched.json()["name"] == "acme2"
    taken = await api.client.put(
        _path(api), headers=api.a.headers("admin"), json={"name": "tenant-b"}
    )
    assert taken.status_code == 409
    shown = await api.client.get(_path(api), headers=api.a.headers("read"))
    assert shown.json()["name"] == "acme2"


async def test_other_tenants_organizations_answer_404(api: Api) -> None:
    headers = api.b.headers("admin")
    for path in (_path(api), f"/v1/organization/{api.a.organization_id}"):
        assert (await api.client.get(path, headers=headers)).status_code == 404
        put = await api.client.put(path, headers=headers, json={"name": "mine"})
        assert put.status_code == 404
    for tail in ("/members", "/audit"):
        assert (await api.client.get(_path(api, tail), headers=headers)).status_code == 404
    add = await api.client.post(
        _path(api, "/members"), headers=headers, json={"email": "x@example.com"}
    )
    assert add.status_code == 404


async def test_members_are_added_created_changed_and_removed(api: Api) -> None:
    owner = await _signed_in(api, "owner@example.com", "owner")
    await auth.create_user(
        api.engine, email="bob@example.com", password=PASSWORD, organization="elsewhere"
    )
    # Bob is a stranger to tenant A's admins: adding him answers as for nobody.
    stranger = await api.client.post(
        _path(api, "/members"),
        headers=api.a.headers("admin"),
        json={"email": "bob@example.com", "role": "viewer"},
    )
    assert stranger.status_code == 404
    assert (
        stranger.json()
        == (
            await api.client.post(
                _path(api, "/members"),
                headers=api.a.headers("admin"),
                json={"email": "nobody@example.com", "role": "viewer"},
            )
        ).json()
    )
    taken = await api.client.post(
        _path(api, "/members"),
        headers=api.a.headers("admin"),
        json={"email": "bob@example.com", "password": "long enough pw"},
    )
    assert taken.status_code == 409
    assert "elsewhere" not in taken.text
    # The owner also administers "elsewhere", where Bob is: the owner may add him.
    owner_id = (await api.client.get("/v1/auth/me", headers=owner)).json()["id"]
    async with api.engine.begin() as conn:
        elsewhere = (
            await conn.execute(
                sa.select(t.organizations.c.id).where(t.organizations.c.name == "elsewhere")
            )
        ).scalar_one()
        await conn.execute(
            sa.insert(t.memberships).values(
                user_id=uuid.UUID(owner_id),
                organization_id=elsewhere,
                role="admin",
                created_at=datetime.now(UTC),
            )
        )
    existing = await api.client.post(
        _path(api, "/members"),
        headers=owner,
        json={"email": "Bob@Example.com", "role": "viewer"},
    )
    assert existing.status_code == 201, existing.text
    assert existing.json()["role"] == "viewer"
    created = await api.client.post(
        _path(api, "/members"),
        headers=owner,
        json={"email": "carol@example.com", "role": "member", "password": "long enough pw"},
    )
    assert created.status_code == 201
    assert "long enough pw" not in created.text
    carol = await api.client.post(
        "/v1/auth/login", json={"email": "carol@example.com", "password": "long enough pw"}
    )
    assert carol.status_code == 200
    unknown = await api.client.post(
        _path(api, "/members"), headers=owner, json={"email": "nobody@example.com"}
    )
    assert unknown.status_code == 404
    twice = await api.client.post(
        _path(api, "/members"), headers=owner, json={"email": "bob@example.com"}
    )
    assert twice.status_code == 409
    bob_id = existing.json()["id"]
    promoted = await api.client.patch(
        _path(api, f"/members/{bob_id}"), headers=api.a.headers("admin"), json={"role": "admin"}
    )
    assert promoted.json()["role"] == "admin"
    listing = await api.client.get(
        _path(api, "/members"), headers=api.a.headers("read"), params={"sort_field": "email"}
    )
    assert listing.headers["x-total"] == "3"
    assert [(m["email"], m["role"]) for m in listing.json()] == [
        ("bob@example.com", "admin"),
        ("carol@example.com", "member"),
        ("owner@example.com", "owner"),
    ]
    removed = await api.client.delete(_path(api, f"/members/{bob_id}"), headers=owner)
    assert removed.status_code == 204
    after = await api.client.get(_path(api, "/members"), headers=api.a.headers("read"))
    assert "bob@example.com" not in after.text


async def test_only_owners_grant_or_take_away_owner(api: Api) -> None:
    owner = await _signed_in(api, "owner@example.com", "owner")
    admin = await _signed_in(api, "admin@example.com", "admin")
    owner_id = await _user_id(api, owner)
    admin_id = await _user_id(api, admin)
    grant = await api.client.put(
        _path(api, f"/members/{admin_id}"), headers=admin, json={"role": "owner"}
    )
    assert grant.status_code == 403
    demote = await api.client.put(
        _path(api, f"/members/{owner_id}"), headers=admin, json={"role": "viewer"}
    )
    assert demote.status_code == 403
    remove = await api.client.delete(_path(api, f"/members/{owner_id}"), headers=admin)
    assert remove.status_code == 403
    add = await api.client.post(
        _path(api, "/members"),
        headers=api.a.headers("admin"),
        json={"email": "eve@example.com", "role": "owner", "password": "long enough pw"},
    )
    assert add.status_code == 403
    granted = await api.client.put(
        _path(api, f"/members/{admin_id}"), headers=owner, json={"role": "owner"}
    )
    assert granted.json()["role"] == "owner"


async def test_the_last_owner_can_be_neither_demoted_nor_removed(api: Api) -> None:
    owner = await _signed_in(api, "owner@example.com", "owner")
    owner_id = await _user_id(api, owner)
    demote = await api.client.put(
        _path(api, f"/members/{owner_id}"), headers=owner, json={"role": "admin"}
    )
    assert demote.status_code == 409
    assert demote.json()["error"]["code"] == "conflict"
    remove = await api.client.delete(_path(api, f"/members/{owner_id}"), headers=owner)
    assert remove.status_code == 409
    second = await _signed_in(api, "second@example.com", "owner")
    second_id = await _user_id(api, second)
    assert (
        await api.client.delete(_path(api, f"/members/{second_id}"), headers=owner)
    ).status_code == 204
    members = await api.client.get(_path(api, "/members"), headers=owner)
    assert [m["role"] for m in members.json()] == ["owner"]


async def test_members_need_admin_and_missing_members_answer_404(api: Api) -> None:
    weak = await api.client.post(
        _path(api, "/members"), headers=api.a.headers("write"), json={"email": "x@example.com"}
    )
    assert weak.status_code == 403
    missing = await api.client.put(
        _path(api, "/members/00000000-0000-0000-0000-000000000000"),
        headers=api.a.headers("admin"),
        json={"role": "viewer"},
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"email": "x@example.com", "role": "emperor"},
        {"email": "x@example.com", "password": "short"},
        {"email": "not-an-email", "password": "long enough pw"},
        {},
    ],
)
async def test_invalid_member_bodies_answer_422(api: Api, body: dict[str, Any]) -> None:
    response = await api.client.post(
        _path(api, "/members"), headers=api.a.headers("admin"), json=body
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_the_audit_log_needs_admin_is_newest_first_and_filters(api: Api) -> None:
    headers = api.a.headers("admin")
    for name in ("one", "two"):
        await api.client.post("/v1/groups", headers=headers, json={"name": name})
    await api.client.put(_path(api), headers=headers, json={"name": "renamed"})
    assert (
        await api.client.get(_path(api, "/audit"), headers=api.a.headers("write"))
    ).status_code == 403
    log = await api.client.get(_path(api, "/audit"), headers=headers)
    assert log.status_code == 200
    actions = [entry["action"] for entry in log.json()]
    assert actions[:3] == ["organization.update", "group.create", "group.create"]
    assert int(log.headers["x-total"]) == len(actions)
    assert log.json()[0]["details"] == {"name": "renamed", "was": "tenant-a"}
    exact = await api.client.get(
        _path(api, "/audit"), headers=headers, params={"action": "group.create", "limit": 1}
    )
    assert exact.headers["x-total"] == "2"
    assert exact.json()[0]["details"] == {"name": "two"}
    oldest_group = log.json()[2]["at"]
    since = await api.client.get(
        _path(api, "/audit"), headers=headers, params={"since": oldest_group, "action": "group"}
    )
    assert since.headers["x-total"] == "2"
    before = await api.client.get(
        _path(api, "/audit"), headers=headers, params={"before": oldest_group, "action": "group"}
    )
    assert before.headers["x-total"] == "0"
    asc = await api.client.get(_path(api, "/audit"), headers=headers, params={"sort_order": "asc"})
    assert [e["action"] for e in asc.json()] == list(reversed(actions))


async def test_message_retention_is_shown_changed_and_audited(api: Api) -> None:
    shown = await api.client.get(_path(api), headers=api.a.headers("read"))
    assert shown.json()["message_retention_days"] == 90
    patched = await api.client.patch(
        _path(api), headers=api.a.headers("admin"), json={"message_retention_days": 30}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**shown.json(), "message_retention_days": 30}
    singular = f"/v1/organization/{api.a.organization_id}"
    shown = await api.client.get(singular, headers=api.a.headers("read"))
    assert shown.json()["message_retention_days"] == 30
    renamed = await api.client.patch(_path(api), headers=api.a.headers("admin"), json={"name": "z"})
    assert renamed.json()["message_retention_days"] == 30
    log = await api.client.get(
        _path(api, "/audit"), headers=api.a.headers("admin"), params={"action": "organization"}
    )
    details = [entry["details"] for entry in log.json()]
    assert details[:2] == [
        {"name": "z", "was": "tenant-a"},
        {"message_retention_days": 30, "was": {"message_retention_days": 90}},
    ]


@pytest.mark.parametrize("days", [0, -1, 3651, 100_000, 1.5, "30", True, None])
async def test_message_retention_out_of_range_is_422(api: Api, days: object) -> None:
    response = await api.client.patch(
        _path(api), headers=api.a.headers("admin"), json={"message_retention_days": days}
    )
    if days is None:  # null: left as it is
        assert response.status_code == 200
        assert response.json()["message_retention_days"] == 90
        return
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    shown = await api.client.get(_path(api), headers=api.a.headers("read"))
    assert shown.json()["message_retention_days"] == 90


async def test_only_admins_change_the_retention(api: Api) -> None:
    member = await _signed_in(api, "mia@example.com", "member")
    for headers in (member, api.a.headers("write")):
        response = await api.client.patch(
            _path(api), headers=headers, json={"message_retention_days": 7}
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    other = await api.client.patch(
        _path(api), headers=api.b.headers("admin"), json={"message_retention_days": 7}
    )
    assert other.status_code == 404
    admin = await _signed_in(api, "ada@example.com", "admin")
    allowed = await api.client.patch(_path(api), headers=admin, json={"message_retention_days": 7})
    assert allowed.json()["message_retention_days"] == 7
