"""The query parameters of a JSON API list that pages by number or, better, by the cursors a
page hands out (`next`, `prev`): they never skip a row that stayed where it was, nor show one
twice, however many rows moved or arrived between two requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query
from pydantic import BaseModel, Field

# A page's rows start (page - 1) × per_page rows in (per_page up to 100): an offset past what the
# database holds was refused naming no parameter.
MAX_PAGE = 10**15
PageNumber = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description="page number; `after` / `before` page better")
]
After = Annotated[str | None, Query(max_length=200, description="`next` of a page: the page after it")]
Before = Annotated[str | None, Query(max_length=200, description="`prev` of a page: the page before it")]


def one_way_of_paging(page: int, after: str | None, before: str | None) -> None:
    if (after or before) and page != 1:
        raise HTTPException(422, "page 和 after / before 只能用一种 / give page, or after / before, not both")


class ListPage(BaseModel):
    """Where a list's page stands, under its `items` (declared by each list)."""

    total: int
    page: int | None = Field(description="the page number asked for; null when paged by cursor")
    per_page: int
    pages: int
    next: str | None = Field(description="pass as `after` for the next page; null on the last")
    prev: str | None = Field(description="pass as `before` for the page before; null on the first")
