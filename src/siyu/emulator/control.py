"""The control API under /_emulator/: set up corps, make things happen, read what was sent.

JSON in, JSON out; errors are FastAPI's `{"detail": ...}` with a 4xx status (these are not
WeCom calls, so they do not imitate WeCom). Event-producing routes accept `wait` (in the body
or as `?wait=true`): the answer then comes after the callback's first delivery attempt.

Setup
  GET    /_emulator/health                        {"ok": true}
  POST   /_emulator/corps                         {corp_id?, name, agent_id?, callback_url?,
           archive_callback_url?, archive_token?, archive_encoding_aes_key?,
           departments:[{id,name,parentid,order?,department_leader?}],
           staff:[{userid,name,department:[ids],main_department?,direct_leader?,is_leader_in_dept?,
                   mobile?,email?,position?,gender?,status?,licensed? (false: no account
                   license, so app messages to them are not delivered: unlicenseduser)}]}
           -> the corp with corp_id, agent_id, agent_secret, contact_secret, archive_secret
              (会话存档), token, encoding_aes_key, and the 会话存档 app's own callback pair
              archive_token, archive_encoding_aes_key (generated unless given; 201; 409 if
              corp_id exists)
  GET    /_emulator/corps                         [corp, ...]
  GET    /_emulator/corps/{corp_id}               the corp
  PATCH  /_emulator/corps/{corp_id}               {callback_url?, trusted_ips?, trusted_domains?,
                                                   token_ttl?, rate_limits?: {"*"|api: per_minute},
                                                   archive_callback_url?, archive_token?,
                                                   archive_encoding_aes_key?,
                                                   archive_notify_interval_s?}
  POST   /_emulator/corps/{corp_id}/departments   {id, name, parentid?, order?}
  POST   /_emulator/corps/{corp_id}/staff         a staff object as above
  DELETE /_emulator/corps/{corp_id}/staff/{userid}   member leaves (status 5, gone from lists)
  POST   /_emulator/corps/{corp_id}/expire_tokens every current token answers 42001 from now on
  POST   /_emulator/corps/{corp_id}/verify_callback  WeCom's GET echostr check of callback_url
  POST   /_emulator/clock                         {advance_s} move the emulator's clock forward
  GET    /_emulator/clock                         {now, offset}

Events (each answers its delivery: {id, kind, status, attempt_count, attempts, inner_xml, ...})
  POST /_emulator/corps/{corp_id}/scan            {config_id, customer:{name, external_userid?, type?,
        gender?, unionid?, avatar?, corp_name?, position?}, userid?, at?, wait?}
        -> {external_userid, userid, welcome_code, delivery_id, event, delivery}
  POST /_emulator/corps/{corp_id}/customers/{external_userid}/remove_staff   {userid, wait?}
        customer deletes the member -> del_follow_user
  POST /_emulator/corps/{corp_id}/staff/{userid}/remove_customer   {external_userid, by_transfer?, wait?}
        member deletes the customer -> del_external_contact (Source=DELETE_BY_TRANSFER if by_transfer)
  POST /_emulator/corps/{corp_id}/staff/{userid}/rename   {new_userid, wait?}
        the console changes the member's userid -> change_contact update_user (UserID, NewUserID)
  POST /_emulator/corps/{corp_id}/remark          {userid, external_userid, remark?, description?,
        add_tags?, remove_tags?, wait?}  member edits in the client -> edit_external_contact
  POST /_emulator/corps/{corp_id}/console/tags    admin console -> change_external_tag:
        {action:"create", group_name|group_id, tag:[{name, order?}]} | {action:"update", id, name?, order?}
        | {action:"delete", tag_id?:[], group_id?:[]} | {action:"shuffle", group_id?}
  POST /_emulator/corps/{corp_id}/transfer_fail   {userid, external_userid, reason, wait?}
  POST   /_emulator/corps/{corp_id}/group_chats  {owner, name?, members?: [userid | external_userid],
        chat_id?, notice?, internal?, wait?} a member creates a customer group -> change_external_chat
        create (201, {group_chat, delivery}; its chat_id is the archive's roomid); internal: true,
        a group of staff only (msgaudit/groupchat/get tells it; no callback, delivery null)
  PATCH  /_emulator/corps/{corp_id}/group_chats/{chat_id}   {name, wait?} renamed -> update
        (UpdateDetail change_name); {owner, wait?} handed to another member -> update (change_owner)
  POST   /_emulator/corps/{corp_id}/group_chats/{chat_id}/members   {members, join_scene?: 1 invited
        | 2 link | 3 QR code, invitor?, wait?} join -> update (UpdateDetail add_member, JoinScene,
        MemChangeList)
  POST   /_emulator/corps/{corp_id}/group_chats/{chat_id}/leave   {members, removed?: bool, wait?}
        leave, or removed by the owner -> update (UpdateDetail del_member, QuitScene 0 | 1, MemChangeList)
  DELETE /_emulator/corps/{corp_id}/group_chats/{chat_id}   dismissed -> dismiss
  POST /_emulator/redeliver/{delivery_id}         resend the identical callback (with retries)

Reading
  GET /_emulator/corps/{corp_id}/contact_ways     contact ways (API objects)
  GET /_emulator/corps/{corp_id}/customers        [{external_contact, follow_info}] per relation
  GET /_emulator/corps/{corp_id}/tags             tag groups as get_corp_tag_list returns them
  GET /_emulator/corps/{corp_id}/welcome_messages [{received_at, corp_id, userid, external_userid,
                                                    welcome_code, payload}]
  GET /_emulator/corps/{corp_id}/app_messages     ?after=N: from the (N+1)th on
                                                  [{received_at, agentid, msgid, msgtype, recipients,
                                                    dropped, unlicensed, payload, truncated}]
                                                    (dropped: over the member's 30/min or
                                                    1,000/h, silently;
                                                    a textcard's payload as WeCom shows it,
                                                    truncated: the fields it cut;
                                                    duplicate_of: the msgid of an equal send
                                                    within its enable_duplicate_check interval,
                                                    delivered to nobody)
  GET /_emulator/corps/{corp_id}/deliveries       callback deliveries, oldest first
  GET /_emulator/deliveries/{delivery_id}         one delivery
  GET /_emulator/corps/{corp_id}/calls            [{path, method, errcode, time, ip}] API calls received
                                                    (errcode: the HTTP status, for a status fault)

Conversation archive (archive.py documents each route and the emulator-only SDK endpoints)
  GET  /_emulator/corps/{corp_id}/archive              summary
  POST /_emulator/corps/{corp_id}/archive/keys         {publickey_ver, public_key_pem?}
  POST /_emulator/corps/{corp_id}/archive/messages     one REFERENCE 11.3 message or {messages:[...]}
  GET  /_emulator/corps/{corp_id}/archive/messages     ?after_seq=  the stored messages, plain
  PUT  /_emulator/corps/{corp_id}/archive/permit       {userids: [...] | null}
  POST /_emulator/corps/{corp_id}/archive/agree        {userid, external_userid, agree?, at?,
        msgtime?, msgid?}
  POST /_emulator/corps/{corp_id}/archive/verify_callback  WeCom's echostr check of
        archive_callback_url with the archive pair

Faults
  POST   /_emulator/faults   {corp_id?, path?: "/cgi-bin/..." | "*", errcode?, times?: 1, delay_s?,
                              status? (an HTTP status such as 502, answered with an HTML page)}
  GET    /_emulator/faults
  DELETE /_emulator/faults

Files
  GET /_emulator/qr/{config_id}.png               the contact way's QR code (PNG)
  GET /_emulator/ways/{config_id}                 what the QR encodes: {corp_id, contact_way}
  GET /_emulator/img/{corp_id}/{key}              an image from media/uploadimg
"""

