"""Codecs: HARDWARIO v1's `/v1/codecs`, plus the codecs devices upload.

v1 shapes kept: `POST /v1/codecs {name, note?}` answers the new codec with
its `id`; `GET /v1/codecs?fields=id,name,author_ids` answers only those
keys; `GET|PUT|DELETE /v1/codec/{id}`. A codec shows the v1 fields (`id`,
`name`, `created_at`, `updated_at`, `note`, `decoder_type`, `decoder` as
YAML text, `author_ids`) and ours: `organization_id`, `kind`, `hash` (null
until a YAML is given), `source`.

Saving a YAML validates it (422 with the parser's reason) and stores it the
way workers read codecs (see `nubes.services.codecs`); a second codec with
the same hash in one organization is a conflict (409). Codecs uploaded by
devices are listed and readable; changing or deleting them answers 409,
since no credential could: the device is their authority.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from nubes.api.deps import READ, WRITE, ContextDep, Principal, PrincipalDep, require_level
from nubes.api.errors import ApiError, ErrorResponse, conflict, not_found
from nubes.api.paging import TOTAL_HEADER, Limit, Offset, SortOrder
from nubes.api.responses import Json
from nubes.api.routers.organizations import organization_for
from nubes.errors import CodecError
from nubes.services import codecs as service

router = APIRouter(tags=["codecs"])

TEXT_PATTERN = r"^[^\x00]*$"
MAX_YAML = 200_000
CodecId = Annotated[uuid.UUID, Path(description="The codec's id")]
CodecName = Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)]
Note = Annotated[str, Field(max_length=10_000, pattern=TEXT_PATTERN)]
YamlText = Annotated[
    str, Field(max_length=MAX_YAML, pattern=TEXT_PATTERN, description="The codec YAML")
]
DecoderType = Literal["cbor", "protobuf", "javascript"]
Kind = Literal["decoder", "encoder"]
HASH_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorResponse,
        "description": "Same hash as another codec of the organization, or a device's codec",
    }
}


class Codec(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime
    note: str | None
    decoder_type: DecoderType
    decoder: str | None = Field(description="The codec YAML; null until one is given")
    author_ids: list[uuid.UUID] = Field(description="Users who wrote it (none for devices, keys)")
    kind: Kind
    hash: str | None = Field(description="16 hex digits; null until a YAML is given")
    source: Literal["device", "user"] = Field(description="Uploaded by a device or written")


class CodecFields(BaseModel):
    """A codec with only the fields asked for with `fields=` (all when not asked)."""

    id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None
    name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    note: str | None = None
    decoder_type: str | None = None
    decoder: str | None = None
    author_ids: list[uuid.UUID] | None = None
    kind: str | None = None
    hash: str | None = None
    source: str | None = None


class CodecCreate(BaseModel):
    organization_id: uuid.UUID | None = Field(
        default=None, description="Needed when you belong to several organizations"
    )
    name: CodecName
    note: Note | None = None
    decoder_type: DecoderType = "cbor"
    decoder: YamlText | None = None
    kind: Kind = Field(default="decoder", description="Taken from the YAML when left out")


class CodecUpdate(BaseModel):
    name: CodecName | None = None
    note: Note | None = None
    decoder_type: DecoderType | None = None
    decoder: YamlText | None = None
    kind: Kind | None = None


def _compiled_kind(compiled: service.Compiled | None, kind: str | None) -> str | None:
    if compiled is None or kind in (None, compiled.kind):
        return kind if compiled is None else compiled.kind
    raise ApiError(422, "invalid_codec", f"kind is {kind} but the YAML is a {compiled.kind}")


async def _compile(decoder_type: str, text: str | None) -> service.Compiled | None:
    if text is None or decoder_type != "cbor":
        return None
    try:
        return await service.compile_yaml_async(text)
    except CodecError as err:
        raise ApiError(422, "invalid_codec", str(err)) from err


async def visible_codec(
    ctx: ContextDep, principal: Principal, codec_id: uuid.UUID, minimum: int
) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        row = await service.find_codec(conn, codec_id)
    if row is None:
        raise not_found("codec")
    require_level(principal, row["organization_id"], minimum, "codec")
    return row


def _fields(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in Codec.model_fields]
    if unknown:
        raise ApiError(422, "validation_error", f"unknown fields: {', '.join(unknown)}", unknown)
    return names


@router.get(
    "/v1/codecs",
    summary="List codecs of your organizations (with `fields=` only those keys)",
    response_model=list[CodecFields],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def list_codecs(
    principal: PrincipalDep,
    ctx: ContextDep,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="Only this organization")
    ] = None,
    kind: Annotated[Kind | None, Query(description="Only decoders or encoders")] = None,
    hash: Annotated[
        str | None, Query(pattern=r"^[0-9a-fA-F]{16}$", description="Only this hash")
    ] = None,
    fields: Annotated[
        str | None,
        Query(max_length=500, description="Comma-separated keys to answer, e.g. id,name"),
    ] = None,
    sort_field: Annotated[
        Literal["name", "created_at", "updated_at"], Query(description="Order by this field")
    ] = "name",
    sort_order: SortOrder = "asc",
    offset: Offset = 0,
    limit: Limit = 100,
) -> Json:
    selected = _fields(fields)
    if organization_id is not None:
        require_level(principal, organization_id, READ, "organization")
    where = service.CodecFilter(principal.organizations(READ), organization_id, kind, hash)
    total, rows = await service.list_codecs(
        ctx.engine,
        where,
        sort_field=sort_field,
        descending=sort_order == "desc",
        offset=offset,
        limit=limit,
    )
    body = [Codec.model_validate(row).model_dump(mode="json") for row in rows]
    if selected is not None:
        body = [{name: item[name] for name in selected} for item in body]
    return Json(body, headers={"x-total": str(total)})


@router.post(
    "/v1/codecs",
    status_code=201,
    summary="Create a codec (write access); a YAML is validated and hashed",
    response_model=Codec,
    responses=HASH_CONFLICT,
)
async def create_codec(body: CodecCreate, principal: PrincipalDep, ctx: ContextDep) -> Codec:
    organization_id = organization_for(principal, body.organization_id, WRITE)
    compiled = await _compile(body.decoder_type, body.decoder)
    kind = body.kind if "kind" in body.model_fields_set else None
    fields = {
        "name": body.name,
        "note": body.note,
        "decoder_type": body.decoder_type,
        "yaml": body.decoder,
        "kind": _compiled_kind(compiled, kind) or body.kind,
    }
    row = await service.create_codec(ctx.engine, organization_id, fields, compiled, principal.actor)
    return Codec.model_validate(row)


@router.get(
    "/v1/codecs/by-hash/{hash}",
    summary="Show the codec of a hash (as data messages name it)",
    response_model=Codec,
)
async def codec_by_hash(
    hash: Annotated[str, Path(pattern=r"^[0-9a-fA-F]{16}$", description="16 hex digits")],
    principal: PrincipalDep,
    ctx: ContextDep,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="The organization, when you belong to several")
    ] = None,
) -> Codec:
    if organization_id is not None:
        require_level(principal, organization_id, READ, "organization")
    where = service.CodecFilter(principal.organizations(READ), organization_id, hash=hash)
    _, rows = await service.list_codecs(ctx.engine, where, sort_field="created_at", limit=1)
    if not rows:
        raise not_found("codec")
    return Codec.model_validate(rows[0])


@router.get("/v1/codecs/{codec_id}", summary="Show a codec", response_model=Codec)
@router.get("/v1/codec/{codec_id}", summary="Show a codec (v1 path)", response_model=Codec)
async def get_codec(codec_id: CodecId, principal: PrincipalDep, ctx: ContextDep) -> Codec:
    return Codec.model_validate(await visible_codec(ctx, principal, codec_id, READ))


def _users_codec(row: dict[str, Any]) -> None:
    if row["source"] != "user":
        raise conflict("codecs uploaded by devices cannot be changed or deleted")


async def _update(
    codec_id: uuid.UUID, body: CodecUpdate, principal: Principal, ctx: ContextDep
) -> Codec:
    row = await visible_codec(ctx, principal, codec_id, WRITE)
    _users_codec(row)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if "decoder" in changes:
        changes["yaml"] = changes.pop("decoder")
    decoder_type = changes.get("decoder_type", row["decoder_type"])
    compiled = None
    if changes.keys() & {"yaml", "decoder_type", "kind"}:
        compiled = await _compile(decoder_type, changes.get("yaml", row["decoder"]))
        kind = _compiled_kind(compiled, changes.get("kind"))
        if kind is not None:
            changes["kind"] = kind
        if compiled is None:  # no YAML Nubes can run: no hash either
            changes |= {"hash": None, "document": None, "cbor": None}
    updated = await service.update_codec(ctx.engine, row, changes, compiled, principal.actor)
    return Codec.model_validate(updated)


@router.put(
    "/v1/codecs/{codec_id}",
    summary="Change a codec (the fields given; write access)",
    response_model=Codec,
    responses=HASH_CONFLICT,
)
@router.put(
    "/v1/codec/{codec_id}",
    summary="Change a codec (v1 path; the fields given)",
    response_model=Codec,
    responses=HASH_CONFLICT,
)
async def put_codec(
    codec_id: CodecId, body: CodecUpdate, principal: PrincipalDep, ctx: ContextDep
) -> Codec:
    return await _update(codec_id, body, principal, ctx)


@router.patch(
    "/v1/codecs/{codec_id}",
    summary="Change some fields of a codec (write access)",
    response_model=Codec,
    responses=HASH_CONFLICT,
)
async def patch_codec(
    codec_id: CodecId, body: CodecUpdate, principal: PrincipalDep, ctx: ContextDep
) -> Codec:
    return await _update(codec_id, body, principal, ctx)


@router.delete(
    "/v1/codecs/{codec_id}",
    status_code=204,
    summary="Delete a codec written by a user (write access)",
    response_class=Response,
    responses=HASH_CONFLICT,
)
@router.delete(
    "/v1/codec/{codec_id}",
    status_code=204,
    summary="Delete a codec written by a user (v1 path)",
    response_class=Response,
    responses=HASH_CONFLICT,
)
async def delete_codec(codec_id: CodecId, principal: PrincipalDep, ctx: ContextDep) -> Response:
    row = await visible_codec(ctx, principal, codec_id, WRITE)
    _users_codec(row)
    await service.delete_codec(ctx.engine, row, principal.actor)
    return Response(status_code=204)
