"""What the JSON API answers when it refuses, and how the OpenAPI spec declares it.

Every refusal is `{"detail": ...}`: a sentence, except a 422 for a parameter or body field
of the wrong type, missing or not known, where `detail` is FastAPI's list of errors. A
missing or foreign id answers the same 404, so that another tenant's (or another agent's)
ids cannot be told from ids that do not exist."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import HTTPException
from pydantic import BaseModel, Field, StrictInt


class ApiError(BaseModel):
    detail: str = Field(description="why, in words (Chinese first where the message has both)")


class FieldError(BaseModel):
    type: str = Field(description="e.g. missing, int_type, extra_forbidden, json_invalid")
    loc: list[str | int] = Field(description='where: ["body", "minutes"], ["query", "per_page"]')
    msg: str
    input: Any = None
    ctx: dict | None = None


class InvalidRequest(BaseModel):
    detail: str | list[FieldError] = Field(
        description="a sentence (a rule the request breaks), or one entry per field that is missing,"
        " of the wrong type or not known"
    )


def error(description: str) -> dict:
    """A refusal as the spec declares it (a route's 409, a 404 that says what is missing)."""
    return {"model": ApiError, "description": description}


def invalid(description: str) -> dict:
    """A route's own 422 (it replaces the router's, so it must name the model too)."""
    return {"model": InvalidRequest, "description": description}


# Every /api/v1 router declares these.
API_RESPONSES: dict[int | str, dict] = {
    401: error(
        "not signed in (no `siyu_session` cookie, or the session ended), or the bearer token is not"
        " valid, revoked or expired, or suspended (whom it acts as or who made it left, was disabled"
        " or changed role; `detail` says which)"
    ),
    422: invalid("the request is not valid; `detail` says why"),
}
TOO_LARGE = {413: error("the body is over 1 MB")}
WRITE = {403: error("the `X-CSRF-Token` header is missing or wrong"), **TOO_LARGE}
ADMIN = {403: error("admins only")}
ADMIN_WRITE = {403: error("admins only; or the `X-CSRF-Token` header is missing or wrong"), **TOO_LARGE}
NOT_FOUND = {404: error("not found (or not yours)")}
WECOM_FAILED = {502: error("WeCom refused or did not answer (`detail` says which): the channel is as it was")}


NOT_FOUND_TEXT = "找不到，或你无权查看 / not found (or not yours)"


def not_found() -> HTTPException:
    return HTTPException(404, NOT_FOUND_TEXT)


# What the database's integer columns hold: an id past it is refused by the database itself
# (SQLite's driver, PostgreSQL), and the answer names the parameter it came in.
BIGINT = range(-(2**63), 2**63)

# An id a body carries: refused with the field's place in FastAPI's list, before the database
# refuses it with no place to name (a strict int, as "1" or true read as 1 would pick a row).
BodyId = Annotated[StrictInt, Field(ge=BIGINT.start, le=BIGINT.stop - 1)]


def out_of_range(names: list[str]) -> str:
    """What a 422 says of numbers the database holds no integer for (`names`, path and query
    parameters; none where it cannot be told which)."""
    if not names:
        return "请求里有个数字超出了范围 / a number in the request is out of range"
    listed = ", ".join(names)
    return f"{listed} 超出了范围 / {listed} {'is' if len(names) == 1 else 'are'} out of range"


class ClearNotFound(HTTPException):
    """A 404 whose detail is kept: for what reads the same whether it is missing or another
    tenant's (a department by its WeCom id: each tenant has its own directory and ids)."""

    def __init__(self, detail: str):
        super().__init__(404, detail)


NOT_JSON_TYPE = (
    "the body was not sent as JSON: its `Content-Type` is not `application/json` (curl's `-d` sends"
    " a form's); `detail` says what it was. The body is not repeated"
)


def body_refusals_where_a_body_is_taken(app) -> None:
    """The spec's 413 and 415 on the operations that take a body only: WRITE and ADMIN_WRITE
    declare the 413 for every write, and a DELETE that takes none had it listed as if one
    could be too large; the 415 (a body not sent as JSON) is added to each that takes one."""
    made = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            for operations in made().get("paths", {}).values():
                for operation in operations.values():
                    if not isinstance(operation, dict):
                        continue
                    responses = operation.setdefault("responses", {})
                    if "requestBody" not in operation:
                        responses.pop("413", None)
                    else:
                        responses["415"] = {
                            "description": NOT_JSON_TYPE,
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}
                            },
                        }
        return app.openapi_schema

    app.openapi = openapi
