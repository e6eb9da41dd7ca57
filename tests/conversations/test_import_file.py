"""`siyu archive import` (a JSON-lines migration) on files that are valid but unusual: line
separators inside a message, a recall ahead of its original, a very long message, and fields
the file check must name by line."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from siyu.config import Settings
from siyu.conversations import tasks
from siyu.conversations.models import Conversation, Message
from siyu.runtime import Runtime
from tests.conversations.test_ingest import tenant_id  # noqa: F401 - fixture
from tests.test_cli import add_args, siyu  # noqa: F401 - fixture

T = 1764036000000  # 2025-11-25 10:00 in Shanghai, in ms


@pytest.fixture
def rt(db, settings: Settings) -> Runtime:
    return Runtime.create(settings, db)


def text_message(msgid: str, sender: str, to: str, content: str, msgtime: int) -> dict:
    """One already-decrypted 1:1 text message (REFERENCE 11.3)."""
    return {
        "msgid": msgid,
        "action": "send",
        "from": sender,
        "tolist": [to],
        "roomid": "",
        "msgtime": msgtime,
        "msgtype": "text",
        "text": {"content": content},
    }


def text_line(msgid: str, sender: str, to: str, content: str, msgtime: int) -> str:
    """text_message as a line of JSON, written as Python (and most tools) write JSON:
    non-ASCII characters as they are."""
    return json.dumps(text_message(msgid, sender, to, content, msgtime), ensure_ascii=False)


# ---------------------------------------------------------------- JSON-lines import


def test_an_import_line_whose_text_holds_a_unicode_line_separator_is_one_line(siyu, tmp_path):  # noqa: F811
    """JSON lines are separated by "\\n". A chat message may hold U+2028 (LINE SEPARATOR, pasted
    from a web page or a document) or U+0085; JSON allows both unescaped inside a string and
    json.dumps(..., ensure_ascii=False) writes them so. The import splits lines on them too
    (str.splitlines), so a valid file is refused whole as "not JSON" at a line number that is
    not the file's."""
    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-ls"
    assert invoke(*add_args(corp, slug=slug))[0] == 0
    lines = [
        text_line("ls-1", "wmLineSep", "zhangsan", "地址：杭州市\u2028西湖区文三路 100 号", T),
        text_line("ls-2", "zhangsan", "wmLineSep", "收到，今天发货", T + 60_000),
        text_line("ls-3", "wmLineSep", "zhangsan", "好的\u0085谢谢", T + 120_000),
    ]
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for line in path.read_bytes().split(b"\n")[:3]:  # every line of the file is one JSON object
        assert isinstance(json.loads(line), dict)

    code, out = invoke("archive", "import", str(path), "--tenant", slug)
    assert code == 0 and "3 messages stored" in out, out


def test_a_recall_earlier_in_the_import_file_than_its_original_still_marks_it(rt, tenant_id):  # noqa: F811
    """The import is checked whole and then stored like a pulled backlog, 10,000 messages a
    transaction. A file not in archive order (an export sorted by msgid, say) may hold a
    recall before its original: within one transaction ingest sorts by msgtime and the recall
    marks its original, but when the two fall into different transactions the recall finds
    nothing and the original is stored as never recalled (and its question waits)."""
    recall = {
        "msgid": "hunt-recall",
        "action": "recall",
        "from": "wmRecalls",
        "tolist": ["zhangsan"],
        "roomid": "",
        "msgtime": T + 60_000,
        "msgtype": "revoke",
        "revoke": {"pre_msgid": "hunt-original"},
    }
    lines = [json.dumps(recall)]
    # other chats' messages between them: a file of a year's chats has many more
    lines += [
        text_line(f"hunt-fill-{i}", f"wmFill{i % 40}", "zhangsan", f"第{i}条", T - 10**8 + i * 1000)
        for i in range(tasks.BATCH * tasks.BATCHES_PER_STORE)
    ]
    lines.append(text_line("hunt-original", "wmRecalls", "zhangsan", "这个价格还能便宜吗？", T))

    counts = asyncio.run(tasks.import_file(rt, tenant_id, lines_file(rt, lines)))
    assert counts["stored"] == len(lines)
    with rt.db.tenant_session(tenant_id) as s:
        original = s.scalar(select(Message).where(Message.msgid == "hunt-original"))
        chat = s.get(Conversation, original.conversation_id)
        assert original.recalled is True, "the recalled message is shown as if it had never been recalled"
        assert chat.awaiting_msgid == "", "the recalled question waits for a reply"


