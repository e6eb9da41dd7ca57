"""Archived messages become conversations that know who waits for a reply since when."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from siyu.conversations import service
from siyu.conversations.models import Conversation, Message
from siyu.conversations.render import render
from siyu.db import database
from siyu.insights.needs_reply import default_classifier
from siyu.notify import outbox
from siyu.tenancy.models import Staff
from tests.support import new_tenant

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


@dataclass
class Item:
    seq: int
    msgid: str
    message: dict


class Chat:
    """Writes a 1:1 chat between customer `wmCUSTOMER` and staff `zhangsan` as WeCom's archive would."""

    def __init__(self):
        self.seq = 0

    def msg(self, sender: str, text: str, minute: float, **extra) -> Item:
        self.seq += 1
        to = "zhangsan" if sender.startswith("wm") else "wmCUSTOMER"
        at = int((T0 + timedelta(minutes=minute)).timestamp() * 1000)
        body = {
            "msgid": f"m{self.seq}-{secrets.token_hex(3)}",
            "action": "send",
            "from": sender,
            "tolist": [to],
            "roomid": "",
            "msgtime": at,
            "msgtype": "text",
            "text": {"content": text},
            **extra,
        }
        return Item(self.seq, body["msgid"], body)

    def customer(self, text: str, minute: float) -> Item:
        return self.msg("wmCUSTOMER", text, minute)

    def staff(self, text: str, minute: float) -> Item:
        return self.msg("zhangsan", text, minute)

    def recall(self, original: Item, minute: float) -> Item:
        item = self.msg(original.message["from"], "", minute)
        item.message.update(
            {"action": "recall", "msgtype": "revoke", "revoke": {"pre_msgid": original.msgid}}
        )
        item.message.pop("text")
        return item


@pytest.fixture
def tenant_id(db, fresh_tenant) -> int:
    with db.tenant_session(fresh_tenant) as s:
        s.add(Staff(userid="zhangsan", name="张三"))
    return fresh_tenant


@pytest.fixture
def ingest(db, tenant_id):
    classify = default_classifier().classify
    changes: list[service.WaitChange] = []

    def record(session, batch):
        changes.extend((change.opened, change.reason, change.at) for change in batch)

    service.WAIT_LISTENERS.append(record)

    def run(*items):
        with db.tenant_session(tenant_id) as s:
            return service.ingest(s, list(items), classify)

    run.changes = changes
    yield run
    service.WAIT_LISTENERS.remove(record)


def conversation(db, tenant_id) -> Conversation:
    with db.tenant_session(tenant_id) as s:
        return s.scalar(select(Conversation))


def test_a_question_waits_from_its_msgtime_and_a_reply_closes_it(db, tenant_id, ingest):
    chat = Chat()
    question = chat.customer("你好，这款有现货吗？", 0)
    ingest(question, chat.customer("急用", 1))  # a second message does not restart the clock
    c = conversation(db, tenant_id)
    assert c.kind == "single" and c.staff_userid == "zhangsan" and c.external_userid == "wmCUSTOMER"
    assert c.awaiting_since == T0 and c.awaiting_msgid == question.msgid
    ingest(chat.staff("有的，今天就能发", 3))
    assert conversation(db, tenant_id).awaiting_since is None
    assert ingest.changes == [(True, "customer_message", T0), (False, "replied", T0 + timedelta(minutes=3))]


def test_a_closing_remark_after_an_answer_owes_nothing(db, tenant_id, ingest):
    chat = Chat()
    ingest(chat.customer("发票怎么开？", 0), chat.staff("发您邮箱了", 1), chat.customer("好的，谢谢", 2))
    assert conversation(db, tenant_id).awaiting_since is None
    with db.tenant_session(tenant_id) as s:
        last = s.scalar(select(Message).order_by(Message.sent_at.desc()))
    assert last.needs_reply is False


