"""Conversation archive (会话内容存档, REFERENCE.md 11 and 2.4): per-corp message log, keys,
permit list, agreements, the msgaudit_notify callback, and the /cgi-bin/msgaudit/* APIs.

Real WeCom hands archived messages out only through its finance SDK (GetChatData and
DecryptData over the SDK's own protocol); no .so can be built that decrypts what an
emulator encrypts (REFERENCE 11.2). So the emulator imitates the SDK at its function
boundary, with two EMULATOR-ONLY endpoints that siyu.wecom.archive.HttpArchiveSource calls:

  POST /cgi-bin/msgaudit/emulator_get_chat_data?access_token=T   {seq, limit, timeout?}
      GetChatData: `{"errcode":0,"errmsg":"ok","chatdata":[{seq, msgid, publickey_ver,
      encrypt_random_key, encrypt_chat_msg}]}` with seq > `seq`, in seq order; limit 1..1000,
      else errcode 10000 like the SDK. The token must come from the corp's archive_secret
      (else 48002, our pick). Faults and frequency limits apply as on any /cgi-bin path.
  POST /cgi-bin/msgaudit/emulator_decrypt   {encrypt_key, encrypt_chat_msg}  (no token)
      DecryptData: `{"plaintext": "<message JSON>"}`; empty key -> 10008, a key that does
      not fit -> 10006.

Encryption (ours, not WeCom's): per message a random 32-character key string; it is RSA-
encrypted (PKCS#1 v1.5) with the public key of the corp's current publickey_ver ->
`encrypt_random_key` (base64), exactly as WeCom does, so the adapter's real RSA step runs.
`encrypt_chat_msg` = base64(iv || AES-256-CBC(sha256(random key), iv, PKCS#7(JSON))). A
message is sealed when it is stored (with the then-current key version); messages stored
before any key was uploaded are sealed with the current key when first fetched.

The real APIs, with the archive secret's token:
  POST /cgi-bin/msgaudit/get_permit_user_list  {type?} -> {ids}
  POST /cgi-bin/msgaudit/check_single_agree    {info:[{userid, exteranalopenid}]}
       -> {agreeinfo:[{status_change_time, userid, exteranalopenid, agree_status}]}
       (unknown pairs answer Default_Agree with status_change_time 0; our pick)

msgaudit_notify (REFERENCE 2.4) is POSTed encrypted like every callback, but to the 会话存档
app's own callback: the corp's archive_callback_url, signed and encrypted with the archive's
own archive_token / archive_encoding_aes_key (in WeCom the archive is its own app with its own
接收事件服务器 settings). With no archive_callback_url no notify is delivered (the delivery is
recorded as no_callback_url), as WeCom sends none when the app has no callback. At most once per
`archive_notify_interval_s` (15 s; per corp via PATCH) and only when messages were stored
since the last notify. The first notify goes out at once; messages stored within the
window are covered by one notify at the window's end.

Control routes (JSON; errors are FastAPI's {"detail"}):
  GET  /_emulator/corps/{corp_id}/archive            summary: key versions, current version,
        max_seq, count, permit, agreements, notify deliveries
  POST /_emulator/corps/{corp_id}/archive/keys       {publickey_ver, public_key_pem?}: upload a
        public key (PKCS#1 or SubjectPublicKeyInfo PEM) and make it current; without
        public_key_pem the emulator makes a 2048-bit pair and answers private_key_pem too
  POST /_emulator/corps/{corp_id}/archive/messages   one message or {messages:[...]}, each in
        REFERENCE 11.3 shape: {from, tolist, msgtype, <msgtype>: {...}, roomid?, msgtime? (ms,
        default the emulator clock), action? (send), msgid? (generated)}; `content` is a
        shortcut for text; recall: {action:"recall", msgtype:"revoke", revoke:{pre_msgid}}
        (from/tolist/roomid default to the recalled message's); switch: {action:"switch",
        user, time?}. -> {messages:[{seq, msgid, archived}]}; a message none of whose
        participants is on an explicit permit list is not archived (seq null), nor a 1:1
        message of a member and a customer who disagreed (until they agree again).
  GET  /_emulator/corps/{corp_id}/archive/messages?after_seq=0   [{seq, msgid, publickey_ver,
        message}] in plain text
  PUT  /_emulator/corps/{corp_id}/archive/permit     {userids:[...] | null}; null (the default)
        = every active member is archived
  POST /_emulator/corps/{corp_id}/archive/agree      {userid, external_userid, agree?: true,
        at? (s), msgtime? (ms), msgid?}: the customer agrees or disagrees to be archived;
        stores the status and an agree / disagree message
  POST /_emulator/corps/{corp_id}/archive/verify_callback   WeCom's echostr check (GET) of
        archive_callback_url with the archive's pair -> {ok, status_code, expected, got}
  (The archive callback's URL, Token and EncodingAESKey are set with POST/PATCH
  /_emulator/corps: archive_callback_url, archive_token, archive_encoding_aes_key.)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi import APIRouter, Body, HTTPException

from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.events import event_xml

from . import delivery as _delivery
from .cgi import Ctx, api
from .delivery import Delivery
from .errors import WeComError
from .state import Corp, rand_id

ARCHIVE_AGENT_ID = 2000004  # the 会话存档 app's AgentID in the doc sample (REFERENCE 2.4)
MAX_LIMIT = 1000
# Payload object names that differ from the msgtype (REFERENCE 11.3).
PAYLOAD_KEY = {"docmsg": "doc", "markdown": "info", "news": "info", "external_redpacket": "redpacket"}
TOP_LEVEL_TYPES = {"vote"}  # payload fields sit at the top level
CONTROL_ONLY = {"content", "wait", "seq"}


@dataclass
class Entry:
    seq: int
    msgid: str
    message: dict
    publickey_ver: int | None = None
    encrypt_random_key: str = ""
    encrypt_chat_msg: str = ""

    def chatdata(self) -> dict:
        return {
            "seq": self.seq,
            "msgid": self.msgid,
            "publickey_ver": self.publickey_ver,
            "encrypt_random_key": self.encrypt_random_key,
            "encrypt_chat_msg": self.encrypt_chat_msg,
        }


@dataclass
class Archive:
    public_keys: dict[int, rsa.RSAPublicKey] = field(default_factory=dict)
    current_ver: int | None = None
    entries: list[Entry] = field(default_factory=list)
    by_msgid: dict[str, Entry] = field(default_factory=dict)
    permit: list[str] | None = None
    # (userid, external_userid) -> (agree_status, status_change_time in s)
    agreements: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    notified_seq: int = 0
    last_notify_at: float | None = None  # time.monotonic() of the last notify
    notify_task: asyncio.Task | None = None
    notifies: list[str] = field(default_factory=list)  # delivery ids

    @property
    def max_seq(self) -> int:
        return self.entries[-1].seq if self.entries else 0


def archive_of(corp: Corp) -> Archive:
    if corp.archive is None:
        corp.archive = Archive()
    return corp.archive


# ------------------------------------------------------------------------- crypto


def _aes_key(random_key: str) -> bytes:
    return hashlib.sha256(random_key.encode()).digest()


def seal(message: dict, public_key: rsa.RSAPublicKey) -> tuple[str, str]:
    """(encrypt_random_key, encrypt_chat_msg) for one message."""
    random_key = rand_id(n=32)
    encrypt_random_key = base64.b64encode(public_key.encrypt(random_key.encode(), padding.PKCS1v15()))
    padder = sym_padding.PKCS7(128).padder()
    plain = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    padded = padder.update(plain) + padder.finalize()
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(_aes_key(random_key)), modes.CBC(iv)).encryptor()
    cipher = iv + encryptor.update(padded) + encryptor.finalize()
    return encrypt_random_key.decode(), base64.b64encode(cipher).decode()


def unseal(encrypt_key: str, encrypt_chat_msg: str) -> str:
    """The message JSON; ValueError when the key does not fit or the text is not ours."""
    try:
        raw = base64.b64decode(encrypt_chat_msg, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("encrypt_chat_msg is not base64") from exc
    if len(raw) < 32 or len(raw) % 16:
        raise ValueError("encrypt_chat_msg has the wrong length")
    decryptor = Cipher(algorithms.AES(_aes_key(encrypt_key)), modes.CBC(raw[:16])).decryptor()
    padded = decryptor.update(raw[16:]) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    plain = unpadder.update(padded) + unpadder.finalize()  # ValueError on bad padding
    text = plain.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if not isinstance(json.loads(text), dict):
        raise ValueError("not a message")
    return text


def _load_public_key(pem: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise HTTPException(422, f"public_key_pem is not a PEM public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise HTTPException(422, "the archive key must be RSA")
    return key


# ------------------------------------------------------------------------- storing


def _new_msgid() -> str:
    return base64.b64encode(secrets.token_bytes(20)).decode()


def _ms(emu) -> int:
    return int(emu.state.now() * 1000)


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise HTTPException(422, f"{name} must be an integer") from None


def build_message(emu, corp: Corp, data: dict) -> dict:
    """A REFERENCE 11.3 message from a control-API body (HTTPException 422/409 if bad)."""
    if not isinstance(data, dict):
        raise HTTPException(422, "a message is a JSON object")
    arc = archive_of(corp)
    action = data.get("action") or "send"
    if action not in ("send", "recall", "switch"):
        raise HTTPException(422, "action must be send, recall or switch")
    msgid = str(data.get("msgid") or _new_msgid())
    if msgid in arc.by_msgid:
        raise HTTPException(409, f"msgid {msgid} exists")
    if action == "switch":
        if not data.get("user"):
            raise HTTPException(422, "a switch message needs user")
        return {
            "msgid": msgid,
            "action": "switch",
            "time": _int(data.get("time") or _ms(emu), "time"),
            "user": data["user"],
        }
    defaults: dict = {}
    msgtype = data.get("msgtype")
    if action == "recall":
        msgtype = msgtype or "revoke"
        pre = (data.get("revoke") or {}).get("pre_msgid") if isinstance(data.get("revoke"), dict) else None
        original = arc.by_msgid.get(str(pre or ""))
        if original is None:
            raise HTTPException(422, f"recall: unknown pre_msgid {pre!r}")
        defaults = {k: original.message.get(k) for k in ("from", "tolist", "roomid")}
    elif not msgtype and data.get("content") is not None:
        msgtype = "text"
    if not msgtype:
        raise HTTPException(422, "msgtype is required")
    sender = data.get("from") or defaults.get("from")
    tolist = data.get("tolist") if data.get("tolist") is not None else defaults.get("tolist")
    if not sender or not isinstance(tolist, list) or not tolist:
        raise HTTPException(422, "a message needs from and a non-empty tolist")
    message = {
        "msgid": msgid,
        "action": action,
        "from": str(sender),
        "tolist": [str(t) for t in tolist],
        "roomid": str(data.get("roomid") or defaults.get("roomid") or ""),
        "msgtime": _int(data.get("msgtime") or _ms(emu), "msgtime"),
        "msgtype": msgtype,
    }
    if msgtype == "text" and data.get("content") is not None and "text" not in data:
        message["text"] = {"content": str(data["content"])}
    for key, value in data.items():
        if key not in message and key not in CONTROL_ONLY:
            message[key] = value
    if msgtype not in TOP_LEVEL_TYPES and not isinstance(
        message.get(PAYLOAD_KEY.get(msgtype, msgtype)), dict
    ):
        raise HTTPException(
            422, f"a {msgtype} message needs its {PAYLOAD_KEY.get(msgtype, msgtype)!r} object"
        )
    return message


def _archived(corp: Corp, arc: Archive, message: dict) -> bool:
    if _declined(arc, message):
        return False
    if arc.permit is None:
        return True
    people = {message.get("from"), message.get("user"), *(message.get("tolist") or [])}
    return bool(people & set(arc.permit))


def _declined(arc: Archive, message: dict) -> bool:
    """A 1:1 message of a member and a customer who said no to archiving (Disagree, until
    they agree again): WeCom archives nothing of that chat but the answer itself."""
    if message.get("roomid") or message.get("msgtype") in ("agree", "disagree"):
        return False
    people = [message.get("from"), *(message.get("tolist") or [])]
    return any(
        arc.agreements.get((member, customer), ("",))[0] == "Disagree"
        for member in people
        for customer in people
        if member != customer
    )


def _seal_entry(arc: Archive, entry: Entry) -> None:
    if arc.current_ver is not None and not entry.encrypt_random_key:
        entry.publickey_ver = arc.current_ver
        entry.encrypt_random_key, entry.encrypt_chat_msg = seal(
            entry.message, arc.public_keys[arc.current_ver]
        )


def _mark_chatted(corp: Corp, message: dict) -> None:
    """A 1:1 message between a member and their customer: the pair has chatted (no
    WelcomeCode on a re-add, 41051 for a pending welcome code)."""
    if message.get("roomid") or message.get("action") != "send":
        return
    sender = message.get("from")
    for other in message.get("tolist") or []:
        for pair in ((sender, other), (other, sender)):
            follow = corp.follows.get(pair)
            if follow is not None:
                follow.chatted = True
                corp.chatted_pairs.add(pair)


def append(emu, corp: Corp, messages: list[dict]) -> list[dict]:
    """Store messages (already built) in order; answers [{seq, msgid, archived}]."""
    arc = archive_of(corp)
    out = []
    for message in messages:
        if not _archived(corp, arc, message):
            out.append({"seq": None, "msgid": message["msgid"], "archived": False})
            continue
        entry = Entry(arc.max_seq + 1, message["msgid"], message)
        _seal_entry(arc, entry)
        arc.entries.append(entry)
        arc.by_msgid[entry.msgid] = entry
        _mark_chatted(corp, message)
        out.append({"seq": entry.seq, "msgid": entry.msgid, "archived": True})
    if any(o["archived"] for o in out):
        schedule_notify(emu, corp)
    return out


# ------------------------------------------------------------------------- notify


def _interval(emu, corp: Corp) -> float:
    if corp.archive_notify_interval_s is not None:
        return float(corp.archive_notify_interval_s)
    return float(emu.state.config.archive_notify_interval_s)


def schedule_notify(emu, corp: Corp) -> None:
    arc = archive_of(corp)
    if arc.notify_task is not None and not arc.notify_task.done():
        return  # the pending notify covers the new messages too
    arc.notify_task = asyncio.get_running_loop().create_task(_notify_when_due(emu, corp))


async def _notify_when_due(emu, corp: Corp) -> None:
    arc = archive_of(corp)
    if arc.last_notify_at is not None:
        wait = arc.last_notify_at + _interval(emu, corp) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
    if arc.max_seq <= arc.notified_seq:
        return
    arc.notified_seq, arc.last_notify_at = arc.max_seq, time.monotonic()
    arc.notifies.append(emit_notify(emu, corp).id)


def archive_crypto(corp: Corp) -> WeComCrypto:
    """The 会话存档 app's callback crypto: its own Token and EncodingAESKey."""
    return WeComCrypto(corp.archive_token, corp.archive_encoding_aes_key, corp.corp_id)


