"""Things that happen in WeCom outside the API and therefore DO produce callbacks
(REFERENCE.md sections 2 and 13.4): a customer scans a contact way, a customer deletes a
member, a member deletes or edits a customer in the client, an admin edits tags in the
console, a transfer fails. Each function changes the state and emits the event; the control
API (control.py) is a thin HTTP layer over these.
"""

from __future__ import annotations

from fastapi import HTTPException

from .api_tags import apply_marks, create_tags, delete_tags, edit_tag
from .delivery import Delivery, header
from .errors import WeComError
from .state import Corp, Customer, Follow, GroupChat, GroupMember, WelcomeCode, rand_id

CONTACT = "change_external_contact"
CHAT = "change_external_chat"


def _bad(detail: str, status: int = 400) -> HTTPException:
    return HTTPException(status, detail)


def _contact_event(corp: Corp, at: int, change: str, userid: str, external_userid: str) -> dict:
    return {
        **header(corp, at, CONTACT),
        "ChangeType": change,
        "UserID": userid,
        "ExternalUserID": external_userid,
    }


def way_members(corp: Corp, config_id: str) -> list[str]:
    way = corp.ways[config_id]
    members = [u for u in way.user if u in corp.staff and corp.staff[u].status != 5]
    for dept in way.party:
        members += [s.userid for s in corp.staff_in(dept, recursive=True) if s.userid not in members]
    return members


def scan(
    emu, corp: Corp, config_id: str, customer: dict, userid: str | None = None, at: int | None = None
) -> tuple[dict, Delivery]:
    """A customer scans a contact way and adds one of its members."""
    way = corp.ways.get(config_id)
    if way is None:
        raise _bad(f"unknown config_id {config_id}", 404)
    members = way_members(corp, config_id)
    if not members:
        raise _bad("the contact way has no active member")
    if userid is None:
        userid = members[way.next_index % len(members)]  # round-robin like a multi-member way
        way.next_index += 1
    elif userid not in members:
        raise _bad(f"{userid} is not a member of this contact way")
    at = int(at if at is not None else emu.state.now())
    ext_id = customer.get("external_userid") or rand_id("wm", 30)
    person = corp.customers.get(ext_id)
    if person is None:
        if not customer.get("name"):
            raise _bad("customer.name is required")
        person = Customer(
            external_userid=ext_id,
            name=customer["name"],
            type=int(customer.get("type") or 1),
            gender=int(customer.get("gender") or 0),
            unionid=customer.get("unionid") or "",
            avatar=customer.get("avatar") or "",
            corp_name=customer.get("corp_name") or "",
            corp_full_name=customer.get("corp_full_name") or customer.get("corp_name") or "",
            position=customer.get("position") or "",
        )
        corp.customers[ext_id] = person
    if (userid, ext_id) in corp.follows:
        raise _bad(f"{ext_id} is already a customer of {userid}", 409)
    corp.follows[(userid, ext_id)] = Follow(
        userid, ext_id, at, state=way.state, add_way=1, oper_userid=ext_id
    )
    code = None
    if (userid, ext_id) not in corp.chatted_pairs:  # no WelcomeCode once the pair has chatted
        code = WelcomeCode(rand_id(n=43), userid, ext_id, emu.state.now())
        corp.welcome_codes[code.code] = code
    # The brief's simplification: a way that needs verification yields the half-add event.
    change = "add_external_contact" if way.skip_verify else "add_half_external_contact"
    fields = _contact_event(corp, at, change, userid, ext_id)
    if way.state:
        fields["State"] = way.state
    if code:
        fields["WelcomeCode"] = code.code
    delivery = emu.deliverer.emit(corp, fields)
    result = {
        "external_userid": ext_id,
        "userid": userid,
        "welcome_code": code.code if code else None,
        "delivery_id": delivery.id,
        "event": change,
    }
    return result, delivery


def _follow(corp: Corp, userid: str, external_userid: str) -> Follow:
    follow = corp.follows.get((userid, external_userid))
    if follow is None:
        raise _bad(f"{external_userid} is not a customer of {userid}", 404)
    return follow


