"""`limit`/`offset` paging shared by the list endpoints: one query shape, one page shape."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.api.validation import RequestModel

MAX_OFFSET = 1_000_000_000  # far past any real list; keeps OFFSET inside every database's range


class OffsetQuery(RequestModel):
    """Base of a list endpoint's query: the page window (filters are added by subclasses)."""

    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


def offset_page(items: list[Any], total: int, query: OffsetQuery) -> dict[str, Any]:
    """The page body: the items, how many match in all, and the window that was asked for."""
    return {"items": items, "total": total, "limit": query.limit, "offset": query.offset}


def offset_page_json(items: str, total: int, query: OffsetQuery) -> str:
    """`offset_page` as JSON text, for items the database wrote as a JSON array."""
    return f'{{"items":{items},"total":{total},"limit":{query.limit},"offset":{query.offset}}}'
