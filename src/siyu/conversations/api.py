"""JSON API: conversations, their messages and message search under /api/v1 (thin: queries
read, the service writes).

Auth is the web session cookie; `POST` also needs the `X-CSRF-Token` header (its value is in
`GET /api/v1/me`). A conversation that is missing, belongs to another tenant, or is outside
the caller's role scope answers 404 `{"detail": "not found"}`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from siyu.conversations import queries, service
from siyu.conversations.schemas import (
    ConversationKind,
    ConversationOut,
    ConversationPage,
    DismissIn,
    DismissOut,
    MessagePage,
    SearchPage,
    WroteAgainOut,
)
from siyu.db.database import retry_deadlocks
from siyu.db.paging import BadCursor
from siyu.tenancy.queries import as_stored
from siyu.web.api_errors import API_RESPONSES, BIGINT, NOT_FOUND, WRITE, invalid, not_found, out_of_range
from siyu.web.api_paging import After, Before, PageNumber, one_way_of_paging
from siyu.web.auth import ApiViewer
from siyu.web.templating import forget_waiting

router = APIRouter(prefix="/api/v1", tags=["conversations"], responses=API_RESPONSES)

PerPage = Annotated[int, Query(ge=1, le=queries.MAX_PER_PAGE)]


@router.get(
    "/conversations", response_model=ConversationPage, summary="List conversations", responses=NOT_FOUND
)
def list_conversations(
    request: Request,
    viewer: ApiViewer,
    waiting: Annotated[bool, Query(description="only customers waiting for a reply now")] = False,
    staff: Annotated[str | None, Query(max_length=64, description="staff userid, in any case")] = None,
    customer: Annotated[int | None, Query(description="customer id")] = None,
    kind: Annotated[ConversationKind | None, Query(description="single or group")] = None,
    group_waiting: Annotated[
        bool,
        Query(description="only customer groups where a customer's question has no staff reply yet"),
    ] = False,
    told: Annotated[
        bool,
        Query(
            description="only those an escalation card went to the caller about (their own customers or,"
            " as a leader or escalation contact, a colleague's)"
        ),
    ] = False,
    card: Annotated[
        int | None,
        Query(
            description="an escalation card's id (the `card` of its link): only the customers it told"
            " of, those the caller may read; 404 for a card that does not exist or was sent to someone"
            " whose customers the caller may not see"
        ),
    ] = None,
    page: PageNumber = 1,
    per_page: PerPage = 20,
    after: After = None,
    before: Before = None,
):
    """Waiting customers first (longest wait first), then the latest conversations. Page with
    `next` / `prev`: unlike page numbers, they never skip a conversation that stayed where it was
    while others moved up or down between two requests."""
    from siyu.sla import service as sla_service  # (the SLA domain builds on this one)

    one_way_of_paging(page, after, before)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        f = queries.ConversationFilter(
            waiting, as_stored(s, staff), customer, kind, told=told, group_waiting=group_waiting
        )
        if card is not None:  # as the card's link opens the list page
            if card not in BIGINT:  # as customer's is (the page's link finds no card there)
                raise HTTPException(422, out_of_range(["card"]))
            found = sla_service.find_card(s, card)
            if found is None or not found.readable_by(viewer):
                raise not_found()
            f = replace(f, among=found.conversations)
        try:
            now = request.app.state.rt.now()  # (the clock the cards and the board read)
            result = queries.list_conversations(s, viewer, f, page, per_page, now, after=after, before=before)
        except BadCursor as e:
            raise HTTPException(422, str(e)) from None
        # a wait put off says so in its row, as on the list page: not null, read as "not snoozed"
        held = queries.snoozes(s, [c["id"] for c in result.items if c["waiting"]], now)
    for c in result.items:
        c["snooze"] = held.get(c["id"])
    return {
        "items": result.items,
        "total": result.total,
        "page": result.page,
        "per_page": result.per_page,
        "pages": result.pages,
        "next": result.next,
        "prev": result.prev,
    }


@router.get("/conversations/{conversation_id}", response_model=ConversationOut, responses=NOT_FOUND)
def get_conversation(request: Request, viewer: ApiViewer, conversation_id: int):
    """One conversation, with the customer message that waits for a reply (if one does)."""
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        found = queries.conversation(s, viewer, conversation_id, request.app.state.rt.now())
    if found is None:
        raise not_found()
    return found


@router.get("/conversations/{conversation_id}/messages", response_model=MessagePage, responses=NOT_FOUND)
def get_messages(
    request: Request,
    viewer: ApiViewer,
    conversation_id: int,
    before: Annotated[int | None, Query(description="a message id: return older messages")] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PER_PAGE)] = queries.MESSAGES_PER_PAGE,
):
    """The newest messages (or those older than `before`), oldest first."""
    try:
        with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
            found = queries.messages(s, viewer, conversation_id, before, limit)
    except queries.UnknownMessage as exc:
        raise HTTPException(422, str(exc)) from exc
    if found is None:
        raise not_found()
    return {"items": found.items, "has_more": found.has_more, "before": found.before}


@router.post(
    "/conversations/{conversation_id}/dismiss",
    response_model=DismissOut,
    responses={
        **NOT_FOUND,
        **WRITE,
        409: {"model": WroteAgainOut, "description": "the customer wrote again (`newest_msgid` names it)"},
        422: invalid("`msgid` is empty, or no message of this conversation (unknown, or another chat's)"),
    },
)
def dismiss(request: Request, viewer: ApiViewer, conversation_id: int, body: DismissIn | None = None):
    """Mark the waiting customer message 无需回复 (no reply needed): the wait and its
    escalations stop. With `msgid` (the customer message of the wait the client showed stored
    last, `waiting_newest_msgid`), only if nothing that needs a reply was stored after it: 409
    names what was; one of an older wait of this chat (the client showed a wait closed since)
    is a 409 too, while one that is no message of this chat at all is a 422. Without it,
    whatever waits is marked."""
    shown = body.msgid if body is not None else None

    def mark() -> tuple[dict | None, bool, dict | None]:
        with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
            if queries.get_conversation(s, viewer, conversation_id) is None:
                raise not_found()
            at = request.app.state.rt.now()
            try:
                dismissed = service.dismiss(s, conversation_id, at, by=viewer.signature, msgid=shown)
            except service.WroteAgain as refused:
                said = queries.message_said(s, conversation_id, refused.newest)
                detail = _wrote_again(said, viewer.timezone, at)
                return {"detail": detail, "newest_msgid": refused.newest}, False, None
            except service.NotItsMessage:
                raise HTTPException(
                    422, f"不是这个会话的消息：{shown} / not a message of this conversation: {shown}"
                ) from None
            s.flush()
            if dismissed:
                forget_waiting(viewer)
            return None, dismissed, queries.conversation(s, viewer, conversation_id, at)

    wrote_again, dismissed, found = retry_deadlocks(mark)
    if wrote_again is not None:  # (nothing was marked: the session had nothing to keep)
        return JSONResponse(wrote_again, 409)
    return {"dismissed": dismissed, "conversation": found}


def _wrote_again(said: tuple[str, datetime] | None, tz: str, now: datetime) -> str:
    """The 409's sentence: what the customer wrote, shortened, and when (the day too when it
    was not today), rather than a msgid nobody can read."""
    if said is None:  # (the message is the wait's: it was there a moment ago)
        return "客户又发了消息，没有标记 / the customer wrote again: nothing was marked"
    quote, when = queries.said_quote(said, tz, now)
    return (
        f"客户又发了消息「{quote}」（{when}），没有标记 / the customer wrote again at {when}"
        f" ({quote}), which waits for a reply: nothing was marked"
    )


@router.get("/messages/search", response_model=SearchPage, summary="Search messages")
def search_messages(
    request: Request,
    viewer: ApiViewer,
    q: Annotated[
        str, Query(min_length=1, max_length=100, description="words or Chinese text; all must match")
    ],
    waiting: Annotated[bool, Query(description="only in conversations waiting for a reply now")] = False,
    staff: Annotated[str | None, Query(max_length=64, description="staff userid, in any case")] = None,
    customer: Annotated[int | None, Query(description="customer id")] = None,
    kind: Annotated[ConversationKind | None, Query(description="single or group")] = None,
    page: PageNumber = 1,
    per_page: PerPage = 20,
    after: After = None,
    before: Before = None,
):
    """Full-text search over the messages the caller may read, newest first; the filters are
    those of the conversation list. Page with `next` / `prev`: unlike page numbers, they show
    no result twice and skip none when newer messages arrive between two requests."""
    one_way_of_paging(page, after, before)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        f = queries.ConversationFilter(waiting, as_stored(s, staff), customer, kind)
        try:
            found = queries.search_messages(s, viewer, q, page, per_page, f, after=after, before=before)
        except BadCursor as e:
            raise HTTPException(422, str(e)) from None
    return {
        "items": found.items,
        "q": found.q,
        "page": found.page,
        "per_page": found.per_page,
        "has_more": found.has_more,
        "next": found.next,
        "prev": found.prev,
    }