def customer_removes_staff(emu, corp: Corp, external_userid: str, userid: str) -> Delivery:
    _follow(corp, userid, external_userid)
    del corp.follows[(userid, external_userid)]
    return emu.deliverer.emit(
        corp, _contact_event(corp, emu.state.now(), "del_follow_user", userid, external_userid)
    )


def staff_removes_customer(
    emu, corp: Corp, userid: str, external_userid: str, by_transfer: bool = False
) -> Delivery:
    _follow(corp, userid, external_userid)
    del corp.follows[(userid, external_userid)]
    fields = _contact_event(corp, emu.state.now(), "del_external_contact", userid, external_userid)
    if by_transfer:  # Source appears only for transfer deletions (REFERENCE 13.6)
        fields["Source"] = "DELETE_BY_TRANSFER"
    return emu.deliverer.emit(corp, fields)


def rename_member(emu, corp: Corp, old: str, new: str) -> Delivery:
    """The admin console changes a member's 账号 (userid; WeCom allows it once): the same member,
    leaders, customers, groups and contact ways, named by the new userid from now on; then
    change_contact update_user with UserID (the old) and NewUserID."""
    if old not in corp.staff:
        raise _bad(f"unknown staff {old}", 404)
    if not new or new in corp.staff:
        raise _bad(f"userid {new!r} is taken or empty", 409)
    member = corp.staff.pop(old)
    member.userid = new
    corp.staff[new] = member

    def renamed(userids: list[str]) -> list[str]:
        return [new if u == old else u for u in userids]

    for other in corp.staff.values():
        other.direct_leader = renamed(other.direct_leader)
    for dept in corp.departments.values():
        dept.department_leader = renamed(dept.department_leader)
    for (userid, ext), follow in list(corp.follows.items()):
        if userid == old:
            follow.userid = new
            corp.follows[(new, ext)] = corp.follows.pop((userid, ext))
    for way in corp.ways.values():
        way.user = renamed(way.user)
    for group in corp.group_chats.values():
        group.owner = new if group.owner == old else group.owner
        group.admins = renamed(group.admins)
        for m in group.members:
            m.userid = new if m.type == 1 and m.userid == old else m.userid
    archive = corp.archive
    if archive is not None and archive.permit is not None:
        archive.permit = renamed(archive.permit)
    fields = {
        **header(corp, emu.state.now(), "change_contact"),
        "ChangeType": "update_user",
        "UserID": old,
        "NewUserID": new,
    }
    return emu.deliverer.emit(corp, fields)


def staff_edits(emu, corp: Corp, body: dict) -> Delivery:
    follow = _follow(corp, body.get("userid", ""), body.get("external_userid", ""))
    if body.get("remark") is not None:
        follow.remark = str(body["remark"])
    if body.get("description") is not None:
        follow.description = str(body["description"])
    try:
        apply_marks(corp, follow, body.get("add_tags"), body.get("remove_tags"))
    except WeComError as exc:
        raise _bad(f"unknown tag id ({exc.errcode})") from exc
    fields = _contact_event(
        corp, emu.state.now(), "edit_external_contact", follow.userid, follow.external_userid
    )
    return emu.deliverer.emit(corp, fields)


def transfer_fail(emu, corp: Corp, userid: str, external_userid: str, reason: str) -> Delivery:
    if reason not in ("customer_refused", "customer_limit_exceed"):
        raise _bad("reason must be customer_refused or customer_limit_exceed")
    fields = {
        **header(corp, emu.state.now(), CONTACT),
        "ChangeType": "transfer_fail",
        "FailReason": reason,
        "UserID": userid,
        "ExternalUserID": external_userid,
    }
    return emu.deliverer.emit(corp, fields)


def _tag_event(emu, corp: Corp, id_: str, tag_type: str | None, change: str) -> Delivery:
    fields = {**header(corp, emu.state.now(), "change_external_tag"), "Id": id_}
    if tag_type:  # shuffle carries no TagType
        fields["TagType"] = tag_type
    fields["ChangeType"] = change
    return emu.deliverer.emit(corp, fields)