def emit_notify(emu, corp: Corp) -> Delivery:
    """Send msgaudit_notify (encrypted, with retries) like every other callback."""
    fields = {
        "ToUserName": corp.corp_id,
        "FromUserName": "sys",
        "CreateTime": int(emu.state.now()),
        "MsgType": "event",
        "AgentID": ARCHIVE_AGENT_ID,
        "Event": "msgaudit_notify",
    }
    inner = event_xml(fields)
    body, params = archive_crypto(corp).encrypt_callback(inner, ARCHIVE_AGENT_ID)
    deliverer = emu.deliverer
    delivery = Delivery(
        id=f"d{next(_delivery._ids)}",  # the same id series as every other callback
        corp_id=corp.corp_id,
        kind="msgaudit_notify",
        inner_xml=inner,
        url=corp.archive_callback_url,
        body=body,
        params=params,
        created_at=time.time(),
    )
    deliverer.log[delivery.id] = delivery
    if not delivery.url:
        delivery.status = "no_callback_url"
        delivery.first_attempt.set()
    else:
        deliverer.redeliver(delivery)  # starts the (first) delivery with retries
    return delivery


async def close(emu) -> None:
    """Cancel pending notifies (app shutdown)."""
    for corp in emu.state.corps.values():
        task = corp.archive.notify_task if corp.archive is not None else None
        if task is not None and not task.done():
            task.cancel()


