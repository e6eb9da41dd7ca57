"""Contact events as WeCom delivers them, retried, late or edited in between: a customer who
comes back, an add processed after an edit, a welcome recorded once, what an edit changes and
what it leaves alone."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select

from siyu.customers import queries, service, welcome
from siyu.customers.channels import ChannelSpec, update_channel
from siyu.customers.models import Channel, Customer, Follow, FollowTag, Tag, TimelineEvent
from siyu.customers.queries import describe_event
from siyu.notify.models import OutboxMessage
from tests.customers.test_acquisition import corp_tag, follow_of, make_channel, run
from tests.support.stack import wait_for


def _kinds(db, tenant_id: int, ext: str) -> list[str]:
    with db.tenant_session(tenant_id) as s:
        return list(
            s.scalars(
                select(TimelineEvent.kind)
                .join(Customer, Customer.id == TimelineEvent.customer_id)
                .where(Customer.external_userid == ext)
                .order_by(TimelineEvent.id)
            )
        )


def _event(kind: str, ext: str, at: int, userid: str = "zhangsan", **more) -> dict:
    return {"ChangeType": kind, "UserID": userid, "ExternalUserID": ext, "CreateTime": str(at), **more}


def _follow_tags(stack, follow_id: int) -> set[str]:
    with stack.session() as s:
        return set(
            s.scalars(
                select(Tag.wecom_id)
                .join(FollowTag, FollowTag.tag_id == Tag.id)
                .where(FollowTag.follow_id == follow_id)
            )
        )


def _lose_and_add_again(stack, first_config: str, second_config: str, name: str = "郑先生") -> str:
    ext = stack.scan(first_config, name)["external_userid"]
    wait_for(lambda: follow_of(stack, ext))
    stack.control(
        "POST", stack.corp_path(f"/customers/{ext}/remove_staff"), json={"userid": "zhangsan", "wait": True}
    )
    wait_for(lambda: follow_of(stack, ext).status == "lost")
    stack.control("POST", "/clock", json={"advance_s": 60})
    customer = {"name": name, "external_userid": ext}
    stack.control(
        "POST",
        stack.corp_path("/scan"),
        json={"config_id": second_config, "customer": customer, "wait": True},
    )
    wait_for(lambda: follow_of(stack, ext).status == "active")
    return ext


def test_a_customer_who_adds_the_member_again_is_added_again_on_the_timeline(stack):
    """The timeline ended with 被客户删除（流失） though the customer was a contact again; and the
    channel's tag, which WeCom dropped with the relation, was not marked again there."""
    tag = corp_tag(stack, "回流")
    channel = make_channel(stack, tag_ids=[tag])
    ext = _lose_and_add_again(stack, channel.config_id, channel.config_id)

    def tags_in_wecom() -> list[str]:
        listed = stack.control("GET", stack.corp_path("/customers"))
        found = [c for c in listed if c["external_contact"]["external_userid"] == ext]
        return found[0]["follow_info"].get("tag_id", []) if found else []

    wait_for(lambda: tag in tags_in_wecom(), timeout=20)
    kinds = _kinds(stack.rt.db, stack.tenant_id, ext)
    assert kinds[kinds.index("lost") :].count("added") == 1, kinds
    with stack.session() as s:
        said = s.scalar(
            select(TimelineEvent.data).where(TimelineEvent.kind == "added").order_by(TimelineEvent.id.desc())
        )
        first_added = s.scalar(select(Customer.first_added_at).where(Customer.external_userid == ext))
    assert said.get("again") is True and describe_event("added", said) == "再次添加了客户"
    assert follow_of(stack, ext).added_at > first_added  # the relation as it stands began again


def test_a_customer_who_comes_back_through_another_channel_counts_for_it_and_is_tagged_by_it(stack):
    """Lost through 海报, back through 直播间: the follow stayed 海报's, tagged 海报 only, while
    the welcome came from 直播间."""
    poster_tag, live_tag = corp_tag(stack, "海报"), corp_tag(stack, "直播")
    poster = make_channel(stack, name="海报", tag_ids=[poster_tag])
    live = make_channel(stack, name="直播间", tag_ids=[live_tag])
    ext = _lose_and_add_again(stack, poster.config_id, live.config_id)
    follow = wait_for(lambda: (f := follow_of(stack, ext)) and f.channel_id == live.id and f)
    assert live_tag in _follow_tags(stack, follow.id)
    assert "channel" in _kinds(stack.rt.db, stack.tenant_id, ext)[-4:]


