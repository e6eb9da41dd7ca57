"""Every kind of archived message (REFERENCE 11.3) typed in WeCom (the emulator's archive),
pulled by Siyu and read by a signed-in admin over HTTP: the chat shows what it was in
words, and what it says can be searched."""

from __future__ import annotations

import json
import secrets

import pytest
from sqlalchemy import select

from siyu.conversations.models import Conversation, Message
from siyu.tenancy.service import add_person
from tests.support.stack import wait_for
from tests.web.conftest import login


@pytest.fixture
def chat(stack):
    """Post customer messages of any type to the archive; answers the conversation's
    messages as the admin's API shows them, and the admin's search."""
    stack.enable_archive()
    name = f"admin-{stack.slug}"
    with stack.session() as s:
        add_person(s, name, "管理员", "admin", "pw-types-1")
    admin = login(stack.siyu, name, "pw-types-1")
    customer = f"wm{secrets.token_hex(8)}"

    class Chat:
        ext = customer

        def send(self, msgtype: str, payload: dict, sender: str = customer, to: str = "zhangsan") -> str:
            body = {"from": sender, "tolist": [to], "msgtype": msgtype, **payload}
            return stack.control("POST", stack.corp_path("/archive/messages"), json=body)["messages"][0][
                "msgid"
            ]

        def shown(self, msgid: str) -> str:
            def stored():
                with stack.session() as s:
                    return s.scalar(select(Message.conversation_id).where(Message.msgid == msgid))

            conversation_id = wait_for(stored, timeout=15)
            r = admin.get(f"/api/v1/conversations/{conversation_id}/messages")
            assert r.status_code == 200, r.text
            return next(m["text"] for m in r.json()["items"] if m["msgid"] == msgid)

        def found(self, q: str) -> list[str]:
            r = admin.get("/api/v1/messages/search", params={"q": q})
            assert r.status_code == 200, r.text
            return [i["message"]["msgid"] for i in r.json()["items"]]

        def waiting(self) -> str:
            with stack.session() as s:
                return s.scalar(
                    select(Conversation.awaiting_msgid).where(Conversation.external_userid == customer)
                )

    yield Chat()
    admin.close()


def searchable(chat, msgid: str, q: str) -> bool:
    chat.shown(msgid)  # stored; the search index follows within the pull
    try:
        return bool(wait_for(lambda: msgid in chat.found(q), timeout=5))
    except AssertionError:
        return False


def record_item(kind: str, content: dict) -> dict:
    """A line of a forwarded chat record: its content is a JSON string (REFERENCE 11.3)."""
    content = json.dumps(content, ensure_ascii=False)
    return {"type": kind, "msgtime": 1603875608, "from_chatroom": False, "content": content}


def test_a_forwarded_chat_record_shows_and_finds_what_it_holds(chat):
    """A customer forwards a chat record (聊天记录) with the order number in it: the agent
    reads its lines in Siyu, and a search for the number finds it."""
    items = [
        record_item("ChatRecordText", {"content": "订单号 58231204317 还没发货"}),
        record_item("ChatRecordFile", {"filename": "发票.pdf", "fileext": "pdf", "filesize": 1200}),
    ]
    msgid = chat.send("chatrecord", {"chatrecord": {"title": "张三和客服的聊天记录", "item": items}})
    text = chat.shown(msgid)
    assert "订单号 58231204317 还没发货" in text and "发票.pdf" in text and text.startswith("[聊天记录]")
    assert searchable(chat, msgid, "58231204317")
    assert chat.waiting() == msgid  # still a message that needs a reply


def test_a_location_shows_and_finds_its_address_as_well_as_its_name(chat):
    """WeCom sends a place's name (title) and its street address: the agent reads both, and
    a search for the street finds it; the address had been dropped whenever a name came."""
    place = {"title": "腾讯滨海大厦", "address": "广东省深圳市南山区海天二路33号", "zoom": 15}
    msgid = chat.send("location", {"location": {"longitude": 113.94, "latitude": 22.52, **place}})
    text = chat.shown(msgid)
    assert text.startswith("[位置]") and "腾讯滨海大厦" in text and "海天二路33号" in text
    assert searchable(chat, msgid, "海天二路")
    assert chat.waiting() == msgid


