"""What every JSON API route answers for a missing or foreign id: the same 404, so that
another tenant's (or another agent's) ids cannot be told from ids that do not exist."""

from __future__ import annotations

from fastapi import HTTPException

NOT_FOUND = {404: {"description": "not found (or not yours)", "content": {"application/json": {}}}}


def not_found() -> HTTPException:
    return HTTPException(404, "not found")