def test_an_add_processed_after_an_edit_of_the_same_relation_is_on_the_timeline(db, fresh_tenant):
    """The add's first try failed and the member's remark edit was processed first: the edit
    made the follow, and the add, retried, found it not new and never wrote 添加了客户."""
    ext = "wm" + secrets.token_hex(6)
    info = {"userid": "zhangsan", "createtime": 1764900000, "remark": "钱女士-VIP"}
    contact = {"external_contact": {"external_userid": ext, "name": "钱女士"}, "follow_user": [info]}
    with db.tenant_session(fresh_tenant) as s:
        service.record_edited(s, _event("edit_external_contact", ext, 1764900030), contact)
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, _event("add_external_contact", ext, 1764900000), contact)
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, _event("add_external_contact", ext, 1764900000), contact)  # delivered twice
    assert _kinds(db, fresh_tenant, ext).count("added") == 1


def test_a_welcome_sent_before_a_second_members_add_is_processed_is_on_the_timeline_once(db, fresh_tenant):
    """The customer follows 张三 and adds 王五 too. The welcome (queued by the intake, urgent) went
    out before the add was processed: its send found the customer and wrote 已发送欢迎语, and the
    add, its follow new, wrote it again."""
    ext, code = "wm" + secrets.token_hex(6), "code-" + secrets.token_hex(4)
    person = {"external_userid": ext, "name": "王女士"}
    first = _event("add_external_contact", ext, 1764900000)
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, first, {"external_contact": person, "follow_user": [{"userid": "zhangsan"}]})
    second = _event("add_external_contact", ext, 1764900100, userid="wangwu", WelcomeCode=code)
    with db.tenant_session(fresh_tenant) as s:
        s.connection().execute(
            OutboxMessage.__table__.insert(), [welcome.queued_welcome(fresh_tenant, second)]
        )
    with db.tenant_session(fresh_tenant) as s:  # the send recorded, as the sender does
        row = s.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == f"welcome:{code}"))
        row.status = "sent"
        s.flush()
        welcome._record(s, row, "welcome_sent")
    both = [{"userid": "zhangsan", "createtime": 1764900000}, {"userid": "wangwu", "createtime": 1764900100}]
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, second, {"external_contact": person, "follow_user": both})
    assert _kinds(db, fresh_tenant, ext).count("welcome_sent") == 1


def test_an_add_processed_after_the_customer_left_keeps_the_time_of_the_add(db, fresh_tenant):
    """Processed late (retried through an outage), by when WeCom no longer lists the relation
    (84061): the follow was dated by when Siyu processed it, ending before it began, and the
    channel's daily figures counted the add on the wrong day."""
    ext = "wm" + secrets.token_hex(6)
    gone = {"external_contact": {"external_userid": ext}, "follow_user": []}
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, _event("add_external_contact", ext, 1764900000), gone)
    with db.tenant_session(fresh_tenant) as s:
        service.record_follow_ended(s, _event("del_follow_user", ext, 1764900600), "lost")
    with db.tenant_session(fresh_tenant) as s:
        follow = s.scalar(select(Follow))
    assert follow.added_at.replace(tzinfo=UTC) == datetime.fromtimestamp(1764900000, UTC)


def test_a_phone_number_cleared_in_wecom_is_cleared_in_siyu(db, fresh_tenant):
    """The member clears 备注手机号: WeCom answers remark_mobiles [], and Siyu kept showing the
    number (and finding the customer by it)."""
    ext = "wm" + secrets.token_hex(6)
    person = {"external_userid": ext, "name": "钱女士"}
    with_phone = {"userid": "zhangsan", "createtime": 1764900000, "remark_mobiles": ["13912345678"]}
    with db.tenant_session(fresh_tenant) as s:
        added = {"external_contact": person, "follow_user": [with_phone]}
        service.record_added(s, _event("add_external_contact", ext, 1764900000), added)
    with db.tenant_session(fresh_tenant) as s:
        edited = {"external_contact": person, "follow_user": [{**with_phone, "remark_mobiles": []}]}
        service.record_edited(s, _event("edit_external_contact", ext, 1764900100), edited)
    with db.tenant_session(fresh_tenant) as s:
        assert s.scalar(select(Follow.remark_mobiles)) == []
    without = {"external_contact": person, "follow_user": [{"userid": "zhangsan", "remark_mobiles": ["139"]}]}
    with db.tenant_session(fresh_tenant) as s:  # an app WeCom gives no numbers (代开发): kept
        service.record_edited(s, _event("edit_external_contact", ext, 1764900200), without)
        service.record_edited(
            s,
            _event("edit_external_contact", ext, 1764900300),
            {**without, "follow_user": [{"userid": "zhangsan"}]},
        )
        assert s.scalar(select(Follow.remark_mobiles)) == ["139"]