def lines_file(rt, lines: list[str]):
    path = rt.settings.data_dir / "import.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_one_very_long_imported_message_does_not_stop_search_for_the_tenant(rt, tenant_id):  # noqa: F811
    """The import takes a line of up to 1,000,000 characters. On PostgreSQL the search tokens
    of a long text (here 150,000 characters: about 150,000 distinct bigrams) make a tsvector
    over its 1 MB limit; indexing the batch fails, the batch stays first in the queue, and
    every batch stored after it waits behind it: nothing stored since is found."""
    import random
    from types import SimpleNamespace

    from siyu.conversations import queries

    rng = random.Random(7)
    common = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    long_text = "".join(rng.choice(common) for _ in range(150_000))
    first = [
        text_line("hunt-long", "wmLongText", "zhangsan", long_text, T),
        text_line("hunt-short", "wmLongText", "zhangsan", "请问榴莲礼盒还有货吗", T + 60_000),
    ]
    asyncio.run(tasks.import_file(rt, tenant_id, lines_file(rt, first)))
    later = [text_line("hunt-later", "wmOther", "zhangsan", "山竹礼盒什么时候到货", T + 120_000)]
    asyncio.run(tasks.import_file(rt, tenant_id, lines_file(rt, later)))

    viewer = SimpleNamespace(tenant_id=tenant_id, visible_staff=None, timezone="Asia/Shanghai")
    with rt.db.tenant_session(tenant_id) as s:
        found = {
            q: [h["message"]["text"] for h in queries.search_messages(s, viewer, q).items]
            for q in ("榴莲礼盒", "山竹礼盒")
        }
    assert found == {"榴莲礼盒": ["请问榴莲礼盒还有货吗"], "山竹礼盒": ["山竹礼盒什么时候到货"]}


BAD_FIELD = {  # each passes the import's check of the whole file, then fails ingest
    "recall pre_msgid a list": {
        "action": "recall",
        "msgtype": "revoke",
        "revoke": {"pre_msgid": ["hunt-rv-1"]},
    },
    "recall pre_msgid an object": {
        "action": "recall",
        "msgtype": "revoke",
        "revoke": {"pre_msgid": {"msgid": "hunt-rv-1"}},
    },
    "consent userid a number": {  # addressed to the customer themself: the userid names the staff
        "action": "send",
        "tolist": ["wmBadLine"],
        "msgtype": "disagree",
        "disagree": {"userid": 10086, "disagree_time": T},
    },
}


@pytest.mark.parametrize("bad", BAD_FIELD.values(), ids=BAD_FIELD.keys())
def test_an_import_line_ingest_cannot_read_is_refused_by_line(siyu, tmp_path, bad):  # noqa: F811
    """`siyu archive import` checks the file whole first and names a line no archive could
    hold, in one line on stderr, storing nothing. A recall whose revoke.pre_msgid is not a
    string, or a consent event whose userid is not one, passes that check; ingest then fails
    with a TypeError / AttributeError: a traceback that names no line (and, in a file over
    10,000 messages, after the parts before it were stored)."""
    from typer.testing import CliRunner

    from siyu.cli import app
    from siyu.config import get_settings

    invoke, corp = siyu
    slug = corp["corp_id"].lower() + "-rv"
    assert invoke(*add_args(corp, slug=slug))[0] == 0
    message = {
        "msgid": "hunt-rv-2",
        "from": "wmBadLine",
        "tolist": ["zhangsan"],
        "roomid": "",
        "msgtime": T + 60_000,
        **bad,
    }
    path = tmp_path / "bad-field.jsonl"
    path.write_text(
        text_line("hunt-rv-1", "wmBadLine", "zhangsan", "在吗", T) + "\n" + json.dumps(message) + "\n",
        encoding="utf-8",
    )
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["archive", "import", str(path), "--tenant", slug])
    assert result.exit_code == 1 and "line 2" in result.output, (result.output, repr(result.exception))
