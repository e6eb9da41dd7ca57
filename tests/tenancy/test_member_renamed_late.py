"""A member renamed while the archive is pulled: what was stored under the old userid, and the
rename event handled again after WeCom gave the old userid to a new member."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from siyu.config import Settings
from siyu.conversations import tasks
from siyu.conversations.models import Conversation
from siyu.intake.tasks import _renamed
from siyu.runtime import Runtime
from siyu.sla.models import SlaWait
from siyu.tenancy.models import MemberRename, Staff
from siyu.wecom.archive import JsonLinesArchiveSource
from tests import support

OLD, NEW = "zhangsan", "zhangsan01"
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
RENAMED_AT = T0 + timedelta(minutes=30)


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def message(sender: str, to: str, text: str, minute: float, **extra) -> dict:
    return {
        "msgid": f"h-{secrets.token_hex(6)}",
        "action": "send",
        "from": sender,
        "tolist": [to] if to else [],
        "roomid": "",
        "msgtime": int(at(minute).timestamp() * 1000),
        "msgtype": "text",
        "text": {"content": text},
        **extra,
    }


def lines(messages: list[dict], start: int = 1) -> list[str]:
    return [
        json.dumps({"seq": seq, "message": m}, ensure_ascii=False) for seq, m in enumerate(messages, start)
    ]


@pytest.fixture
def rt(db, settings: Settings) -> Runtime:
    return Runtime.create(settings, db)


def new_tenant(db, *staff: str) -> int:
    tenant_id = support.new_tenant(db)
    with db.tenant_session(tenant_id) as s:
        s.add_all([Staff(userid=u, name=u) for u in (OLD, "lisi", *staff)])
    return tenant_id


def rename(db, tenant_id: int, old: str = OLD, new: str = NEW, when: datetime = RENAMED_AT) -> None:
    with db.tenant_session(tenant_id) as s:
        _renamed(s, old, new, when)


def pull(rt, tenant_id: int, messages: list[dict], parts: int | None = None, start: int = 1) -> dict:
    return asyncio.run(tasks.pull(rt, tenant_id, JsonLinesArchiveSource(lines(messages, start)), parts=parts))


def chats(db, tenant_id: int) -> dict[str, tuple]:
    with db.tenant_session(tenant_id) as s:
        return {
            c.key: (c.awaiting_msgid, c.message_count, c.staff_userid)
            for c in s.scalars(select(Conversation))
        }


def open_waits(db, tenant_id: int) -> list[tuple[str, str]]:
    with db.tenant_session(tenant_id) as s:
        q = select(Conversation.key, SlaWait.staff_userid).join(
            Conversation, Conversation.id == SlaWait.conversation_id
        )
        return sorted(s.execute(q.where(SlaWait.closed_at.is_(None))).all())


def test_a_rename_event_handled_again_after_the_old_userid_went_to_a_new_member(rt):
    """WeCom frees the old userid: a new member, 李明, gets it and the sync adds him. The
    rename event is then handled a second time (a failed event retried, by the worker or by
    `siyu events retry`): it must change nothing. Not rename 李明 to zhangsan01 and merge
    him into 张三."""
    tenant_id = new_tenant(rt.db)
    rename(rt.db, tenant_id)
    with rt.db.tenant_session(tenant_id) as s:  # the sync: 李明 is zhangsan now
        s.add(Staff(userid=OLD, name="李明"))
    later = message("wmNew", OLD, "李经理你好", 60)  # to 李明, after the rename
    pull(rt, tenant_id, [later])
    rename(rt.db, tenant_id)  # the same event, handled again
    with rt.db.tenant_session(tenant_id) as s:
        staff = sorted(s.execute(select(Staff.userid, Staff.name).where(Staff.userid.in_([OLD, NEW]))).all())
        rows = s.scalar(select(MemberRename.id).where(MemberRename.old_userid == OLD).offset(1))
    assert staff == [(OLD, "李明"), (NEW, OLD)]
    assert list(chats(rt.db, tenant_id)) == [f"single:wmNew:{OLD}"]  # 李明's chat stays his
    assert rows is None  # one rename row


def test_a_rename_handled_while_a_pull_stores_waits_for_it_and_renames_what_it_stored(rt):
    """PostgreSQL: a pull is storing a backlog when the update_user callback is handled. The
    pull had read the renames before the rename committed, and the rename could not see the
    chat the pull had not committed yet: 冯女士's question was left in a chat of the old
    userid, nobody's, and his reply opened another, the question waiting for ever. The rename
    now waits for the pull, and renames what it stored."""
    import threading
    import time

    if not rt.db.is_postgres:
        pytest.skip("SQLite: ingest holds the write lock, the rename waits for it")
    tenant_id = new_tenant(rt.db)
    pull(rt, tenant_id, [message("wmL", "lisi", "在吗", 0.5)])
    batch = [message("wmL", "lisi", "还在吗", 0.8), message("wmQ", OLD, "请问这个多少钱？", 1)]
    done: dict = {}
    with rt.db.tenant_session(tenant_id) as held:  # something else holds 李四's chat a moment
        held.execute(select(Conversation.id).where(Conversation.key == "single:wmL:lisi").with_for_update())
        puller = threading.Thread(target=lambda: done.update(counts=pull(rt, tenant_id, batch, start=2)))
        puller.start()
        time.sleep(2)  # the pull has read the renames and waits on that lock
        renamer = threading.Thread(target=rename, args=(rt.db, tenant_id))  # the callback, meanwhile
        renamer.start()
        time.sleep(1)
        assert puller.is_alive() and renamer.is_alive()  # the rename waits for the pull
    puller.join(30)
    renamer.join(30)
    assert done["counts"]["stored"] == 2
    pull(rt, tenant_id, [message(NEW, "wmQ", "两百元", 40)], start=4)
    found = [k for k in chats(rt.db, tenant_id) if "wmQ" in k]
    waits = [w for w in open_waits(rt.db, tenant_id) if "wmQ" in w[0]]
    assert (found, waits) == ([f"single:wmQ:{NEW}"], [])


def test_a_reply_pulled_before_the_rename_was_handled_answers_the_question_asked_before(rt):
    """冯女士 asks 张三 (old userid) and that is pulled; WeCom changes his userid; his reply
    (new userid) is pulled before Siyu handles the update_user callback (a callback held up).
    Once the rename is handled the question is answered: the wait had stayed open on the old
    chat, escalating to him about a question he had answered."""
    tenant_id = new_tenant(rt.db)
    ext = "wmFeng"
    pull(rt, tenant_id, [message(ext, OLD, "请问这个型号多少钱？有现货吗", 1)])
    assert open_waits(rt.db, tenant_id) == [(f"single:{ext}:{OLD}", OLD)]
    pull(rt, tenant_id, [message(NEW, ext, "有现货，今天下单明天到", 40)], start=2)
    rename(rt.db, tenant_id)
    assert open_waits(rt.db, tenant_id) == []
    assert chats(rt.db, tenant_id)[f"single:{ext}:{OLD}"][0] == ""  # nothing awaited there


def test_a_member_renamed_before_any_sync_read_their_first_userid_is_renamed_all_the_same(rt):
    """A new member, created as zhangsan, adds a customer and is renamed zhangsan01 before a sync
    read them (the create_user's sync ran after the rename): Siyu knows only zhangsan01. The
    rename found no member zhangsan and was dropped: the customer stayed with a userid nobody
    has, and the chat pulled later under the old userid opened beside the member's."""
    from siyu.customers import service as customers
    from siyu.customers.models import Customer, Follow

    tenant_id = support.new_tenant(rt.db)
    with rt.db.tenant_session(tenant_id) as s:
        s.add(Staff(userid=NEW, name="张三"))
    ext = "wm" + secrets.token_hex(6)
    added = {"ChangeType": "add_external_contact", "UserID": OLD, "ExternalUserID": ext,
             "CreateTime": str(int(at(5).timestamp()))}  # fmt: skip
    contact = {
        "external_contact": {"external_userid": ext, "name": "周先生"},
        "follow_user": [{"userid": OLD}],
    }
    with rt.db.tenant_session(tenant_id) as s:
        customers.record_added(s, customers.named_now(s, added), contact)
    rename(rt.db, tenant_id)
    with rt.db.tenant_session(tenant_id) as s:
        followers = s.scalars(
            select(Follow.staff_userid)
            .join(Customer, Customer.id == Follow.customer_id)
            .where(Customer.external_userid == ext)
        ).all()
    assert followers == [NEW]
    pull(rt, tenant_id, [message(ext, OLD, "在吗？", 10)])
    assert [staff for *_, staff in chats(rt.db, tenant_id).values()] == [NEW]
