"""The web portal served beside the API: files, the SPA fallback, API paths untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from nubes.api.app import create_app
from nubes.api.context import ApiContext
from nubes.api.portal import is_api_path, portal_directory
from nubes.config import Settings
from nubes.pipeline.cache import MemoryCache
from nubes.pipeline.live import MemoryLive
from nubes.store.database import Database

INDEX = "<!doctype html><title>Nubes</title><div id=app></div>"


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log('portal')")
    (tmp_path / "favicon.svg").write_text("<svg/>")
    return tmp_path


async def client_for(database: Database, portal_dir: str) -> httpx.AsyncClient:
    ctx = ApiContext(Settings(portal_dir=portal_dir), database.engine, MemoryCache(), MemoryLive())
    transport = httpx.ASGITransport(app=create_app(ctx))
    return httpx.AsyncClient(transport=transport, base_url="http://nubes.test")


@pytest.fixture
async def client(migrated_db: Database, built: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for(migrated_db, str(built)) as client:
        yield client


async def test_index_at_root(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"


async def test_assets_are_files_cached_for_good(client: httpx.AsyncClient) -> None:
    response = await client.get("/assets/index-abc123.js")
    assert response.status_code == 200
    assert response.text == "console.log('portal')"
    assert "immutable" in response.headers["cache-control"]
    assert (await client.get("/favicon.svg")).text == "<svg/>"


@pytest.mark.parametrize(
    "path", ["/sign-in", "/organizations", "/organizations/1/groups/2/devices?x=1", "/v1x"]
)
async def test_client_routes_fall_back_to_index(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.text == INDEX


async def test_head_is_answered_like_get(client: httpx.AsyncClient) -> None:
    response = await client.head("/organizations")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


async def test_missing_asset_is_404_not_the_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/assets/index-gone.js")
    assert response.status_code == 404
    assert INDEX not in response.text


async def test_no_file_outside_the_build(client: httpx.AsyncClient, built: Path) -> None:
    (built.parent / "secret.txt").write_text("secret")
    for path in ("/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt"):
        response = await client.get(path)
        assert "secret" not in response.text


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/v1", "/v1/devices/not-a-uuid"])
async def test_api_paths_keep_their_json_errors(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code in (401, 404, 422)
    assert "error" in response.json()


async def test_api_documents_and_health_are_the_apis(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json()["status"] == "ok"
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "Nubes"
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_other_methods_go_to_the_api(client: httpx.AsyncClient) -> None:
    response = await client.post("/organizations")
    assert response.status_code in (404, 405)
    assert response.json()["error"]["code"] in ("not_found", "method_not_allowed")


async def test_without_a_build_root_leads_to_docs(migrated_db: Database, tmp_path: Path) -> None:
    async with await client_for(migrated_db, str(tmp_path / "not-built")) as client:
        response = await client.get("/")
        assert response.status_code in (302, 307)
        assert response.headers["location"] == "/docs"
        assert (await client.get("/organizations")).status_code == 404


async def test_every_api_route_is_an_api_path(migrated_db: Database) -> None:
    ctx = ApiContext(Settings(), migrated_db.engine, MemoryCache(), MemoryLive())
    app = create_app(ctx)
    documented = list(app.openapi()["paths"])
    direct = [route.path for route in app.routes if isinstance(route, APIRoute | Route)]
    assert "/v1/devices" in documented
    assert [path for path in documented + direct if not is_api_path(path)] == ["/"]


def test_a_directory_without_index_is_not_a_portal(tmp_path: Path) -> None:
    assert portal_directory(str(tmp_path)) is None
    (tmp_path / "index.html").write_text(INDEX)
    assert portal_directory(str(tmp_path)) == tmp_path