def console_tags(emu, corp: Corp, body: dict) -> tuple[dict, list[Delivery]]:
    """An admin edits tags in the WeCom admin console; emits change_external_tag."""
    action = body.get("action")
    now = int(emu.state.now())
    try:
        if action == "create":
            group, new, created = create_tags(
                corp,
                now,
                body.get("tag") or body.get("tags"),
                body.get("group_id"),
                body.get("group_name"),
                body.get("order") or 0,
            )
            if created:  # a new group: one event for the group (its tags come with it)
                sent = [_tag_event(emu, corp, group.group_id, "tag_group", "create")]
            else:
                sent = [_tag_event(emu, corp, t.id, "tag", "create") for t in new]
            return {"group_id": group.group_id, "tag_ids": [t.id for t in new]}, sent
        if action == "update":
            kind = edit_tag(corp, str(body.get("id") or ""), body.get("name"), body.get("order"))
            return {"id": body["id"]}, [_tag_event(emu, corp, body["id"], kind, "update")]
        if action == "delete":
            named = delete_tags(corp, body.get("tag_id"), body.get("group_id"))
            return {"deleted": [i for i, _ in named]}, [
                _tag_event(emu, corp, i, k, "delete") for i, k in named
            ]
        if action == "shuffle":
            return {}, [_tag_event(emu, corp, str(body.get("group_id") or ""), None, "shuffle")]
    except WeComError as exc:
        raise _bad(f"{exc.errcode} {exc.text}") from exc
    raise _bad("action must be create, update, delete or shuffle")


def _chat_event(emu, corp: Corp, group: GroupChat, change: str, **extra) -> Delivery | None:
    """change_external_chat for a customer group; none for a group of staff only."""
    if group.internal:
        return None
    fields = {**header(corp, emu.state.now(), CHAT), "ChatId": group.chat_id, "ChangeType": change, **extra}
    return emu.deliverer.emit(corp, fields)


def _live_group(corp: Corp, chat_id: str) -> GroupChat:
    group = corp.group_chats.get(chat_id)
    if group is None or group.dismissed:
        raise _bad(f"unknown group chat {chat_id}", 404)
    return group


def create_group_chat(emu, corp: Corp, body: dict) -> tuple[GroupChat, Delivery | None]:
    """A member creates a customer group in the client (the owner), with members and
    customers: change_external_chat create. The chat_id is what the archive calls roomid.
    With `internal`, a group of staff only: no callback (WeCom sends none for those)."""
    owner, name, chat_id = body.get("owner", ""), body.get("name", ""), body.get("chat_id") or ""
    listed = body.get("members") or []
    for field_name, value in (("owner", owner), ("name", name), ("chat_id", chat_id)):
        if not isinstance(value, str):
            raise _bad(f"{field_name} must be a string")
    if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
        raise _bad("members must be a list of userids and external_userids")
    if owner not in corp.staff or corp.staff[owner].status == 5:
        raise _bad(f"unknown owner {owner!r}: the group's owner is a member of the corp")
    chat_id = chat_id or rand_id("wr", 30)
    if chat_id in corp.group_chats:
        raise _bad(f"chat_id {chat_id} exists", 409)
    now = int(emu.state.now())
    members = [GroupMember(owner, 1, now)]
    for userid in dict.fromkeys(listed):  # once each, in order; the owner is in already
        if userid == owner:
            continue
        if userid in corp.staff:
            members.append(GroupMember(userid, 1, now, invitor=owner))
        elif userid in corp.customers:
            members.append(GroupMember(userid, 2, now, invitor=owner))
        else:
            raise _bad(f"unknown member {userid!r}: a member's userid or a customer's external_userid")
    internal = body.get("internal") is True
    if internal and any(m.type == 2 for m in members):
        raise _bad("an internal group has staff only: a customer makes it a customer group")
    group = GroupChat(chat_id, name, owner, now, str(body.get("notice", "")), members, internal=internal)
    corp.group_chats[chat_id] = group
    return group, _chat_event(emu, corp, group, "create")


def rename_group_chat(emu, corp: Corp, chat_id: str, name: str) -> Delivery | None:
    """The owner renames the group: change_external_chat update, UpdateDetail change_name."""
    group = _live_group(corp, chat_id)
    if not isinstance(name, str):
        raise _bad("name must be a string")
    group.name = name
    return _chat_event(emu, corp, group, "update", UpdateDetail="change_name")


