"""Archived messages no database holds as they come: a msgid with a lone surrogate, a message
with no send time, an import line with NaN. Each is cleaned, refused by its line, or stops
the pull at its seq for `siyu archive skip`: never a pull stuck for good, nothing half-stored."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import select

from siyu.config import Settings
from siyu.conversations import tasks
from siyu.conversations.models import ArchiveCursor, Message
from siyu.runtime import Runtime
from siyu.tenancy.models import Staff
from siyu.wecom.archive import ArchiveError, ChatDataPipeline, generate_key_pair

T = 1764036000000


@pytest.fixture
def rt(db, settings: Settings) -> Runtime:
    return Runtime.create(settings, db)


@pytest.fixture
def tenant_id(db, fresh_tenant) -> int:
    with db.tenant_session(fresh_tenant) as s:
        s.add(Staff(userid="zhangsan", name="张三"))
    return fresh_tenant


_PAIR = generate_key_pair()


class Archive:
    """The archive through the SDK's steps (ChatDataPipeline, real RSA): `messages` as WeCom
    hands them out, seq 1.. in order; the decryptor hands back each message's JSON."""

    def __init__(self, messages: list[dict], msgids: list[str] | None = None):
        pub = serialization.load_pem_public_key(_PAIR[1].encode())
        self.items = []
        for seq, msg in enumerate(messages, start=1):
            key = base64.b64encode(pub.encrypt(b"randomkey0123456789", padding.PKCS1v15())).decode()
            msgid = msgids[seq - 1] if msgids else msg.get("msgid", "")
            self.items.append(
                {"seq": seq, "msgid": msgid, "publickey_ver": 1, "encrypt_random_key": key,
                 "encrypt_chat_msg": json.dumps(msg)}
            )  # fmt: skip
        self.pipeline = ChatDataPipeline(self._chatdata, self._decrypt, {1: _PAIR[0]}, backoff_base=0.001)

    async def _chatdata(self, after_seq, limit):
        return [i for i in self.items if i["seq"] > after_seq][:limit]

    async def _decrypt(self, key, encrypted):
        assert key == "randomkey0123456789"
        return encrypted

    async def fetch(self, after_seq, limit=1000):
        return await self.pipeline.fetch(after_seq, limit)

    async def aclose(self):
        self.pipeline.stop_reading_ahead()


def text(n: int, content: str, **extra) -> dict:
    msg = {
        "msgid": f"hunt{n}", "action": "send", "from": "wmCUSTOMER", "tolist": ["zhangsan"],
        "roomid": "", "msgtime": T + n * 1000, "msgtype": "text", "text": {"content": content},
    }  # fmt: skip
    msg.update(extra)
    return msg


def msgids(rt, tenant_id) -> list[str]:
    with rt.db.tenant_session(tenant_id) as s:
        return sorted(s.scalars(select(Message.msgid)))


def test_a_msgid_holding_a_lone_surrogate_neither_stops_the_pull_for_good_nor_is_lost(rt, tenant_id):
    """The message's JSON was cleaned, not the msgid it is stored under: the store failed, and
    the error naming it could not be recorded either (the same UnicodeEncodeError), so the page
    said nothing, `siyu archive skip --seq 2` was refused, and the archive stood still for good."""
    odd = "hunt2\ud800x"
    messages = [text(1, "在吗"), text(2, "价格多少", msgid=odd), text(3, "还有货吗")]
    source = Archive(messages, msgids=["hunt1", odd, "hunt3"])
    try:
        asyncio.run(tasks.pull(rt, tenant_id, source))
    except Exception:  # noqa: BLE001 - stopping at it is fine, if it can then be skipped
        with rt.db.tenant_session(tenant_id) as s:
            error = s.scalar(select(ArchiveCursor.last_error))
        assert "[seq 2" in error, f"the pull is stuck with no error recorded: {error!r}"
        tasks.skip_stuck(rt, tenant_id, 2)
        asyncio.run(tasks.pull(rt, tenant_id, source))
    with rt.db.tenant_session(tenant_id) as s:
        cursor = s.scalar(select(ArchiveCursor))
    assert cursor.seq == 3 and "hunt3" in msgids(rt, tenant_id)


def test_a_message_without_any_send_time_is_not_stored_as_one_of_1970(rt, tenant_id):
    """No msgtime (nor a switch's time): stored as sent at 1970-01-01, the harm a msgtime in
    seconds is refused for (a wait opened in 1970), where the import refuses the line."""
    no_time = text(2, "退款什么时候到账")
    del no_time["msgtime"]
    source = Archive([text(1, "在吗"), no_time, text(3, "还有货吗")])
    try:
        asyncio.run(tasks.pull(rt, tenant_id, source))
    except ArchiveError as exc:  # stopping at it, named, is as good
        assert exc.seq == 2
    with rt.db.tenant_session(tenant_id) as s:
        dates = {msgid: at for msgid, at in s.execute(select(Message.msgid, Message.sent_at))}
    assert all(at.year >= 2001 for at in dates.values()), dates