# ------------------------------------------------------------------------- /cgi-bin/msgaudit


def _archive_corp(ctx: Ctx) -> Corp:
    corp = ctx.need_corp()
    token = ctx.state.tokens.get(ctx.query.get("access_token", ""))
    if token is None or token.secret != corp.archive_secret:
        raise WeComError(
            48002, "api forbidden: msgaudit APIs take the 会话存档 (archive) secret's access_token"
        )
    return corp


@api("msgaudit/emulator_get_chat_data", methods=("POST",))
async def emulator_get_chat_data(ctx: Ctx) -> dict:
    corp = _archive_corp(ctx)
    seq, limit = ctx.int_field("seq", 0), ctx.int_field("limit", 100)
    if seq < 0 or not 1 <= limit <= MAX_LIMIT:
        raise WeComError(10000, f"param error: seq >= 0 and limit 1..{MAX_LIMIT}")
    arc = archive_of(corp)
    batch = [e for e in arc.entries if e.seq > seq][:limit]
    for entry in batch:
        _seal_entry(arc, entry)
        if not entry.encrypt_random_key:
            raise WeComError(
                10004, "no archive public key uploaded (POST /_emulator/corps/{id}/archive/keys)"
            )
    return {"chatdata": [e.chatdata() for e in batch]}


