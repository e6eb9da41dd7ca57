"""The /cgi-bin API over real HTTP: tokens, errors, contacts, external contacts, tags, media,
app messages, faults and frequency limits."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.support.stack import wait_for

from .conftest import STAFF, call, token

ERRMSG = re.compile(
    r"^(?P<text>.+), hint: \[\d{20,}\], from ip: 127\.0\.0\.1, "
    r"more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=(?P<code>-?\d+)$"
)


def test_gettoken_errors_and_errmsg_format(http, make_corp):
    corp = make_corp(callback=False)
    bad_corp = http.get("/cgi-bin/gettoken", params={"corpid": "wwnope", "corpsecret": "x"}).json()
    assert bad_corp["errcode"] == 40013
    m = ERRMSG.match(bad_corp["errmsg"])
    assert m and m["code"] == "40013" and m["text"] == "invalid corpid"
    bad_secret = http.get("/cgi-bin/gettoken", params={"corpid": corp["corp_id"], "corpsecret": "x"}).json()
    assert bad_secret["errcode"] == 40001

    ok = http.get("/cgi-bin/gettoken", params={"corpid": corp["corp_id"], "corpsecret": corp["agent_secret"]})
    data = ok.json()
    assert data["errcode"] == 0 and data["errmsg"] == "ok" and data["expires_in"] == 7200
    # The same secret gets the same token while it is valid; another secret gets another.
    assert token(http, corp, "agent_secret") == data["access_token"]
    assert token(http, corp, "contact_secret") != data["access_token"]

    assert http.get("/cgi-bin/user/get", params={"userid": "lisi"}).json()["errcode"] == 41001
    invalid = http.get("/cgi-bin/user/get", params={"userid": "lisi", "access_token": "nope"}).json()
    assert invalid["errcode"] == 40014 and ERRMSG.match(invalid["errmsg"])


def test_token_expiry_by_control_and_by_clock(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp)
    assert call(http, "GET", "user/get", tok, userid="lisi")["name"] == "李四"
    assert http.post(f"/_emulator/corps/{corp['corp_id']}/expire_tokens").json()["expired"] >= 1
    assert call(http, "GET", "user/get", tok, userid="lisi")["errcode"] == 42001

    http.patch(f"/_emulator/corps/{corp['corp_id']}", json={"token_ttl": 60})
    tok = token(http, corp)
    assert call(http, "GET", "user/get", tok, userid="lisi")["errcode"] == 0
    http.post("/_emulator/clock", json={"advance_s": 61})
    assert call(http, "GET", "user/get", tok, userid="lisi")["errcode"] == 42001
    assert token(http, corp) != tok  # an expired token is replaced


def test_trusted_ips(http, make_corp):
    corp = make_corp(callback=False)
    http.patch(f"/_emulator/corps/{corp['corp_id']}", json={"trusted_ips": ["10.9.9.9"]})
    data = http.get(
        "/cgi-bin/gettoken", params={"corpid": corp["corp_id"], "corpsecret": corp["contact_secret"]}
    )
    assert data.json()["errcode"] == 60020
    assert "not allow to access from your ip" in data.json()["errmsg"]
    http.patch(f"/_emulator/corps/{corp['corp_id']}", json={"trusted_ips": ["127.0.0.1"]})
    assert token(http, corp)


def test_contacts(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp)
    depts = call(http, "GET", "department/list", tok)["department"]
    assert [d["id"] for d in depts] == [1, 2, 3]
    assert [d["id"] for d in call(http, "GET", "department/list", tok, id=2)["department"]] == [2]
    user = call(http, "GET", "user/get", tok, userid="zhangsan")
    assert user["department"] == [2] and user["gender"] == "1" and user["status"] == 1
    assert call(http, "GET", "user/get", tok, userid="ghost")["errcode"] == 60111
    assert [u["userid"] for u in call(http, "GET", "user/list", tok, department_id=2)["userlist"]] == [
        "zhangsan",
        "lisi",
    ]
    every = call(http, "GET", "user/simplelist", tok, department_id=1, fetch_child=1)["userlist"]
    assert {u["userid"] for u in every} == {"zhangsan", "lisi", "wangwu"}
    assert call(http, "GET", "user/list", tok, department_id=99)["errcode"] == 60003
    # A member who leaves disappears from the lists and from user/get.
    http.delete(f"/_emulator/corps/{corp['corp_id']}/staff/lisi")
    assert call(http, "GET", "user/get", tok, userid="lisi")["errcode"] == 60111
    assert "lisi" not in call(http, "GET", "externalcontact/get_follow_user_list", tok)["follow_user"]


def _way(http, tok, **extra) -> str:
    body = {"type": 2, "scene": 2, "user": ["zhangsan", "lisi"], **extra}
    data = call(http, "POST", "externalcontact/add_contact_way", tok, body)
    assert data["errcode"] == 0, data
    return data["config_id"]


def test_contact_way_crud_and_qr(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp)
    assert call(http, "POST", "externalcontact/add_contact_way", tok, {"scene": 2})["errcode"] == 41037
    too_long = call(
        http,
        "POST",
        "externalcontact/add_contact_way",
        tok,
        {"type": 1, "scene": 2, "user": ["lisi"], "state": "x" * 31},
    )
    assert too_long["errcode"] == 40035
    added = call(
        http,
        "POST",
        "externalcontact/add_contact_way",
        tok,
        {"type": 1, "scene": 2, "user": ["lisi"], "state": "channel-7", "skip_verify": True},
    )
    config_id = added["config_id"]
    assert added["qr_code"].endswith(f"/_emulator/qr/{config_id}.png")
    png = http.get(added["qr_code"])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    way = call(http, "POST", "externalcontact/get_contact_way", tok, {"config_id": config_id})["contact_way"]
    assert way["state"] == "channel-7" and way["user"] == ["lisi"] and way["type"] == 1
    assert (
        call(
            http,
            "POST",
            "externalcontact/update_contact_way",
            tok,
            {"config_id": config_id, "remark": "门店A"},
        )["errcode"]
        == 0
    )
    listed = call(http, "POST", "externalcontact/list_contact_way", tok, {})["contact_way"]
    assert {"config_id": config_id} in listed
    assert (
        call(http, "POST", "externalcontact/del_contact_way", tok, {"config_id": config_id})["errcode"] == 0
    )
    gone = call(http, "POST", "externalcontact/get_contact_way", tok, {"config_id": config_id})
    assert gone["errcode"] != 0


def test_a_contact_way_whose_member_left_takes_changes_that_do_not_send_the_members(http, make_corp):
    """REFERENCE 6.4: update_contact_way takes any of its fields; the members it is not sent
    stay as they are, one who left included; sent again with the leaver, they are refused."""
    corp = make_corp(callback=False)
    tok = token(http, corp)
    config_id = _way(http, tok, type=2, user=["zhangsan", "lisi"], state="s-left")
    http.delete(f"/_emulator/corps/{corp['corp_id']}/staff/lisi").raise_for_status()
    body = {"config_id": config_id, "remark": "门店B"}
    assert call(http, "POST", "externalcontact/update_contact_way", tok, body)["errcode"] == 0
    way = call(http, "POST", "externalcontact/get_contact_way", tok, {"config_id": config_id})["contact_way"]
    assert way["remark"] == "门店B" and way["user"] == ["zhangsan", "lisi"]
    body = {"config_id": config_id, "user": ["zhangsan", "lisi"]}
    assert call(http, "POST", "externalcontact/update_contact_way", tok, body)["errcode"] == 40003


def test_batch_get_by_user_pagination_and_clamp(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp)
    config_id = _way(http, tok, user=["zhangsan"], state="s1")
    for i in range(5):
        http.post(
            f"/_emulator/corps/{corp['corp_id']}/scan",
            json={"config_id": config_id, "customer": {"name": f"客户{i}"}},
        ).raise_for_status()
    seen, cursor, pages = [], "", 0
    while True:
        page = call(
            http,
            "POST",
            "externalcontact/batch/get_by_user",
            tok,
            {"userid_list": ["zhangsan"], "cursor": cursor, "limit": 2},
        )
        assert page["errcode"] == 0
        seen += [row["external_contact"]["name"] for row in page["external_contact_list"]]
        assert all(row["follow_info"]["state"] == "s1" for row in page["external_contact_list"])
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and seen == [f"客户{i}" for i in range(5)]
    big = call(
        http, "POST", "externalcontact/batch/get_by_user", tok, {"userid_list": ["zhangsan"], "limit": 500}
    )
    assert len(big["external_contact_list"]) == 5 and big["next_cursor"] == ""
    too_many = call(http, "POST", "externalcontact/batch/get_by_user", tok, {"userid_list": ["u"] * 101})
    assert too_many["errcode"] == 40032


def test_externalcontact_get_pages_follow_users_over_500(http, make_corp):
    staff = [{"userid": f"u{i:03d}", "name": f"员工{i}", "department": [1]} for i in range(501)]
    corp = make_corp(callback=False, staff=staff, departments=[{"id": 1, "name": "总部", "parentid": 0}])
    tok = token(http, corp)
    config_id = _way(http, tok, user=[], party=[1])
    for s in staff:
        http.post(
            f"/_emulator/corps/{corp['corp_id']}/scan",
            json={
                "config_id": config_id,
                "userid": s["userid"],
                "customer": {"name": "大客户", "external_userid": "wmBIG"},
            },
        ).raise_for_status()
    first = call(http, "GET", "externalcontact/get", tok, external_userid="wmBIG")
    assert len(first["follow_user"]) == 500 and first["next_cursor"]
    second = call(
        http, "GET", "externalcontact/get", tok, external_userid="wmBIG", cursor=first["next_cursor"]
    )
    assert len(second["follow_user"]) == 1 and second["next_cursor"] == ""
    assert call(http, "GET", "externalcontact/get", tok, external_userid="wmNOPE")["errcode"] == 40096


def test_remark_and_tags_via_api_emit_no_callbacks(http, make_corp, receiver):
    corp = make_corp()
    tok = token(http, corp)
    config_id = _way(http, tok, user=["zhangsan"])
    scan = http.post(
        f"/_emulator/corps/{corp['corp_id']}/scan",
        json={"config_id": config_id, "customer": {"name": "赵六"}, "wait": True},
    ).json()
    ext = scan["external_userid"]
    added = call(
        http,
        "POST",
        "externalcontact/add_corp_tag",
        tok,
        {"group_name": "意向", "tag": [{"name": "高"}, {"name": "低"}]},
    )
    group = added["tag_group"]
    high = group["tag"][0]["id"]
    assert group["group_name"] == "意向" and high.startswith("et")
    dup = call(
        http,
        "POST",
        "externalcontact/add_corp_tag",
        tok,
        {"group_id": group["group_id"], "tag": [{"name": "高"}]},
    )
    assert dup["errcode"] == 40071
    assert (
        call(
            http,
            "POST",
            "externalcontact/mark_tag",
            tok,
            {"userid": "zhangsan", "external_userid": ext, "add_tag": [high]},
        )["errcode"]
        == 0
    )
    not_customer = call(
        http,
        "POST",
        "externalcontact/mark_tag",
        tok,
        {"userid": "lisi", "external_userid": ext, "add_tag": [high]},
    )
    assert not_customer["errcode"] == 84061
    assert (
        call(
            http,
            "POST",
            "externalcontact/remark",
            tok,
            {"userid": "zhangsan", "external_userid": ext, "remark": "赵总", "remark_company": "赵氏"},
        )["errcode"]
        == 0
    )
    got = call(http, "GET", "externalcontact/get", tok, external_userid=ext)
    follow = got["follow_user"][0]
    assert follow["remark"] == "赵总" and follow["remark_corp_name"] == "赵氏"
    assert follow["tags"] == [{"group_name": "意向", "tag_name": "高", "tag_id": high, "type": 1}]
    tags = call(http, "POST", "externalcontact/get_corp_tag_list", tok, {"tag_id": [high]})["tag_group"]
    assert [t["name"] for t in tags[0]["tag"]] == ["高"]
    assert (
        call(http, "POST", "externalcontact/edit_corp_tag", tok, {"id": high, "name": "很高"})["errcode"] == 0
    )
    assert (
        call(http, "POST", "externalcontact/del_corp_tag", tok, {"group_id": [group["group_id"]]})["errcode"]
        == 0
    )
    assert call(http, "POST", "externalcontact/get_corp_tag_list", tok, {})["tag_group"] == []
    time.sleep(0.2)
    kinds = [d["kind"] for d in http.get(f"/_emulator/corps/{corp['corp_id']}/deliveries").json()]
    assert kinds == ["change_external_contact/add_external_contact"]  # nothing from the API calls


def test_media_upload(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    up = http.post(
        "/cgi-bin/media/upload",
        params={"access_token": tok, "type": "image"},
        files={"media": ("a.png", png, "image/png")},
    ).json()
    assert up["errcode"] == 0 and up["type"] == "image" and isinstance(up["created_at"], str)
    fetched = http.get("/cgi-bin/media/get", params={"access_token": tok, "media_id": up["media_id"]})
    assert fetched.content == png and "a.png" in fetched.headers["content-disposition"]
    wrong_part = http.post(
        "/cgi-bin/media/upload",
        params={"access_token": tok, "type": "image"},
        files={"file": ("a.png", png, "image/png")},
    ).json()
    assert wrong_part["errcode"] == 44001
    bad_type = http.post(
        "/cgi-bin/media/upload",
        params={"access_token": tok, "type": "gif"},
        files={"media": ("a.png", png, "image/png")},
    ).json()
    assert bad_type["errcode"] == 40005
    img = http.post(
        "/cgi-bin/media/uploadimg", params={"access_token": tok}, files={"media": ("b.png", png, "image/png")}
    ).json()
    assert img["errcode"] == 0 and http.get(img["url"]).content == png


def test_message_send(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp, "agent_secret")
    sent = call(
        http,
        "POST",
        "message/send",
        tok,
        {
            "touser": "zhangsan|Ghost",
            "msgtype": "text",
            "agentid": corp["agent_id"],
            "text": {"content": "客户等待回复"},
        },
    )
    assert sent["errcode"] == 0 and sent["invaliduser"] == "ghost" and sent["msgid"]
    card = call(
        http,
        "POST",
        "message/send",
        tok,
        {
            "touser": "lisi",
            "msgtype": "textcard",
            "agentid": corp["agent_id"],
            "textcard": {"title": "t", "description": "d", "url": "http://x"},
        },
    )
    assert card["errcode"] == 0 and "invaliduser" not in card
    none = call(
        http,
        "POST",
        "message/send",
        tok,
        {"touser": "ghost", "msgtype": "text", "agentid": corp["agent_id"], "text": {"content": "x"}},
    )
    assert none["errcode"] == 81013
    msgs = http.get(f"/_emulator/corps/{corp['corp_id']}/app_messages").json()
    assert [m["msgtype"] for m in msgs] == ["text", "textcard"] and msgs[0]["recipients"] == ["zhangsan"]


def test_an_app_message_to_a_member_without_an_account_license_is_not_delivered(http, make_corp):
    staff = [*STAFF, {"userid": "QianQi", "name": "钱七", "department": [2], "licensed": False}]
    corp = make_corp(callback=False, staff=staff)
    tok = token(http, corp)
    body = {"msgtype": "text", "agentid": corp["agent_id"], "text": {"content": "客户等待回复"}}
    both = call(http, "POST", "message/send", tok, {**body, "touser": "zhangsan|QianQi"})
    assert both["errcode"] == 0 and both["unlicenseduser"] == "qianqi" and "invaliduser" not in both
    alone = call(http, "POST", "message/send", tok, {**body, "touser": "QianQi"})
    assert alone["errcode"] == 0 and alone["unlicenseduser"] == "qianqi"
    msgs = http.get(f"/_emulator/corps/{corp['corp_id']}/app_messages").json()
    got = [(m["recipients"], m["unlicensed"]) for m in msgs]
    assert got == [(["zhangsan"], ["QianQi"]), ([], ["QianQi"])]


def test_a_textcard_is_recorded_as_wecom_shows_it_cut_past_its_limits(http, make_corp):
    """WeCom cuts a textcard's title past 128 bytes, its description past 512 bytes and its
    button past 4 characters, and says nothing: a test reading the card must see the cut one."""
    corp = make_corp(callback=False)
    tok = token(http, corp)
    description = '<div class="normal">' + "等" * 200 + '</div><div class="highlight">请尽快回复</div>'
    card = {"title": "标" * 50, "description": description, "url": "http://x", "btntxt": "立即去回复"}
    body = {"touser": "lisi", "msgtype": "textcard", "agentid": corp["agent_id"], "textcard": card}
    assert call(http, "POST", "message/send", tok, body)["errcode"] == 0  # no error: cut silently
    [sent] = http.get(f"/_emulator/corps/{corp['corp_id']}/app_messages").json()
    shown = sent["payload"]["textcard"]
    assert shown["title"] == "标" * 42  # 126 bytes: a character is never cut in half
    assert shown["description"] == description.encode()[:512].decode(errors="ignore")
    assert "请尽快回复" not in shown["description"]
    assert shown["btntxt"] == "立即去回"
    assert sent["truncated"] == ["title", "description", "btntxt"]


def test_app_messages_beyond_a_members_limits_are_dropped_silently(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp)

    def send(touser: str) -> dict:
        body = {
            "touser": touser,
            "msgtype": "text",
            "agentid": corp["agent_id"],
            "text": {"content": "客户等待"},
        }
        return call(http, "POST", "message/send", tok, body)

    answers = [send("zhangsan") for _ in range(31)]
    assert all(a["errcode"] == 0 and a["msgid"] for a in answers)  # WeCom does not say
    both = send("zhangsan|lisi")
    assert both["errcode"] == 0
    msgs = http.get(f"/_emulator/corps/{corp['corp_id']}/app_messages").json()
    assert [m["recipients"] for m in msgs[:30]] == [["zhangsan"]] * 30
    assert msgs[30]["recipients"] == [] and msgs[30]["dropped"] == ["zhangsan"]
    assert msgs[31]["recipients"] == ["lisi"] and msgs[31]["dropped"] == ["zhangsan"]
    http.post("/_emulator/clock", json={"advance_s": 61})  # a minute later he gets messages again
    send("zhangsan")
    last = http.get(f"/_emulator/corps/{corp['corp_id']}/app_messages").json()[-1]
    assert last["recipients"] == ["zhangsan"] and last["dropped"] == []


def test_an_app_message_asking_for_the_duplicate_check_is_not_delivered_twice_within_its_interval(
    http, make_corp
):
    corp = make_corp(callback=False)
    tok = token(http, corp)
    body = {
        "touser": "zhangsan",
        "msgtype": "text",
        "agentid": corp["agent_id"],
        "text": {"content": "客户等待"},
    }
    checked = {**body, "enable_duplicate_check": 1, "duplicate_check_interval": 600}
    first, again = (call(http, "POST", "message/send", tok, checked) for _ in range(2))
    assert first["errcode"] == again["errcode"] == 0 and again["msgid"] == first["msgid"]  # no error
    call(http, "POST", "message/send", tok, {**checked, "touser": "lisi"})  # another recipient: new
    for _ in range(2):  # not asking for the check: delivered each time
        call(http, "POST", "message/send", tok, body)
    http.post("/_emulator/clock", json={"advance_s": 601}).raise_for_status()
    call(http, "POST", "message/send", tok, checked)  # past the interval: delivered again
    msgs = http.get(f"/_emulator/corps/{corp['corp_id']}/app_messages").json()
    assert [m["recipients"] for m in msgs] == [
        ["zhangsan"],
        [],
        ["lisi"],
        ["zhangsan"],
        ["zhangsan"],
        ["zhangsan"],
    ]
    assert msgs[1]["duplicate_of"] == first["msgid"]


def test_app_messages_are_outside_the_per_corp_base_limit(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp)
    http.patch(f"/_emulator/corps/{corp['corp_id']}", json={"rate_limits": {"*": 2}}).raise_for_status()
    body = {"msgtype": "text", "agentid": corp["agent_id"], "text": {"content": "客户等待"}}
    sent = [call(http, "POST", "message/send", tok, {**body, "touser": u}) for u in ("zhangsan", "lisi") * 2]
    assert [a["errcode"] for a in sent] == [0, 0, 0, 0]
    assert [call(http, "GET", "user/get", tok, userid="lisi")["errcode"] for _ in range(3)] == [0, 0, 45009]


def test_faults_and_rate_limits(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp)
    http.post(
        "/_emulator/faults", json={"path": "/cgi-bin/user/get", "errcode": -1, "times": 2}
    ).raise_for_status()
    assert [call(http, "GET", "user/get", tok, userid="lisi")["errcode"] for _ in range(3)] == [-1, -1, 0]
    http.post("/_emulator/faults", json={"corp_id": corp["corp_id"], "path": "*", "errcode": 45009})
    limited = call(http, "GET", "department/list", tok)
    assert limited["errcode"] == 45009 and limited["errmsg"].startswith("api freq out of limit, hint: [")
    http.post("/_emulator/faults", json={"path": "/cgi-bin/user/get", "delay_s": 0.3})
    started = time.monotonic()
    assert call(http, "GET", "user/get", tok, userid="lisi")["errcode"] == 0
    assert time.monotonic() - started >= 0.3

    http.post("/_emulator/clock", json={"advance_s": 61})  # forget the calls above
    http.patch(f"/_emulator/corps/{corp['corp_id']}", json={"rate_limits": {"user/get": 2}})
    codes = [call(http, "GET", "user/get", tok, userid="lisi")["errcode"] for _ in range(3)]
    assert codes == [0, 0, 45009]
    assert call(http, "GET", "department/list", tok)["errcode"] == 0  # per API
    http.post("/_emulator/clock", json={"advance_s": 61})
    assert call(http, "GET", "user/get", tok, userid="lisi")["errcode"] == 0
    calls = http.get(f"/_emulator/corps/{corp['corp_id']}/calls").json()
    assert {"path": "/cgi-bin/user/get", "errcode": 45009} in [
        {"path": c["path"], "errcode": c["errcode"]} for c in calls
    ]


def test_customer_groups_answer_groupchat_get_and_their_changes_are_called_back(http, make_corp, receiver):
    corp = make_corp()
    tok = token(http, corp)
    config_id = _way(http, tok, user=["zhangsan"])
    ext = http.post(
        f"/_emulator/corps/{corp['corp_id']}/scan",
        json={"config_id": config_id, "customer": {"name": "钱七"}, "wait": True},
    ).json()["external_userid"]
    groups = f"/_emulator/corps/{corp['corp_id']}/group_chats"
    assert http.post(groups, json={"owner": "nobody"}).status_code == 400
    assert http.post(groups, json={"owner": "zhangsan", "members": ["stranger"]}).status_code == 400
    for bad in (
        {"owner": ["zhangsan"]},
        {"owner": "zhangsan", "members": [{"x": 1}]},
        {"owner": "zhangsan", "members": "lisi"},  # a list, not a string of characters
        {"owner": "zhangsan", "chat_id": 123},
        {"owner": "zhangsan", "name": 5},
    ):
        r = http.post(groups, json=bad)
        assert r.status_code == 400 and "must be" in r.text, (bad, r.text)
    made = http.post(
        groups,
        json={"owner": "zhangsan", "name": "老客户群", "members": [ext, "zhangsan", ext], "wait": True},
    )
    assert made.status_code == 201
    chat_id = made.json()["group_chat"]["chat_id"]
    got = call(http, "POST", "externalcontact/groupchat/get", tok, {"chat_id": chat_id, "need_name": 1})
    chat = got["group_chat"]
    assert (chat["name"], chat["owner"]) == ("老客户群", "zhangsan")
    assert [(m["userid"], m["type"]) for m in chat["member_list"]] == [("zhangsan", 1), (ext, 2)]
    assert call(http, "POST", "externalcontact/groupchat/get", tok, {"chat_id": "wrNope"})["errcode"] == 40050
    assert call(http, "POST", "externalcontact/groupchat/get", tok, {})["errcode"] == 40035
    assert http.patch(f"{groups}/{chat_id}", json={"name": "老客户群2", "wait": True}).status_code == 200
    assert http.delete(f"{groups}/{chat_id}", params={"wait": "true"}).status_code == 200
    assert call(http, "POST", "externalcontact/groupchat/get", tok, {"chat_id": chat_id})["errcode"] == 40050
    assert http.patch(f"{groups}/{chat_id}", json={"name": "x"}).status_code == 404
    deliveries = http.get(f"/_emulator/corps/{corp['corp_id']}/deliveries").json()
    changes = [d["inner_xml"] for d in deliveries if d["kind"].startswith("change_external_chat/")]
    assert len(changes) == 3 and all(chat_id in x for x in changes)
    assert "<UpdateDetail><![CDATA[change_name]]></UpdateDetail>" in changes[1]


def test_joins_and_leaves_are_called_back_with_who_and_how_as_wecom_does(http, make_corp):
    """REFERENCE 2.2: an update with add_member carries JoinScene (0 invited, 1 link, 3 QR
    code), one with del_member QuitScene (0 left, 1 removed), both MemChangeCnt and
    MemChangeList; groupchat/get lists the newcomer with its join_scene and invitor."""
    corp = make_corp()
    tok = token(http, corp)
    config_id = _way(http, tok, user=["zhangsan"])
    ext = http.post(
        f"/_emulator/corps/{corp['corp_id']}/scan",
        json={"config_id": config_id, "customer": {"name": "周九"}, "wait": True},
    ).json()["external_userid"]
    groups = f"/_emulator/corps/{corp['corp_id']}/group_chats"
    chat_id = http.post(groups, json={"owner": "zhangsan", "name": "体验群"}).json()["group_chat"]["chat_id"]
    joined = http.post(f"{groups}/{chat_id}/members", json={"members": [ext, "lisi"], "join_scene": 2})
    assert joined.status_code == 200, joined.text
    assert (
        "<UpdateDetail><![CDATA[add_member]]></UpdateDetail><JoinScene>1</JoinScene>"
        in joined.json()["inner_xml"]
    )
    assert (
        f"<MemChangeCnt>2</MemChangeCnt><MemChangeList><Item><![CDATA[{ext}]]></Item>"
        in joined.json()["inner_xml"]
    )
    listed = call(http, "POST", "externalcontact/groupchat/get", tok, {"chat_id": chat_id})["group_chat"]
    newcomer = next(m for m in listed["member_list"] if m["userid"] == ext)
    assert (newcomer["type"], newcomer["join_scene"], newcomer["invitor"]) == (2, 2, {"userid": "zhangsan"})
    assert http.post(f"{groups}/{chat_id}/members", json={"members": [ext]}).status_code == 409
    assert (
        http.post(f"{groups}/{chat_id}/members", json={"members": [ext], "join_scene": 4}).status_code == 400
    )
    left = http.post(f"{groups}/{chat_id}/leave", json={"members": [ext], "removed": True})
    assert left.status_code == 200, left.text
    xml = left.json()["inner_xml"]
    assert "<UpdateDetail><![CDATA[del_member]]></UpdateDetail><QuitScene>1</QuitScene>" in xml
    assert f"<MemChangeList><Item><![CDATA[{ext}]]></Item></MemChangeList>" in xml
    listed = call(http, "POST", "externalcontact/groupchat/get", tok, {"chat_id": chat_id})["group_chat"]
    assert [m["userid"] for m in listed["member_list"]] == ["zhangsan", "lisi"]
    assert http.post(f"{groups}/{chat_id}/leave", json={"members": ["zhangsan"]}).status_code == 400


def test_a_group_of_staff_only_is_told_by_the_archive_api_not_as_a_customer_group(http, make_corp):
    corp = make_corp()
    groups = f"/_emulator/corps/{corp['corp_id']}/group_chats"
    made = http.post(
        groups, json={"owner": "zhangsan", "name": "内部群", "members": ["lisi"], "internal": True}
    )
    assert made.status_code == 201 and made.json()["delivery"] is None  # no callback for staff-only groups
    room = made.json()["group_chat"]["chat_id"]
    archive_token, contact_token = token(http, corp, "archive_secret"), token(http, corp)
    told = call(http, "POST", "msgaudit/groupchat/get", archive_token, {"roomid": room})
    assert (told["roomname"], told["creator"]) == ("内部群", "zhangsan")
    assert [m["memid"] for m in told["members"]] == ["zhangsan", "lisi"]
    assert call(http, "POST", "msgaudit/groupchat/get", contact_token, {"roomid": room})["errcode"] == 48002
    assert (
        call(http, "POST", "externalcontact/groupchat/get", contact_token, {"chat_id": room})["errcode"]
        == 40050
    )
    assert (
        call(http, "POST", "msgaudit/groupchat/get", archive_token, {"roomid": "wrNope"})["errcode"] == 40050
    )
    config_id = _way(http, contact_token, user=["zhangsan"])
    ext = http.post(
        f"/_emulator/corps/{corp['corp_id']}/scan",
        json={"config_id": config_id, "customer": {"name": "孙八"}, "wait": True},
    ).json()["external_userid"]
    with_customer = http.post(groups, json={"owner": "zhangsan", "members": [ext], "internal": True})
    assert with_customer.status_code == 400 and "staff only" in with_customer.text


def test_a_customer_joining_a_group_of_staff_only_is_refused_as_when_it_is_made(http, make_corp):
    """A group of staff only cannot take a customer in later either: it would hold a customer
    that no callback told of, and groupchat/get would still not know it as a customer group."""
    corp = make_corp()
    groups = f"/_emulator/corps/{corp['corp_id']}/group_chats"
    room = http.post(groups, json={"owner": "zhangsan", "members": ["lisi"], "internal": True}).json()
    chat_id = room["group_chat"]["chat_id"]
    config_id = _way(http, token(http, corp), user=["zhangsan"])
    ext = http.post(
        f"/_emulator/corps/{corp['corp_id']}/scan",
        json={"config_id": config_id, "customer": {"name": "孙八"}, "wait": True},
    ).json()["external_userid"]
    joined = http.post(f"{groups}/{chat_id}/members", json={"members": [ext]})
    assert joined.status_code == 400 and "staff only" in joined.text
    told = call(
        http, "POST", "msgaudit/groupchat/get", token(http, corp, "archive_secret"), {"roomid": chat_id}
    )
    assert [m["memid"] for m in told["members"]] == ["zhangsan", "lisi"]
    assert http.post(f"{groups}/{chat_id}/members", json={"members": ["wangwu"]}).status_code == 200


def test_a_call_whose_client_gives_up_during_a_slow_answer_is_still_done(http, make_corp, emulator_url):
    """A sender that times out (or is killed) while WeCom is slow has sent its request whole:
    WeCom acts on it, so a message it retries is a second one. The emulator did not: it read
    the body only after the injected delay, found the client gone, logged a traceback and
    dropped the message, hiding such duplicates from the tests of Siyu's crash recovery."""
    corp = make_corp(callback=False)
    tok = token(http, corp, "agent_secret")
    fault = {"corp_id": corp["corp_id"], "path": "/cgi-bin/message/send", "delay_s": 1.0}
    assert http.post("/_emulator/faults", json=fault).status_code < 300
    body = {"touser": "zhangsan", "msgtype": "text", "agentid": corp["agent_id"], "text": {"content": "在吗"}}
    with pytest.raises(httpx.TimeoutException):  # the sender gives up before the answer
        httpx.post(
            f"{emulator_url}/cgi-bin/message/send", params={"access_token": tok}, json=body, timeout=0.2
        )
    assert http.get("/_emulator/faults").json() == []  # the slow answer had begun

    def sent():
        msgs = http.get(f"/_emulator/corps/{corp['corp_id']}/app_messages").json()
        return [m["recipients"] for m in msgs]

    assert wait_for(sent) == [["zhangsan"]]


