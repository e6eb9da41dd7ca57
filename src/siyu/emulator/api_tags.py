"""Customer tags (企业客户标签, REFERENCE.md section 8).

The functions that change tags are shared with the control API's admin-console routes;
only the console path emits change_external_tag callbacks ("operations done via API do
not produce callbacks", REFERENCE 1.5).
"""

from __future__ import annotations

from .api_external import relation
from .cgi import Ctx, api
from .errors import WeComError
from .state import Corp, Tag, TagGroup, rand_id


def group_as_api(corp: Corp, group: TagGroup, only: set[str] | None = None) -> dict:
    tags = [corp.tags[t] for t in group.tag_ids if only is None or t in only]
    return {
        "group_id": group.group_id,
        "group_name": group.group_name,
        "create_time": group.create_time,
        "order": group.order,
        "deleted": False,
        "tag": [
            {"id": t.id, "name": t.name, "create_time": t.create_time, "order": t.order, "deleted": False}
            for t in tags
        ],
    }


def create_tags(
    corp: Corp,
    now: int,
    tags: list,
    group_id: str | None = None,
    group_name: str | None = None,
    order: int = 0,
) -> tuple[TagGroup, list[Tag], bool]:
    """Add tags to a group (new or existing). Returns (group, new tags, group was created)."""
    if not isinstance(tags, list) or not tags:
        raise WeComError(40035, "tag is empty")
    created = False
    if group_id:
        group = corp.tag_groups.get(group_id)
        if group is None:
            raise WeComError(40068)
    else:
        if not group_name:
            raise WeComError(40035, "group_id and group_name are both empty")
        # A same-name group is reused (REFERENCE 8: [U]; the common observation).
        group = next((g for g in corp.tag_groups.values() if g.group_name == group_name), None)
        if group is None:
            group = TagGroup(rand_id("et", 30), str(group_name), now, int(order or 0))
            corp.tag_groups[group.group_id] = group
            created = True
    existing = {corp.tags[t].name for t in group.tag_ids}
    new: list[Tag] = []
    for item in tags:
        name = str((item or {}).get("name") or "")
        if not name or name in existing:
            raise WeComError(40071 if name else 40035)
        existing.add(name)
        tag = Tag(rand_id("et", 30), name, group.group_id, now, int(item.get("order") or 0))
        new.append(tag)
    for tag in new:
        corp.tags[tag.id] = tag
        group.tag_ids.append(tag.id)
    return group, new, created


def edit_tag(corp: Corp, id_: str, name: str | None = None, order: int | None = None) -> str:
    """Rename/reorder a tag or group; returns its TagType ("tag" or "tag_group")."""
    if id_ in corp.tags:
        tag = corp.tags[id_]
        siblings = {corp.tags[t].name for t in corp.tag_groups[tag.group_id].tag_ids if t != id_}
        if name and name in siblings:
            raise WeComError(40071)
        tag.name = name or tag.name
        tag.order = tag.order if order is None else int(order)
        return "tag"
    if id_ in corp.tag_groups:
        group = corp.tag_groups[id_]
        group.group_name = name or group.group_name
        group.order = group.order if order is None else int(order)
        return "tag_group"
    raise WeComError(40068)


def delete_tags(corp: Corp, tag_ids: list | None, group_ids: list | None) -> list[tuple[str, str]]:
    """Delete tags and groups; returns [(id, TagType)] of what was named (a deleted group's
    tags go with it silently, REFERENCE 2.3)."""
    tag_ids, group_ids = list(tag_ids or []), list(group_ids or [])
    if not tag_ids and not group_ids:
        raise WeComError(40035, "tag_id and group_id are both empty")
    for i in tag_ids:
        if i not in corp.tags:
            raise WeComError(40068)
    for i in group_ids:
        if i not in corp.tag_groups:
            raise WeComError(40068)
    gone: set[str] = set(tag_ids)
    named = [(i, "tag") for i in tag_ids]
    for gid in group_ids:
        gone.update(corp.tag_groups[gid].tag_ids)
        named.append((gid, "tag_group"))
    for tid in gone:
        tag = corp.tags.pop(tid, None)
        if tag and tag.group_id in corp.tag_groups:
            corp.tag_groups[tag.group_id].tag_ids.remove(tid)
    for gid in group_ids:
        corp.tag_groups.pop(gid, None)
    for gid in [g.group_id for g in corp.tag_groups.values() if not g.tag_ids]:
        del corp.tag_groups[gid]  # a group without tags ceases to exist
    for follow in corp.follows.values():
        follow.tag_ids = [t for t in follow.tag_ids if t not in gone]
    return named


@api("externalcontact/get_corp_tag_list", methods=("POST",))
async def get_corp_tag_list(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    body = ctx.json
    group_ids, tag_ids = body.get("group_id") or [], body.get("tag_id") or []
    if group_ids:  # group_id wins when both are given
        groups = [corp.tag_groups[g] for g in group_ids if g in corp.tag_groups]
        return {"tag_group": [group_as_api(corp, g) for g in groups]}
    if tag_ids:
        wanted = {t for t in tag_ids if t in corp.tags}
        groups = [g for g in corp.tag_groups.values() if wanted & set(g.tag_ids)]
        return {"tag_group": [group_as_api(corp, g, wanted) for g in groups]}
    return {"tag_group": [group_as_api(corp, g) for g in corp.tag_groups.values()]}


@api("externalcontact/add_corp_tag", methods=("POST",))
async def add_corp_tag(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    body = ctx.json
    group, new, _ = create_tags(
        corp,
        int(ctx.state.now()),
        body.get("tag"),
        body.get("group_id"),
        body.get("group_name"),
        body.get("order") or 0,
    )
    return {"tag_group": group_as_api(corp, group, {t.id for t in new})}


@api("externalcontact/edit_corp_tag", methods=("POST",))
async def edit_corp_tag(ctx: Ctx) -> dict:
    body = ctx.json
    edit_tag(ctx.need_corp(), str(body.get("id") or ""), body.get("name"), body.get("order"))
    return {}


@api("externalcontact/del_corp_tag", methods=("POST",))
async def del_corp_tag(ctx: Ctx) -> dict:
    body = ctx.json
    delete_tags(ctx.need_corp(), body.get("tag_id"), body.get("group_id"))
    return {}


def apply_marks(corp: Corp, follow, add: list | None, remove: list | None) -> None:
    add, remove = list(add or []), list(remove or [])
    for tag_id in add + remove:
        if tag_id not in corp.tags:
            raise WeComError(40068)
    follow.tag_ids = [t for t in follow.tag_ids if t not in remove]
    follow.tag_ids += [t for t in dict.fromkeys(add) if t not in follow.tag_ids]


@api("externalcontact/mark_tag", methods=("POST",))
async def mark_tag(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    body = ctx.json
    # Not a customer of userid: 84061 (see relation()); unknown external_userid: 40096.
    follow = relation(corp, str(body.get("userid") or ""), str(body.get("external_userid") or ""))
    if not body.get("add_tag") and not body.get("remove_tag"):
        raise WeComError(40035, "add_tag and remove_tag are both empty")
    apply_marks(corp, follow, body.get("add_tag"), body.get("remove_tag"))
    return {}
