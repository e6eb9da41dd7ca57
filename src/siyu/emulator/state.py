"""The emulator's in-memory world: corps, staff, customers, tags, contact ways, tokens.

Everything is mutated only from coroutines on the app's single event loop, so plain
dicts are safe without locks. Time comes from `Clock`, which tests can move forward
(`POST /_emulator/clock`) to expire tokens, welcome codes and OAuth codes without sleeping.
"""

from __future__ import annotations

import secrets
import string
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from siyu.wecom.crypto import new_encoding_aes_key

_ALNUM = string.ascii_letters + string.digits


def rand_id(prefix: str = "", n: int = 30) -> str:
    # One read of random bytes (not one per character): bytes >= 248 are dropped so that
    # each of the 62 characters stays equally likely (248 = 4 x 62).
    chars: list[str] = []
    while len(chars) < n:
        chars += [_ALNUM[b % 62] for b in secrets.token_bytes(n + 8) if b < 248]
    return prefix + "".join(chars[:n])


def rand_hex(n: int = 32) -> str:
    return secrets.token_hex(n // 2)


@dataclass
class EmulatorConfig:
    token_ttl_s: int = 7200
    callback_timeout_s: float = 5.0
    # WeCom: "no answer within 5 s -> retry, 3 retries in total" -> up to 4 attempts.
    max_retries: int = 3
    retry_delay_s: float = 1.0
    welcome_code_ttl_s: float = 20.0
    oauth_code_ttl_s: float = 300.0
    user_ticket_ttl_s: float = 1800.0
    media_ttl_s: float = 3 * 86400
    # Per (corp, API) calls per sliding minute. Real WeCom allows 10,000; the default is
    # lower so that tests can reach it, and PATCH /_emulator/corps/{id} can change it.
    rate_limit_per_minute: int = 1000
    # Base URL the emulator puts into qr_code / uploadimg URLs; default: the request's.
    public_url: str | None = None
    # msgaudit_notify goes out at most once per this many seconds per corp (REFERENCE 2.4);
    # PATCH /_emulator/corps/{id} {archive_notify_interval_s} overrides it per corp.
    archive_notify_interval_s: float = 15.0
    # message/send: WeCom delivers at most 30 app messages a minute and 1,000 an hour from
    # one app to one member and drops the rest without an error (REFERENCE section 17).
    # (seconds, limit) windows, sliding; the emulator drops likewise and records whom.
    app_message_member_limits: tuple[tuple[float, int], ...] = ((60.0, 30), (3600.0, 1000))


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Department:
    id: int
    name: str
    parentid: int = 0
    order: int = 0
    department_leader: list[str] = field(default_factory=list)

    def as_api(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "parentid": self.parentid,
            "order": self.order,
            "department_leader": list(self.department_leader),
        }


@dataclass
class Staff:
    userid: str
    name: str
    department: list[int] = field(default_factory=lambda: [1])
    main_department: int | None = None
    direct_leader: list[str] = field(default_factory=list)
    is_leader_in_dept: list[int] = field(default_factory=list)
    mobile: str = ""
    email: str = ""
    position: str = ""
    gender: str = "0"
    status: int = 1  # 1 active, 2 disabled, 4 not activated, 5 left
    avatar: str = ""
    external_contact: bool = True  # has the 客户联系 function
    # holds an account license (接口许可): app messages to one without are not delivered,
    # their userid listed in message/send's `unlicenseduser` (REFERENCE 9)
    licensed: bool = True

    def as_api(self) -> dict:
        leader_flags = self.is_leader_in_dept or [0] * len(self.department)
        return {
            "userid": self.userid,
            "name": self.name,
            "department": list(self.department),
            "order": [0] * len(self.department),
            "position": self.position,
            "mobile": self.mobile,
            "gender": str(self.gender),
            "email": self.email,
            "is_leader_in_dept": list(leader_flags),
            "direct_leader": list(self.direct_leader),
            "avatar": self.avatar,
            "thumb_avatar": self.avatar,
            "telephone": "",
            "alias": "",
            "status": self.status,
            "main_department": self.main_department or (self.department[0] if self.department else 1),
            "qr_code": "",
            "external_position": "",
            "address": "",
        }

    def as_simple(self) -> dict:
        return {"userid": self.userid, "name": self.name, "department": list(self.department)}


@dataclass
class Customer:
    external_userid: str
    name: str
    type: int = 1  # 1 WeChat user, 2 WeCom user
    gender: int = 0
    unionid: str = ""
    avatar: str = ""
    corp_name: str = ""
    corp_full_name: str = ""
    position: str = ""

    def as_api(self) -> dict:
        out = {
            "external_userid": self.external_userid,
            "name": self.name,
            "avatar": self.avatar,
            "type": self.type,
            "gender": self.gender,
        }
        if self.unionid and self.type == 1:
            out["unionid"] = self.unionid
        if self.type == 2:  # corp fields exist only for WeCom users (REFERENCE 5.3)
            out.update(position=self.position, corp_name=self.corp_name, corp_full_name=self.corp_full_name)
        return out


@dataclass
class Follow:
    """One (member, customer) relation: WeCom's follow_user / follow_info."""

    userid: str
    external_userid: str
    createtime: int
    state: str = ""
    add_way: int = 1
    oper_userid: str = ""
    remark: str = ""
    description: str = ""
    remark_corp_name: str = ""
    remark_mobiles: list[str] = field(default_factory=list)
    tag_ids: list[str] = field(default_factory=list)
    chatted: bool = False


@dataclass
class GroupMember:
    userid: str  # a member's userid or a customer's external_userid
    type: int  # 1 member of the corp, 2 customer
    join_time: int
    join_scene: int = 1  # 1 invited directly, 2 by link, 3 by QR code
    invitor: str = ""

    group_nickname: str = ""  # (the member's name in this group, if they set one)

    def as_api(self, name: str | None = None) -> dict:
        """`name`: asked with need_name=1 (REFERENCE 10), the member's name (a customer's WeChat
        name, a staff member's), and their nickname in the group."""
        out = {
            "userid": self.userid,
            "type": self.type,
            "join_time": self.join_time,
            "join_scene": self.join_scene,
        }
        if self.invitor:
            out["invitor"] = {"userid": self.invitor}
        if name is not None:
            out["name"], out["group_nickname"] = name, self.group_nickname
        return out


@dataclass
class GroupChat:
    """A customer group (客户群, REFERENCE 5.x groupchat/get), or with `internal` a group of staff
    only (REFERENCE 11.x msgaudit/groupchat/get); its chat_id is the archive's roomid."""

    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str = ""
    members: list[GroupMember] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)
    dismissed: bool = False
    internal: bool = False  # staff only: not a 客户群; msgaudit/groupchat/get tells it

    def as_api(self, names: dict[str, str] | None = None) -> dict:
        """`names`: asked with need_name=1, each member's name by userid."""
        return {
            "chat_id": self.chat_id,
            "name": self.name,
            "owner": self.owner,
            "create_time": self.create_time,
            "notice": self.notice,
            "member_list": [
                m.as_api(None if names is None else names.get(m.userid, "")) for m in self.members
            ],
            "admin_list": [{"userid": u} for u in self.admins],
        }

    def as_archive_api(self) -> dict:
        """msgaudit/groupchat/get's answer for an internal group."""
        return {
            "roomname": self.name,
            "creator": self.owner,
            "room_create_time": self.create_time,
            "notice": self.notice,
            "members": [{"memid": m.userid, "jointime": m.join_time} for m in self.members],
        }


