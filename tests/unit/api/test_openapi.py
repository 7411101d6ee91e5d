"""The OpenAPI document describes every endpoint, parameter and error."""

from __future__ import annotations

from typing import Any

import pytest

from nubes.api.app import create_app
from nubes.api.context import ApiContext
from nubes.config import Settings

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    # The document is built from the routes alone: no database is touched.
    ctx = ApiContext(Settings(), None, None, None)  # type: ignore[arg-type]
    document: dict[str, Any] = create_app(ctx).openapi()
    return document


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_every_operation_has_a_summary(spec: dict[str, Any]) -> None:
    missing = [f"{m} {p}" for m, p, op in _operations(spec) if not op.get("summary")]
    assert missing == []


def test_every_parameter_is_described(spec: dict[str, Any]) -> None:
    missing = [
        f"{m} {p} {param['name']}"
        for m, p, op in _operations(spec)
        for param in op.get("parameters", [])
        if not (param.get("description") or param.get("schema", {}).get("description"))
    ]
    assert missing == []


def test_every_operation_documents_the_common_errors(spec: dict[str, Any]) -> None:
    for method, path, operation in _operations(spec):
        codes = set(operation["responses"])
        assert {"400", "401", "403", "404", "422", "429"} <= codes, f"{method} {path}"
        error = operation["responses"]["404"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/ErrorResponse"}


def test_the_v1_paths_scripts_use_exist(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    for method, path in [
        ("get", "/v1/organizations"),
        ("get", "/v1/groups"),
        ("get", "/v1/devices"),
        ("get", "/v1/messages"),
        ("post", "/v1/codecs"),
        ("get", "/v1/codecs"),
        ("get", "/v1/codec/{codec_id}"),
        ("put", "/v1/codec/{codec_id}"),
        ("delete", "/v1/codec/{codec_id}"),
        ("put", "/v1/device/{device_id}"),
        ("put", "/v1/group/{group_id}"),
        ("post", "/v1/auth/login"),
        ("get", "/v1/messages/stream"),
    ]:
        assert method in paths.get(path, {}), f"{method.upper()} {path}"
    listing = paths["/v1/messages"]["get"]
    names = {param["name"] for param in listing["parameters"]}
    assert {"group_id", "device_id", "since", "before", "sort_field", "sort_order"} <= names
    assert {"offset", "limit"} <= names
    assert "x-total" in listing["responses"]["200"]["headers"]


def test_every_list_sorts_and_pages(spec: dict[str, Any]) -> None:
    for method, path, operation in _operations(spec):
        names = {param["name"] for param in operation.get("parameters", [])}
        if method != "get" or "limit" not in names:
            continue
        assert {"sort_field", "sort_order"} <= names, path
        if not path.endswith("/export"):
            assert "x-total" in operation["responses"]["200"]["headers"], path
            assert "offset" in names, path