def test_a_remark_edited_before_the_channels_tags_reach_wecom_keeps_them(stack):
    """mark_tag is being retried (WeCom answered -1) when the member writes a remark: the edit's
    answer does not list the channel's tag yet, Siyu took it off, and once mark_tag got through
    WeCom had the tag and Siyu never showed it again."""
    tag_id = corp_tag(stack, "地推")
    channel = make_channel(stack, name="地推", tag_ids=[tag_id])
    fault = {"corp_id": stack.corp_id, "path": "/cgi-bin/externalcontact/mark_tag", "errcode": -1, "times": 3}
    stack.control("POST", "/faults", json=fault)
    ext = stack.scan(channel.config_id, "孙先生")["external_userid"]
    follow = wait_for(lambda: follow_of(stack, ext))
    remark = {"userid": "zhangsan", "external_userid": ext, "remark": "孙先生-地推", "wait": True}
    stack.control("POST", stack.corp_path("/remark"), json=remark)
    wait_for(lambda: follow_of(stack, ext).remark == "孙先生-地推")
    assert _follow_tags(stack, follow.id) == {tag_id}

    def mark_tag_sent() -> bool:
        with stack.session() as s:
            return s.scalar(select(OutboxMessage.status).where(OutboxMessage.kind == "mark_tag")) == "sent"

    wait_for(mark_tag_sent, timeout=20)
    assert _follow_tags(stack, follow.id) == {tag_id}


def test_the_deleted_tag_notice_goes_once_the_admin_chooses_the_channels_tags_again(stack):
    """标签 旧标签 已在企业微信中删除 stayed on the channel's page after new tags were chosen."""
    old, new = corp_tag(stack, "旧标签"), corp_tag(stack, "新标签")

    def both_known() -> bool:  # the tag events processed: the channel form takes known tags only
        with stack.session() as s:
            return len(list(s.scalars(select(Tag).where(Tag.wecom_id.in_([old, new]))))) == 2

    wait_for(both_known)
    channel = make_channel(stack, name="门店", tag_ids=[old])
    deleted = {"action": "delete", "tag_id": [old], "wait": True}
    stack.control("POST", stack.corp_path("/console/tags"), json=deleted)

    def notice() -> str:
        with stack.session() as s:
            return s.get(Channel, channel.id).notice

    assert "旧标签" in wait_for(notice)
    spec = ChannelSpec(name="门店", staff_userids=["zhangsan"], tag_ids=[new], welcome_text="您好")
    run(update_channel(stack.rt, stack.tenant_id, channel.id, spec))
    assert notice() == ""


T = 1764900000


class _Admin:
    visible_staff = None
    timezone = "Asia/Shanghai"

    def __init__(self, tenant_id: int):
        self.tenant_id = tenant_id


def _when(at) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _timeline(db, tenant_id: int, ext: str) -> list[dict]:
    with db.tenant_session(tenant_id) as s:
        cid = s.scalar(select(Customer.id).where(Customer.external_userid == ext))
        return queries.timeline(s, _Admin(tenant_id), cid)