def test_a_message_with_a_long_bad_msgtime_is_named_so_it_can_be_skipped(rt, tenant_id):
    """The refusal quoted its 2,500-digit msgtime in full, and the stored error, cut at 2,000
    characters, lost the [seq 2] after it: no skip was offered and `siyu archive skip --seq 2`
    was refused, the archive stuck for good."""
    odd = text(2, "价格多少", msgtime="1" * 2500)
    source = Archive([text(1, "在吗"), odd, text(3, "还有货吗")])
    with pytest.raises(ArchiveError):
        asyncio.run(tasks.pull(rt, tenant_id, source))
    with rt.db.tenant_session(tenant_id) as s:
        assert "[seq 2" in s.scalar(select(ArchiveCursor.last_error))
    tasks.skip_stuck(rt, tenant_id, 2)
    asyncio.run(tasks.pull(rt, tenant_id, source))
    assert msgids(rt, tenant_id) == ["hunt1", "hunt3"]


# ---- `siyu archive import`


def line(msgid: str, n: int) -> str:
    return json.dumps(
        {"msgid": msgid, "action": "send", "from": "wmIMPORT", "tolist": ["zhangsan"], "roomid": "",
         "msgtime": T + n * 1000, "msgtype": "text", "text": {"content": f"第{n}条"}}
    )  # fmt: skip


def test_an_import_whose_msgid_holds_a_lone_surrogate_names_its_line_and_stores_nothing(
    rt, tenant_id, tmp_path
):
    """The file passed the whole-file check and then failed while stored, with an error naming
    no line, after the first 10,000 messages were stored, though the command said nothing was."""
    size = tasks.BATCH * tasks.BATCHES_PER_STORE
    lines = [line(f"imp{n}-{tenant_id}", n) for n in range(1, size + 1)]
    lines.append(line("imp-odd\ud800", size + 1))  # line 10,001: a lone surrogate (JSON escapes it)
    path = tmp_path / "archive.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"line {size + 1}: msgid holds a NUL or a lone surrogate"):
        asyncio.run(tasks.import_file(rt, tenant_id, path))
    with rt.db.tenant_session(tenant_id) as s:
        assert s.scalars(select(Message.id)).all() == []


@pytest.mark.parametrize("odd", ["NaN", "-Infinity", "1e400"])
def test_an_import_line_holding_a_number_json_has_not_is_refused_by_its_line(rt, tenant_id, tmp_path, odd):
    """Python's json reads NaN and Infinity (1e400 as inf), which PostgreSQL's JSON refuses:
    the file passed the check, then the store failed with an error naming no line."""
    first = line(f"nan1-{tenant_id}", 1)
    second = line(f"nan2-{tenant_id}", 2).replace('"text": {', f'"text": {{"score": {odd}, ')
    path = tmp_path / "nan.jsonl"
    path.write_text(first + "\n" + second + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: not JSON"):
        asyncio.run(tasks.import_file(rt, tenant_id, path))
    with rt.db.tenant_session(tenant_id) as s:
        assert s.scalars(select(Message.id)).all() == []


def test_an_import_stopped_after_parts_were_stored_says_how_many(rt, tenant_id, tmp_path, db):
    """A part of the file the database refuses after the check passed (here a trigger standing
    for a refusal nobody foresaw): the command said "nothing imported" though the 10,000
    messages before it were stored. It says how many were, and that importing again is safe."""
    if db.is_postgres:
        pytest.skip("a SQLite trigger stands for the refusal")
    from sqlalchemy import text

    size = tasks.BATCH * tasks.BATCHES_PER_STORE
    poison = f"poison-{tenant_id}"
    lines = [line(f"part{n}-{tenant_id}", n) for n in range(1, size + 1)] + [line(poison, size + 1)]
    path = tmp_path / "archive.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    trigger = f"refuse_{tenant_id}"
    with db.engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TRIGGER {trigger} BEFORE INSERT ON messages WHEN NEW.msgid = '{poison}'"
                " BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"
            )
        )
    try:
        with pytest.raises(
            tasks.ImportStopped, match=f"{size} messages stored, then a part of 1 could not be"
        ):
            asyncio.run(tasks.import_file(rt, tenant_id, path))
    finally:
        with db.engine.begin() as conn:
            conn.execute(text(f"DROP TRIGGER {trigger}"))
    with rt.db.tenant_session(tenant_id) as s:
        assert len(s.scalars(select(Message.id)).all()) == size
