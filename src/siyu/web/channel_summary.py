"""A channel as the edit form's notices say it: in a line (现在保存的是), and field by field
where a form refused as stale differs from what is stored (what saving it again would
overwrite). Names as the form's choices show them."""

from __future__ import annotations

from siyu.visible_names import tidy_name

LINK_PARTS = {"url": "链接地址", "title": "链接标题", "desc": "链接描述"}
LISTS = {"staff_userids": "接待成员", "department_ids": "接待部门", "tag_ids": "自动打标签"}


def channel_text(ch: dict, choices: dict) -> str:
    """Every field the form edits, whole: saving the form again sets each of them."""
    parts = [f"名称「{ch['name']}」"]
    if ch["staff_userids"]:
        parts.append(f"成员 {_names(ch, 'staff_userids', choices)}")
    if ch["department_ids"]:
        parts.append(f"部门 {_names(ch, 'department_ids', choices)}")
    parts.append("无需验证" if ch["skip_verify"] else "需成员验证")
    if ch["tag_ids"]:
        parts.append(f"标签 {_names(ch, 'tag_ids', choices)}")
    parts.append(f"欢迎语「{ch['welcome_text']}」" if ch["welcome_text"] else "无欢迎语")
    link = ch["welcome_link"] or {}
    parts += [f"{label} {link[part]}" for part, label in LINK_PARTS.items() if link.get(part)]
    if ch["welcome_image_url"]:
        parts.append(f"图片 {ch['welcome_image_url']}")
    return " · ".join(parts)


def channel_differences(stored: dict, typed: dict, choices: dict) -> list[str]:
    """现在保存的是 X，你填写的是 Y, for each field of the form where the two differ (members,
    departments and tags as sets: their order is not the form's to change)."""
    rows = []
    if tidy_name(stored["name"] or "") != tidy_name(typed["name"] or ""):
        rows.append(("渠道名称", _quoted(stored["name"]), _quoted(typed["name"])))
    for field, label in LISTS.items():
        rows.append((label, _names(stored, field, choices, True), _names(typed, field, choices, True)))
    rows.insert(-1, ("客户添加时无需成员验证", _yes(stored["skip_verify"]), _yes(typed["skip_verify"])))
    rows.append(("欢迎语", _quoted(stored["welcome_text"]), _quoted(typed["welcome_text"])))
    links = (stored["welcome_link"] or {}, typed["welcome_link"] or {})
    for part, label in LINK_PARTS.items():
        rows.append((label, _quoted(links[0].get(part)), _quoted(links[1].get(part))))
    image = "新选择的图片" if typed.get("image_pending") else _quoted(typed.get("welcome_image_url"))
    rows.append(("图片", _quoted(stored["welcome_image_url"]), image))
    return [f"{label}：现在保存的是 {was}，你填写的是 {now}" for label, was, now in rows if was != now]


def _names(ch: dict, field: str, choices: dict, as_set: bool = False) -> str:
    known = {
        "staff_userids": dict(choices["all_staff"]),
        "department_ids": dict(choices["all_departments"]),
        "tag_ids": {wid: name for wid, name, _ in choices["all_tags"]},
    }[field]
    names = [str(known.get(v, v)) for v in ch[field] or []]
    return "、".join(sorted(names) if as_set else names) or "（空）"


def _quoted(text: str | None) -> str:
    return f"「{text}」" if text else "（空）"


def _yes(value: bool) -> str:
    return "是" if value else "否"
