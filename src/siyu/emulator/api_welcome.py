"""send_welcome_msg (REFERENCE.md sections 7 and 15.4).

A WelcomeCode is usable once (second use: 41051) within `welcome_code_ttl_s` of its event
(20 s; later: 41050, the table's "invalid welcome code"). The code is consumed only when the
message is accepted, so a rejected payload can be corrected and resent inside the window.
"""

from __future__ import annotations

from .api_media import live_media
from .cgi import Ctx, api
from .errors import WeComError

MAX_ATTACHMENTS = 9
MAX_TEXT_BYTES = 4000


def _check_attachment(ctx: Ctx, item: dict) -> None:
    kind = item.get("msgtype") if isinstance(item, dict) else None
    body = item.get(kind) if kind else None
    if kind not in ("image", "link", "miniprogram", "video", "file") or not isinstance(body, dict):
        raise WeComError(41065)
    if kind == "image":
        if body.get("media_id"):
            live_media(ctx, body["media_id"], "image")
        elif body.get("pic_url"):
            # Only URLs from media/uploadimg are allowed; what WeCom does with another URL is
            # undocumented, so we refuse it (40035) to catch the mistake early.
            key = str(body["pic_url"]).rstrip("/").rsplit("/", 1)[-1]
            if key not in ctx.need_corp().images:
                raise WeComError(40035, "invalid pic_url, use a url from media/uploadimg")
        else:
            raise WeComError(41006)
    elif kind == "link":
        if not body.get("title") or not body.get("url"):
            raise WeComError(40035, "link needs title and url")
    elif kind == "miniprogram":
        if not all(body.get(k) for k in ("title", "pic_media_id", "appid", "page")):
            raise WeComError(40035, "miniprogram needs title, pic_media_id, appid and page")
        live_media(ctx, body["pic_media_id"], "image")
    else:
        live_media(ctx, body.get("media_id", ""), kind)


@api("externalcontact/send_welcome_msg", methods=("POST",))
async def send_welcome_msg(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    body = ctx.json
    code = corp.welcome_codes.get(str(body.get("welcome_code") or ""))
    if code is None:
        raise WeComError(41050)
    if code.used or (code.userid, code.external_userid) in corp.chatted_pairs:
        raise WeComError(41051)  # used, or the pair has chatted since it was issued (REFERENCE 3.2)
    if code.issued_at + ctx.state.config.welcome_code_ttl_s < ctx.state.now():
        raise WeComError(41050)
    text = body.get("text") or {}
    attachments = body.get("attachments") or []
    if not isinstance(text, dict) or not isinstance(attachments, list):
        raise WeComError(40035)
    content = str(text.get("content") or "")
    if not content and not attachments:
        raise WeComError(40035, "text and attachments are both empty")
    if len(content.encode()) > MAX_TEXT_BYTES:
        raise WeComError(40035, "text content too long")
    if len(attachments) > MAX_ATTACHMENTS:
        raise WeComError(40035, "at most 9 attachments")
    for item in attachments:
        _check_attachment(ctx, item)
    code.used = True
    corp.chatted_pairs.add((code.userid, code.external_userid))
    follow = corp.follows.get((code.userid, code.external_userid))
    if follow is not None:
        follow.chatted = True
    corp.welcome_messages.append(
        {
            "received_at": ctx.state.now(),
            "corp_id": corp.corp_id,
            "userid": code.userid,
            "external_userid": code.external_userid,
            "welcome_code": code.code,
            "payload": body,
        }
    )
    return {}
