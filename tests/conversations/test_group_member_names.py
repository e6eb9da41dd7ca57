"""externalcontact/groupchat/get with need_name=1 (REFERENCE 10): WeCom lists each member of a
customer group with its `name` (and `group_nickname`). The emulator answered without them and
Siyu never read them: a group member who is nobody's contact here was shown as 未知联系人…XXXX
though WeCom had told Siyu who they are."""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy import select

from siyu.conversations import search, service
from siyu.conversations.models import Conversation
from siyu.conversations.tasks import look_up_groups
from siyu.customers.channels import ChannelSpec, create_channel
from siyu.customers.models import Channel
from siyu.insights.needs_reply import default_classifier
from siyu.tenancy.tasks import sync_staff
from siyu.wecom.archive import ArchivedMessage
from tests.support.signed_in import SignedIn
from tests.support.stack import stack as make_stack

# REFERENCE 10: "groupchat/get `POST .../groupchat/get` `{"chat_id":"...","need_name":1}` →
# `group_chat:{chat_id,name,owner,create_time,notice,member_list:[{userid,type(1 member,2
# external),join_time,join_scene(1 direct invite,2 link invite,3 QR),invitor:{userid},
# group_nickname,name,unionid}],admin_list:[{userid}]}`"


def _stranger_in_a_group(st) -> tuple[str, str]:
    """路人甲 added 张三 once and deleted him again before Siyu was connected (WeCom's events
    went nowhere): nobody's contact, still in 张三's customer group. (external_userid, chat_id)"""
    asyncio.run(sync_staff(st.rt, st.tenant_id))
    channel_id = asyncio.run(
        create_channel(st.rt, st.tenant_id, ChannelSpec(name="门店", staff_userids=["zhangsan"]))
    )
    with st.session() as s:
        config_id = s.get(Channel, channel_id).config_id
    ext = st.scan(config_id, "路人甲")["external_userid"]
    group = st.control(
        "POST",
        st.corp_path("/group_chats"),
        json={"owner": "zhangsan", "name": "VIP客户群", "members": [ext]},
    )
    st.control("POST", st.corp_path(f"/customers/{ext}/remove_staff"), json={"userid": "zhangsan"})
    return ext, group["group_chat"]["chat_id"]


def test_groupchat_get_with_need_name_names_the_groups_customers(settings, db):
    with make_stack(settings, db, serve_siyu=False) as st:
        ext, chat_id = _stranger_in_a_group(st)

        async def ask():
            client = (await st.rt.clients.get(st.tenant_id)).contact
            return await client.groupchat_get(chat_id)  # Siyu's own call: need_name=1

        chat = asyncio.run(ask())["group_chat"]
        [member] = [m for m in chat["member_list"] if m["userid"] == ext]
        assert member.get("name") == "路人甲", member


def test_a_group_member_who_is_nobodys_contact_is_named_as_wecom_names_them(settings, db):
    with make_stack(settings, db, serve_siyu=False) as st:
        ext, chat_id = _stranger_in_a_group(st)
        now_ms = int(time.time() * 1000)
        msgid = f"g-{uuid.uuid4().hex}"
        question = {
            "msgid": msgid,
            "action": "send",
            "from": ext,
            "tolist": ["zhangsan"],
            "roomid": chat_id,
            "msgtime": now_ms - 60_000,
            "msgtype": "text",
            "text": {"content": "请问这款什么时候发货？"},
        }
        with st.session() as s:
            service.ingest(s, [ArchivedMessage(1, msgid, question)], default_classifier().classify)
        search.index_backlog(db, st.tenant_id)
        # as a pull that stored a group it does not know does: WeCom is asked about it
        asyncio.run(look_up_groups(st.rt, st.tenant_id, [chat_id]))
        with st.session() as s:
            conversation_id = s.scalar(select(Conversation.id).where(Conversation.roomid == chat_id))
        admin = SignedIn(st.rt, st.tenant_id, "admin")
        page = admin("GET", f"/conversations/{conversation_id}").text
        assert "VIP客户群" in page  # the group was looked up
        unknown = f"未知联系人…{ext[-4:]}"
        named = "路人甲" in page
        assert named, f"the asker is shown as {unknown!r} ({unknown in page}), not as 路人甲"