@pytest.mark.parametrize("kind", ["agree", "disagree"])
def test_a_customer_agreeing_to_archiving_or_not_waits_for_nothing(db, tenant_id, ingest, kind):
    chat = Chat()
    event = chat.msg("wmCUSTOMER", "", 0)
    event.message.pop("text")
    event.message.update({"msgtype": kind, kind: {"userid": "zhangsan", f"{kind}_time": 1764036000000}})
    ingest(event)
    c = conversation(db, tenant_id)
    assert c.awaiting_since is None and c.last_inbound_at is None and ingest.changes == []
    assert c.message_count == 0  # an event line, not a message
    with db.tenant_session(tenant_id) as s:
        stored = s.scalar(select(Message))
    assert stored.needs_reply is None and stored.text == (
        "[同意存档聊天内容]" if kind == "agree" else "[拒绝存档聊天内容]"
    )
    question = chat.customer("还在吗？", 1)  # the customer writing afterwards still waits
    ingest(question)
    assert conversation(db, tenant_id).awaiting_msgid == question.msgid


def test_declining_archiving_ends_the_wait_agreeing_does_not(db, tenant_id, ingest):
    chat = Chat()
    ingest(chat.customer("这个什么时候发货？", 0))
    for kind, minute in (("agree", 1), ("disagree", 2)):
        event = chat.msg("wmCUSTOMER", "", minute)
        event.message.pop("text")
        event.message.update({"msgtype": kind, kind: {"userid": "zhangsan", f"{kind}_time": 1}})
        ingest(event)
        waiting = conversation(db, tenant_id).awaiting_since
        assert (waiting is None) == (kind == "disagree")
    assert [(opened, reason) for opened, reason, _ in ingest.changes] == [
        (True, "customer_message"),
        (False, "declined"),
    ]


def test_a_question_older_than_a_stored_reply_opens_no_wait(db, tenant_id, ingest):
    """A migration or a late re-pull hands over a question after the answer to it is stored:
    nothing waits; the question is announced as one answered by that reply."""
    chat = Chat()
    question = chat.customer("这款有现货吗？", 0)
    answer = chat.staff("有的", 2)
    ingest(answer)
    ingest(question)
    assert conversation(db, tenant_id).awaiting_since is None
    [(opened, reason, _)] = ingest.changes
    assert (opened, reason) == (True, service.ANSWERED_BEFORE)
    later = chat.customer("那明天能到吗？", 5)  # a new question after the answer still waits
    ingest(later)
    assert conversation(db, tenant_id).awaiting_msgid == later.msgid


@pytest.mark.parametrize(
    ("tolist", "userid"),
    [(["zhangsan"], "wmCUSTOMER"), (["wmCUSTOMER"], "zhangsan")],  # WeCom's example; to the customer
)
def test_a_consent_event_lands_in_the_chat_it_belongs_to(db, tenant_id, ingest, tolist, userid):
    chat = Chat()
    ingest(chat.customer("你好", 0))
    event = chat.msg("wmCUSTOMER", "", 1)
    event.message.pop("text")
    event.message.update(
        {"tolist": tolist, "msgtype": "disagree", "disagree": {"userid": userid, "disagree_time": 1}}
    )
    ingest(event)
    with db.tenant_session(tenant_id) as s:
        stored = s.scalar(select(Message).where(Message.msgid == event.msgid))
        assert stored.conversation_id == conversation(db, tenant_id).id


def welcome_sent(db, tenant_id: int, key: str, sent: dict) -> None:
    """Siyu sent a welcome for zhangsan to wmCUSTOMER at T0, with `sent` (what it said and attached)."""
    with db.tenant_session(tenant_id) as s:
        outbox.enqueue(s, "welcome", key, {"userid": "zhangsan", "external_userid": "wmCUSTOMER", **sent})
        row = s.scalar(select(outbox.OutboxMessage).where(outbox.OutboxMessage.dedupe_key == key))
        row.status, row.sent_at = "sent", T0