@dataclass
class Tag:
    id: str
    name: str
    group_id: str
    create_time: int
    order: int = 0


@dataclass
class TagGroup:
    group_id: str
    group_name: str
    create_time: int
    order: int = 0
    tag_ids: list[str] = field(default_factory=list)


@dataclass
class ContactWay:
    config_id: str
    type: int
    scene: int
    create_time: int
    style: int = 0
    remark: str = ""
    skip_verify: bool = True
    state: str = ""
    user: list[str] = field(default_factory=list)
    party: list[int] = field(default_factory=list)
    is_temp: bool = False
    expires_in: int = 0
    chat_expires_in: int = 0
    unionid: str = ""
    qr_code: str = ""
    next_index: int = 0  # round-robin over the way's members

    def as_api(self) -> dict:
        out = {
            "config_id": self.config_id,
            "type": self.type,
            "scene": self.scene,
            "style": self.style,
            "remark": self.remark,
            "skip_verify": self.skip_verify,
            "state": self.state,
            "user": list(self.user),
            "party": list(self.party),
            "is_temp": self.is_temp,
            "expires_in": self.expires_in,
            "chat_expires_in": self.chat_expires_in,
            "unionid": self.unionid,
        }
        if self.qr_code:
            out["qr_code"] = self.qr_code
        return out


@dataclass
class WelcomeCode:
    code: str
    userid: str
    external_userid: str
    issued_at: float
    used: bool = False


@dataclass
class Media:
    media_id: str
    type: str
    filename: str
    content_type: str
    data: bytes
    created_at: int


@dataclass
class OAuthCode:
    code: str
    userid: str
    scope: str
    agentid: str
    redirect_host: str
    issued_at: float
    used: bool = False


@dataclass
class Token:
    token: str
    corp_id: str
    secret: str
    expires_at: float