def test_an_add_processed_after_the_loss_it_came_before_is_dated_by_its_own_event(db, fresh_tenant):
    """张三 is added at T; the customer deletes him at T+600. The add's processing failed
    (externalcontact/get busy) and is retried after the loss was processed: the timeline says
    添加了客户 at the loss's moment (T+600), the follow's 添加时间 and the customer's 首次添加
    read T+600, and the retried add's own time T is nowhere."""
    ext = "wm" + secrets.token_hex(6)
    info = {"userid": "zhangsan", "createtime": T}
    contact = {"external_contact": {"external_userid": ext, "name": "周女士"}, "follow_user": [info]}
    with db.tenant_session(fresh_tenant) as s:
        service.record_follow_ended(s, _event("del_follow_user", ext, T + 600), "lost")
    with db.tenant_session(fresh_tenant) as s:  # the add, retried
        service.record_added(s, _event("add_external_contact", ext, T), contact)
    entries = _timeline(db, fresh_tenant, ext)
    added = [e for e in entries if e["kind"] == "added"]
    assert [_when(e["at"]) for e in added] == [datetime.fromtimestamp(T, UTC)], [
        (e["kind"], e["at"]) for e in entries
    ]
    with db.tenant_session(fresh_tenant) as s:
        follow = s.scalar(select(Follow))
        customer = s.scalar(select(Customer))
        assert _when(follow.added_at) == datetime.fromtimestamp(T, UTC)
        assert _when(customer.first_added_at) == datetime.fromtimestamp(T, UTC)


def test_first_added_is_the_earliest_add_whatever_order_the_adds_are_processed_in(db, fresh_tenant):
    """李四 added the customer a year before 张三 did; 张三's add is processed first (or the
    customer sync reads 张三's page first): the profile's 首次添加 (and the list's order, its
    newest first) keeps 张三's date, though WeCom's answer, handed to the same call, lists 李四's
    createtime a year earlier."""
    ext = "wm" + secrets.token_hex(6)
    year = 365 * 86400
    both = [{"userid": "zhangsan", "createtime": T}, {"userid": "lisi", "createtime": T - year}]
    contact = {"external_contact": {"external_userid": ext, "name": "吴先生"}, "follow_user": both}
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, _event("add_external_contact", ext, T), contact)
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, _event("add_external_contact", ext, T - year, userid="lisi"), contact)
    with db.tenant_session(fresh_tenant) as s:
        customer = s.scalar(select(Customer).where(Customer.external_userid == ext))
        assert _when(customer.first_added_at) == datetime.fromtimestamp(T - year, UTC)


def test_the_sync_keeps_the_earliest_add_as_first_added(db, fresh_tenant):
    """`siyu sync customers` pages member by member: 张三's row (added at T) before 李四's
    (added a year earlier)."""
    ext = "wm" + secrets.token_hex(6)
    year = 365 * 86400
    person = {"external_userid": ext, "name": "郑先生"}
    with db.tenant_session(fresh_tenant) as s:
        service.import_customer(s, person, {"userid": "zhangsan", "createtime": T})
        service.import_customer(s, person, {"userid": "lisi", "createtime": T - year})
    with db.tenant_session(fresh_tenant) as s:
        customer = s.scalar(select(Customer).where(Customer.external_userid == ext))
        assert _when(customer.first_added_at) == datetime.fromtimestamp(T - year, UTC)


def test_a_member_who_had_the_customer_before_siyu_is_on_the_timeline_as_the_sync_puts_them(db, fresh_tenant):
    """李四 has had the customer since a year ago (before Siyu, no sync run yet); the customer
    now adds 张三 and WeCom's answer lists both. Siyu makes 李四's follow from that answer (the
    profile shows 李四, 添加时间 a year ago) but his add is nowhere on the timeline, while his
    tags read 李四 打上标签 at 张三's add; the sync run later finds the follow made and adds
    nothing either. The sync itself writes 添加了客户 for such a follow, at its createtime."""
    ext = "wm" + secrets.token_hex(6)
    year = 365 * 86400
    lisi = {"userid": "lisi", "createtime": T - year, "tags": [{"tag_id": "tagVIP", "tag_name": "VIP"}]}
    both = [{"userid": "zhangsan", "createtime": T}, lisi]
    contact = {"external_contact": {"external_userid": ext, "name": "冯女士"}, "follow_user": both}
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, _event("add_external_contact", ext, T), contact)
    with db.tenant_session(fresh_tenant) as s:  # the customer sync, run afterwards
        service.import_customer(
            s, contact["external_contact"], {"userid": "lisi", "createtime": T - year, "tag_id": ["tagVIP"]}
        )
    entries = _timeline(db, fresh_tenant, ext)
    lisi_added = [e for e in entries if e["kind"] == "added" and e["staff_userid"] == "lisi"]
    assert [_when(e["at"]) for e in lisi_added] == [datetime.fromtimestamp(T - year, UTC)], [
        (e["kind"], e["staff_userid"], e["at"]) for e in entries
    ]