@pytest.mark.parametrize(
    ("msgtype", "payload", "reads", "query"),
    [
        (
            "news",
            {"info": {"item": [{"title": "双十一会员专享价", "description": "全场五折",
                                "url": "https://example.com/a", "picurl": "https://example.com/a.png"}]}},
            "[图文消息] 双十一会员专享价",
            "会员专享",
        ),
        (
            "calendar",
            {"calendar": {"title": "到店试驾", "creatorname": "张三", "attendeename": ["张三"],
                          "starttime": 1590840000, "endtime": 1590847200, "place": "徐汇门店",
                          "remarks": ""}},
            "[日程] 到店试驾 徐汇门店",
            "试驾",
        ),
        (
            "meeting",
            {"meeting": {"topic": "新品讲解会", "starttime": 1590840000, "endtime": 1590847200,
                         "address": "", "remarks": "", "meetingtype": 102, "meetingid": 1, "status": 1}},
            "[会议] 新品讲解会",
            "讲解会",
        ),
        (
            "todo",
            {"todo": {"title": "寄回旧机", "content": "顺丰到付"}},
            "[待办] 寄回旧机 顺丰到付",
            "顺丰到付",
        ),
        (
            "sphfeed",
            {"sphfeed": {"feed_type": 4, "sph_name": "小米手机", "feed_desc": "新品开箱"}},
            "[视频号] 小米手机 新品开箱",
            "开箱",
        ),
        (
            "external_redpacket",
            {"redpacket": {"type": 1, "wish": "生日快乐", "totalcnt": 1, "totalamount": 888}},
            "[红包] 生日快乐",
            "生日快乐",
        ),
        (
            "voip_doc_share",
            {"voipid": "v1", "voip_doc_share": {"filename": "报价单.xlsx", "md5sum": "", "filesize": 1,
                                                 "sdkfileid": "f"}},
            "[文件] 报价单.xlsx",
            "报价单",
        ),
    ],
)  # fmt: skip
def test_a_message_that_carries_words_shows_them_and_is_found_by_them(chat, msgtype, payload, reads, query):
    """A 图文 message's titles, a schedule's or a meeting's title, a to-do's text, a 视频号
    post's account and words, a red packet's wish, a shared file's name: the agent reads them
    in the chat and finds the message by them. Each had read as its type's label alone."""
    msgid = chat.send(msgtype, payload)
    assert chat.shown(msgid) == reads
    assert not query or searchable(chat, msgid, query)
    assert chat.waiting() == msgid  # from the customer: it needs a reply, as before
    assert searchable(chat, msgid, query)


@pytest.mark.parametrize(
    ("msgtype", "payload", "reads", "query"),
    [
        (
            "collect",
            {"collect": {"room_name": "", "creator": "张三", "create_time": "2020-04-27 15:57:25",
                         "title": "售后登记表", "details": [{"id": 1, "ques": "订单号", "type": "Text"}]}},
            "[填表] 售后登记表",
            "登记表",
        ),
        ("voiptext", {"voipid": "v1", "voiptext": {"callduration": 65, "invitetype": 2}}, "[音视频通话]", ""),
        ("qydiskfile", {"qydiskfile": {"info": {"filename": "安装说明.pdf"}}}, "[微盘文件] 安装说明.pdf",
         "安装说明"),
    ],
)  # fmt: skip
def test_a_form_a_call_or_a_drive_file_reads_in_words_not_as_its_msgtype(
    chat, msgtype, payload, reads, query
):
    """填表, 音视频通话 and 微盘文件 messages had shown the agent WeCom's type names ([collect],
    [voiptext], [qydiskfile]) instead of what they are, and the form's title and the file's
    name could not be searched."""
    msgid = chat.send(msgtype, payload)
    assert chat.shown(msgid) == reads
    assert not query or searchable(chat, msgid, query)
    assert chat.waiting() == msgid  # from the customer: it needs a reply, as before
