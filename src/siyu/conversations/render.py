"""A readable one-line rendering of an archived message, for people, search and the
needs-reply classifier (REFERENCE.md 11.3 lists the types)."""

from __future__ import annotations

import json

LABELS = {
    "image": "[图片]",
    "voice": "[语音]",
    "video": "[视频]",
    "emotion": "[表情]",
    "card": "[名片]",
    "chatrecord": "[聊天记录]",
    "mixed": "[图文]",
    "meeting_voice_call": "[语音通话]",
    "voiptext": "[音视频通话]",
    # (the chat reads them after the customer's name: 汪雨涛 拒绝存档聊天内容)
    "agree": "[同意存档聊天内容]",
    "disagree": "[拒绝存档聊天内容]",
}
# Payloads named otherwise than their type (REFERENCE 11.3: docmsg's doc, markdown's and news' info)
_PAYLOAD = {"external_redpacket": "redpacket", "docmsg": "doc", "markdown": "info", "news": "info"}
# Types whose payload carries words of their own (REFERENCE 11.3): the label, then those fields.
_TITLED = {
    "todo": ("[待办]", "title", "content"),
    "collect": ("[填表]", "title"),
    "calendar": ("[日程]", "title", "place"),
    "meeting": ("[会议]", "topic"),
    "sphfeed": ("[视频号]", "sph_name", "feed_desc"),
    "redpacket": ("[红包]", "wish"),
    "external_redpacket": ("[红包]", "wish"),
    "voip_doc_share": ("[文件]", "filename"),
}
# What WeCom records in a chat that nobody wrote (the customer agreeing to archiving or not):
# shown as a line of its own, never a message that needs a reply.
EVENT_TYPES = frozenset({"agree", "disagree"})
# What a member sends that asks nothing in words: a customer answering just after it answers
# the staff message before it ("确定要取消吗？" then a sticker, then the customer's bare 好的).
WORDLESS_TYPES = frozenset({"emotion", "image", "voice", "video"})


def render(message: dict, depth: int = 0) -> str:
    kind = message.get("msgtype", "")
    body = message.get(_PAYLOAD.get(kind, kind)) or {}
    body = body if isinstance(body, dict) else {}
    if kind == "mixed":
        return _mixed(body) or LABELS["mixed"]
    if kind == "chatrecord":
        return _chatrecord(body, depth)
    if kind in ("text", "markdown"):
        return _said(body.get("content"))
    if kind == "file":
        return _words("[文件]", body.get("filename"))
    if kind == "link":
        return _words("[链接]", body.get("title"))
    if kind == "location":  # the place's name and its street address, the one without the other
        place = dict.fromkeys(str(body.get(k) or "").strip() for k in ("title", "address"))
        return " ".join(["[位置]", *filter(None, place)])
    if kind == "weapp":
        return _words("[小程序]", body.get("title"))
    if kind == "docmsg":
        return _words("[文档]", body.get("title"))
    if kind == "news":
        items = body.get("item") if isinstance(body.get("item"), list) else []
        return _words("[图文消息]", *(i.get("title") for i in items if isinstance(i, dict)))
    if kind in _TITLED:  # what it is, then the words it carries
        return _words(_TITLED[kind][0], *(body.get(name) for name in _TITLED[kind][1:]))
    if kind == "qydiskfile":  # a file of the corp's 微盘
        info = body.get("info")
        return _words("[微盘文件]", info.get("filename") if isinstance(info, dict) else None)
    if kind == "vote":
        return _words("[投票]", message.get("votetitle"))
    return LABELS.get(kind, f"[{kind}]" if kind else "")


# Where a shared link or online document's address is (REFERENCE 11.3: link_url)
_ADDRESSED = {"link": "link", "docmsg": "doc"}


def address(message: dict) -> str | None:
    """The http(s) address a shared link or online document opens (a product page, a 腾讯文档
    the customer asks about), or None: the rendering gives its title only."""
    body = message.get(_ADDRESSED.get(message.get("msgtype", ""), ""))
    url = body.get("link_url") if isinstance(body, dict) else None
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        return None  # (nor javascript: or another scheme a tap would run)
    return url.strip()


def _said(value) -> str:
    """A field's words: a string as it is, a number written out; a null (WeCom leaves a field
    it has nothing for null), an object or a list says nothing (they had read None, {…})."""
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else ""


def _words(label: str, *values) -> str:
    """`label` and the values that hold text, one space apart."""
    return " ".join([label, *filter(None, (_said(v).strip() for v in values))])


def _mixed(body: dict) -> str:
    """A 图文 message (text and pictures in one, as a customer sends a question with a
    screenshot): its parts in order, each as a message of its type reads; an item's content
    is a JSON string (REFERENCE 11.3)."""
    return " ".join(_parts(body.get("item"), lambda kind: kind, {"mixed"}, 0))


# How deep forwarded chat records inside forwarded chat records are read.
_DEEPEST = 3


def _chatrecord(body: dict, depth: int) -> str:
    """A forwarded chat record (聊天记录, often the customer's order or complaint elsewhere):
    its title, then each line as a message of its type reads. An item's type names the
    type after `ChatRecord` (ChatRecordText, ChatRecordFile, ...), its content is a JSON
    string (REFERENCE 11.3)."""
    title = str(body.get("title") or "").strip()
    lines = _parts(body.get("item"), _record_kind, set(), depth + 1) if depth < _DEEPEST else []
    return " ".join(p for p in [LABELS["chatrecord"], title, *lines] if p)


def _record_kind(kind: str) -> str:
    return kind.removeprefix("ChatRecord").lower()


def _parts(items, kind_of, skipped: set[str], depth: int) -> list[str]:
    parts = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = kind_of(str(item.get("type", "")))
        content = item.get("content")
        try:
            content = json.loads(content or "{}") if not isinstance(content, dict) else content
        except (TypeError, ValueError, RecursionError):
            content = {}
        if kind in skipped or not isinstance(content, dict):
            continue  # (WeCom nests no mixed in a mixed; a part that is not an object says nothing)
        parts.append(render({"msgtype": kind, _PAYLOAD.get(kind, kind): content}, depth))
    return [p for p in parts if p]