from __future__ import annotations

import asyncio
import io
import re

import segno
from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import Response

from siyu.wecom.crypto import WeComCrypto

from . import actions
from .api_external import follow_info
from .api_tags import group_as_api
from .delivery import Delivery, echostr_check
from .state import Corp, Department, Staff, new_corp

STAFF_FIELDS = (
    "userid",
    "name",
    "department",
    "main_department",
    "direct_leader",
    "is_leader_in_dept",
    "mobile",
    "email",
    "position",
    "gender",
    "status",
    "avatar",
    "licensed",
)


def _staff(data: dict) -> Staff:
    if not data.get("userid") or not data.get("name"):
        raise HTTPException(422, "staff needs userid and name")
    fields = {k: data[k] for k in STAFF_FIELDS if data.get(k) is not None}
    if "gender" in fields:
        fields["gender"] = str(fields["gender"])
    return Staff(**fields)


def _dept(data: dict) -> Department:
    try:
        return Department(
            int(data["id"]),
            str(data["name"]),
            int(data.get("parentid") or 0),
            int(data.get("order") or 0),
            list(data.get("department_leader") or []),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise HTTPException(422, f"bad department {data!r}") from exc


def _archive_pair(corp: Corp, body: dict) -> None:
    """The 会话存档 app's callback Token / EncodingAESKey, as an admin types them into its
    接收事件服务器 form (422 if WeCom's console would refuse them)."""
    token = body.get("archive_token", corp.archive_token)
    key = body.get("archive_encoding_aes_key", corp.archive_encoding_aes_key)
    if not isinstance(token, str) or not re.fullmatch(r"[A-Za-z0-9]{1,32}", token):
        raise HTTPException(422, "archive_token must be 1-32 letters or digits")
    if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9]{43}", key):
        raise HTTPException(422, "archive_encoding_aes_key must be 43 letters or digits")
    corp.archive_token, corp.archive_encoding_aes_key = token, key


