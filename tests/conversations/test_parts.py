"""A large batch stored in parts at once (PostgreSQL): split by conversation, the same
conversations, messages, waits and escalation steps as when stored in one transaction, and
a part that fails loses nothing and stores nothing twice."""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from siyu.config import Settings
from siyu.conversations import service, tasks
from siyu.conversations.models import ArchiveCursor, Conversation, Message
from siyu.runtime import Runtime
from siyu.sla.models import SlaEscalation, SlaWait
from siyu.tenancy.models import Staff
from siyu.wecom.archive import ArchivedMessage, ArchiveError, JsonLinesArchiveSource
from tests import support

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
STAFF = ("zhangsan", "lisi", "wangwu")
QUESTIONS = ("请问这款还有货吗？", "运费怎么算", "能便宜点吗", "什么时候发货？", "发票可以开吗")
ANSWERS = ("有的，今天下单明天到", "满99包邮", "已经是最低价了哦", "下午就发")
CLOSINGS = ("好的，谢谢", "收到", "👌", "嗯嗯")


def message(seq: int, sender: str, to: str, text: str, minute: float, **extra) -> dict:
    return {
        "msgid": f"p{seq}-{secrets.token_hex(4)}",
        "action": "send",
        "from": sender,
        "tolist": [to],
        "roomid": "",
        "msgtime": int((T0 + timedelta(minutes=minute)).timestamp() * 1000),
        "msgtype": "text",
        "text": {"content": text},
        **extra,
    }


def recall_of(seq: int, original: dict, minute: float) -> dict:
    item = message(seq, original["from"], original["tolist"][0], "", minute)
    item.update({"action": "recall", "msgtype": "revoke", "revoke": {"pre_msgid": original["msgid"]}})
    item.pop("text")
    return item


