"""What every JSON API route answers for a missing or foreign id: the same 404, so that
another tenant's (or another agent's) ids cannot be told from ids that do not exist."""

from __future__ import annotations

from fastapi import HTTPException

NOT_FOUND = {404: {"description": "not found (or not yours)", "content": {"application/json": {}}}}


def not_found() -> HTTPException:
    return HTTPException(404, "not found")


class ClearNotFound(HTTPException):
    """A 404 whose detail is kept: for what reads the same whether it is missing or another
    tenant's (a department by its WeCom id: each tenant has its own directory and ids)."""

    def __init__(self, detail: str):
        super().__init__(404, detail)
