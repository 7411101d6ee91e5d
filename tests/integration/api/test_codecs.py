"""Codecs over the API: v1 shapes, YAML validation and hashes, device codecs read-only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
import sqlalchemy as sa

from api_kit import Api, Tenant
from nubes.codec import codec_from_cbor, yaml_to_cbor
from nubes.services import auth
from nubes.store import tables as t

pytestmark = pytest.mark.integration

CODECS = resources.files("nubes.sim").joinpath("codecs")
DECODER = CODECS.joinpath("demo.decoder.yaml").read_text()
ENCODER = CODECS.joinpath("demo.encoder.yaml").read_text()
DECODER_HASH = "6940c0933067d636"  # spec/codecs.md: demo.decoder.yaml
ENCODER_HASH = "e074aea1e4183ce4"


async def _create(api: Api, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await api.client.post("/v1/codecs", headers=tenant.headers("write"), json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _device_codec(api: Api, tenant: Tenant) -> uuid.UUID:
    """A codec as the worker stores one a device uploaded."""
    codec_id, now = uuid.uuid4(), datetime.now(UTC)
    cbor = yaml_to_cbor(DECODER)
    async with api.engine.begin() as conn:
        await conn.execute(
            sa.insert(t.codecs).values(
                id=codec_id,
                organization_id=tenant.organization_id,
                hash=DECODER_HASH,
                kind="decoder",
                name="com.hardwario.chester.app.demo",
                document=codec_from_cbor(cbor).document,
                cbor=cbor,
                source="device",
                created_at=now,
                updated_at=now,
            )
        )
    return codec_id


async def test_v1_post_with_name_and_note_answers_the_codec_with_its_id(api: Api) -> None:
    codec = await _create(api, api.a, name="legacy", note="from v1")
    assert uuid.UUID(codec["id"])
    assert codec["name"] == "legacy"
    assert codec["note"] == "from v1"
    assert codec["decoder_type"] == "cbor"
    assert codec["decoder"] is None
    assert codec["hash"] is None
    assert codec["author_ids"] == []  # an API key is nobody
    assert codec["source"] == "user"
    assert codec["kind"] == "decoder"
    assert codec["organization_id"] == str(api.a.organization_id)


async def test_a_yaml_is_validated_hashed_and_stored_for_the_workers(api: Api) -> None:
    codec = await _create(api, api.a, name="demo", decoder=DECODER)
    assert codec["hash"] == DECODER_HASH
    assert codec["decoder"] == DECODER
    async with api.engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(t.codecs).where(t.codecs.c.id == uuid.UUID(codec["id"]))))
            .mappings()
            .one()
        )
    assert row["cbor"] == yaml_to_cbor(DECODER)
    assert row["document"]["type"] == "decoder"
    encoder = await _create(api, api.a, name="enc", decoder=ENCODER)
    assert encoder["kind"] == "encoder"
    assert encoder["hash"] == ENCODER_HASH
    by_hash = await api.client.get(
        f"/v1/codecs/by-hash/{ENCODER_HASH.upper()}", headers=api.a.headers("read")
    )
    assert by_hash.json()["id"] == encoder["id"]


async def test_same_hash_twice_in_one_organization_conflicts(api: Api) -> None:
    await _create(api, api.a, name="one", decoder=DECODER)
    twice = await api.client.post(
        "/v1/codecs", headers=api.a.headers("write"), json={"name": "two", "decoder": DECODER}
    )
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "conflict"
    await _create(api, api.b, name="theirs", decoder=DECODER)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("version: 2\ntype: decoder\nname: x\nschema: [{a: [{$nope: 1}]}]\n", "$nope"),
        ("version: 3\ntype: decoder\nname: x\nschema: []\n", "version"),
        ("version: 2\ntype: decoder\nname: [x\n", "YAML"),
        ("a: &a [1, 2]\nb: [*a, *a]\n", "alias"),
    ],
)
async def test_invalid_yaml_answers_422_with_the_parsers_reason(
    api: Api, text: str, reason: str
) -> None:
    response = await api.client.post(
        "/v1/codecs", headers=api.a.headers("write"), json={"name": "bad", "decoder": text}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_codec"
    assert reason in error["message"]


async def test_kind_must_match_the_yaml(api: Api) -> None:
    response = await api.client.post(
        "/v1/codecs",
        headers=api.a.headers("write"),
        json={"name": "x", "decoder": ENCODER, "kind": "decoder"},
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x", "decoder_type": "lua"}, {"name": "x", "kind": "both"}]
)
async def test_invalid_codec_bodies_answer_422(api: Api, body: dict[str, Any]) -> None:
    response = await api.client.post("/v1/codecs", headers=api.a.headers("write"), json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_fields_selects_keys_and_lists_have_x_total(api: Api) -> None:
    await _create(api, api.a, name="b-codec")
    await _create(api, api.a, name="a-codec", decoder=DECODER)
    listing = await api.client.get(
        "/v1/codecs", headers=api.a.headers("read"), params={"fields": "id,name,author_ids"}
    )
    assert listing.status_code == 200
    assert listing.headers["x-total"] == "2"
    assert [set(c) for c in listing.json()] == [{"id", "name", "author_ids"}] * 2
    assert [c["name"] for c in listing.json()] == ["a-codec", "b-codec"]
    full = await api.client.get(
        "/v1/codecs",
        headers=api.a.headers("read"),
        params={"sort_field": "created_at", "sort_order": "desc"},
    )
    assert [c["name"] for c in full.json()] == ["a-codec", "b-codec"]
    assert {"decoder", "hash", "kind", "source", "updated_at"} <= set(full.json()[0])
    hashed = await api.client.get(
        "/v1/codecs", headers=api.a.headers("read"), params={"hash": DECODER_HASH}
    )
    assert [c["name"] for c in hashed.json()] == ["a-codec"]
    unknown = await api.client.get(
        "/v1/codecs", headers=api.a.headers("read"), params={"fields": "id,secret"}
    )
    assert unknown.status_code == 422


async def test_v1_singular_paths_show_change_and_delete(api: Api) -> None:
    codec = await _create(api, api.a, name="draft")
    path = f"/v1/codec/{codec['id']}"
    headers = api.a.headers("write")
    assert (await api.client.get(path, headers=headers)).json() == codec
    changed = await api.client.put(path, headers=headers, json={"decoder": DECODER})
    assert changed.status_code == 200, changed.text
    assert changed.json()["hash"] == DECODER_HASH
    assert changed.json()["name"] == "draft"
    assert changed.json()["updated_at"] > codec["updated_at"]
    patched = await api.client.patch(
        f"/v1/codecs/{codec['id']}", headers=headers, json={"decoder": ENCODER}
    )
    assert patched.json()["hash"] == ENCODER_HASH
    assert patched.json()["kind"] == "encoder"
    assert (await api.client.delete(path, headers=headers)).status_code == 204
    assert (await api.client.get(path, headers=headers)).status_code == 404


async def test_device_codecs_are_listed_readable_and_read_only(api: Api) -> None:
    codec_id = await _device_codec(api, api.a)
    headers = api.a.headers("admin")
    shown = await api.client.get(f"/v1/codecs/{codec_id}", headers=headers)
    assert shown.status_code == 200
    assert shown.json()["source"] == "device"
    assert shown.json()["author_ids"] == []
    assert "$fpp" in shown.json()["decoder"] or "schema:" in shown.json()["decoder"]
    listing = await api.client.get("/v1/codecs", headers=headers, params={"kind": "decoder"})
    assert [c["id"] for c in listing.json()] == [str(codec_id)]
    put = await api.client.put(f"/v1/codec/{codec_id}", headers=headers, json={"name": "mine"})
    assert put.status_code == 409
    assert (await api.client.delete(f"/v1/codec/{codec_id}", headers=headers)).status_code == 409
    same = await api.client.post(
        "/v1/codecs", headers=headers, json={"name": "copy", "decoder": DECODER}
    )
    assert same.status_code == 409


async def test_other_tenants_codecs_answer_404_and_read_keys_cannot_write(api: Api) -> None:
    codec = await _create(api, api.a, name="private", decoder=DECODER)
    other = api.b.headers("admin")
    for path in (f"/v1/codecs/{codec['id']}", f"/v1/codec/{codec['id']}"):
        assert (await api.client.get(path, headers=other)).status_code == 404
        assert (await api.client.put(path, headers=other, json={"name": "x"})).status_code == 404
        assert (await api.client.delete(path, headers=other)).status_code == 404
    hidden = await api.client.get(f"/v1/codecs/by-hash/{DECODER_HASH}", headers=other)
    assert hidden.status_code == 404
    assert (await api.client.get("/v1/codecs", headers=other)).headers["x-total"] == "0"
    read = api.a.headers("read")
    path = f"/v1/codecs/{codec['id']}"
    assert (await api.client.put(path, headers=read, json={"name": "x"})).status_code == 403
    assert (await api.client.delete(path, headers=read)).status_code == 403
    post = await api.client.post("/v1/codecs", headers=read, json={"name": "x"})
    assert post.status_code == 403


async def test_a_user_is_the_author_and_must_name_the_organization_when_several(
    api: Api,
) -> None:
    await auth.create_user(
        api.engine, email="ada@example.com", password="correct horse", organization=api.a.name
    )
    login = await api.client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": "correct horse"}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    me = (await api.client.get("/v1/auth/me", headers=headers)).json()
    codec = await api.client.post("/v1/codecs", headers=headers, json={"name": "mine"})
    assert codec.json()["author_ids"] == [me["id"]]
    await api.client.post("/v1/organizations", headers=headers, json={"name": "second"})
    ambiguous = await api.client.post("/v1/codecs", headers=headers, json={"name": "which"})
    assert ambiguous.status_code == 422
    assert ambiguous.json()["error"]["code"] == "organization_required"


async def test_codec_writes_are_audited(api: Api) -> None:
    codec = await _create(api, api.a, name="audited", decoder=DECODER)
    headers = api.a.headers("admin")
    await api.client.put(f"/v1/codecs/{codec['id']}", headers=headers, json={"note": "n"})
    await api.client.delete(f"/v1/codecs/{codec['id']}", headers=headers)
    audit = await api.client.get(
        f"/v1/organizations/{api.a.organization_id}/audit",
        headers=headers,
        params={"action": "codec"},
    )
    entries = audit.json()
    assert [e["action"] for e in entries] == ["codec.delete", "codec.update", "codec.create"]
    assert entries[2]["details"] == {"name": "audited", "kind": "decoder", "hash": DECODER_HASH}
    assert entries[1]["details"]["fields"] == ["note"]
