"""App messages (应用消息, REFERENCE.md section 9): message/send, recorded for tests to read.
Beyond WeCom's per-member limits (section 17) a recipient is dropped silently, as WeCom does.
A textcard is recorded as members see it: WeCom cuts, without an error, a title past 128
bytes, a description past 512 bytes (wherever that falls in its markup) and a button text
past 4 characters (its message/send docs); `truncated` names the fields it cut.
A send with `enable_duplicate_check` whose JSON equals one the app sent within
`duplicate_check_interval` reaches nobody (recorded with `duplicate_of`)."""

from __future__ import annotations

import hashlib
from collections import deque

from .cgi import Ctx, api
from .errors import WeComError
from .faults import admitted
from .state import rand_id

REQUIRED = {
    "text": ("content",),
    "textcard": ("title", "description", "url"),
    "markdown": ("content",),
    "news": ("articles",),
}
OTHER_TYPES = ("image", "voice", "video", "file", "mpnews", "miniprogram_notice", "template_card")
# The duplicate check's interval when none is given, and the most WeCom takes (REFERENCE 9).
DUPLICATE_CHECK_S = 1800
DUPLICATE_CHECK_MAX_S = 4 * 3600
# What WeCom shows of a textcard, at most: UTF-8 bytes of title and description, characters of btntxt.
TEXTCARD_BYTES = {"title": 128, "description": 512}
TEXTCARD_BTNTXT_CHARS = 4