def test_the_welcome_siyu_sent_is_not_a_reply(db, tenant_id, ingest):
    chat = Chat()
    welcome_sent(
        db, tenant_id, "welcome:W1", {"sent_text": "您好，我是张三", "sent_kinds": ["link", "miniprogram"]}
    )
    link = chat.staff("", 0.61)  # the welcome's link and mini program, archived as messages of their own
    link.message.pop("text")
    link.message.update({"msgtype": "link", "link": {"title": "课程介绍", "link_url": "https://example.com"}})
    weapp = chat.staff("", 0.62)
    weapp.message.pop("text")
    weapp.message.update({"msgtype": "weapp", "weapp": {"title": "小程序"}})
    ingest(chat.customer("在吗？想问下价格", 0.5), chat.staff("您好，我是张三", 0.6), link, weapp)
    c = conversation(db, tenant_id)
    assert c.awaiting_since is not None  # still waiting: the welcome was Siyu's, not zhangsan's answer
    photo = chat.staff("", 1)  # a photo zhangsan sends himself is a reply
    photo.message.pop("text")
    photo.message.update({"msgtype": "image", "image": {"sdkfileid": "x"}})
    ingest(photo)
    assert conversation(db, tenant_id).awaiting_since is None


def test_a_link_the_staff_sends_after_the_welcomes_own_is_a_reply(db, tenant_id, ingest):
    """Each of the welcome's attachments stands for one archived message: a link zhangsan
    sends himself within minutes of it had been taken for the welcome's, and the customer
    went on waiting; the customer's own links are not Siyu's either."""
    chat = Chat()
    welcome_sent(db, tenant_id, "welcome:W2", {"sent_text": "欢迎！资料见链接", "sent_kinds": ["link"]})

    def link(message, title: str):
        message.message.pop("text")
        message.message.update(
            {"msgtype": "link", "link": {"title": title, "link_url": "https://example.com"}}
        )
        return message

    welcome_link = link(chat.staff("", 0.11), "展会资料")
    theirs = link(chat.customer("", 0.2), "双十一活动页")
    ingest(
        chat.staff("欢迎！资料见链接", 0.1), welcome_link, theirs, chat.customer("有详细的产品资料吗？", 0.3)
    )
    assert conversation(db, tenant_id).awaiting_since is not None
    ingest(link(chat.staff("", 0.7), "产品手册"))  # a later batch: zhangsan's own answer
    assert conversation(db, tenant_id).awaiting_since is None
    with db.tenant_session(tenant_id) as s:
        by_siyu = dict(
            s.execute(select(Message.text, Message.by_siyu).where(Message.msgtype == "link")).all()
        )
    assert [t for t, mine in by_siyu.items() if mine] == [next(t for t in by_siyu if "展会资料" in t)]


def test_a_link_of_another_title_is_the_staffs_though_the_welcomes_own_never_came(db, tenant_id, ingest):
    """The welcome's link is known by its title: where the archive has no copy of it, the
    agent's own link had been taken for it (by type alone) and the wait went on."""
    chat = Chat()
    welcome_sent(
        db,
        tenant_id,
        "welcome:W3",
        {
            "sent_text": "欢迎！",
            "sent_kinds": ["link"],
            "sent_attachments": [{"msgtype": "link", "link": {"title": "展会资料", "url": "https://e.x"}}],
        },
    )
    ingest(chat.customer("有详细的产品资料吗？", 0.3))
    answer = chat.staff("", 0.5)
    answer.message.pop("text")
    answer.message.update({"msgtype": "link", "link": {"title": "产品手册", "link_url": "https://e.x/m"}})
    ingest(answer)
    assert conversation(db, tenant_id).awaiting_since is None
    with db.tenant_session(tenant_id) as s:
        assert s.scalar(select(Message.by_siyu).where(Message.msgid == answer.msgid)) is False