def _way_to_zhangsan(http, tok) -> str:
    body = {"type": 1, "scene": 2, "user": ["zhangsan"], "state": "s"}
    return call(http, "POST", "externalcontact/add_contact_way", tok, body)["config_id"]


def _scanned(http, corp, config_id) -> dict:
    resp = http.post(
        f"/_emulator/corps/{corp['corp_id']}/scan",
        json={"config_id": config_id, "customer": {"name": "王女士"}, "wait": True},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_welcome_code_refused_once_the_pair_has_chatted(http, make_corp):
    """REFERENCE 3.2 / 7: 41051 "externaluser has started chatting": a WelcomeCode can no
    longer be used once member and customer chatted (the emulator had taken it all the same)."""
    corp = make_corp(callback=False)
    tok = token(http, corp)
    added = _scanned(http, corp, _way_to_zhangsan(http, tok))
    assert added["welcome_code"]
    # the member writes to the new customer first (a 1:1 message the archive records)
    resp = http.post(
        f"/_emulator/corps/{corp['corp_id']}/archive/messages",
        json={"from": "zhangsan", "tolist": [added["external_userid"]], "content": "您好"},
    )
    assert resp.status_code in (200, 201) and resp.json()["messages"][0]["archived"], resp.text
    answer = call(
        http,
        "POST",
        "externalcontact/send_welcome_msg",
        tok,
        {"welcome_code": added["welcome_code"], "text": {"content": "欢迎"}},
    )
    assert answer["errcode"] == 41051, answer


def test_check_single_agree_takes_only_the_official_field_name(http, make_corp):
    """REFERENCE 11.4: the request item is {userid, exteranalopenid} (WeCom's own misspelling).
    A client sending `external_userid` is refused, not told its pairs are Default_Agree."""
    corp = make_corp(callback=False)
    tok = token(http, corp, "archive_secret")
    answer = call(
        http,
        "POST",
        "msgaudit/check_single_agree",
        tok,
        {"info": [{"userid": "zhangsan", "external_userid": "wmXXXX"}]},
    )
    assert answer["errcode"] != 0, answer
