"""Archived messages with fields WeCom left null (REFERENCE 11.3), through the emulator's
archive, the pull and `siyu archive import`: nothing reads the word None, and no null stops
the pull."""

# ruff: noqa: F811 - the fixtures are imported from the files that define them
from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from siyu.conversations import tasks
from siyu.conversations.models import Message
from tests.conversations.test_archive_odd_messages import Archive, msgids, rt, tenant_id, text  # noqa: F401
from tests.conversations.test_message_types import chat  # noqa: F401

T = 1764036000000


@pytest.mark.parametrize(
    ("msgtype", "payload"),
    [
        ("text", {"text": {"content": None}}),
        ("file", {"file": {"filename": None, "fileext": "pdf", "filesize": 1, "sdkfileid": "f"}}),
        ("link", {"link": {"title": None, "description": "", "link_url": "https://e.com/a"}}),
        ("weapp", {"weapp": {"title": None, "description": "", "username": "gh_1", "displayname": "商城"}}),
        ("docmsg", {"doc": {"title": None, "link_url": "https://doc.qq.com/x", "doc_creator": "zhangsan"}}),
        ("vote", {"votetitle": None, "voteitem": ["A"], "votetype": 101, "voteid": "v1"}),
        ("markdown", {"info": {"content": None}}),
    ],
)  # fmt: skip
def test_a_null_field_of_a_message_body_is_not_shown_as_None(chat, msgtype, payload):
    """A body field WeCom left null (the file's name, the link's title, a text's content) is
    shown as nothing, not as the word None, in the chat, the API, the timeline and search."""
    msgid = chat.send(msgtype, payload)
    shown = chat.shown(msgid)
    assert "None" not in shown, f"{msgtype}: the agent reads {shown!r}"


def test_a_pulled_text_whose_body_is_null_is_not_stored_as_the_word_None(rt, tenant_id):
    """`"text": null` (a body not a JSON object) is stored as an empty text."""
    source = Archive([text(1, "在吗"), text(2, "", text=None), text(3, "还有货吗")])
    asyncio.run(tasks.pull(rt, tenant_id, source))
    with rt.db.tenant_session(tenant_id) as s:
        shown = dict(s.execute(select(Message.msgid, Message.text)).tuples().all())
    assert shown["hunt2"] != "None", shown


@pytest.mark.parametrize("field", ["msgtype", "action"])
def test_a_pulled_message_with_a_null_identifier_is_stored_cleaned_not_stopping_the_pull(
    rt,
    tenant_id,
    field,
):
    """A pulled message whose `action` or `msgtype` is null is stored cleaned, as one that is not
    a string is, rather than stopping the pull at its seq (价格多少 had been skipped by hand)."""
    source = Archive([text(1, "在吗"), text(2, "价格多少", **{field: None}), text(3, "还有货吗")])
    asyncio.run(tasks.pull(rt, tenant_id, source))
    assert msgids(rt, tenant_id) == ["hunt1", "hunt2", "hunt3"]


def test_an_imported_text_with_null_content_is_not_stored_as_the_word_None(rt, tenant_id, tmp_path):
    lines = [
        {"msgid": f"imp{n}-{tenant_id}", "action": "send", "from": "wmIMPORT", "tolist": ["zhangsan"],
         "roomid": "", "msgtime": T + n * 1000, "msgtype": "text", "text": {"content": content}}
        for n, content in ((1, "在吗"), (2, None))
    ]  # fmt: skip
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    asyncio.run(tasks.import_file(rt, tenant_id, path))
    with rt.db.tenant_session(tenant_id) as s:
        shown = dict(s.execute(select(Message.msgid, Message.text)).tuples().all())
    assert shown[f"imp2-{tenant_id}"] != "None", shown
