"""Listing conventions shared by every collection.

HARDWARIO v1 lists are JSON arrays with the total count in the `x-total`
header, paged with `offset`/`limit` and ordered with `sort_field` and
`sort_order`. Nubes keeps that shape on every list, and adds cursor paging
where lists can be long (messages): `x-next-cursor` names the next page and
`x-has-more` says whether one exists.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query, Response

MAX_LIMIT = 100

Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Rows to skip")]
Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Rows to return (at most {MAX_LIMIT})")
]
SortOrder = Annotated[Literal["asc", "desc"], Query(description="Ascending or descending")]


# Lists ordered by one time only still take `sort_field` (v1 clients send it).
ByCreation = Annotated[
    Literal["created_at"], Query(description="The field to sort by: `created_at` (the only one)")
]
ByStart = Annotated[
    Literal["started_at"], Query(description="The field to sort by: `started_at` (the only one)")
]
ByTime = Annotated[Literal["at"], Query(description="The field to sort by: `at` (the only one)")]


def set_total(response: Response, total: int) -> None:
    response.headers["x-total"] = str(total)


TOTAL_HEADER = {
    "x-total": {
        "description": "How many objects match, regardless of paging",
        "schema": {"type": "integer"},
    }
}