def hand_group_chat(emu, corp: Corp, chat_id: str, owner: str) -> Delivery | None:
    """The group is handed to another member (groupchat/transfer, or 离职继承 of a leaver's
    groups): change_external_chat update, UpdateDetail change_owner. The new owner joins if out."""
    group = _live_group(corp, chat_id)
    if not isinstance(owner, str) or owner not in corp.staff or corp.staff[owner].status == 5:
        raise _bad(f"unknown owner {owner!r}: the group's owner is a member of the corp")
    group.owner = owner
    if not any(m.userid == owner for m in group.members):
        group.members.append(GroupMember(owner, 1, int(emu.state.now())))
    return _chat_event(emu, corp, group, "update", UpdateDetail="change_owner")


# groupchat/get's join_scene (1 invited directly, 2 by link, 3 by QR code) as the update
# event's JoinScene numbers it (0 directly, 1 by link, 3 by QR code; REFERENCE 2.2)
JOIN_SCENE_IN_EVENT = {1: 0, 2: 1, 3: 3}


def _userids(body: dict) -> list[str]:
    listed = body.get("members")
    if not isinstance(listed, list) or not listed or not all(isinstance(u, str) for u in listed):
        raise _bad("members must be a non-empty list of userids and external_userids")
    return list(dict.fromkeys(listed))


def add_group_members(emu, corp: Corp, chat_id: str, body: dict) -> Delivery | None:
    """Members or customers join the group (invited by `invitor`, the owner if not given, or
    by link or QR code: join_scene 1, 2, 3 as groupchat/get tells it): change_external_chat
    update, UpdateDetail add_member, with JoinScene and MemChangeList."""
    group = _live_group(corp, chat_id)
    scene = body.get("join_scene", 1)
    if scene not in JOIN_SCENE_IN_EVENT:
        raise _bad("join_scene must be 1 (invited directly), 2 (by link) or 3 (by QR code)")
    invitor = body.get("invitor") or group.owner
    if not isinstance(invitor, str) or invitor not in corp.staff:
        raise _bad(f"unknown invitor {invitor!r}: a member of the corp")
    now, present = int(emu.state.now()), {m.userid for m in group.members}
    joined = []
    for userid in _userids(body):
        if userid in present:
            continue
        if userid in corp.staff:
            kind = 1
        elif userid in corp.customers:
            kind = 2
        else:
            raise _bad(f"unknown member {userid!r}: a member's userid or a customer's external_userid")
        if kind == 2 and group.internal:  # as create_group_chat refuses it
            raise _bad("an internal group has staff only: a customer makes it a customer group")
        joined.append(GroupMember(userid, kind, now, scene, invitor if scene != 3 else ""))
    if not joined:
        raise _bad("everyone listed is in the group already", 409)
    group.members.extend(joined)
    return _chat_event(
        emu,
        corp,
        group,
        "update",
        UpdateDetail="add_member",
        JoinScene=JOIN_SCENE_IN_EVENT[scene],
        MemChangeCnt=len(joined),
        MemChangeList=[m.userid for m in joined],
    )


def remove_group_members(emu, corp: Corp, chat_id: str, body: dict) -> Delivery | None:
    """Members or customers leave the group: of themselves, or removed by the owner or an
    admin (`removed`): change_external_chat update, UpdateDetail del_member, with QuitScene
    (0 left, 1 removed) and MemChangeList."""
    group = _live_group(corp, chat_id)
    wanted = set(_userids(body))
    if group.owner in wanted:
        raise _bad("the owner cannot leave the group: dismiss it or hand it over first")
    gone = [m.userid for m in group.members if m.userid in wanted]
    if not gone:
        raise _bad("nobody listed is in the group", 409)
    group.members = [m for m in group.members if m.userid not in wanted]
    return _chat_event(
        emu,
        corp,
        group,
        "update",
        UpdateDetail="del_member",
        QuitScene=1 if body.get("removed") is True else 0,
        MemChangeCnt=len(gone),
        MemChangeList=gone,
    )


def dismiss_group_chat(emu, corp: Corp, chat_id: str) -> Delivery | None:
    group = _live_group(corp, chat_id)
    group.dismissed = True
    return _chat_event(emu, corp, group, "dismiss")
