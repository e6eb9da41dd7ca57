"""Callbacks over real HTTP: encrypted, signed, retried with identical XML; the events the
control API produces; welcome codes."""

from __future__ import annotations

import time

import httpx
from wechatpy.enterprise.crypto import WeChatCrypto

from siyu.emulator import create_emulator_app
from siyu.wecom.events import envelope_encrypt, parse_event
from tests.support.servers import serve
from tests.support.stack import wait_for

from .conftest import call, token


def _decrypt(corp: dict, post: dict) -> bytes:
    p = post["params"]
    return corp["crypto"].decrypt_callback(
        envelope_encrypt(post["body"]), p["msg_signature"], p["timestamp"], p["nonce"]
    )


def _scan(http, corp, config_id, name="王女士", **extra) -> dict:
    resp = http.post(
        f"/_emulator/corps/{corp['corp_id']}/scan",
        json={"config_id": config_id, "customer": {"name": name}, "wait": True, **extra},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def _way(http, tok, **extra) -> str:
    body = {"type": 1, "scene": 2, "user": ["zhangsan"], "state": "ch_spring", **extra}
    return call(http, "POST", "externalcontact/add_contact_way", tok, body)["config_id"]


def test_scan_delivers_add_external_contact(http, make_corp, receiver):
    corp = make_corp()
    tok = token(http, corp)
    result = _scan(http, corp, _way(http, tok), at=1700000000)
    assert result["delivery"]["status"] == "delivered" and result["delivery"]["attempt_count"] == 1
    (post,) = receiver.wait_for(corp["key"], 1)
    event = parse_event(_decrypt(corp, post))
    assert event.kind == "change_external_contact/add_external_contact"
    assert list(event.fields) == [
        "ToUserName",
        "FromUserName",
        "CreateTime",
        "MsgType",
        "Event",
        "ChangeType",
        "UserID",
        "ExternalUserID",
        "State",
        "WelcomeCode",
    ]
    assert event.get("ToUserName") == corp["corp_id"] and event.get("FromUserName") == "sys"
    assert event.create_time == 1700000000
    assert event.get("UserID") == "zhangsan" and event.get("ExternalUserID") == result["external_userid"]
    assert event.get("State") == "ch_spring" and event.get("WelcomeCode") == result["welcome_code"]
    # wechatpy's own decryptor accepts what the emulator sends.
    p = post["params"]
    wx = WeChatCrypto(corp["token"], corp["encoding_aes_key"], corp["corp_id"])
    assert (
        wx.decrypt_message(post["body"], p["msg_signature"], p["timestamp"], p["nonce"])
        == _decrypt(corp, post).decode()
    )
    # The contact is there, with the way's state.
    got = call(http, "GET", "externalcontact/get", tok, external_userid=result["external_userid"])
    assert got["external_contact"]["name"] == "王女士" and got["follow_user"][0]["state"] == "ch_spring"
    assert got["follow_user"][0]["add_way"] == 1 and got["follow_user"][0]["createtime"] == 1700000000


def test_way_without_state_and_unverified_way(http, make_corp, receiver):
    corp = make_corp()
    tok = token(http, corp)
    _scan(http, corp, _way(http, tok, state=""))
    _scan(http, corp, _way(http, tok, state="s2", skip_verify=False))
    plain, half = (parse_event(_decrypt(corp, p)) for p in receiver.wait_for(corp["key"], 2))
    assert "State" not in plain.fields and plain.get("WelcomeCode")
    assert (
        half.change_type == "add_half_external_contact"
        and half.get("State") == "s2"
        and half.get("WelcomeCode")
    )


def test_same_second_scans_are_distinct_events(http, make_corp, receiver):
    corp = make_corp()
    config_id = _way(http, token(http, corp))
    a = _scan(http, corp, config_id, name="甲", at=1700000100)
    b = _scan(http, corp, config_id, name="乙", at=1700000100)
    assert a["external_userid"] != b["external_userid"]
    first, second = (parse_event(_decrypt(corp, p)) for p in receiver.wait_for(corp["key"], 2))
    assert first.create_time == second.create_time and first.digest != second.digest


def test_retries_resend_identical_xml(http, make_corp, receiver):
    corp = make_corp()
    receiver.scripts[corp["key"]] = [500, 500]
    result = _scan(http, corp, _way(http, token(http, corp)))
    assert result["delivery"]["attempts"][0]["status_code"] == 500
    posts = receiver.wait_for(corp["key"], 3)
    assert (
        len({p["body"] for p in posts}) == 1 and len({tuple(sorted(p["params"].items())) for p in posts}) == 1
    )
    assert len({_decrypt(corp, p) for p in posts}) == 1
    deadline = time.monotonic() + 5
    while True:
        delivery = http.get(f"/_emulator/deliveries/{result['delivery_id']}").json()
        if delivery["status"] == "delivered" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert delivery["status"] == "delivered" and delivery["attempt_count"] == 3
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    # On demand, WeCom's retry again: the identical callback once more.
    again = http.post(f"/_emulator/redeliver/{result['delivery_id']}?wait=true").json()
    assert again["attempt_count"] == 4
    assert receiver.wait_for(corp["key"], 4)[-1]["body"] == posts[0]["body"]


def test_gives_up_after_three_retries(http, make_corp, receiver):
    corp = make_corp()
    receiver.scripts[corp["key"]] = [503] * 10
    result = _scan(http, corp, _way(http, token(http, corp)))
    receiver.wait_for(corp["key"], 4)
    # given up once the fourth answer is back (the receiver has the request a moment before)
    url = f"/_emulator/deliveries/{result['delivery_id']}"
    delivery = wait_for(lambda: (d := http.get(url).json())["status"] != "pending" and d)
    assert delivery["status"] == "failed" and delivery["attempt_count"] == 4
    assert len(receiver.posts[corp["key"]]) == 4


def test_welcome_code_single_use_and_expiry(http, make_corp):
    corp = make_corp(callback=False)
    tok = token(http, corp)
    config_id = _way(http, tok)
    first = _scan(http, corp, config_id)
    msg = {"welcome_code": first["welcome_code"], "text": {"content": "您好，我是张三"}}
    bad_image = {**msg, "attachments": [{"msgtype": "image", "image": {"media_id": "nope"}}]}
    assert call(http, "POST", "externalcontact/send_welcome_msg", tok, bad_image)["errcode"] == 40007
    too_many = {**msg, "attachments": [{"msgtype": "link", "link": {"title": "t", "url": "http://x"}}] * 10}
    assert call(http, "POST", "externalcontact/send_welcome_msg", tok, too_many)["errcode"] == 40035
    png = b"\x89PNG\r\n\x1a\n" + b"1" * 64
    media = http.post(
        "/cgi-bin/media/upload",
        params={"access_token": tok, "type": "image"},
        files={"media": ("w.png", png, "image/png")},
    ).json()
    good = {**msg, "attachments": [{"msgtype": "image", "image": {"media_id": media["media_id"]}}]}
    assert call(http, "POST", "externalcontact/send_welcome_msg", tok, good)["errcode"] == 0
    reused = call(http, "POST", "externalcontact/send_welcome_msg", tok, good)
    assert reused["errcode"] == 41051 and reused["errmsg"].startswith("externaluser has started chatting")

    second = _scan(http, corp, config_id, name="晚到的客户")
    http.post("/_emulator/clock", json={"advance_s": 21})
    late = call(
        http,
        "POST",
        "externalcontact/send_welcome_msg",
        tok,
        {"welcome_code": second["welcome_code"], "text": {"content": "hi"}},
    )
    assert late["errcode"] == 41050 and late["errmsg"].startswith("invalid welcome code")

    sent = http.get(f"/_emulator/corps/{corp['corp_id']}/welcome_messages").json()
    assert len(sent) == 1 and sent[0]["external_userid"] == first["external_userid"]
    assert sent[0]["userid"] == "zhangsan" and sent[0]["payload"]["text"]["content"] == "您好，我是张三"

    # After chatting, a re-add of the same pair carries no WelcomeCode.
    http.post(
        f"/_emulator/corps/{corp['corp_id']}/customers/{first['external_userid']}/remove_staff",
        json={"userid": "zhangsan"},
    ).raise_for_status()
    again = _scan(http, corp, config_id, customer={"name": "x", "external_userid": first["external_userid"]})
    assert again["welcome_code"] is None and "WelcomeCode" not in again["delivery"]["inner_xml"]


def test_member_and_customer_events(http, make_corp, receiver):
    corp = make_corp()
    cid = corp["corp_id"]
    tok = token(http, corp)
    config_id = _way(http, tok, type=2, user=["zhangsan", "lisi"])
    a, b = _scan(http, corp, config_id, name="甲"), _scan(http, corp, config_id, name="乙")
    assert (a["userid"], b["userid"]) == ("zhangsan", "lisi")  # round-robin over the way's members
    group = http.post(
        f"/_emulator/corps/{cid}/console/tags",
        json={"action": "create", "group_name": "等级", "tag": [{"name": "VIP"}], "wait": True},
    ).json()
    vip = group["tag_ids"][0]
    edit = http.post(
        f"/_emulator/corps/{cid}/remark",
        json={
            "userid": "zhangsan",
            "external_userid": a["external_userid"],
            "remark": "甲总",
            "add_tags": [vip],
            "wait": True,
        },
    ).json()
    assert edit["kind"] == "change_external_contact/edit_external_contact"
    follow = call(http, "GET", "externalcontact/get", tok, external_userid=a["external_userid"])[
        "follow_user"
    ][0]
    assert follow["remark"] == "甲总" and follow["tags"][0]["tag_id"] == vip
    http.post(
        f"/_emulator/corps/{cid}/staff/lisi/remove_customer",
        json={"external_userid": b["external_userid"], "by_transfer": True, "wait": True},
    ).raise_for_status()
    http.post(
        f"/_emulator/corps/{cid}/customers/{a['external_userid']}/remove_staff",
        json={"userid": "zhangsan", "wait": True},
    ).raise_for_status()
    http.post(
        f"/_emulator/corps/{cid}/transfer_fail",
        json={
            "userid": "lisi",
            "external_userid": a["external_userid"],
            "reason": "customer_refused",
            "wait": True,
        },
    ).raise_for_status()
    http.post(
        f"/_emulator/corps/{cid}/console/tags",
        json={"action": "update", "id": vip, "name": "SVIP", "wait": True},
    )
    http.post(
        f"/_emulator/corps/{cid}/console/tags",
        json={"action": "shuffle", "group_id": group["group_id"], "wait": True},
    )
    http.post(
        f"/_emulator/corps/{cid}/console/tags", json={"action": "delete", "tag_id": [vip], "wait": True}
    )
    events = [parse_event(_decrypt(corp, p)) for p in receiver.wait_for(corp["key"], 10)]
    kinds = [(e.kind, e.get("TagType")) for e in events]
    assert kinds == [
        ("change_external_contact/add_external_contact", ""),
        ("change_external_contact/add_external_contact", ""),
        ("change_external_tag/create", "tag_group"),
        ("change_external_contact/edit_external_contact", ""),
        ("change_external_contact/del_external_contact", ""),
        ("change_external_contact/del_follow_user", ""),
        ("change_external_contact/transfer_fail", ""),
        ("change_external_tag/update", "tag"),
        ("change_external_tag/shuffle", ""),
        ("change_external_tag/delete", "tag"),
    ]
    assert events[4].get("Source") == "DELETE_BY_TRANSFER" and "Source" not in events[5].fields
    assert events[6].get("FailReason") == "customer_refused"
    assert "TagType" not in events[8].fields and events[8].get("Id") == group["group_id"]
    assert list(events[7].fields)[5:] == ["Id", "TagType", "ChangeType"]


def test_verify_callback_url(http, make_corp):
    corp = make_corp()
    result = http.post(f"/_emulator/corps/{corp['corp_id']}/verify_callback").json()
    assert result["ok"] is True and result["got"] == result["expected"]


def test_slow_receiver_counts_as_failure_and_is_retried(receiver):
    # A separate emulator with a short callback timeout, so the test stays fast.
    with (
        serve(create_emulator_app(callback_timeout_s=0.3, retry_delay_s=0.05)) as url,
        httpx.Client(base_url=url) as h,
    ):
        corp = h.post(
            "/_emulator/corps",
            json={
                "name": "慢",
                "callback_url": f"{receiver.url}/cb/slow",
                "staff": [{"userid": "zhangsan", "name": "张三"}],
            },
        ).json()
        receiver.delays["slow"] = [1.0]
        tok = h.get(
            "/cgi-bin/gettoken", params={"corpid": corp["corp_id"], "corpsecret": corp["contact_secret"]}
        )
        tok = tok.json()["access_token"]
        config_id = call(
            h, "POST", "externalcontact/add_contact_way", tok, {"type": 1, "scene": 2, "user": ["zhangsan"]}
        )
        scan = h.post(
            f"/_emulator/corps/{corp['corp_id']}/scan",
            json={"config_id": config_id["config_id"], "customer": {"name": "等"}, "wait": True},
        ).json()
        assert scan["delivery"]["attempts"][0]["error"] == "timeout"
        posts = receiver.wait_for("slow", 2)
        assert posts[0]["body"] == posts[1]["body"]
