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
    "redpacket": "[红包]",
    "external_redpacket": "[红包]",
    "meeting": "[会议]",
    "calendar": "[日程]",
    "chatrecord": "[聊天记录]",
    "mixed": "[图文]",
    "voip_doc_share": "[文件]",
    "meeting_voice_call": "[语音通话]",
    "sphfeed": "[视频号]",
    "agree": "[客户同意存档聊天内容]",
    "disagree": "[客户拒绝存档聊天内容]",
}
# What WeCom records in a chat that nobody wrote (the customer agreeing to archiving or not):
# shown as a line of its own, never a message that needs a reply.
EVENT_TYPES = frozenset({"agree", "disagree"})


def render(message: dict) -> str:
    kind = message.get("msgtype", "")
    body = message.get(kind) or {}
    if kind == "mixed":
        return _mixed(body) or LABELS["mixed"]
    if kind == "text":
        return str(body.get("content", ""))
    if kind == "file":
        return f"[文件] {body.get('filename', '')}".strip()
    if kind == "link":
        return f"[链接] {body.get('title', '')}".strip()
    if kind == "location":
        return f"[位置] {body.get('title') or body.get('address', '')}".strip()
    if kind == "weapp":
        return f"[小程序] {body.get('title', '')}".strip()
    if kind == "docmsg":
        return f"[文档] {(message.get('doc') or {}).get('title', '')}".strip()
    if kind in ("markdown", "news"):
        info = message.get("info") or {}
        return str(info.get("content", "")) if kind == "markdown" else "[图文消息]"
    if kind == "todo":
        return f"[待办] {body.get('title', '')}".strip()
    if kind == "vote":
        return f"[投票] {message.get('votetitle', '')}".strip()
    return LABELS.get(kind, f"[{kind}]" if kind else "")


def _mixed(body: dict) -> str:
    """A 图文 message (text and pictures in one, as a customer sends a question with a
    screenshot): its parts in order, each as a message of its type reads; an item's content
    is a JSON string (REFERENCE 11.3)."""
    parts = []
    for item in body.get("item") or []:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("type", ""))
        try:
            content = json.loads(item.get("content") or "{}")
        except (TypeError, ValueError):
            content = {}
        if kind == "mixed" or not isinstance(content, dict):
            continue  # (WeCom nests none; a part that is not an object says nothing)
        parts.append(render({"msgtype": kind, kind: content}))
    return " ".join(p for p in parts if p)
