"""External contacts (客户, REFERENCE.md section 5): follow users, list, get, batch/get_by_user, remark."""

from __future__ import annotations

import base64

from .cgi import Ctx, api
from .errors import WeComError
from .state import Corp, Follow, GroupChat

FOLLOW_PAGE = 500  # externalcontact/get returns at most 500 follow_user per page


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"emu:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, offset = text.split(":")
        if prefix != "emu" or int(offset) < 0:
            raise ValueError(text)
        return int(offset)
    except ValueError as exc:
        raise WeComError(40035, "invalid cursor") from exc


def tag_refs(corp: Corp, follow: Follow) -> list[dict]:
    out = []
    for tag_id in follow.tag_ids:
        tag = corp.tags.get(tag_id)
        if tag is not None:
            group = corp.tag_groups.get(tag.group_id)
            out.append(
                {
                    "group_name": group.group_name if group else "",
                    "tag_name": tag.name,
                    "tag_id": tag.id,
                    "type": 1,
                }
            )
    return out


def follow_user(corp: Corp, f: Follow) -> dict:
    return {
        "userid": f.userid,
        "remark": f.remark,
        "description": f.description,
        "createtime": f.createtime,
        "tags": tag_refs(corp, f),
        "remark_corp_name": f.remark_corp_name,
        "remark_mobiles": list(f.remark_mobiles),
        "oper_userid": f.oper_userid,
        "add_way": f.add_way,
        "state": f.state,
    }


def follow_info(f: Follow) -> dict:
    # batch/get_by_user's follow_info carries tag_id (strings), not tags (REFERENCE 5.4).
    return {
        "userid": f.userid,
        "remark": f.remark,
        "description": f.description,
        "createtime": f.createtime,
        "tag_id": list(f.tag_ids),
        "remark_corp_name": f.remark_corp_name,
        "remark_mobiles": list(f.remark_mobiles),
        "oper_userid": f.oper_userid,
        "add_way": f.add_way,
        "state": f.state,
    }


def relation(corp: Corp, userid: str, external_userid: str) -> Follow:
    """The follow relation, or the errors WeCom gives: 60111 unknown member, 40096 unknown
    customer, 84061 (our choice, undocumented) when both exist but are not connected."""
    if userid not in corp.staff:
        raise WeComError(60111)
    if external_userid not in corp.customers:
        raise WeComError(40096)
    follow = corp.follows.get((userid, external_userid))
    if follow is None:
        raise WeComError(84061)
    return follow


@api("externalcontact/get_follow_user_list", methods=("GET",))
async def get_follow_user_list(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    return {"follow_user": [s.userid for s in corp.active_staff() if s.external_contact]}


@api("externalcontact/list", methods=("GET",))
async def list_(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    userid = ctx.query.get("userid", "")
    if userid not in corp.staff:
        raise WeComError(60111)
    # A member without customers gets an empty list here; real WeCom may answer 84061
    # instead (undocumented), so clients should accept both.
    return {"external_userid": [f.external_userid for f in corp.follows_of_user(userid)]}


@api("externalcontact/get", methods=("GET",))
async def get(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    customer = corp.customers.get(ctx.query.get("external_userid", ""))
    if customer is None:
        raise WeComError(40096)
    follows = corp.follows_of_customer(customer.external_userid)
    if not follows:
        raise WeComError(84061)  # nobody in the corp follows this customer any more
    start = decode_cursor(ctx.query.get("cursor"))
    page = follows[start : start + FOLLOW_PAGE]
    more = start + FOLLOW_PAGE < len(follows)
    return {
        "external_contact": customer.as_api(),
        "follow_user": [follow_user(corp, f) for f in page],
        "next_cursor": encode_cursor(start + FOLLOW_PAGE) if more else "",
    }


@api("externalcontact/batch/get_by_user", methods=("POST",))
async def batch_get_by_user(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    body = ctx.json
    userids = body.get("userid_list")
    if not userids and body.get("userid"):  # the older single-userid form
        userids = [body["userid"]]
    if not isinstance(userids, list) or not userids:
        raise WeComError(40031)
    if len(userids) > 100:
        raise WeComError(40032)
    limit = max(1, min(ctx.int_field("limit", 50), 100))  # larger values are clamped, not refused
    rows = [f for uid in userids for f in corp.follows_of_user(uid)]
    start = decode_cursor(body.get("cursor"))
    page = rows[start : start + limit]
    more = start + limit < len(rows)
    return {
        "external_contact_list": [
            {"external_contact": corp.customers[f.external_userid].as_api(), "follow_info": follow_info(f)}
            for f in page
        ],
        "next_cursor": encode_cursor(start + limit) if more else "",
    }


@api("externalcontact/remark", methods=("POST",))
async def remark(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    body = ctx.json
    follow = relation(corp, body.get("userid", ""), body.get("external_userid", ""))
    # Omitted fields are left alone; API changes emit no callback (REFERENCE 1.5).
    if "remark" in body:
        follow.remark = str(body["remark"])
    if "description" in body:
        follow.description = str(body["description"])
    corp_name = body.get("remark_corp_name", body.get("remark_company"))
    if corp_name is not None:
        follow.remark_corp_name = str(corp_name)
    if "remark_mobiles" in body:
        follow.remark_mobiles = [str(m) for m in body["remark_mobiles"] or []]
    return {}


def group_chat(corp: Corp, chat_id) -> GroupChat:
    """A customer group by chat_id, or 40050 (our choice: the code WeCom's docs give for an
    unknown chatid) for an unknown, dismissed or staff-only one (those are not 客户群)."""
    group = corp.group_chats.get(chat_id) if isinstance(chat_id, str) else None
    if group is None or group.dismissed or group.internal:
        raise WeComError(40050)
    return group


@api("externalcontact/groupchat/get", methods=("POST",))
async def groupchat_get(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    chat_id = ctx.json.get("chat_id")
    if not chat_id:
        raise WeComError(40035, "chat_id missing")
    group = group_chat(corp, chat_id)
    if not ctx.json.get("need_name"):
        return {"group_chat": group.as_api()}
    names = {u: s.name for u, s in corp.staff.items()} | {e: c.name for e, c in corp.customers.items()}
    return {"group_chat": group.as_api(names)}