def build_router(emu) -> APIRouter:
    r = APIRouter(prefix="/_emulator", tags=["emulator control"])
    state = emu.state

    def corp_of(corp_id: str) -> Corp:
        corp = state.corps.get(corp_id)
        if corp is None:
            raise HTTPException(404, f"unknown corp {corp_id}")
        return corp

    async def settle(request: Request, body: dict, deliveries: list[Delivery]) -> list[dict]:
        wait = body.get("wait") or request.query_params.get("wait", "").lower() in ("1", "true", "yes")
        if wait:
            limit = emu.state.config.callback_timeout_s + 5
            await asyncio.wait_for(asyncio.gather(*(d.first_attempt.wait() for d in deliveries)), limit)
        return [d.as_dict() for d in deliveries]

    @r.get("/health")
    async def health():
        return {"ok": True, "corps": len(state.corps), "time": state.now()}

    @r.post("/corps", status_code=201)
    async def create_corp(body: dict = Body(...)):
        if not body.get("name"):
            raise HTTPException(422, "name is required")
        if body.get("corp_id") in state.corps:
            raise HTTPException(409, f"corp {body['corp_id']} exists")
        corp = new_corp(
            body["name"], body.get("corp_id"), body.get("agent_id"), body.get("callback_url") or ""
        )
        depts = body.get("departments") or [{"id": 1, "name": body["name"], "parentid": 0}]
        for d in depts:
            dept = _dept(d)
            corp.departments[dept.id] = dept
        for s in body.get("staff") or []:
            staff = _staff(s)
            corp.staff[staff.userid] = staff
        corp.archive_callback_url = body.get("archive_callback_url") or ""
        _archive_pair(corp, body)
        state.corps[corp.corp_id] = corp
        return corp.public()

    @r.get("/corps")
    async def list_corps():
        return [c.public() for c in state.corps.values()]

    @r.get("/corps/{corp_id}")
    async def get_corp(corp_id: str):
        return corp_of(corp_id).public()

    @r.patch("/corps/{corp_id}")
    async def patch_corp(corp_id: str, body: dict = Body(...)):
        corp = corp_of(corp_id)
        if "callback_url" in body:
            corp.callback_url = body["callback_url"] or ""
        if "trusted_ips" in body:
            corp.trusted_ips = list(body["trusted_ips"] or [])
        if "trusted_domains" in body:
            corp.trusted_domains = list(body["trusted_domains"] or [])
        if "token_ttl" in body:
            corp.token_ttl_s = None if body["token_ttl"] is None else int(body["token_ttl"])
        if "rate_limits" in body:
            corp.rate_limits = {str(k): int(v) for k, v in (body["rate_limits"] or {}).items()}
        if "name" in body:
            corp.name = str(body["name"])
        if "archive_callback_url" in body:
            corp.archive_callback_url = body["archive_callback_url"] or ""
        _archive_pair(corp, body)
        if "archive_notify_interval_s" in body:
            value = body["archive_notify_interval_s"]
            corp.archive_notify_interval_s = None if value is None else float(value)
        return corp.public()

    @r.post("/corps/{corp_id}/departments", status_code=201)
    async def add_department(corp_id: str, body: dict = Body(...)):
        corp, dept = corp_of(corp_id), _dept(body)
        corp.departments[dept.id] = dept
        return dept.as_api()

    @r.post("/corps/{corp_id}/staff", status_code=201)
    async def add_staff(corp_id: str, body: dict = Body(...)):
        corp, staff = corp_of(corp_id), _staff(body)
        if staff.userid in corp.staff and corp.staff[staff.userid].status != 5:
            raise HTTPException(409, f"staff {staff.userid} exists")
        corp.staff[staff.userid] = staff
        return staff.as_api()

    @r.delete("/corps/{corp_id}/staff/{userid}")
    async def remove_staff_member(corp_id: str, userid: str):
        corp = corp_of(corp_id)
        if userid not in corp.staff:
            raise HTTPException(404, f"unknown staff {userid}")
        corp.staff[userid].status = 5  # left; customers stay for 离职继承
        return corp.staff[userid].as_api()

    @r.post("/corps/{corp_id}/expire_tokens")
    async def expire_tokens(corp_id: str):
        corp_of(corp_id)
        now, n = state.now(), 0
        for token in state.tokens.values():
            if token.corp_id == corp_id and token.expires_at > now:
                token.expires_at, n = now, n + 1
        return {"expired": n}

    @r.post("/corps/{corp_id}/verify_callback")
    async def verify_callback(corp_id: str):
        corp = corp_of(corp_id)
        if not corp.callback_url:
            raise HTTPException(400, "corp has no callback_url")
        crypto = WeComCrypto(corp.token, corp.encoding_aes_key, corp.corp_id)
        return await echostr_check(corp.callback_url, crypto, state.config.callback_timeout_s)

    @r.post("/clock")
    async def advance_clock(body: dict = Body(...)):
        state.clock.advance(float(body.get("advance_s") or 0))
        return {"now": state.now(), "offset": state.clock.offset}

    @r.get("/clock")
    async def get_clock():
        return {"now": state.now(), "offset": state.clock.offset}

    # --- events -------------------------------------------------------------------------
    @r.post("/corps/{corp_id}/scan")
    async def scan(corp_id: str, request: Request, body: dict = Body(...)):
        corp = corp_of(corp_id)
        if not body.get("config_id") or not isinstance(body.get("customer"), dict):
            raise HTTPException(422, "config_id and customer are required")
        result, delivery = actions.scan(
            emu, corp, body["config_id"], body["customer"], body.get("userid"), body.get("at")
        )
        (result["delivery"],) = await settle(request, body, [delivery])
        return result

    @r.post("/corps/{corp_id}/customers/{external_userid}/remove_staff")
    async def remove_staff(corp_id: str, external_userid: str, request: Request, body: dict = Body(...)):
        d = actions.customer_removes_staff(emu, corp_of(corp_id), external_userid, body.get("userid", ""))
        return (await settle(request, body, [d]))[0]

    @r.post("/corps/{corp_id}/staff/{userid}/rename")
    async def rename_member(corp_id: str, userid: str, request: Request, body: dict = Body(...)):
        d = actions.rename_member(emu, corp_of(corp_id), userid, str(body.get("new_userid") or ""))
        return (await settle(request, body, [d]))[0]

    @r.post("/corps/{corp_id}/staff/{userid}/remove_customer")
    async def remove_customer(corp_id: str, userid: str, request: Request, body: dict = Body(...)):
        d = actions.staff_removes_customer(
            emu, corp_of(corp_id), userid, body.get("external_userid", ""), bool(body.get("by_transfer"))
        )
        return (await settle(request, body, [d]))[0]

    @r.post("/corps/{corp_id}/remark")
    async def remark(corp_id: str, request: Request, body: dict = Body(...)):
        d = actions.staff_edits(emu, corp_of(corp_id), body)
        return (await settle(request, body, [d]))[0]

    @r.post("/corps/{corp_id}/console/tags")
    async def console_tags(corp_id: str, request: Request, body: dict = Body(...)):
        result, sent = actions.console_tags(emu, corp_of(corp_id), body)
        return {**result, "deliveries": await settle(request, body, sent)}

    @r.post("/corps/{corp_id}/transfer_fail")
    async def transfer_fail(corp_id: str, request: Request, body: dict = Body(...)):
        d = actions.transfer_fail(
            emu,
            corp_of(corp_id),
            body.get("userid", ""),
            body.get("external_userid", ""),
            body.get("reason", ""),
        )
        return (await settle(request, body, [d]))[0]

    @r.post("/corps/{corp_id}/group_chats", status_code=201)
    async def create_group_chat(corp_id: str, request: Request, body: dict = Body(...)):
        group, d = actions.create_group_chat(emu, corp_of(corp_id), body)
        delivery = (await settle(request, body, [d]))[0] if d else None
        return {"group_chat": group.as_api(), "delivery": delivery}

    @r.patch("/corps/{corp_id}/group_chats/{chat_id}")
    async def rename_group_chat(corp_id: str, chat_id: str, request: Request, body: dict = Body(...)):
        if "owner" in body:  # handed to another member
            d = actions.hand_group_chat(emu, corp_of(corp_id), chat_id, body["owner"])
        else:
            d = actions.rename_group_chat(emu, corp_of(corp_id), chat_id, body.get("name"))
        return (await settle(request, body, [d]))[0] if d else {}

    @r.post("/corps/{corp_id}/group_chats/{chat_id}/members")
    async def add_group_members(corp_id: str, chat_id: str, request: Request, body: dict = Body(...)):
        d = actions.add_group_members(emu, corp_of(corp_id), chat_id, body)
        return (await settle(request, body, [d]))[0] if d else {}

    @r.post("/corps/{corp_id}/group_chats/{chat_id}/leave")
    async def remove_group_members(corp_id: str, chat_id: str, request: Request, body: dict = Body(...)):
        d = actions.remove_group_members(emu, corp_of(corp_id), chat_id, body)
        return (await settle(request, body, [d]))[0] if d else {}

    @r.delete("/corps/{corp_id}/group_chats/{chat_id}")
    async def dismiss_group_chat(corp_id: str, chat_id: str, request: Request):
        d = actions.dismiss_group_chat(emu, corp_of(corp_id), chat_id)
        return (await settle(request, {}, [d]))[0] if d else {}

    @r.post("/redeliver/{delivery_id}")
    async def redeliver(delivery_id: str, request: Request):
        delivery = emu.deliverer.log.get(delivery_id)
        if delivery is None:
            raise HTTPException(404, f"unknown delivery {delivery_id}")
        if not delivery.url:
            raise HTTPException(400, "the corp had no callback_url for this event")
        emu.deliverer.redeliver(delivery)
        return (await settle(request, {}, [delivery]))[0]

    # --- reading ------------------------------------------------------------------------
    @r.get("/corps/{corp_id}/contact_ways")
    async def contact_ways(corp_id: str):
        return [w.as_api() for w in corp_of(corp_id).ways.values()]

    @r.get("/corps/{corp_id}/customers")
    async def customers(corp_id: str):
        corp = corp_of(corp_id)
        return [
            {"external_contact": corp.customers[f.external_userid].as_api(), "follow_info": follow_info(f)}
            for f in corp.follows.values()
        ]

    @r.get("/corps/{corp_id}/tags")
    async def tags(corp_id: str):
        corp = corp_of(corp_id)
        return [group_as_api(corp, g) for g in corp.tag_groups.values()]

    @r.get("/corps/{corp_id}/welcome_messages")
    async def welcome_messages(corp_id: str):
        return corp_of(corp_id).welcome_messages

    @r.get("/corps/{corp_id}/app_messages")
    async def app_messages(corp_id: str, after: int = 0):
        return corp_of(corp_id).app_messages[max(0, after) :]

    @r.get("/corps/{corp_id}/deliveries")
    async def deliveries(corp_id: str):
        corp_of(corp_id)
        return [d.as_dict() for d in emu.deliverer.for_corp(corp_id)]

    @r.get("/deliveries/{delivery_id}")
    async def delivery(delivery_id: str):
        d = emu.deliverer.log.get(delivery_id)
        if d is None:
            raise HTTPException(404, f"unknown delivery {delivery_id}")
        return d.as_dict()

    @r.get("/corps/{corp_id}/calls")
    async def calls(corp_id: str):
        return list(corp_of(corp_id).calls)

    # --- faults -------------------------------------------------------------------------
    @r.post("/faults", status_code=201)
    async def add_fault(body: dict = Body(...)):
        errcode = body.get("errcode")
        if errcode is None and not body.get("delay_s") and not body.get("status"):
            raise HTTPException(422, "a fault needs errcode, status or delay_s")
        fault = emu.faults.add(
            errcode,
            int(body.get("times") or 1),
            body.get("corp_id"),
            body.get("path") or "*",
            float(body.get("delay_s") or 0),
            int(body["status"]) if body.get("status") else None,
        )
        return fault.as_dict()

    @r.get("/faults")
    async def list_faults():
        return [f.as_dict() for f in emu.faults.items]

    @r.delete("/faults")
    async def clear_faults():
        emu.faults.clear()
        return {"cleared": True}

    # --- files --------------------------------------------------------------------------
    @r.get("/qr/{config_id}.png")
    async def qr_png(config_id: str, request: Request):
        for corp in state.corps.values():
            if config_id in corp.ways:
                content = f"{emu.public_url(request)}/_emulator/ways/{config_id}"
                buf = io.BytesIO()
                segno.make(content, error="m").save(buf, kind="png", scale=6, border=2)
                return Response(buf.getvalue(), media_type="image/png")
        raise HTTPException(404, "unknown config_id")

    @r.get("/ways/{config_id}")
    async def way_by_qr(config_id: str):
        # What the QR code encodes: lets a demo "scan" resolve the way and its corp.
        for corp in state.corps.values():
            if config_id in corp.ways:
                return {"corp_id": corp.corp_id, "contact_way": corp.ways[config_id].as_api()}
        raise HTTPException(404, "unknown config_id")

    @r.get("/img/{corp_id}/{key}")
    async def uploaded_image(corp_id: str, key: str):
        image = corp_of(corp_id).images.get(key)
        if image is None:
            raise HTTPException(404, "unknown image")
        return Response(image.data, media_type=image.content_type or "image/png")

    return r