def archive(customers: int, seed: int = 7) -> list[dict]:
    """Chats of `customers` customers with three staff, interleaved in time: questions,
    answers or none, closing remarks, recalls of a waiting question (in the same batch and
    in a later one), staff messages in a group, and switch messages of no conversation."""
    rng = random.Random(seed)
    out: list[dict] = []
    minute = 0.0

    def add(build, *args, **kw) -> dict:
        nonlocal minute
        minute += rng.uniform(0.01, 0.2)
        made = build(len(out) + 1, *args, minute, **kw)
        out.append(made)
        return made

    waiting = []
    for round_ in range(4):
        for c in range(customers):
            ext, staff = f"wmCust{c:03d}", STAFF[c % len(STAFF)]
            question = add(message, ext, staff, rng.choice(QUESTIONS))
            fate = rng.random()
            if fate < 0.4:
                add(message, staff, ext, rng.choice(ANSWERS))
                if rng.random() < 0.5:
                    add(message, ext, staff, rng.choice(CLOSINGS))
            elif fate < 0.5:
                add(recall_of, question)
            elif fate < 0.6:
                waiting.append(question)
        if round_ == 1:
            add(message, "zhangsan", "lisi", "内部讨论", roomid="wrTeam")
            add(lambda seq, minute: {**message(seq, "zhangsan", "", "", minute), "action": "switch",
                                     "user": "zhangsan", "tolist": []})  # fmt: skip
    for question in waiting[: len(waiting) // 2]:  # recalled long after, in a later batch
        add(recall_of, question)
    return out


def lines(messages: list[dict]) -> list[str]:
    return [json.dumps({"seq": seq, "message": m}, ensure_ascii=False) for seq, m in enumerate(messages, 1)]


def new_tenant(db) -> int:
    tenant_id = support.new_tenant(db)
    with db.tenant_session(tenant_id) as s:
        s.add_all([Staff(userid=u, name=u) for u in STAFF])
    return tenant_id


def state(db, tenant_id: int) -> dict:
    """What ingest leaves, without ids: conversations by key, messages by msgid, waits and
    escalation steps by conversation and message."""
    with db.tenant_session(tenant_id) as s:
        key_of = dict(s.execute(select(Conversation.id, Conversation.key)).all())
        conversations = {
            c.key: (
                c.awaiting_since,
                c.awaiting_msgid,
                c.message_count,
                c.last_message_at,
                c.last_inbound_at,
                c.last_outbound_at,
            )  # fmt: skip
            for c in s.scalars(select(Conversation))
        }
        messages = {
            m.msgid: (key_of.get(m.conversation_id), m.recalled, m.needs_reply, m.direction)
            for m in s.scalars(select(Message))
        }
        msgid_of_wait = {}
        waits = []
        for w in s.scalars(select(SlaWait)):
            msgid_of_wait[w.id] = w.msgid
            waits.append((key_of[w.conversation_id], w.msgid, w.started_at, w.closed_at, w.close_reason))
        steps = sorted(
            (key_of[e.conversation_id], msgid_of_wait[e.wait_id], e.step, e.due_at, e.status, e.note)
            for e in s.scalars(select(SlaEscalation))
        )
    return {"conversations": conversations, "messages": messages, "waits": sorted(waits), "steps": steps}


@pytest.fixture
def runtime(db, settings: Settings) -> Runtime:
    return Runtime.create(settings, db)


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    if not runtime.db.is_postgres:
        pytest.skip("SQLite has one writer: a batch is always stored in one part there")
    return runtime


def test_a_batch_is_split_by_conversation_with_each_recall_beside_its_original():
    messages = archive(40)
    items = [ArchivedMessage(seq, m["msgid"], m) for seq, m in enumerate(messages, 1)]
    parts = service.partition(items, 2)
    assert all(parts) and sorted(i.seq for part in parts for i in part) == list(range(1, len(items) + 1))
    where = {i.msgid: n for n, part in enumerate(parts) for i in part}
    chats: dict[frozenset, set[int]] = {}
    for item in items:
        m = item.message
        if m["action"] == "recall":
            original = m["revoke"]["pre_msgid"]
            if original in where:
                assert where[item.msgid] == where[original]
        if m["tolist"]:
            chats.setdefault(frozenset((m["from"], m["tolist"][0])), set()).add(where[item.msgid])
    assert all(len(found) == 1 for found in chats.values())  # a chat never spans two parts
    assert len({min(found) for found in chats.values()}) == 2  # and the chats are spread
    switch = next(i for i in items if i.message["action"] == "switch")
    assert where[switch.msgid] == 0  # no conversation: the first part

    # A recall of no conversation (no sender or receiver) goes beside its original when that
    # is in the batch: it moves the original's conversation.
    original = next(i for i in parts[1] if i.message["action"] == "send")
    revoke = {"pre_msgid": original.msgid}
    bare = ArchivedMessage(len(items) + 1, "bare", {"action": "recall", "msgid": "bare", "revoke": revoke})
    assert bare in service.partition([*items, bare], 2)[1]
    # Naming a message stored before, it looks up and locks the original's conversation,
    # whichever part that is in, so the batch is not split.
    gone = {"pre_msgid": "stored-long-ago"}
    stray = ArchivedMessage(len(items) + 1, "stray", {"action": "recall", "msgid": "stray", "revoke": gone})
    assert service.partition([*items, stray], 2) == [[*items, stray]]


def test_a_consent_event_sent_to_the_customer_goes_in_the_part_of_their_chat():
    """WeCom's own example sends "declined archiving" to the customer themselves, the staff
    member in its payload: it belongs to the 1:1 chat, so it must be stored with it (in
    another part, committed first, the chat's question went on escalating)."""
    import zlib

    ext = next(
        f"wmC{i}"
        for i in range(100)
        if zlib.crc32(f"wmC{i}|zhangsan".encode()) % 2 != zlib.crc32(f"wmC{i}|wmC{i}".encode()) % 2
    )
    question = message(1, ext, "zhangsan", "什么时候发货？", 0)
    declined = {**message(2, ext, ext, "", 1), "msgtype": "disagree", "disagree": {"userid": "zhangsan"}}
    del declined["text"]
    items = [ArchivedMessage(1, question["msgid"], question), ArchivedMessage(2, declined["msgid"], declined)]
    staff: set[str] = set()
    assert service._parse(1, "", question, staff).key == service._parse(2, "", declined, staff).key
    where = {i.msgid: n for n, part in enumerate(service.partition(items, 2)) for i in part}
    assert where[question["msgid"]] == where[declined["msgid"]]


def test_a_batch_stored_in_parts_leaves_what_one_transaction_leaves(rt):
    messages = archive(120)
    early, later = messages[:500], messages  # two pulls: some recalls name an earlier batch's message
    assert len(early) >= tasks.PARTS_FROM
    whole, parted = new_tenant(rt.db), new_tenant(rt.db)
    for tenant_id, parts in ((whole, 1), (parted, 2)):
        for upto in (early, later):
            counts = asyncio.run(tasks.pull(rt, tenant_id, JsonLinesArchiveSource(lines(upto)), parts=parts))
            assert counts["duplicates"] == 0
    expected, found = state(rt.db, whole), state(rt.db, parted)
    assert found == expected
    # ... and that state is not a trivial one
    assert len(found["messages"]) == len(messages)
    reasons = {w[4] for w in found["waits"]}
    assert {"replied", "recalled", ""} <= reasons
    assert sum(1 for c in found["conversations"].values() if c[0] is not None) > 10
    assert any(m[1] for m in found["messages"].values())  # recalled originals
    assert {s[4] for s in found["steps"]} >= {"pending", "cancelled"}


class Handed:
    """An archive source handing messages over as they are (the JSON-lines import checks its
    lines, and would refuse the broken one before the database could)."""

    def __init__(self, messages: list[dict]) -> None:
        self.items = [ArchivedMessage(seq, m["msgid"], m) for seq, m in enumerate(messages, 1)]

    async def fetch(self, after_seq: int, limit: int = 1000) -> list[ArchivedMessage]:
        return [i for i in self.items if i.seq > after_seq][:limit]

    async def aclose(self) -> None:
        pass


def test_a_part_that_fails_leaves_the_cursor_and_the_next_pull_stores_the_rest_once(rt):
    messages = archive(100)
    items = [ArchivedMessage(seq, m["msgid"], m) for seq, m in enumerate(messages, 1)]
    first_part, second_part = service.partition(items, 2)
    bad = next(i for i in second_part if i.message["action"] == "send" and i.message["tolist"])
    # WeCom's msgid is at most 128 characters here: PostgreSQL refuses the longer one, so
    # the second part's transaction fails and the first part's commits.
    broken = [dict(m) for m in messages]
    broken[bad.seq - 1]["msgid"] = "x" * 200
    tenant_id = new_tenant(rt.db)
    # The batch fails; then the pull stores it in halves, in seq order, up to the message the
    # database refuses, and stops there naming it (siyu archive skip could give it up).
    with pytest.raises(ArchiveError, match=f"StringDataRightTruncation.*seq {bad.seq},"):
        asyncio.run(tasks.pull(rt, tenant_id, Handed(broken), parts=2))
    with rt.db.tenant_session(tenant_id) as s:
        cursor = s.scalar(select(ArchiveCursor))
        stored = set(s.scalars(select(Message.msgid)))
    assert cursor.seq == bad.seq - 1 and "StringDataRightTruncation" in cursor.last_error
    before = {i.msgid for i in items if i.seq < bad.seq}
    assert stored == {i.msgid for i in first_part} | before  # the part that committed stays

    counts = asyncio.run(tasks.pull(rt, tenant_id, JsonLinesArchiveSource(lines(messages)), parts=2))
    assert counts == {"stored": len(items) - len(stored), "duplicates": len(stored - before)}
    reference = new_tenant(rt.db)
    asyncio.run(tasks.pull(rt, reference, JsonLinesArchiveSource(lines(messages)), parts=1))
    assert state(rt.db, tenant_id) == state(rt.db, reference)


def test_two_pulls_of_one_tenant_at_once_in_one_process_store_each_message_once(runtime):
    """A notify's pull may start while the timer's is storing a batch (in parts, on
    PostgreSQL), and for a new tenant both may find no cursor yet. The second waits for the
    cursor's lock, which the first holds until the batch is stored: that wait must not hold
    up the event loop the first one resumes on."""
    rt = runtime
    messages = archive(120)
    tenant_id = new_tenant(rt.db)

    async def both():
        return await asyncio.gather(
            *(tasks.pull(rt, tenant_id, JsonLinesArchiveSource(lines(messages))) for _ in range(2))
        )

    found = {}
    runner = threading.Thread(target=lambda: found.update(counts=asyncio.run(both())), daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the two pulls are stuck waiting for each other"
    assert sum(c["stored"] for c in found["counts"]) == len(messages)
    with rt.db.tenant_session(tenant_id) as s:
        assert s.scalar(select(ArchiveCursor.seq)) == len(messages)
        assert len(set(s.scalars(select(Message.msgid)))) == len(messages)
