"""Sign-in, tokens, TOTP, API keys, rate limits: the routes of auth.py and keys.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from api_kit import Api
from nubes.services import auth

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


async def _user(api: Api, email: str = "ada@example.com", role: str = "member") -> None:
    await auth.create_user(
        api.engine, email=email, password=PASSWORD, organization=api.a.name, role=role
    )


async def _login(api: Api, email: str = "ada@example.com", **extra: str) -> str:
    response = await api.client.post(
        "/v1/auth/login", json={"email": email, "password": PASSWORD, **extra}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == api.ctx.settings.access_token_ttl_seconds
    token: str = body["access_token"]
    return token


async def test_login_gives_a_token_that_names_the_user(api: Api) -> None:
    await _user(api, "Ada@Example.com", role="viewer")
    token = await _login(api, "ada@example.com")
    me = await api.client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    body = me.json()
    assert body["kind"] == "user"
    assert body["email"] == "ada@example.com"
    assert body["organizations"] == [
        {
            "organization_id": str(api.a.organization_id),
            "organization_name": "tenant-a",
            "role": "viewer",
        }
    ]


async def test_wrong_password_and_unknown_email_answer_the_same(api: Api) -> None:
    await _user(api)
    wrong = await api.client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": "nope-nope"}
    )
    unknown = await api.client.post(
        "/v1/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "bad_credentials"


async def test_logout_revokes_the_token(api: Api) -> None:
    await _user(api)
    token = await _login(api)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.client.post("/v1/auth/logout", headers=headers)).status_code == 204
    after = await api.client.get("/v1/auth/me", headers=headers)
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "unauthorized"


async def test_totp_is_asked_for_once_enabled(api: Api) -> None:
    await _user(api)
    headers = {"Authorization": f"Bearer {await _login(api)}"}
    setup = (await api.client.post("/v1/auth/totp/setup", headers=headers)).json()
    assert setup["uri"].startswith("otpauth://totp/")
    bad = await api.client.post("/v1/auth/totp/enable", headers=headers, json={"code": "000000"})
    if auth.totp_code(setup["secret"]) != "000000":
        assert bad.status_code == 400
    code = auth.totp_code(setup["secret"])
    enabled = await api.client.post("/v1/auth/totp/enable", headers=headers, json={"code": code})
    assert enabled.status_code == 204
    without = await api.client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert without.status_code == 401
    assert without.json()["error"]["code"] == "totp_required"
    # The enabling code is used up; the next step's code (within the skew) works once.
    again = await api.client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "totp": code}
    )
    assert again.json()["error"]["code"] == "bad_totp"
    later = auth.totp_code(setup["secret"], at=time.time() + auth.TOTP_STEP)
    await _login(api, totp=later)
    replayed = await api.client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "totp": later}
    )
    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "bad_totp"


async def test_disabling_totp_needs_the_password_and_a_fresh_code(api: Api) -> None:
    await _user(api)
    headers = {"Authorization": f"Bearer {await _login(api)}"}
    secret = (await api.client.post("/v1/auth/totp/setup", headers=headers)).json()["secret"]
    code = auth.totp_code(secret)
    await api.client.post("/v1/auth/totp/enable", headers=headers, json={"code": code})
    path = "/v1/auth/totp/disable"
    reused = await api.client.post(path, headers=headers, json={"password": PASSWORD, "code": code})
    assert reused.status_code == 400
    later = auth.totp_code(secret, at=time.time() + auth.TOTP_STEP)
    wrong = await api.client.post(
        path, headers=headers, json={"password": "wrong one!", "code": later}
    )
    assert wrong.status_code == 400
    done = await api.client.post(path, headers=headers, json={"password": PASSWORD, "code": later})
    assert done.status_code == 204
    assert (await _login(api)).startswith("nbt_")


async def test_parallel_guesses_do_not_outrun_the_limit(api: Api) -> None:
    await _user(api)
    guesses = [
        api.client.post(
            "/v1/auth/login", json={"email": "ada@example.com", "password": f"guess-{i}"}
        )
        for i in range(30)
    ]
    statuses = [response.status_code for response in await asyncio.gather(*guesses)]
    assert statuses.count(401) <= 10
    assert statuses.count(429) >= 20


async def test_hostile_strings_are_refused_not_crashed_on(api: Api) -> None:
    for body in (
        {"email": "a\u0000@x.test", "password": "12345678"},
        {"email": "a@x.test", "password": "1234\u00005678"},
        {
            "email": "a@x.test",
            "password": "12345678",
            "totp": "\uff11\uff12\uff13\uff14\uff15\uff16",
        },
    ):
        response = await api.client.post("/v1/auth/login", json=body)
        assert response.status_code == 422, (body, response.text)
    key = await api.client.post(
        f"/v1/organizations/{api.a.organization_id}/api-keys",
        headers=api.a.headers("admin"),
        json={"name": "a\u0000b"},
    )
    assert key.status_code == 422


async def test_changing_the_password_revokes_other_tokens(api: Api) -> None:
    await _user(api)
    this, other = await _login(api), await _login(api)
    changed = await api.client.post(
        "/v1/auth/password",
        headers={"Authorization": f"Bearer {this}"},
        json={"current_password": PASSWORD, "new_password": "another long one"},
    )
    assert changed.status_code == 204
    assert (
        await api.client.get("/v1/auth/me", headers={"Authorization": f"Bearer {this}"})
    ).status_code == 200
    assert (
        await api.client.get("/v1/auth/me", headers={"Authorization": f"Bearer {other}"})
    ).status_code == 401
    old = await api.client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert old.status_code == 401
    wrong = await api.client.post(
        "/v1/auth/password",
        headers={"Authorization": f"Bearer {this}"},
        json={"current_password": "not it at all", "new_password": "a third long one"},
    )
    assert wrong.status_code == 400


def test_totp_matches_the_rfc_6238_vector() -> None:
    # RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits) -> last 6 digits.
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890"
    assert auth.totp_code(secret, at=59) == "287082"
    assert auth.totp_code(secret, at=1111111109) == "081804"


async def test_api_keys_by_header_and_bearer(api: Api) -> None:
    key = api.a.keys["read"]
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        response = await api.client.get("/v1/auth/me", headers=headers)
        assert response.status_code == 200
        assert response.json()["organizations"][0]["role"] == "viewer"


async def test_a_key_is_shown_once_listed_without_secret_and_revocable(api: Api) -> None:
    created = await api.client.post(
        f"/v1/organizations/{api.a.organization_id}/api-keys",
        headers=api.a.headers("admin"),
        json={"name": "ci", "scope": "write"},
    )
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith(created.json()["prefix"])
    listing = await api.client.get(
        f"/v1/organizations/{api.a.organization_id}/api-keys", headers=api.a.headers("admin")
    )
    assert listing.status_code == 200
    assert int(listing.headers["x-total"]) == 4
    assert key not in listing.text
    key_id = created.json()["id"]
    revoked = await api.client.delete(f"/v1/api-keys/{key_id}", headers=api.a.headers("admin"))
    assert revoked.status_code == 204
    assert (await api.client.get("/v1/auth/me", headers={"X-API-Key": key})).status_code == 401


async def test_keys_need_admin_and_stay_in_their_tenant(api: Api) -> None:
    path = f"/v1/organizations/{api.a.organization_id}/api-keys"
    assert (await api.client.get(path, headers=api.a.headers("write"))).status_code == 403
    assert (await api.client.get(path, headers=api.b.headers("admin"))).status_code == 404
    created = await api.client.post(path, headers=api.a.headers("admin"), json={})
    key_id = created.json()["id"]
    other = await api.client.delete(f"/v1/api-keys/{key_id}", headers=api.b.headers("admin"))
    assert other.status_code == 404


async def test_repeated_failures_are_rate_limited_with_retry_after(api: Api) -> None:
    await _user(api)
    statuses = []
    for _ in range(12):
        response = await api.client.post(
            "/v1/auth/login", json={"email": "ada@example.com", "password": "wrong-wrong"}
        )
        statuses.append(response.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429
    # Even the right password is refused while the account is blocked.
    blocked = await api.client.post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert blocked.json()["error"]["code"] == "rate_limited"


async def test_bad_keys_are_rate_limited_per_source(api: Api) -> None:
    for _ in range(20):
        response = await api.client.get("/v1/auth/me", headers={"X-API-Key": "nbk_guess"})
        assert response.status_code == 401
    limited = await api.client.get("/v1/auth/me", headers=api.a.headers("read"))
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers


async def test_oversized_bodies_are_refused(api: Api) -> None:
    response = await api.client.post(
        "/v1/auth/login",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_oversized_streamed_bodies_are_refused_too(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 65536  # 2.5 MiB without a Content-Length

    response = await api.client.post(
        "/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    async def small() -> AsyncIterator[bytes]:
        yield b'{"email": "nobody@example.com",'
        yield b' "password": "whatever-it-is"}'

    response = await api.client.post(
        "/v1/auth/login", content=small(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 401


async def test_validation_errors_have_the_error_shape(api: Api) -> None:
    response = await api.client.post("/v1/auth/login", json={"email": 3})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert isinstance(error["details"], list)


async def test_the_first_start_creates_an_admin_once(api: Api) -> None:
    # The fixture's tenants are API keys only: the database has no user yet.
    password = await auth.bootstrap_admin(api.engine)
    assert password is not None
    assert len(password) >= auth.MIN_PASSWORD
    assert await auth.bootstrap_admin(api.engine) is None
    response = await api.client.post(
        "/v1/auth/login", json={"email": auth.BOOTSTRAP_EMAIL, "password": password}
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    me = await api.client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert [(o["organization_name"], o["role"]) for o in me.json()["organizations"]] == [
        ("default", "owner")
    ]


async def test_each_source_has_its_own_limit(api: Api) -> None:
    from nubes.api import ratelimit

    for _ in range(ratelimit.SOURCE_LIMIT):
        await ratelimit.failed(api.ctx.cache, "203.0.113.7")
    with pytest.raises(ratelimit.ApiError):
        await ratelimit.check(api.ctx.cache, "203.0.113.7")
    await ratelimit.check(api.ctx.cache, "203.0.113.8")


async def test_keys_list_in_either_order(api: Api) -> None:
    path = f"/v1/organizations/{api.a.organization_id}/api-keys"
    headers = api.a.headers("admin")
    newest = await api.client.get(path, headers=headers)
    oldest = await api.client.get(
        path, headers=headers, params={"sort_field": "created_at", "sort_order": "asc"}
    )
    names = [key["name"] for key in newest.json()]
    assert names == ["admin", "write", "read"]
    assert [key["name"] for key in oldest.json()] == names[::-1]
    bad = await api.client.get(path, headers=headers, params={"sort_field": "secret"})
    assert bad.status_code == 422