def test_a_customer_handed_back_to_the_member_they_were_handed_away_from_is_theirs_again(db, fresh_tenant):
    """张三's customer is handed to 李四 (在职继承) and back. WeCom sends 张三 no add event the
    second time (REFERENCE 16.1): only 李四's end, DELETE_BY_TRANSFER. 张三's follow stayed
    已转接 for good, the customer list counting him so; WeCom's answer about the customer then
    lists 张三 again, and his follow is active, the timeline saying he has the customer back."""
    ext = "wm" + secrets.token_hex(6)

    def contact(*userids: str) -> dict:
        follows = [{"userid": u, "createtime": T} for u in userids]
        return {"external_contact": {"external_userid": ext, "name": "韩女士"}, "follow_user": follows}

    handed = {"Source": "DELETE_BY_TRANSFER"}
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, _event("add_external_contact", ext, T), contact("zhangsan"))
        service.record_handed_over(s, _event("del_external_contact", ext, T + 100, **handed), contact("lisi"))
        service.record_added(s, _event("add_external_contact", ext, T + 100, "lisi"), contact("lisi"))
        back = _event("del_external_contact", ext, T + 200, "lisi", **handed)
        service.record_handed_over(s, back, contact("zhangsan"))
    with db.tenant_session(fresh_tenant) as s:
        follows = {f.staff_userid: (f.status, f.ended_at) for f in s.scalars(select(Follow))}
    assert follows == {
        "zhangsan": ("active", None),
        "lisi": ("transferred", datetime.fromtimestamp(T + 200, UTC)),
    }
    texts = [(e["staff_userid"], e["text"]) for e in _timeline(db, fresh_tenant, ext)]
    assert texts[0] == ("zhangsan", "重新接手了客户（客户转接回来）"), texts


def test_a_customer_who_came_back_to_a_member_is_not_said_handed_back(db, fresh_tenant):
    """冯女士 deletes 张三 (流失), then adds him again and adds 李四 too; 李四's add is handled
    first (its externalcontact/get already lists 张三). Nobody handed her over to anyone: her
    timeline must not say 张三 重新接手了客户（客户转接回来）."""
    ext = "wm" + secrets.token_hex(6)
    t0 = 1_780_000_000

    def contact(*userids_times):
        return {
            "external_contact": {"external_userid": ext, "name": "冯女士", "type": 1},
            "follow_user": [{"userid": u, "createtime": t, "add_way": 1} for u, t in userids_times],
        }

    def fields(kind, userid, at):
        return {"ChangeType": kind, "UserID": userid, "ExternalUserID": ext, "CreateTime": str(at)}

    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, fields("add_external_contact", "zhangsan", t0), contact(("zhangsan", t0)))
    with db.tenant_session(fresh_tenant) as s:
        service.record_follow_ended(s, fields("del_follow_user", "zhangsan", t0 + 60), "lost")
    with db.tenant_session(fresh_tenant) as s:  # 李四's add (t0+200) handled before 张三's re-add (t0+100)
        service.record_added(
            s,
            fields("add_external_contact", "lisi", t0 + 200),
            contact(("zhangsan", t0 + 100), ("lisi", t0 + 200)),
        )
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(
            s,
            fields("add_external_contact", "zhangsan", t0 + 100),
            contact(("zhangsan", t0 + 100), ("lisi", t0 + 200)),
        )
    with db.tenant_session(fresh_tenant) as s:
        customer_id = s.scalar(select(Customer.id).where(Customer.external_userid == ext))
        rows = s.execute(
            select(TimelineEvent.kind, TimelineEvent.data).where(
                TimelineEvent.customer_id == customer_id, TimelineEvent.staff_userid == "zhangsan"
            )
        ).all()
    texts = [describe_event(kind, data) for kind, data in rows]
    assert not [t for t in texts if "转接" in t], texts


def _status(db, tenant_id: int, ext: str) -> str:
    with db.tenant_session(tenant_id) as s:
        follow = s.scalar(
            select(Follow)
            .join(Customer, Customer.id == Follow.customer_id)
            .where(Customer.external_userid == ext)
        )
        return follow.status


