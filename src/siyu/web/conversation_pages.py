"""The conversation pages: who is waiting (/conversations), one chat (/conversations/{id}),
message search (/conversations?q=...). Server-rendered, Chinese first, for a phone and for
WeCom's own browser, where pushed links ("王女士 已等待 2 分钟") open /conversations/{id}."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from siyu.conversations import queries, service
from siyu.customers import queries as customer_queries
from siyu.db.database import retry_deadlocks
from siyu.db.paging import BadCursor
from siyu.sla import queries as sla_queries
from siyu.sla import service as sla_service
from siyu.sla.history import ENDINGS
from siyu.tenancy.models import Tenant
from siyu.tenancy.queries import as_stored, staff_gone
from siyu.web.api_errors import ClearNotFound
from siyu.web.auth import PageViewer, safe_next
from siyu.web.sla_pages import SNOOZE_CHOICES, board_dismissed, remarked, wrote_again
from siyu.web.stale_notice import named_for
from siyu.web.templating import forget_waiting, note_waiting, render

router = APIRouter(include_in_schema=False)

DONE = {
    "dismissed": "已标记为无需回复。",
    "not_waiting": "这个会话已经不在等待回复了。",
    "not_its_message": "表单里的消息不是这个会话的，没有标记：请看过页面再点一次。",
    "snoozed": "已暂缓提醒。",
    "snooze_kept": "已有人暂缓到更晚，保持不变（见提醒已暂缓至）。",
    "snooze_changed": "客户在你打开页面后又发了消息，没有暂缓：请看过新消息再决定。",
}
# Nothing was done: said in the amber of a warning, not the green of success.
NOT_DONE = frozenset({"not_waiting", "changed", "snooze_kept", "snooze_changed"})


FILTERS_BEYOND_WAITING = ("staff", "kind", "customer", "told", "card", "group_waiting")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _not_found() -> HTTPException:
    return HTTPException(404, "not found")


# A card's link (`?card=`) forwarded to a colleague who may not see the chat. Said of every
# card link that finds nothing, whatever the card and chat are, or whether they exist: that
# it is another's card, or whose, would tell of a card and a chat beyond the link's numbers.
CARD_LINK_NOT_YOURS = (
    "这个页面不存在，或你没有权限查看。提醒的链接只有收到提醒的成员、其主管和管理员能打开："
    "如果是别人转给你的，请交回对方处理。/ This page does not exist or is not yours: a reminder's"
    " link opens for the member it was sent to, their leader and admins."
)


@router.get("/conversations", response_class=HTMLResponse)
def conversation_list(request: Request, viewer: PageViewer):
    p = request.query_params
    typed = (p.get("q") or "").strip()
    q = typed[:100]
    kind = p.get("kind") if p.get("kind") in queries.KINDS else None
    f = queries.ConversationFilter(
        waiting=p.get("waiting") in ("1", "true", "on"),
        staff_userid=p.get("staff") or None,
        customer_id=_int(p.get("customer")),
        kind=kind,
        told=p.get("told") in ("1", "true", "on"),
        group_waiting=p.get("group_waiting") in ("1", "true", "on"),
    )
    asked = _int(p.get("page"))
    # a page or cursor the list did not hand out (cut short, typed in, 0): the first page, said so
    paging_reset = (asked is not None and asked < 1) or (p.get("page") not in (None, "") and asked is None)
    page_no = max(1, asked or 1)
    result = hits = customer = card = None
    card_missing = False
    now = request.app.state.rt.now()  # (the clock the cards and the board read)
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        f = replace(f, staff_userid=as_stored(s, f.staff_userid))  # ZhangSan: zhangsan's, as stored
        if p.get("card"):  # a card's link: its customers (what the viewer may see of them)
            card_id = _int(p.get("card"))
            card = sla_service.find_card(s, card_id) if card_id is not None else None
            if card is not None and not card.readable_by(viewer):
                # another team's card is not found, as in the API: neither that it is a card nor
                # how many of its customers wait is the viewer's to learn
                card = None
            card_missing = card is None  # (then the list it was filtered from)
            f = replace(f, among=card.conversations if card else None)
        if q:
            try:
                hits = queries.search_messages(
                    s, viewer, q, page_no, 20, f, after=p.get("after") or None, before=p.get("before") or None
                )
            except BadCursor:  # a cursor mangled in the address bar: the first page
                hits, paging_reset = queries.search_messages(s, viewer, q, 1, 20, f), True
            if not hits.items and (page_no > 1 or p.get("after") or p.get("before")):
                # past the last page (a typed page number, or messages gone since the link was
                # handed out): 没有找到 read as nothing found at all; the first page, said so
                first = queries.search_messages(s, viewer, q, 1, 20, f)
                if first.items:
                    hits, paging_reset = first, True
        else:
            try:
                after, before = p.get("after") or None, p.get("before") or None
                result = queries.list_conversations(
                    s, viewer, f, page_no, 20, now, after=after, before=before
                )
            except BadCursor:  # a cursor mangled in the address bar: the top of the list
                result, paging_reset = queries.list_conversations(s, viewer, f, 1, 20, now), True
            if page_no > 1 and not (after or before) and not result.items and result.total:
                # a page number past the last (typed in, or chats gone since): the top, said so
                result, paging_reset = queries.list_conversations(s, viewer, f, 1, 20, now), True
        # a wait put off says so in its row: the agent tells it from those nobody has looked at
        snoozed = queries.snoozes(s, [c["id"] for c in result.items if c["waiting"]] if result else [], now)
        waiting_total = queries.waiting_count(s, viewer, f)  # the header counts what the filters show
        # 群聊 chosen (or no 1:1 chat waits): a group's row saying a customer waits is not to sit under
        # 没有客户在等待, nor is the 等待回复 tab of 群聊, which lists no group but points to those that
        # wait; counted only then, as the count reads every group
        shown_group_wait = result is not None and any(c["group_wait"] for c in result.items)
        groups_tab = f.waiting and f.kind == "group" and f.among is None and result is not None
        groups_waiting = 0
        if not waiting_total and not f.group_waiting and (shown_group_wait or groups_tab):
            groups_waiting = queries.groups_waiting_count(s, viewer, f)
        # another's card opened (a link forwarded): its customers the viewer may not see still
        # wait, and are not to be said answered
        card_hidden = 0
        if card and f == queries.ConversationFilter(waiting=f.waiting, among=f.among):
            card_hidden = max(0, queries.waiting_among(s, card.conversations) - waiting_total)
        unfiltered = f == queries.ConversationFilter(waiting=f.waiting)
        # an empty list asks for archiving only where it is off, and of whoever can turn it on
        archiving_off = (s.get(Tenant, viewer.tenant_id).archive_mode or "off") == "off"
        staff = customer_queries.staff_choices(s, viewer, f.staff_userid)
        staff_chosen = customer_queries.chosen_name(f.staff_userid, staff)
        if f.customer_id is not None:
            found = customer_queries.get_customer(s, viewer, f.customer_id)
            customer = {"id": found.id, "name": found.name} if found else None
    if unfiltered:  # the menu's count, fresh: the same as the header's
        note_waiting(viewer, waiting_total)
    kept = {k: v for k, v in p.items() if k not in ("page", "after", "before") and v}
    if card_missing:
        kept.pop("card")

    def page_url(n: int) -> str:
        return "/conversations?" + urlencode({**kept, "page": n})

    def cursor_url(name: str, token: str | None) -> str:  # after / before; none: the top
        return "/conversations?" + urlencode({**kept, name: token} if token else kept)

    def tab_url(waiting: bool) -> str:  # the other filters stay
        others = {k: v for k, v in kept.items() if k not in ("waiting", "q")}
        query = urlencode({**others, "waiting": 1} if waiting else others)
        return "/conversations" + (f"?{query}" if query else "")

    def without(name: str) -> str:
        query = urlencode({k: v for k, v in kept.items() if k != name})
        return "/conversations" + (f"?{query}" if query else "")

    return render(
        request,
        "conversations.html",
        {
            "result": result,
            "hits": hits,
            "q": q,
            "q_cut": len(typed) > len(q),
            "f": f,
            "customer": customer,
            "staff": staff,
            "staff_chosen": staff_chosen,
            "kinds": queries.KIND_NAMES,
            "waiting_total": waiting_total,
            "groups_waiting": groups_waiting,
            "snoozed": snoozed,
            "page_url": page_url,
            "cursor_url": cursor_url,
            "tab_url": tab_url,
            "without": without,
            # the 等待回复 tab is a tab, not a filter to clear
            "clearable": any(kept.get(k) for k in ("q", *FILTERS_BEYOND_WAITING)),
            "paging_reset": paging_reset,
            "filtered_beyond_waiting": any(kept.get(k) for k in FILTERS_BEYOND_WAITING),
            "card_missing": card_missing,
            "card_not_theirs": card is not None and not card.sent_to(viewer),
            "card_hidden": card_hidden,
            "card_id": kept.get("card"),
            "page_no": page_no,
            "archiving_off": archiving_off,
        },
    )


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(request: Request, viewer: PageViewer, conversation_id: int):
    before = _int(request.query_params.get("before"))
    at = _int(request.query_params.get("at"))  # a search result: open the page it is on
    rt = request.app.state.rt
    # one moment for the whole page: read twice, the work time could pass the wait beside it
    now = rt.now()
    with rt.db.tenant_session(viewer.tenant_id) as s:
        # its member, its group's owner and the members who wrote: who left is marked, read once
        gone = staff_gone(s)
        found = queries.conversation(s, viewer, conversation_id, now, gone)
        try:
            if found and at is not None:
                before = queries.page_at(s, viewer, conversation_id, at)
            page = queries.messages(s, viewer, conversation_id, before, gone=gone) if found else None
        except queries.UnknownMessage:  # a stale link: the newest messages
            before, page = None, queries.messages(s, viewer, conversation_id, gone=gone)
        # an older page (a search result's, or paged back to): the way forward again
        newer = None
        if before is not None and page and page.items:
            newer = queries.page_after(s, viewer, conversation_id, page.items[-1]["id"])
        snoozed = found and found["snooze"]  # until when, and who held the agent's reminders
        waits = found is not None and found["waiting"]
        reminders = sla_service.reminders(s, conversation_id) if waits else None
        # a snooze that ends while a business-hours policy's clock stands still: its next
        # reminder comes at the next shift, not when the snooze ends
        resumes = (
            sla_service.next_reminder_at(s, conversation_id) if snoozed and reminders == "to_come" else None
        )
        # by the clock its cards tell it by, beside the wall time (as the board does)
        business_s = sla_service.waited_business_s(s, conversation_id, now) if waits else None
        # the open wait's calls, read once for both questions below
        fired = reminders in ("all_sent", "to_come")
        calls = sla_queries.open_wait_call(s, conversation_id, now) if fired else None
        # every step fired, but the last one's call waits for quiet hours to end: not gone out
        call_at = calls.held_until if calls and reminders == "all_sent" else None
        # a call step fired whose call never rings (its policy's shifts all lie in its quiet
        # hours, saved before that was refused): said with what to change, not as gone out
        never = calls.never if calls else None
        customer_readable = bool(
            found
            and found["customer"]
            and customer_queries.get_customer(s, viewer, found["customer"]["id"]) is not None
        )
        # a card's link (`?card=`): opened after the wait it told of ended, the page says so
        # rather than showing a chat with no wait bar and no word about the reminder
        card_closed = None
        card_id = _int(request.query_params.get("card"))
        if found is not None and card_id is not None:
            card = sla_service.find_card(s, card_id)
            if card is not None and card.readable_by(viewer):
                card_closed = sla_service.card_wait_closed(s, card_id, conversation_id)
        named = named_for(s, viewer)  # who snoozed, marked 无需回复: 你 for the viewer's own
        done = request.query_params.get("done") or ""
        done_said = DONE.get(done)
        if found is not None and done == "changed":  # who wrote, what and when: read it first
            said = queries.message_said(s, conversation_id, request.query_params.get("newest", ""))
            who = (found["customer"] or {}).get("name") or found["external_userid"] or "客户"
            who = remarked(who, found["remark"])
            done_said = wrote_again(who, said, viewer.timezone, now)
    if found is None or page is None:
        raise ClearNotFound(CARD_LINK_NOT_YOURS) if "card" in request.query_params else _not_found()
    return render(
        request,
        "conversation.html",
        {
            "c": found,
            "page": page,
            "before": before,
            "newer": newer,
            "customer_link": customer_readable,
            "snoozed_until": snoozed and snoozed["until"],
            "reminder_resumes": resumes if resumes and snoozed and resumes > snoozed["until"] else None,
            "reminders": reminders,
            "waited_business": None if business_s is None else queries.wait_text(business_s),
            "call_at": call_at,
            "call_never": never,
            # the policy as it is now: fixed since, the call that did not ring is told in the past
            "call_never_now": never is not None and sla_queries.calls_never_ring(never),
            "snooze_choices": SNOOZE_CHOICES,
            "done": done_said,
            "done_warns": done in NOT_DONE,
            "card_closed": card_closed,
            "card_closed_why": card_closed and ENDINGS.get(card_closed.close_reason, "等待已结束"),
            "who": named,
        },
    )


@router.post("/conversations/{conversation_id}/dismiss")
async def conversation_dismiss(request: Request, viewer: PageViewer, conversation_id: int):
    """The 无需回复 button of the chat and of each board row (its form carries the CSRF token,
    checked by PageViewer, and the customer message of the wait the page showed stored last:
    a question stored after it, in the same wait or a new one, stays waiting). From the board
    (`next`: the board, with the row), back at the board, which says how it went."""
    form = await request.form()
    shown = str(form.get("msgid") or "") or None
    done, newest = await run_in_threadpool(_dismiss, request, viewer, conversation_id, shown)
    back = safe_next(str(form.get("next", "")), "")
    if urlsplit(back).path == "/sla":
        gone = str(form.get("gone", ""))
        return RedirectResponse(board_dismissed(back, gone, conversation_id, done, newest), 303)
    said = urlencode({"done": done, **({"newest": newest} if newest else {})})
    return RedirectResponse(f"/conversations/{conversation_id}?{said}", 303)


def _dismiss(request: Request, viewer, conversation_id: int, shown: str | None) -> tuple[str, str]:
    """How marking went (a DONE key) and, refused as the customer wrote again, their newest."""
    return retry_deadlocks(lambda: _mark(request, viewer, conversation_id, shown))


def _mark(request: Request, viewer, conversation_id: int, shown: str | None) -> tuple[str, str]:
    with request.app.state.rt.db.tenant_session(viewer.tenant_id) as s:
        if queries.get_conversation(s, viewer, conversation_id) is None:
            raise _not_found()
        at = request.app.state.rt.now()
        try:
            if not service.dismiss(s, conversation_id, at, by=viewer.signature, msgid=shown):
                # (their own first tap: what they asked for is done)
                marked = sla_queries.marked_by(s, conversation_id, viewer.signature)
                return ("dismissed" if marked else "not_waiting"), ""
        except service.WroteAgain as refused:
            return "changed", refused.newest
        except service.NotItsMessage:  # (a form edited by hand: the page's names its own)
            return "not_its_message", ""
        forget_waiting(viewer)
        return "dismissed", ""
