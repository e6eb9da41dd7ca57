"""Response shapes of the conversations and message search API (/api/v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from siyu.tenancy.schemas import STAFF_STATUS_TEXT, StaffStatus
from siyu.web.api_paging import ListPage

ConversationKind = Literal["single", "group"]
Direction = Literal["in", "out", "internal"]


class CustomerRef(BaseModel):
    id: int
    name: str
    avatar: str = ""


class MessageOut(BaseModel):
    id: int
    msgid: str
    conversation_id: int | None
    direction: Direction = Field(
        description="in: from the customer; out: from staff; internal: staff to staff"
    )
    sender: str = Field(description="WeCom userid or external_userid")
    sender_name: str
    sender_status: StaffStatus | None = Field(
        description="a member's message (out, internal): whether its sender is still with the corp, as"
        " `staff_status` says it; null for a customer's (in). " + STAFF_STATUS_TEXT
    )
    sent_at: datetime
    msgtype: str
    text: str = Field(description="a readable rendering ([图片], [文件] name, ...)")
    url: str | None = Field(
        None,
        description="the http(s) address a shared link or online document (docmsg) opens; null otherwise",
    )
    recalled: bool = Field(description="the sender recalled it (shown as 已撤回)")
    needs_reply: bool | None = Field(description="inbound only: False for a closing remark (结束语)")
    reply_score: float | None = None
    by_siyu: bool = Field(description="sent by Siyu on the staff member's behalf (自动发送)")
    labels: list[str] = Field(
        description="已撤回, 自动发送, 结束语 (read as a closing remark), 已标记无需回复 (by staff)"
    )
    dismissed_at: datetime | None = Field(
        None, description="when staff marked the wait this message opened as needing no reply"
    )
    dismissed_by: str | None = Field(
        None, description='who marked it, by the name they were signed in as then ("" if not known)'
    )
    waiting: bool = Field(description="this is the customer message still waiting for a reply")
    event: bool = Field(
        False, description="an event WeCom recorded in the chat (the customer agreeing to archiving or not)"
    )


class GroupRef(BaseModel):
    name: str
    owner_userid: str
    owner_name: str
    owner_status: StaffStatus | None = Field(
        description="whether the owner is still with the corp, as `staff_status` says it (one who left"
        " looks after the group no more: hand it over in WeCom, 离职继承); null while WeCom told no owner"
        " (owner_userid empty). " + STAFF_STATUS_TEXT
    )
    member_count: int = Field(description="staff and customers in the group")
    customer_count: int
    status: Literal["active", "dismissed", "internal", "unknown"] = Field(
        description="internal: a group of staff only; unknown: WeCom told nothing of it"
    )
    problem: str = Field("", description="unknown: why, as WeCom's answer said it")
    checked_at: datetime = Field(description="when WeCom was last asked about the group")


class ContactEnded(BaseModel):
    status: Literal["lost", "deleted", "transferred"] = Field(
        description="lost: the customer deleted the staff member; deleted: the staff member deleted the"
        " customer; transferred: handed over to another member"
    )
    at: datetime | None


class SnoozeState(BaseModel):
    until: datetime = Field(description="no reminder before this")
    by: str = Field(description='who snoozed it, by the name they were signed in as ("": before it was kept)')
    at: datetime | None = Field(description="when they did")


class GroupWaitOut(BaseModel):
    since: datetime = Field(description="when the first customer message still unanswered was sent")
    waiting_seconds: int = Field(description="now - since, in seconds")
    waiting_text: str = Field(description="e.g. 12 分 3 秒")
    msgid: str = Field(description="that customer message")
    text: str
    sender_name: str = Field(description="the customer who asked")


class ConversationOut(BaseModel):
    id: int
    kind: ConversationKind
    kind_name: str
    title: str = Field(description="the customer's name; a group chat's name, or 群聊 <roomid> until known")
    remark: str | None = Field(
        None,
        description="a 1:1 chat: its staff member's remark (备注) on the customer, which WeCom lists the chat"
        " by on their phone, whitespace made single spaces (the pages show 王女士（备注：王姐-报价）); null"
        " when they have none, and for a group chat",
    )
    customer: CustomerRef | None
    external_userid: str
    staff_userid: str
    staff_name: str
    staff_status: StaffStatus = Field(description=STAFF_STATUS_TEXT)
    roomid: str
    group: GroupRef | None = Field(None, description="a group chat's name and owner, once WeCom told them")
    message_count: int = Field(
        description="the messages the chat shows as sent (text, images, files…): not recalls, switches"
        " or events such as a customer agreeing to or declining archiving, which /messages also lists"
    )
    last_message_at: datetime | None
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    last_message: str = Field(description="the newest message's text")
    waiting: bool = Field(description="the customer is waiting for a reply")
    awaiting_since: datetime | None
    awaiting_msgid: str
    waiting_seconds: int | None = Field(description="now - awaiting_since, in seconds")
    waiting_text: str = Field(description="e.g. 3 分 12 秒")
    waiting_message: MessageOut | None = Field(description="the customer message that waits")
    waiting_quote: str = Field(
        "", description="what the customer wrote since the wait began, newest kept whole: 在吗 / 报价发我"
    )
    waiting_newest_msgid: str = Field(
        "",
        description="the customer message of the wait that needs a reply stored last (awaiting_msgid when"
        " it is the only one; usually the newest, but one imported or re-pulled late may be older): what"
        " dismiss's `msgid` names once the client has shown it",
    )
    group_wait: GroupWaitOut | None = Field(
        None,
        description="a customer group only: a customer's message that needs a reply and that no staff member"
        " has answered in the group since (null: none). Shown, never escalated: `waiting` stays false",
    )
    contact_ended: ContactEnded | None = Field(
        None, description="one conversation only: the customer and the staff member are no longer contacts"
    )
    archiving: Literal["agreed", "declined"] | None = Field(
        None,
        description="one conversation only: the customer's last word in the chat on archiving it (declined:"
        " later messages are not archived, and nothing escalates); null when none was recorded",
    )
    member_unarchived_since: datetime | None = Field(
        None,
        description="one conversation only: since when its member is off the archive's permit list, as Siyu"
        " last read it (their messages are not archived, and nothing escalates); null: archived",
    )
    snooze: SnoozeState | None = Field(
        None, description="its wait's reminders held back (null: not, or no longer)"
    )
    version: str = Field(
        description="changes whenever what the chat shows does: in a list, a message, a recall in order, a"
        " consent event, a wait opened or closed; of one conversation (GET /conversations/{id}, what an"
        " open chat polls to know when to reload) also a recall pulled late, a snooze, a step gone out,"
        " the contact's end, the member off the archive, the title or remark, a group's state"
    )


class ConversationPage(ListPage):
    items: list[ConversationOut]


class MessagePage(BaseModel):
    items: list[MessageOut] = Field(description="oldest first")
    has_more: bool = Field(description="there are older messages")
    before: int | None = Field(description="pass as `before` for the page of older messages")


class WroteAgainOut(BaseModel):
    detail: str = Field(description="what the customer wrote after the message named, and when, in words")
    newest_msgid: str = Field(description="that message's msgid: name it to mark the wait, having shown it")


class DismissIn(BaseModel):
    msgid: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="the customer message of the wait the client showed stored last"
        " (waiting_newest_msgid): refused with 409 when one that needs a reply was stored after it"
        " (whatever its msgtime), in the same wait or a new one, so that a stale screen never silences a"
        " question it did not show; a closing remark after it does not count. Without it, whatever"
        " waits is marked, unseen questions included (for scripts that close waits in bulk; a client"
        " that shows the chat should name what it showed). A msgid that is no message of this"
        " conversation (unknown, another chat's) is a 422, and so is an empty one: leave it out instead",
    )

    model_config = {"extra": "forbid"}  # a misspelt msgid must not mark whatever waits


class DismissOut(BaseModel):
    dismissed: bool = Field(description="False when the conversation was not waiting")
    conversation: ConversationOut


class ConversationRef(BaseModel):
    id: int
    kind: ConversationKind
    title: str
    remark: str | None = Field(
        None,
        description="a 1:1 chat: its staff member's remark (备注) on the customer, as in "
        "ConversationOut; null when they have none, and for a group chat",
    )
    customer: CustomerRef | None
    staff_userid: str
    staff_name: str
    staff_status: StaffStatus = Field(description=STAFF_STATUS_TEXT)


class SearchHit(BaseModel):
    message: MessageOut
    conversation: ConversationRef
    snippet: str = Field(description="the text around the first match")
    highlights: list[tuple[int, int]] = Field(description="[start, end) of each match in the snippet")


class SearchPage(BaseModel):
    items: list[SearchHit] = Field(description="newest first")
    q: str
    page: int | None = Field(description="the page number asked for; null when paged by cursor")
    per_page: int
    has_more: bool
    next: str | None = Field(description="pass as `after` for the next page; null on the last")
    prev: str | None = Field(description="pass as `before` for the page before; null on the first")