def _cut_bytes(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")  # never half a character


def shown_textcard(card: dict) -> tuple[dict, list[str]]:
    """The textcard as WeCom delivers it, and the names of the fields it cut."""
    shown, cut = dict(card), []
    for name, limit in TEXTCARD_BYTES.items():
        value = shown.get(name)
        if isinstance(value, str) and len(value.encode()) > limit:
            shown[name], cut = _cut_bytes(value, limit), [*cut, name]
    btntxt = shown.get("btntxt")
    if isinstance(btntxt, str) and len(btntxt) > TEXTCARD_BTNTXT_CHARS:
        shown["btntxt"], cut = btntxt[:TEXTCARD_BTNTXT_CHARS], [*cut, "btntxt"]
    return shown, cut


@api("message/send", methods=("POST",))
async def send(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    body = ctx.json
    try:
        agentid = int(body.get("agentid"))
    except (TypeError, ValueError) as exc:
        raise WeComError(40056) from exc
    if agentid != corp.agent_id:
        raise WeComError(40056)
    msgtype = body.get("msgtype")
    content = body.get(msgtype) if isinstance(msgtype, str) else None
    if msgtype not in REQUIRED and msgtype not in OTHER_TYPES or not isinstance(content, dict):
        raise WeComError(40008)
    for name in REQUIRED.get(msgtype, ()):
        if not content.get(name):
            raise WeComError(40035, f"missing {msgtype}.{name}")
    if msgtype == "news" and not 1 <= len(content["articles"]) <= 8:
        raise WeComError(40035, "news needs 1 to 8 articles")

    touser = [u for u in str(body.get("touser") or "").split("|") if u]
    toparty = [p for p in str(body.get("toparty") or "").split("|") if p]
    if "@all" in touser:
        valid, invalid_users = sorted(s.userid for s in corp.active_staff()), []
    else:
        # by lookup, not by listing the corp's staff: a send to one member stays cheap in a
        # corp of thousands (the escalation benchmark's emulator sends hundreds a second)
        valid, invalid_users = [], []
        for u in touser:
            (valid if corp.is_active(u) else invalid_users).append(u)
    invalid_parties = []
    for party in toparty:
        if party.isascii() and party.isdigit() and int(party) in corp.departments:
            valid += [s.userid for s in corp.staff_in(int(party), recursive=True) if s.userid not in valid]
        else:
            invalid_parties.append(party)
    out: dict = {}
    if invalid_users:
        out["invaliduser"] = "|".join(u.lower() for u in invalid_users)
    if invalid_parties:
        out["invalidparty"] = "|".join(invalid_parties)
    if body.get("totag"):
        out["invalidtag"] = str(body["totag"])  # the emulator keeps no member tags
    if not valid:
        raise WeComError(81013)
    # members without an account license are valid recipients that get nothing (our choice:
    # errcode 0 even when they are all the recipients; REFERENCE 9 leaves it open)
    unlicensed = [u for u in valid if not corp.staff[u].licensed]
    if unlicensed:
        out["unlicenseduser"] = "|".join(u.lower() for u in unlicensed)
    valid = [u for u in valid if u not in unlicensed]
    now = ctx.state.now()
    key, earlier = _earlier_same(ctx, corp.corp_id, agentid, now)
    if earlier is not None:
        corp.app_messages.append(
            {
                "received_at": now,
                "corp_id": corp.corp_id,
                "agentid": agentid,
                "msgid": earlier,
                "msgtype": msgtype,
                "recipients": [],
                "dropped": [],
                "unlicensed": unlicensed,
                "payload": body,
                "truncated": [],
                "duplicate_of": earlier,
            }
        )
        return {**out, "msgid": earlier}
    msgid = rand_id(n=32)
    ctx.state.sent_bodies.pop(key, None)  # (kept oldest first)
    ctx.state.sent_bodies[key] = (now, msgid)
    delivered = [u for u in valid if _within_member_limits(ctx.state, corp.corp_id, agentid, u, now)]
    payload, truncated = body, []
    if msgtype == "textcard":
        shown, truncated = shown_textcard(content)
        payload = {**body, "textcard": shown}
    corp.app_messages.append(
        {
            "received_at": now,
            "corp_id": corp.corp_id,
            "agentid": agentid,
            "msgid": msgid,
            "msgtype": msgtype,
            "recipients": delivered,
            "dropped": [u for u in valid if u not in delivered],
            "unlicensed": unlicensed,
            "payload": payload,
            "truncated": truncated,
        }
    )
    return {**out, "msgid": msgid}


def _earlier_same(ctx: Ctx, corp_id: str, agentid: int, now: float) -> tuple[tuple, str | None]:
    """This send's key among those remembered (`EmulatorState.sent_bodies`), and the msgid of
    the same one sent within its duplicate check's interval, if it asked for that check.
    WeCom compares "the same content (the request's JSON)": whether as sent or as parsed is
    [U], and the emulator takes the stricter reading, the bytes, so that a client passing
    here passes either way. [U] too: what WeCom answers for a duplicate it does not deliver
    (here errcode 0 and the earlier msgid: "不会重复收到" reads as no error), and whether it
    compares with sends that did not ask for the check (here it does)."""
    body = ctx.json
    key = (corp_id, agentid, hashlib.blake2b(ctx.raw, digest_size=16).digest())
    sent = ctx.state.sent_bodies
    while sent and next(iter(sent.values()))[0] <= now - DUPLICATE_CHECK_MAX_S:
        sent.pop(next(iter(sent)))  # oldest first: none older is compared with
    found = sent.get(key)
    if str(body.get("enable_duplicate_check", 0)) == "1" and found is not None:
        try:
            interval = int(body.get("duplicate_check_interval") or DUPLICATE_CHECK_S)
        except (TypeError, ValueError) as exc:
            raise WeComError(40035, "invalid duplicate_check_interval") from exc
        if now - found[0] < min(interval, DUPLICATE_CHECK_MAX_S):
            return key, found[1]
    return key, None


def _within_member_limits(state, corp_id: str, agentid: int, userid: str, now: float) -> bool:
    """Count one app message to this member; False (dropped, and WeCom says nothing) when
    the member already had the most a window allows."""
    times = state.member_messages.setdefault((corp_id, agentid, userid), deque())
    return admitted(times, now, state.config.app_message_member_limits)