def test_a_late_add_half_does_not_put_an_accepted_customer_back_to_awaiting(db, fresh_tenant):
    """The customer added 张三 without verification (add_half at T0); 张三 accepted at T0+60
    (add_external_contact). The add_half's first try failed (WeCom busy) and it ran again after
    the add: the follow went back to 待通过 (half) for good."""
    ext = "wm" + secrets.token_hex(6)
    info = {"userid": "zhangsan", "createtime": 1764900000, "add_way": 1}
    contact = {"external_contact": {"external_userid": ext, "name": "钱女士"}, "follow_user": [info]}
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, _event("add_external_contact", ext, 1764900060), contact)
    assert _status(db, fresh_tenant, ext) == "active"
    with db.tenant_session(fresh_tenant) as s:  # the add_half, retried, handled last
        service.record_added(s, _event("add_half_external_contact", ext, 1764900000), contact, half=True)
    assert _status(db, fresh_tenant, ext) == "active"


async def _own_code(stack) -> str:
    contact = (await stack.rt.clients.get(stack.tenant_id)).contact
    answer = await contact.add_contact_way(1, 2, user=["zhangsan"], remark="张三的名片")
    return answer["config_id"]


def _wecom_tags(stack, ext) -> set[str] | None:
    rel = [
        c
        for c in stack.control("GET", stack.corp_path("/customers"))
        if c["external_contact"]["external_userid"] == ext and c["follow_info"]["userid"] == "zhangsan"
    ]
    return set(rel[0]["follow_info"].get("tag_id", []) or []) if rel else None


def test_back_through_no_channel_the_tags_siyu_shows_are_wecoms(stack):
    """A customer who removed the member adds them again through the member's own code (no
    channel of Siyu's): the relation is no channel's, and carries no channel's tags."""
    tag_id = corp_tag(stack)
    channel = make_channel(stack, name="展会", tag_ids=[tag_id])
    ext = stack.scan(channel.config_id, "回头客")["external_userid"]
    wait_for(lambda: _wecom_tags(stack, ext) == {tag_id})
    stack.control(
        "POST", stack.corp_path(f"/customers/{ext}/remove_staff"), json={"userid": "zhangsan", "wait": True}
    )
    wait_for(lambda: (f := follow_of(stack, ext)) and f.status == "lost")

    own = run(_own_code(stack))
    stack.control(
        "POST",
        stack.corp_path("/scan"),
        json={"config_id": own, "customer": {"name": "回头客", "external_userid": ext}, "wait": True},
    )
    follow = wait_for(lambda: (f := follow_of(stack, ext)) and f.status == "active" and f)
    assert _wecom_tags(stack, ext) == set()  # WeCom dropped the tags with the relation
    # Siyu had shown 「展会」's tag, which WeCom does not have and was never sent, and counted the
    # comeback for 展会
    assert (_follow_tags(stack, follow.id), follow.channel_id) == (set(), None)


def test_sync_comeback_through_no_channel_is_no_channels(db, fresh_tenant):
    """Came through 展会 (state), removed, back through the member's own code while Siyu was
    down: the sync's follow_info has no state; import_customer had passed follow.state, the
    first channel's, and the comeback stayed 展会's (record_added's path makes it None)."""
    ext = "wm" + secrets.token_hex(6)
    state = "ch" + secrets.token_hex(4)
    with db.tenant_session(fresh_tenant) as s:
        s.add(Channel(name="展会" + state, state=state, config_id="c" + state))
    info = {"userid": "zhangsan", "createtime": 1764900000, "add_way": 1, "state": state}
    contact = {"external_contact": {"external_userid": ext, "name": "钱女士"}, "follow_user": [info]}
    with db.tenant_session(fresh_tenant) as s:
        service.record_added(s, _event("add_external_contact", ext, 1764900000, State=state), contact)
    with db.tenant_session(fresh_tenant) as s:
        service.record_follow_ended(s, _event("del_follow_user", ext, 1764900100), "lost")
    with db.tenant_session(fresh_tenant) as s:
        f = s.scalar(select(Follow).join(Customer).where(Customer.external_userid == ext))
        assert f.status == "lost" and f.channel_id is not None
    back = {"userid": "zhangsan", "createtime": 1764900200, "add_way": 1}  # own code: no state
    with db.tenant_session(fresh_tenant) as s:
        assert service.import_customer(s, {"external_userid": ext, "name": "钱女士"}, back)
    with db.tenant_session(fresh_tenant) as s:
        f = s.scalar(select(Follow).join(Customer).where(Customer.external_userid == ext))
        assert (f.status, f.channel_id) == ("active", None)