def test_recalling_the_only_waiting_message_closes_the_wait(db, tenant_id, ingest):
    chat = Chat()
    question = chat.customer("能便宜点吗", 0)
    ingest(question)
    ingest(chat.recall(question, 1))
    c = conversation(db, tenant_id)
    assert c.awaiting_since is None and c.message_count == 1  # the recall is no message of its own
    with db.tenant_session(tenant_id) as s:
        assert s.scalar(select(Message.recalled).where(Message.msgid == question.msgid)) is True


def test_recalls_in_a_large_archive_mark_their_messages_by_key_not_by_reading_the_whole_archive(db, tmp_path):
    """A pull's recalls mark their originals through the primary key, whatever the archive's
    size: asked for as `id IN (...)` within the tenant, SQLite with the statistics a pull takes
    read every message of the tenant for a batch's recalls instead (30 ms a batch at 100,000
    messages, and growing with the archive)."""
    if db.is_postgres:
        pytest.skip("SQLite's planner (PostgreSQL's finds them by key)")
    fresh = database.Database(f"sqlite:///{tmp_path / 'archive.db'}")
    fresh.migrate()
    try:
        t = new_tenant(fresh)
        with fresh.tenant_session(t) as s:
            s.add(Staff(userid="zhangsan", name="张三"))
        chat = Chat()
        sent = [chat.staff(f"第{i}条", i / 10) for i in range(3000)]
        with fresh.tenant_session(t) as s:
            service.ingest(s, sent, default_classifier().classify)
        fresh.wrote(len(sent))  # the statistics a pull takes
        statements = []

        def seen(conn, cursor, statement, params, context, executemany):
            if statement.startswith("UPDATE messages"):
                statements.append((statement, params[0] if executemany else params))

        event.listen(fresh.engine, "before_cursor_execute", seen)
        with fresh.tenant_session(t) as s:
            service.ingest(s, [chat.recall(m, 400) for m in sent[:100]], default_classifier().classify)
        event.remove(fresh.engine, "before_cursor_execute", seen)
        with fresh.engine.connect() as conn:
            plans = [
                " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
                for sql, params in statements
            ]
        assert plans and all("PRIMARY KEY" in plan for plan in plans), plans
        with fresh.tenant_session(t) as s:
            recalled = set(s.scalars(select(Message.msgid).where(Message.recalled.is_(True))))
        assert recalled == {m.msgid for m in sent[:100]}
    finally:
        fresh.dispose()