@dataclass
class Corp:
    corp_id: str
    name: str
    agent_id: int
    agent_secret: str
    contact_secret: str
    token: str
    encoding_aes_key: str
    callback_url: str = ""
    trusted_ips: list[str] = field(default_factory=list)
    trusted_domains: list[str] = field(default_factory=list)
    token_ttl_s: int | None = None
    # {"*": N} or {"externalcontact/get": N}: calls per minute per API.
    rate_limits: dict[str, int] = field(default_factory=dict)
    departments: dict[int, Department] = field(default_factory=dict)
    staff: dict[str, Staff] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)
    follows: dict[tuple[str, str], Follow] = field(default_factory=dict)
    # Pairs that ever chatted (survive deletion: a re-add then carries no WelcomeCode).
    chatted_pairs: set[tuple[str, str]] = field(default_factory=set)
    tag_groups: dict[str, TagGroup] = field(default_factory=dict)
    tags: dict[str, Tag] = field(default_factory=dict)
    group_chats: dict[str, GroupChat] = field(default_factory=dict)
    ways: dict[str, ContactWay] = field(default_factory=dict)
    welcome_codes: dict[str, WelcomeCode] = field(default_factory=dict)
    welcome_messages: list[dict] = field(default_factory=list)
    app_messages: list[dict] = field(default_factory=list)
    calls: deque = field(default_factory=lambda: deque(maxlen=5000))
    media: dict[str, Media] = field(default_factory=dict)
    images: dict[str, Media] = field(default_factory=dict)  # uploadimg, keyed by url key
    oauth_codes: dict[str, OAuthCode] = field(default_factory=dict)
    user_tickets: dict[str, tuple[str, float]] = field(default_factory=dict)
    # Conversation archive (archive.py): the 会话存档 secret; the archive app's own callback
    # (URL, Token, EncodingAESKey: msgaudit_notify goes there, signed with that pair; no URL,
    # no notify), the notify window, and the archive's own state.
    archive_secret: str = ""
    archive_callback_url: str = ""
    archive_token: str = ""
    archive_encoding_aes_key: str = ""
    archive_notify_interval_s: float | None = None
    archive: Any = None  # archive.Archive, made on first use

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.agent_secret, self.contact_secret, self.archive_secret) if s)

    def active_staff(self) -> list[Staff]:
        return [s for s in self.staff.values() if s.status != 5]

    def is_active(self, userid: str) -> bool:
        member = self.staff.get(userid)
        return member is not None and member.status != 5

    def staff_in(self, dept_id: int, recursive: bool = False) -> list[Staff]:
        depts = self.subtree(dept_id) if recursive else {dept_id}
        return [s for s in self.active_staff() if depts & set(s.department)]

    def subtree(self, dept_id: int) -> set[int]:
        out, todo = set(), [dept_id]
        while todo:
            d = todo.pop()
            if d in out:
                continue
            out.add(d)
            todo.extend(x.id for x in self.departments.values() if x.parentid == d and x.id != d)
        return out

    def follows_of_user(self, userid: str) -> list[Follow]:
        return [f for f in self.follows.values() if f.userid == userid]

    def follows_of_customer(self, external_userid: str) -> list[Follow]:
        return [f for f in self.follows.values() if f.external_userid == external_userid]

    def public(self) -> dict:
        """What the control API answers: ids, credentials, settings (not the bulk data)."""
        return {
            "corp_id": self.corp_id,
            "name": self.name,
            "agent_id": self.agent_id,
            "agent_secret": self.agent_secret,
            "contact_secret": self.contact_secret,
            "archive_secret": self.archive_secret,
            "token": self.token,
            "encoding_aes_key": self.encoding_aes_key,
            "callback_url": self.callback_url,
            "archive_callback_url": self.archive_callback_url,
            "archive_token": self.archive_token,
            "archive_encoding_aes_key": self.archive_encoding_aes_key,
            "archive_notify_interval_s": self.archive_notify_interval_s,
            "trusted_ips": list(self.trusted_ips),
            "trusted_domains": list(self.trusted_domains),
            "token_ttl": self.token_ttl_s,
            "rate_limits": dict(self.rate_limits),
            "departments": [d.as_api() for d in self.departments.values()],
            "staff": [s.as_api() for s in self.staff.values()],
        }


def new_corp(
    name: str, corp_id: str | None = None, agent_id: int | None = None, callback_url: str = ""
) -> Corp:
    return Corp(
        corp_id=corp_id or "ww" + rand_hex(16),
        name=name,
        agent_id=agent_id or 1000002,
        agent_secret=rand_id(n=43),
        contact_secret=rand_id(n=43),
        archive_secret=rand_id(n=43),
        token=rand_id(n=16),
        encoding_aes_key=new_encoding_aes_key(),
        callback_url=callback_url,
        archive_token=rand_id(n=16),
        archive_encoding_aes_key=new_encoding_aes_key(),
    )


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.corps: dict[str, Corp] = {}
        self.tokens: dict[str, Token] = {}
        # (corp_id, secret) -> current token string, so gettoken answers the same token
        # while it is valid, as WeCom does.
        self.token_by_secret: dict[tuple[str, str], str] = {}
        # (corp_id, api) -> deque of call times for the sliding-minute limiter.
        self.rate_windows: dict[tuple[str, str], deque] = {}
        self.member_messages: dict[tuple[str, int, str], deque] = {}  # app messages a member got
        # (corp_id, agentid, digest of the request's body) -> (when, msgid) of the app messages
        # delivered within WeCom's longest duplicate check, oldest first (api_message)
        self.sent_bodies: dict[tuple[str, int, bytes], tuple[float, str]] = {}

    def now(self) -> float:
        return self.clock.now()

    def token_ttl(self, corp: Corp) -> int:
        return corp.token_ttl_s if corp.token_ttl_s is not None else self.config.token_ttl_s