@api("msgaudit/emulator_decrypt", methods=("POST",), needs_token=False)
async def emulator_decrypt(ctx: Ctx) -> dict:
    key, text = ctx.json.get("encrypt_key"), ctx.json.get("encrypt_chat_msg")
    if not isinstance(text, str) or not text:
        raise WeComError(10000, "param error: encrypt_chat_msg is required")
    if not isinstance(key, str) or not key:
        raise WeComError(10008, "encrypt_key parse error")
    try:
        return {"plaintext": unseal(key, text)}
    except ValueError:
        raise WeComError(10006, "decrypt failed") from None


@api("msgaudit/get_permit_user_list", methods=("POST",))
async def get_permit_user_list(ctx: Ctx) -> dict:
    corp = _archive_corp(ctx)
    kind = ctx.int_field("type")
    if kind is not None and kind not in (1, 2, 3):
        raise WeComError(40035, "invalid type")
    arc = archive_of(corp)
    ids = arc.permit if arc.permit is not None else [s.userid for s in corp.active_staff()]
    return {"ids": list(ids)}


@api("msgaudit/groupchat/get", methods=("POST",))
async def groupchat_get(ctx: Ctx) -> dict:
    """An internal group (staff only) by roomid; 40050 (our choice) for any other room: a
    customer group is told by externalcontact/groupchat/get."""
    corp = _archive_corp(ctx)
    roomid = ctx.json.get("roomid")
    if not isinstance(roomid, str) or not roomid:
        raise WeComError(40035, "roomid missing")
    group = corp.group_chats.get(roomid)
    if group is None or group.dismissed or not group.internal:
        raise WeComError(40050)
    return group.as_archive_api()


