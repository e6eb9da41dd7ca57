"""Fixtures for the conversation views, API and search: the web tests' two seeded tenants
(tests/web/conftest.py), plus conversations stored through `service.ingest` from messages
shaped like WeCom's archive (REFERENCE.md 11.3).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from siyu.conversations import search, service
from siyu.conversations.models import Conversation
from siyu.customers.models import Customer
from siyu.db.base import utcnow as db_now
from siyu.insights.needs_reply import default_classifier
from siyu.notify.models import OutboxMessage
from tests.web import conftest as web

# The web tests' fixtures: the emulator, Siyu under uvicorn, the two seeded tenants, logins.
emu_url = web.emu_url
web_settings = web.web_settings
siyu = web.siyu
siyu_socket = web.siyu_socket
world = web.world
as_role = web.as_role
browser_type_launch_args = web.browser_type_launch_args
browser_context_args = web.browser_context_args


def classify(batch):
    return default_classifier().classify(batch)


def store(db, tenant_id: int, items) -> dict:
    """Store archived messages as a pull does: ingest them, then index them for search."""
    with db.tenant_session(tenant_id) as s:
        counts = service.ingest(s, items, classify)
    search.index_backlog(db, tenant_id)
    return counts


@dataclass
class Item:
    seq: int
    msgid: str
    message: dict


class Archive:
    """Builds archive items: text messages and recalls, msgtime `ago` seconds before now."""

    def __init__(self):
        self.now_ms = int(time.time() * 1000)
        self.seq = 0
        self.items: list[Item] = []
        # a tag that makes each test's messages its own; starting with a letter, as PostgreSQL's
        # parser reads a code like 7e26526c as the number 7e26526 and the word c (README, search)
        self.sfx = "k" + uuid.uuid4().hex[:7]

    def text(self, sender: str, to: str, content: str, ago: float, roomid: str = "") -> str:
        self.seq += 1
        msgid = f"m{self.seq}-{self.sfx}"
        message = {
            "msgid": msgid,
            "action": "send",
            "from": sender,
            "tolist": [to] if to else [],
            "roomid": roomid,
            "msgtime": self.now_ms - int(ago * 1000),
            "msgtype": "text",
            "text": {"content": content},
        }
        self.items.append(Item(self.seq, msgid, message))
        return msgid

    def recall(self, sender: str, to: str, pre_msgid: str, ago: float) -> str:
        self.seq += 1
        msgid = f"r{self.seq}-{self.sfx}"
        message = {
            "msgid": msgid,
            "action": "recall",
            "from": sender,
            "tolist": [to],
            "roomid": "",
            "msgtime": self.now_ms - int(ago * 1000),
            "msgtype": "revoke",
            "revoke": {"pre_msgid": pre_msgid},
        }
        self.items.append(Item(self.seq, msgid, message))
        return msgid


@dataclass
class Chats:
    """Conversation ids by customer name (tenant A), "群聊" for A's group, "乙方客户" for B."""

    a: dict[str, int] = field(default_factory=dict)
    b: dict[str, int] = field(default_factory=dict)
    msgids: dict[str, str] = field(default_factory=dict)
    ext: dict[str, str] = field(default_factory=dict)
    room: str = ""
    seeded_at: float = field(default_factory=time.time)  # the package's tests run for minutes after


def _externals(db, tenant_id: int, customer_ids: dict[str, int]) -> dict[str, str]:
    with db.tenant_session(tenant_id) as s:
        rows = s.execute(select(Customer.id, Customer.external_userid)).all()
    by_id = dict(rows)
    return {name: by_id[cid] for name, cid in customer_ids.items()}


def _conversation_ids(db, tenant_id: int, ext: dict[str, str]) -> dict[str, int]:
    with db.tenant_session(tenant_id) as s:
        rows = s.execute(select(Conversation.external_userid, Conversation.id, Conversation.roomid)).all()
    by_ext = {e: cid for e, cid, room in rows if not room}
    out = {name: by_ext[e] for name, e in ext.items() if e in by_ext}
    out.update({"群聊": cid for _, cid, room in rows if room})  # noqa: B035 - one group
    return out


@pytest.fixture(scope="package")
def chats(db, world) -> Chats:
    """Tenant A: 孙小姐 waits 2 h, 王女士 5 min, 刘总 2 min (and recalled a message); 陈先生 closed
    with 谢谢; a group chat of 张三's. Tenant B: 乙方客户 asks the same as 王女士."""
    out = Chats()
    ext = _externals(db, world.a.id, world.a.customers)
    out.ext = ext
    arc = Archive()
    out.room = f"wr{arc.sfx}"
    wang, chen, liu, sun = ext["王女士"], ext["陈先生"], ext["刘总"], ext["孙小姐"]
    with db.tenant_session(world.a.id) as s:  # what Siyu sent for 张三: the welcome message
        s.add(
            OutboxMessage(
                kind="welcome",
                dedupe_key=f"welcome-{arc.sfx}",
                payload={"userid": "zhangsan", "external_userid": wang, "sent_text": "欢迎光临本店"},
                status="sent",
                sent_at=db_now(),
            )
        )
    out.msgids["welcome"] = arc.text("zhangsan", wang, "欢迎光临本店", 700)
    out.msgids["offer"] = arc.text("zhangsan", wang, "您好，iPhone15 现在有优惠活动", 600)
    out.msgids["ask"] = arc.text(wang, "zhangsan", "能便宜点吗 iPhone15", 300)
    out.msgids["ok"] = arc.text(wang, "zhangsan", "好的", 200)
    arc.text(chen, "lisi", "请问什么时候发货", 3600)
    arc.text("lisi", chen, "明天上午发货", 3500)
    out.msgids["thanks"] = arc.text(chen, "lisi", "谢谢", 3400)
    out.msgids["price"] = arc.text("zhaoliu", liu, "价格是一百元", 180)
    arc.recall("zhaoliu", liu, out.msgids["price"], 170)
    out.msgids["quote"] = arc.text(liu, "zhaoliu", "报价单发我一下", 120)
    out.msgids["refund"] = arc.text(sun, "zhangsan", "退款什么时候到账", 7200)
    arc.text("zhangsan", "", "大家好，欢迎进群", 900, roomid=out.room)
    arc.text(wang, "", "群里的团购价能便宜吗", 800, roomid=out.room)
    counts = store(db, world.a.id, arc.items)
    assert counts["stored"] == len(arc.items)
    out.a = _conversation_ids(db, world.a.id, ext)

    ext_b = _externals(db, world.b.id, world.b.customers)
    arc_b = Archive()
    arc_b.text(ext_b["乙方客户"], "zhangsan", "能便宜点吗 iPhone15 乙方机密", 60)
    store(db, world.b.id, arc_b.items)
    out.b = _conversation_ids(db, world.b.id, ext_b)
    return out


@pytest.fixture
def new_waiting(db, world):
    """A fresh conversation in tenant A of a not-yet-known customer waiting for `staff`."""

    def make(staff: str = "zhangsan", text: str = "在吗？想问下价格") -> int:
        arc = Archive()
        ext = f"wm{arc.sfx}"
        arc.text(ext, staff, text, 30)
        store(db, world.a.id, arc.items)  # searchable too, as after a pull
        with db.tenant_session(world.a.id) as s:
            return s.scalar(select(Conversation.id).where(Conversation.external_userid == ext))

    return make
