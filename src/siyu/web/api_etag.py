"""Conditional writes of the JSON API (RFC 9110 If-Match): a GET's `ETag` is the version
(db.versions) of what the resource's write changes; a write sent with If-Match at another
version is refused (412) rather than undo unseen what someone saved since. Without If-Match
the last change wins: integrations written before ETags keep working."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException

from siyu.db.versions import well_formed


def if_match_header(get: str):
    """The If-Match header of a write whose ETag is the one of GET `get`."""
    return Annotated[
        str | None,
        Header(
            alias="If-Match",
            description=f'The `ETag` of GET {get} (`"<etag>"`, or several, comma-separated: any may '
            "match; `*`: any version). Without it, the last change wins.",
        ),
    ]


def etag(version: str) -> str:
    return f'"{version}"'


def not_an_etag(what: str, get: str) -> str:
    """The 400's detail; `what`: the resource as a sentence names it (该渠道)."""
    return (
        f"If-Match 不是 Siyu 给出的版本：请用 GET {what}时响应头里的 ETag / If-Match is not a version Siyu"
        f" gave: send the ETag header of GET {get}"
    )


def if_match(
    typed: str | None, now: str | None, changed: str | Callable[[], str], not_given: str
) -> str | None:
    """The version the write is made to: `now` when If-Match lists it (any of the listed ETags
    matching is enough), None without the header (or a blank one) or for `*` on a resource that
    exists. 412 (`changed`: who changed it, where known; a function is asked only for a 412,
    where saying so takes reads) when it lists only others, and for any
    If-Match while the resource does not exist (`now` None: RFC 9110 13.1.1, `*` too); 400
    (`not_given`) when none of them could be a version Siyu gave, an empty one ('""') too: a
    typo or a mangled header blames nobody."""
    tags = [tag.strip().removeprefix("W/").strip('"') for tag in (typed or "").split(",")]
    tags = [tag for tag in tags if tag]
    if not tags:
        if (typed or "").strip():  # '""' (a script's ETag left unset): checked, not a blind save
            raise HTTPException(400, not_given)
        return None
    if now is not None and "*" in tags:
        return None
    if now is not None and now in tags:
        return now
    if "*" not in tags and not any(well_formed(tag) for tag in tags):
        raise HTTPException(400, not_given)
    raise HTTPException(412, changed() if callable(changed) else changed)