@api("msgaudit/check_single_agree", methods=("POST",))
async def check_single_agree(ctx: Ctx) -> dict:
    corp = _archive_corp(ctx)
    info = ctx.json.get("info")
    if not isinstance(info, list) or not info:
        raise WeComError(40035, "invalid info")
    arc = archive_of(corp)
    out = []
    for item in info:
        if not isinstance(item, dict):
            raise WeComError(40035, "invalid info")
        userid = str(item.get("userid") or "")
        ext = str(item.get("exteranalopenid") or "")  # (WeCom's own spelling, and only it: REFERENCE 11.4)
        if not userid or not ext:
            raise WeComError(40035, "info needs userid and exteranalopenid")
        status, at = arc.agreements.get((userid, ext), ("Default_Agree", 0))
        out.append(
            {"status_change_time": at, "userid": userid, "exteranalopenid": ext, "agree_status": status}
        )
    return {"agreeinfo": out}


# ------------------------------------------------------------------------- control


def build_router(emu) -> APIRouter:
    r = APIRouter(prefix="/_emulator/corps/{corp_id}/archive", tags=["emulator control: archive"])
    state = emu.state

    def corp_of(corp_id: str) -> Corp:
        corp = state.corps.get(corp_id)
        if corp is None:
            raise HTTPException(404, f"unknown corp {corp_id}")
        return corp

    @r.get("")
    async def summary(corp_id: str):
        corp = corp_of(corp_id)
        arc = archive_of(corp)
        return {
            "publickey_vers": sorted(arc.public_keys),
            "current_publickey_ver": arc.current_ver,
            "max_seq": arc.max_seq,
            "count": len(arc.entries),
            "permit": arc.permit,
            "agreements": [
                {"userid": u, "external_userid": e, "agree_status": s, "status_change_time": t}
                for (u, e), (s, t) in arc.agreements.items()
            ],
            "notify_interval_s": _interval(emu, corp),
            "notified_seq": arc.notified_seq,
            "notifies": list(arc.notifies),
            "callback_url": corp.archive_callback_url,
        }

    @r.post("/verify_callback")
    async def verify_callback(corp_id: str):
        corp = corp_of(corp_id)
        if not corp.archive_callback_url:
            raise HTTPException(400, "corp has no archive_callback_url")
        return await _delivery.echostr_check(
            corp.archive_callback_url, archive_crypto(corp), state.config.callback_timeout_s
        )

    @r.post("/keys", status_code=201)
    async def upload_key(corp_id: str, body: dict = Body(...)):
        arc = archive_of(corp_of(corp_id))
        try:
            ver = int(body.get("publickey_ver"))
        except (TypeError, ValueError):
            raise HTTPException(422, "publickey_ver (an integer) is required") from None
        out: dict = {"publickey_ver": ver}
        if body.get("public_key_pem"):
            key = _load_public_key(str(body["public_key_pem"]))
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key = private.public_key()
            out["private_key_pem"] = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ).decode()
        arc.public_keys[ver] = key
        arc.current_ver = ver
        out["public_key_pem"] = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        ).decode()
        return out

    @r.post("/messages", status_code=201)
    async def post_messages(corp_id: str, body: dict = Body(...)):
        corp = corp_of(corp_id)
        items = body.get("messages") if isinstance(body.get("messages"), list) else [body]
        built: list[dict] = []
        seen: set[str] = set()
        for item in items:
            message = build_message(emu, corp, item)
            if message["msgid"] in seen:
                raise HTTPException(409, f"msgid {message['msgid']} twice in one request")
            seen.add(message["msgid"])
            built.append(message)
        return {"messages": append(emu, corp, built)}

    @r.get("/messages")
    async def list_messages(corp_id: str, after_seq: int = 0):
        arc = archive_of(corp_of(corp_id))
        return [
            {"seq": e.seq, "msgid": e.msgid, "publickey_ver": e.publickey_ver, "message": e.message}
            for e in arc.entries
            if e.seq > after_seq
        ]

    @r.put("/permit")
    async def set_permit(corp_id: str, body: dict = Body(...)):
        arc = archive_of(corp_of(corp_id))
        userids = body.get("userids")
        if userids is not None and not isinstance(userids, list):
            raise HTTPException(422, "userids must be a list or null")
        arc.permit = None if userids is None else [str(u) for u in userids]
        return {"permit": arc.permit}

    @r.post("/agree")
    async def agree(corp_id: str, body: dict = Body(...)):
        corp = corp_of(corp_id)
        arc = archive_of(corp)
        userid, ext = str(body.get("userid") or ""), str(body.get("external_userid") or "")
        if not userid or not ext:
            raise HTTPException(422, "userid and external_userid are required")
        agreed = body.get("agree", True) is not False
        at = _int(body.get("at") or state.now(), "at")
        # the message's time in ms, where the caller keeps time finer than seconds (the demo world)
        msgtime = _int(body.get("msgtime") or at * 1000, "msgtime")
        status = "Agree" if agreed else "Disagree"
        kind = "agree" if agreed else "disagree"
        message = build_message(  # first: a msgid given twice is refused before anything is recorded
            emu,
            corp,
            {
                "msgid": body.get("msgid"),  # given by the demo world, for a run that repeats
                "from": ext,
                "tolist": [userid],
                "msgtime": msgtime,
                "msgtype": kind,
                kind: {"userid": ext, f"{kind}_time": msgtime},
            },
        )
        arc.agreements[(userid, ext)] = (status, at)
        (stored,) = append(emu, corp, [message])
        return {"agree_status": status, "status_change_time": at, **stored}

    return r