def test_each_message_is_stored_once(db, tenant_id, ingest):
    chat = Chat()
    items = [chat.customer("你好", 0), chat.staff("您好", 1)]
    assert ingest(*items) == {"stored": 2, "duplicates": 0}
    assert ingest(*items, items[0]) == {"stored": 0, "duplicates": 3}
    with db.tenant_session(tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 2


def test_a_batch_with_messages_stored_before_moves_the_conversation_by_the_new_ones_only(
    db, tenant_id, ingest
):
    """A re-pull overlapping what is stored: the repeats count as duplicates and change
    nothing (no wait opened again, no message counted twice); the new ones apply."""
    chat = Chat()
    question, answer = chat.customer("有发票吗？", 0), chat.staff("有的，发您邮箱", 1)
    ingest(question, answer)
    again = chat.customer("那能开公司抬头吗？", 5)
    assert ingest(question, answer, again) == {"stored": 1, "duplicates": 2}
    c = conversation(db, tenant_id)
    assert c.message_count == 3 and c.awaiting_msgid == again.msgid
    assert ingest.changes == [
        (True, "customer_message", T0),
        (False, "replied", T0 + timedelta(minutes=1)),
        (True, "customer_message", T0 + timedelta(minutes=5)),
    ]


def test_a_msgid_twice_in_one_batch_keeps_the_first_as_across_batches(db, tenant_id, ingest):
    """The same msgid twice with different content: across batches the first one pulled is
    kept (the second is a duplicate); within one batch the last had been kept instead, so which
    words a customer was recorded as writing, and whether a wait opened, depended on where a
    fetch happened to end."""
    chat = Chat()
    question = chat.customer("发票开好了吗？", 0)
    repeat = chat.customer("好的谢谢", 1)
    repeat.msgid = repeat.message["msgid"] = question.msgid
    assert ingest(question, repeat) == {"stored": 1, "duplicates": 1}
    with db.tenant_session(tenant_id) as s:
        assert s.scalar(select(Message.text)) == "发票开好了吗？"
    assert conversation(db, tenant_id).awaiting_msgid == question.msgid


def test_a_batch_with_a_message_without_a_msgid_stores_nothing_and_names_its_seq(db, tenant_id, ingest):
    """Messages are stored once by msgid: two without one would be kept as one and the other
    lost unsaid. The archive pull and the import refuse them before this; any other caller is
    refused here, naming the seq, with the batch left unstored."""
    chat = Chat()
    first, second = chat.customer("发票开好了吗？", 0), chat.customer("还有运费险吗？", 1)
    for item in (first, second):
        item.msgid = item.message["msgid"] = " "
    with pytest.raises(ValueError, match=r"seq 1.*msgid"):
        ingest(first, second)
    with db.tenant_session(tenant_id) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0


def test_staff_whose_userid_looks_like_a_customers_is_still_staff(db, tenant_id, ingest):
    """A staff userid may start like an external one (wm/wo/wb: "wolf"); a customer whose id
    differs from such a staff member's only in case is still a customer."""
    with db.tenant_session(tenant_id) as s:
        s.add_all([Staff(userid="wolf", name="沃尔夫"), Staff(userid="WMCUSTOMER", name="大写")])
    chat = Chat()
    question = chat.msg("wmCUSTOMER", "这款有现货吗？", 0)
    question.message["tolist"] = ["wolf"]
    ingest(question)
    c = conversation(db, tenant_id)
    assert (c.kind, c.staff_userid, c.external_userid) == ("single", "wolf", "wmCUSTOMER")
    assert c.awaiting_since == T0
    reply = chat.msg("wolf", "有的", 1)
    reply.message["tolist"] = ["wmCUSTOMER"]
    ingest(reply)
    assert conversation(db, tenant_id).awaiting_since is None


def needs_reply_of(db, tenant_id, item: Item) -> bool | None:
    with db.tenant_session(tenant_id) as s:
        return s.scalar(select(Message.needs_reply).where(Message.msgid == item.msgid))


def test_a_bare_ok_is_read_against_the_staffs_last_message_from_an_earlier_pull(db, tenant_id, ingest):
    """好的 to 确定要取消吗？ needs a reply, to 已经给您发货了 it does not, whichever pull the staff
    message came in; the conversation keeps what the staff last wrote."""
    chat = Chat()
    ingest(chat.customer("帮我取消订单", 0), chat.staff("确定要取消吗？", 1))
    assert conversation(db, tenant_id).last_outbound_text == "确定要取消吗？"
    ok = chat.customer("好的", 2)
    ingest(ok)
    assert needs_reply_of(db, tenant_id, ok) is True
    ingest(chat.staff("已经给您取消了", 3))
    thanks = chat.customer("好的", 4)
    ingest(thanks)
    assert needs_reply_of(db, tenant_id, thanks) is False
    older = chat.staff("确定要取消吗？", 2.5)  # arrives late: not the last staff message
    ingest(older)
    again = chat.customer("好的", 5)
    ingest(again)
    assert needs_reply_of(db, tenant_id, again) is False  # still answers 已经给您取消了


def media(chat: Chat, sender: str, msgtype: str, minute: float) -> Item:
    item = chat.msg(sender, "", minute)
    del item.message["text"]
    item.message.update({"msgtype": msgtype, msgtype: {"sdkfileid": "f", "md5sum": "x"}})
    return item


@pytest.mark.parametrize("msgtype", ["emotion", "image", "voice", "video"])
@pytest.mark.parametrize(
    "scene", ["earlier pull", "same pull", "answer pulled first", "sticker pulled first"]
)
def test_a_bare_ok_after_a_sticker_or_picture_answers_the_staffs_question_before_it(
    db, tenant_id, ingest, msgtype, scene
):
    """确定要取消吗？ then a sticker (or a picture): the customer's 好的 still answers the
    question, whichever pull each came in, a later answer pulled first, or the sticker pulled
    before the question sent before it. It had been read against "[表情]", which asks nothing."""
    chat = Chat()
    start, asked = chat.customer("我想取消订单", 0), chat.staff("确定要取消吗？", 1)
    sticker, ok = media(chat, "zhangsan", msgtype, 1.1), chat.customer("好的", 2)
    pulls = {
        "earlier pull": [[start, asked, sticker], [ok]],
        "same pull": [[start, asked, sticker, ok]],
        "answer pulled first": [[start, asked, sticker], [chat.staff("已经给您取消了", 3)], [ok]],
        "sticker pulled first": [[start, sticker], [asked], [ok]],
    }[scene]
    for batch in pulls:
        ingest(*batch)
    assert needs_reply_of(db, tenant_id, ok) is True


@pytest.mark.parametrize("emoji", ["[微笑]", "🙂", "[OK][OK]"])
@pytest.mark.parametrize("scene", ["earlier pull", "same pull"])
def test_a_bare_ok_after_a_staff_text_of_emoji_alone_answers_the_question_before_it(
    db, tenant_id, ingest, emoji, scene
):
    """WeChat sends its emoji as text ([微笑], 🙂): after 确定要取消吗？ and a smiley, the customer's
    好的 answers the question, as after a sticker. The smiley had been the context, 好的 a
    closing remark, and the cancellation waited on nobody. A smiley that asks ([疑问]) is words."""
    chat = Chat()
    start, asked, smiley = (
        chat.customer("我想取消订单", 0),
        chat.staff("确定要取消吗？", 1),
        chat.staff(emoji, 1.1),
    )
    ok = chat.customer("好的", 2)
    pulls = {"earlier pull": [[start, asked, smiley], [ok]], "same pull": [[start, asked, smiley, ok]]}[scene]
    for batch in pulls:
        ingest(*batch)
    assert needs_reply_of(db, tenant_id, ok) is True
    assert conversation(db, tenant_id).awaiting_msgid == ok.msgid


def test_after_the_staffs_last_message_is_recalled_the_one_before_it_is_the_context(db, tenant_id, ingest):
    chat = Chat()
    ingest(chat.customer("帮我取消订单", 0), chat.staff("确定要取消吗？", 1))
    slip = chat.staff("已经给您取消了", 2)
    ingest(slip)
    ingest(chat.recall(slip, 3))
    assert conversation(db, tenant_id).last_outbound_text is None  # looked up next time
    ok = chat.customer("好的", 4)
    ingest(ok)
    assert needs_reply_of(db, tenant_id, ok) is True  # answers 确定要取消吗？


def test_a_conversation_stored_before_it_kept_the_staffs_last_message_looks_it_up(db, tenant_id, ingest):
    chat = Chat()
    ingest(chat.customer("帮我取消订单", 0), chat.staff("确定要取消吗？", 1))
    with db.tenant_session(tenant_id) as s:  # as the migration leaves conversations
        s.scalar(select(Conversation)).last_outbound_text = None
    ok = chat.customer("好的", 2)
    ingest(ok)
    assert needs_reply_of(db, tenant_id, ok) is True


def test_a_message_postgresql_could_not_hold_is_stored_cleaned_and_the_pull_goes_on(db, tenant_id, ingest):
    """An archived message with an identifier longer than its column, a NUL or a lone
    surrogate, or a body that is not a JSON object failed its whole batch on PostgreSQL, and
    the pull stopped at it for good."""
    import json

    from siyu.wecom.archive import _archived

    chat = Chat()
    odd = chat.msg("wm" + "x" * 80, "", 0)
    odd.message["text"] = {"content": "a\u0000b\ud800"}
    plain = json.dumps(odd.message)  # as the SDK decrypts it: JSON text, escapes and all
    text_only = chat.customer("", 1)
    text_only.message["text"] = "还有货吗"  # a bare string for the text body
    after = chat.customer("在吗？", 2)
    stored = ingest(
        _archived(plain, 1, odd.msgid),
        _archived(json.dumps(text_only.message), 2, text_only.msgid),
        _archived(json.dumps(after.message), 3, after.msgid),
    )
    assert stored == {"stored": 3, "duplicates": 0}
    with db.tenant_session(tenant_id) as s:
        texts = dict(s.execute(select(Message.msgid, Message.text)).all())
        sender = s.scalar(select(Message.sender).where(Message.msgid == odd.msgid))
    assert texts == {odd.msgid: "ab?", text_only.msgid: "还有货吗", after.msgid: "在吗？"}
    assert len(sender) == 64 and sender.startswith("wmxxx")  # cut, and made unique again


def test_an_action_recalled_msgid_or_consent_userid_wecom_never_sends_is_stored_and_the_pull_goes_on(
    db, tenant_id, ingest
):
    """An action longer than its column or not a string, a recall naming its original by a
    list or by a msgid longer than a column, or a consent event whose userid is a number failed
    the whole batch (PostgreSQL's column, or a TypeError in ingest), with an error that named
    no seq: `siyu archive skip` could not move past it, and the tenant's archive stood still."""
    import json

    from siyu.wecom.archive import _archived

    chat = Chat()
    question = chat.customer("还有货吗？", 0)
    long_id = chat.customer("发货了吗？", 1)
    long_id.message["msgid"] = long_id.msgid = "L" * 300  # stored cut, as the pull cuts it
    odd_action = chat.customer("在吗", 2)
    odd_action.message["action"] = "forwarded"
    dict_action = chat.customer("喂", 3)
    dict_action.message["action"] = {"kind": "send"}
    by_list = chat.recall(question, 4)
    by_list.message["revoke"] = {"pre_msgid": [question.msgid]}
    by_long = chat.recall(long_id, 5)
    consent = chat.msg("wmCUSTOMER", "", 6, msgtype="agree", agree={"userid": 42, "agree_time": 1})
    consent.message["tolist"] = ["wmCUSTOMER"]
    consent.message.pop("text")
    items = [question, long_id, odd_action, dict_action, by_list, by_long, consent]
    stored = ingest(*(_archived(json.dumps(i.message), i.seq, i.msgid) for i in items))
    assert stored == {"stored": 7, "duplicates": 0}
    with db.tenant_session(tenant_id) as s:
        rows = s.execute(select(Message.msgid, Message.action, Message.recalled)).all()
    recalled = {msgid for msgid, _, was in rows if was}
    assert len(recalled) == 1 and recalled.pop().startswith("LLL")  # the long one, cut alike
    assert {action for _, action, _ in rows} >= {"send", "recall", "forwarde"}


def test_a_mixed_message_reads_as_its_text_and_pictures(db, tenant_id, ingest):
    """A customer's 图文 (a question with a screenshot in one message; each item's content a
    JSON string, REFERENCE 11.3) is shown, searched and judged by what it says."""
    import json

    chat = Chat()
    item = chat.customer("", 0)
    item.message.pop("text")
    parts = [
        {"type": "text", "content": json.dumps({"content": "这个订单怎么还没发货？"}, ensure_ascii=False)},
        {"type": "image", "content": json.dumps({"md5sum": "abc", "filesize": 1, "sdkfileid": "x"})},
        {"type": "text", "content": "not json"},
    ]
    item.message.update({"msgtype": "mixed", "mixed": {"item": parts}})
    ingest(item)
    with db.tenant_session(tenant_id) as s:
        message = s.scalar(select(Message).where(Message.msgid == item.msgid))
    assert message.text == "这个订单怎么还没发货？ [图片]"
    assert message.needs_reply is True
    assert render({"msgtype": "mixed", "mixed": {"item": []}}) == "[图文]"  # nothing readable in it
