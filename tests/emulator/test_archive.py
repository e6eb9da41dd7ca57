"""The emulator's conversation archive, read through siyu.wecom.archive over real HTTP."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from siyu.emulator.world import CLOSINGS, QUESTIONS, World
from siyu.wecom.archive import (
    ArchiveError,
    HttpArchiveSource,
    check_single_agree,
    generate_key_pair,
    permit_users,
)
from siyu.wecom.client import WeComClient
from siyu.wecom.crypto import InvalidSignature, WeComCrypto, new_encoding_aes_key
from siyu.wecom.errors import WeComError, WeComNotPermitted
from siyu.wecom.events import parse_event
from tests.support.stack import wait_for

from .conftest import call, token


@pytest.fixture(scope="module")
def key_pairs():
    return {1: generate_key_pair(), 2: generate_key_pair()}


def upload(http, corp, ver, public_pem):
    resp = http.post(
        f"/_emulator/corps/{corp['corp_id']}/archive/keys",
        json={"publickey_ver": ver, "public_key_pem": public_pem},
    )
    assert resp.status_code == 201, resp.text


def post(http, corp, *messages) -> list[dict]:
    resp = http.post(
        f"/_emulator/corps/{corp['corp_id']}/archive/messages", json={"messages": list(messages)}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["messages"]


def fetch(url, corp, keys, after_seq=0, limit=1000, **kw):
    async def go():
        src = HttpArchiveSource(url, corp["corp_id"], corp["archive_secret"], keys, backoff_base=0.01, **kw)
        try:
            return await src.fetch(after_seq, limit)
        finally:
            await src.aclose()

    return asyncio.run(go())


def text(sender, to, content, **extra) -> dict:
    return {"from": sender, "tolist": [to], "msgtype": "text", "text": {"content": content}, **extra}


def test_messages_come_back_decrypted_in_seq_order(emulator_url, http, make_corp, key_pairs):
    corp = make_corp(callback=False)
    upload(http, corp, 1, key_pairs[1][1])
    image = {"md5sum": "0" * 32, "filesize": 1024, "sdkfileid": "CtYBMzA2OTAyMDEwMjA0NjIz"}
    stored = post(
        http,
        corp,
        text("wmCustomer1", "zhangsan", "需要报价", msgtime=1700000000000),
        text("zhangsan", "wmCustomer1", "您好，报价单稍后发您"),
        {"from": "wmCustomer1", "tolist": ["zhangsan"], "msgtype": "image", "image": image},
    )
    assert [s["seq"] for s in stored] == [1, 2, 3] and all(s["archived"] for s in stored)
    recall = post(
        http, corp, {"action": "recall", "msgtype": "revoke", "revoke": {"pre_msgid": stored[1]["msgid"]}}
    )
    assert recall[0]["seq"] == 4

    got = fetch(emulator_url, corp, {1: key_pairs[1][0]})
    assert [m.seq for m in got] == [1, 2, 3, 4]
    assert [m.msgid for m in got] == [s["msgid"] for s in stored + recall]
    first = got[0].message
    assert first["text"] == {"content": "需要报价"} and first["msgtime"] == 1700000000000
    assert first["action"] == "send" and first["roomid"] == "" and first["tolist"] == ["zhangsan"]
    assert got[1].message["msgtime"] > 1700000000000  # defaults to the emulator clock, in ms
    assert got[2].message["image"] == image
    revoke = got[3].message
    assert revoke["action"] == "recall" and revoke["msgtype"] == "revoke"
    assert revoke["revoke"] == {"pre_msgid": stored[1]["msgid"]}
    assert revoke["from"] == "zhangsan" and revoke["tolist"] == ["wmCustomer1"]

    assert [m.seq for m in fetch(emulator_url, corp, {1: key_pairs[1][0]}, after_seq=1, limit=2)] == [2, 3]
    assert fetch(emulator_url, corp, {1: key_pairs[1][0]}, after_seq=4) == []

    # What goes over the wire is the SDK's GetChatData shape, encrypted.
    tok = token(http, corp, "archive_secret")
    raw = call(http, "POST", "msgaudit/emulator_get_chat_data", tok, {"seq": 0, "limit": 10})
    item = raw["chatdata"][0]
    assert set(item) == {"seq", "msgid", "publickey_ver", "encrypt_random_key", "encrypt_chat_msg"}
    assert item["publickey_ver"] == 1 and "需要报价" not in str(item)
    assert (
        call(http, "POST", "msgaudit/emulator_get_chat_data", tok, {"seq": 0, "limit": 1001})["errcode"]
        == 10000
    )
    # Only the archive secret's token may read the archive.
    other = token(http, corp, "contact_secret")
    assert call(http, "POST", "msgaudit/emulator_get_chat_data", other, {"seq": 0})["errcode"] == 48002
    with pytest.raises(ArchiveError) as err:
        fetch(emulator_url, {**corp, "archive_secret": corp["contact_secret"]}, {1: key_pairs[1][0]})
    assert err.value.code == 48002


def test_decrypt_endpoint_refuses_wrong_keys(emulator_url, http, make_corp, key_pairs):
    corp = make_corp(callback=False)
    upload(http, corp, 1, key_pairs[1][1])
    post(http, corp, text("wmX", "zhangsan", "有现货吗"))
    item = call(
        http, "POST", "msgaudit/emulator_get_chat_data", token(http, corp, "archive_secret"), {"seq": 0}
    )["chatdata"][0]
    url = f"{emulator_url}/cgi-bin/msgaudit/emulator_decrypt"
    wrong = httpx.post(
        url, json={"encrypt_key": "x" * 32, "encrypt_chat_msg": item["encrypt_chat_msg"]}
    ).json()
    assert wrong["errcode"] == 10006
    empty = httpx.post(url, json={"encrypt_key": "", "encrypt_chat_msg": item["encrypt_chat_msg"]}).json()
    assert empty["errcode"] == 10008


def test_key_versions_and_missing_keys(emulator_url, http, make_corp, key_pairs):
    corp = make_corp(callback=False)
    post(http, corp, text("wmA", "zhangsan", "在吗"))  # stored before any key: sealed when fetched
    tok = token(http, corp, "archive_secret")
    assert call(http, "POST", "msgaudit/emulator_get_chat_data", tok, {"seq": 0})["errcode"] == 10004
    upload(http, corp, 1, key_pairs[1][1])
    post(http, corp, text("wmA", "zhangsan", "需要报价"))
    upload(http, corp, 2, key_pairs[2][1])
    post(http, corp, text("zhangsan", "wmA", "稍等"))
    both = {v: key_pairs[v][0] for v in (1, 2)}
    got = fetch(emulator_url, corp, both)
    assert [m.message["text"]["content"] for m in got] == ["在吗", "需要报价", "稍等"]
    items = call(http, "POST", "msgaudit/emulator_get_chat_data", tok, {"seq": 0})["chatdata"]
    # Sealed when stored, with the key version current then; the keyless one when first read.
    assert [i["publickey_ver"] for i in items] == [2, 1, 2]
    with pytest.raises(ArchiveError) as err:
        fetch(emulator_url, corp, {2: key_pairs[2][0]})
    assert err.value.code == 10007 and err.value.seq == 2 and "publickey_ver 1" in str(err.value)


def test_faults_on_the_chatdata_endpoint(emulator_url, http, make_corp, key_pairs):
    corp = make_corp(callback=False)
    upload(http, corp, 1, key_pairs[1][1])
    post(http, corp, text("wmA", "zhangsan", "什么时候发货"))
    path = "/cgi-bin/msgaudit/emulator_get_chat_data"
    http.post(
        "/_emulator/faults", json={"corp_id": corp["corp_id"], "path": path, "errcode": 10001, "times": 2}
    )
    assert [m.seq for m in fetch(emulator_url, corp, {1: key_pairs[1][0]})] == [1]
    calls = [c for c in http.get(f"/_emulator/corps/{corp['corp_id']}/calls").json() if c["path"] == path]
    assert [c["errcode"] for c in calls] == [10001, 10001, 0]
    http.post("/_emulator/faults", json={"corp_id": corp["corp_id"], "path": path, "errcode": 10009})
    with pytest.raises(ArchiveError) as err:
        fetch(emulator_url, corp, {1: key_pairs[1][0]})
    assert err.value.code == 10009 and not err.value.retryable


def test_a_decrypt_answer_whose_errcode_is_no_number_is_an_archive_error(key_pairs):
    """It had raised a bare ValueError, naming neither the call nor what it answered."""
    from starlette.responses import JSONResponse

    from siyu.emulator import create_emulator_app
    from tests.support.servers import serve

    emulator = create_emulator_app()

    async def answering_busy(scope, receive, send):  # the emulator, but its decrypt says "busy"
        if scope["type"] == "http" and scope["path"].endswith("/msgaudit/emulator_decrypt"):
            await JSONResponse({"errcode": "busy", "errmsg": "?"})(scope, receive, send)
        else:
            await emulator(scope, receive, send)

    with serve(answering_busy) as url, httpx.Client(base_url=url, timeout=10) as own:
        body = {"name": "测试企业", "departments": [{"id": 1, "name": "总部"}], "staff": []}
        corp = own.post("/_emulator/corps", json=body).json()
        upload(own, corp, 1, key_pairs[1][1])
        post(own, corp, text("wmA", "zhangsan", "什么时候发货"))
        with pytest.raises(ArchiveError) as err:
            fetch(url, corp, {1: key_pairs[1][0]}, retries=0)
    assert "emulator_decrypt answered an errcode that is no number" in str(err.value)


def archive_crypto(corp) -> WeComCrypto:
    return WeComCrypto(corp["archive_token"], corp["archive_encoding_aes_key"], corp["corp_id"])


def _notifies(receiver, corp, key=None) -> list[dict]:
    with receiver.lock:
        posts = list(receiver.posts.get(key or corp["key"], []))
    out = []
    for p in posts:
        encrypted = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", p["body"]).group(1)
        q = p["params"]
        # Signed and encrypted with the 会话存档 app's own pair, not the corp's main one.
        with pytest.raises(InvalidSignature):
            corp["crypto"].decrypt_callback(encrypted, q["msg_signature"], q["timestamp"], q["nonce"])
        inner = archive_crypto(corp).decrypt_callback(
            encrypted, q["msg_signature"], q["timestamp"], q["nonce"]
        )
        out.append({"event": parse_event(inner), "body": p["body"]})
    return out


def test_msgaudit_notify_is_delivered_and_throttled(http, make_corp, receiver, key_pairs):
    corp = make_corp(callback=True)
    cid = corp["corp_id"]
    # The archive's callback goes to its own URL when one is set.
    patched = http.patch(
        f"/_emulator/corps/{cid}",
        json={
            "archive_callback_url": f"{receiver.url}/cb/{corp['key']}",
            "callback_url": "",
            "archive_notify_interval_s": 3.0,
        },
    ).json()
    assert patched["archive_notify_interval_s"] == 3.0 and patched["archive_secret"]
    post(http, corp, text("wmA", "zhangsan", "需要报价"))
    receiver.wait_for(corp["key"], 1)
    got_first = time.monotonic()  # (the window began a moment before: when it was sent)
    (first,) = _notifies(receiver, corp)
    event = first["event"]
    assert event.event == "msgaudit_notify"
    assert event.get("AgentID") == "2000004" and event.get("ToUserName") == cid
    assert event.get("FromUserName") == "sys" and event.get("MsgType") == "event"
    assert "<AgentID><![CDATA[2000004]]></AgentID>" in first["body"]

    # the window is 3 s, though 1 s would do, so that a loaded machine's stalls (here, before
    # the posts; or between the first notify and `got_first`) do not run it out
    post(http, corp, text("zhangsan", "wmA", "稍等"))
    post(http, corp, text("wmA", "zhangsan", "好的谢谢"))
    time.sleep(0.4)
    assert len(_notifies(receiver, corp)) == 1  # still inside the window
    receiver.wait_for(corp["key"], 2, timeout=10)
    assert time.monotonic() - got_first >= 1.5  # not before the window's end
    time.sleep(1.3)
    assert len(_notifies(receiver, corp)) == 2  # no new messages: no notify
    summary = http.get(f"/_emulator/corps/{cid}/archive").json()
    assert summary["notified_seq"] == 3 and len(summary["notifies"]) == 2
    kinds = [d["kind"] for d in http.get(f"/_emulator/corps/{cid}/deliveries").json()]
    assert kinds == ["msgaudit_notify", "msgaudit_notify"]


def test_the_archive_callback_has_its_own_pair_and_url_check(http, make_corp, receiver, key_pairs):
    """The 会话存档 app's callback: its own URL, Token and EncodingAESKey (generated, or set
    like an admin types them), WeCom's echostr check with that pair; no URL, no notify."""
    corp = make_corp(callback=True)
    cid = corp["corp_id"]
    assert corp["archive_token"] and corp["archive_token"] != corp["token"]
    assert corp["archive_encoding_aes_key"] != corp["encoding_aes_key"]
    http.patch(f"/_emulator/corps/{cid}", json={"archive_notify_interval_s": 0.2})
    post(http, corp, text("wmA", "zhangsan", "在吗"))  # no archive callback URL yet
    (skipped,) = wait_for(lambda: http.get(f"/_emulator/corps/{cid}/deliveries").json())
    assert receiver.posts.get(corp["key"], []) == []  # nothing went to the main callback URL
    assert skipped["kind"] == "msgaudit_notify" and skipped["status"] == "no_callback_url"
    bad = http.patch(f"/_emulator/corps/{cid}", json={"archive_encoding_aes_key": "short"})
    assert bad.status_code == 422
    akey = f"{corp['key']}a"
    new_token = "ArchiveToken123"
    new_key = new_encoding_aes_key()
    patched = http.patch(
        f"/_emulator/corps/{cid}",
        json={
            "archive_callback_url": f"{receiver.url}/cb/{akey}",
            "archive_token": new_token,
            "archive_encoding_aes_key": new_key,
        },
    ).json()
    assert (patched["archive_token"], patched["archive_encoding_aes_key"]) == (new_token, new_key)
    corp.update(archive_token=new_token, archive_encoding_aes_key=new_key)
    receiver.cryptos[akey] = archive_crypto(corp)
    check = http.post(f"/_emulator/corps/{cid}/archive/verify_callback").json()
    assert check["ok"] is True, check
    receiver.cryptos[akey] = corp["crypto"]  # a receiver that checks with the main pair fails
    assert http.post(f"/_emulator/corps/{cid}/archive/verify_callback").json()["ok"] is False
    time.sleep(0.25)
    post(http, corp, text("wmA", "zhangsan", "在吗？"))
    receiver.wait_for(akey, 1)
    (notify,) = _notifies(receiver, corp, akey)
    assert notify["event"].event == "msgaudit_notify"
    assert receiver.posts.get(corp["key"], []) == []


def test_permit_list_and_agreements(emulator_url, http, make_corp, key_pairs):
    corp = make_corp(callback=False)
    cid = corp["corp_id"]
    upload(http, corp, 1, key_pairs[1][1])

    async def api_calls():
        async with WeComClient(cid, corp["archive_secret"], base_url=emulator_url) as client:
            everyone = await permit_users(client)
            http.put(f"/_emulator/corps/{cid}/archive/permit", json={"userids": ["zhangsan"]})
            permitted = await permit_users(client, type=1)
            pairs = [("zhangsan", "wmAgree"), ("lisi", "wmNo"), ("zhangsan", "wmNew")]
            agree = await check_single_agree(client, pairs)
            return everyone, permitted, agree

    for userid, ext, ok in (("zhangsan", "wmAgree", True), ("lisi", "wmNo", False)):
        resp = http.post(
            f"/_emulator/corps/{cid}/archive/agree",
            json={
                "userid": userid,
                "external_userid": ext,
                "agree": ok,
                "at": 1700000000,
                "msgid": f"c-{ext}",
            },
        )
        assert resp.status_code == 200, resp.text
    # the same msgid again: refused before anything is recorded (lisi's answer stays 不同意)
    again = {"userid": "lisi", "external_userid": "wmNo", "agree": True, "msgid": "c-wmNo"}
    assert http.post(f"/_emulator/corps/{cid}/archive/agree", json=again).status_code == 409
    everyone, permitted, agree = asyncio.run(api_calls())
    assert sorted(everyone) == ["lisi", "wangwu", "zhangsan"]
    assert permitted == ["zhangsan"]
    assert [(a["userid"], a["exteranalopenid"], a["agree_status"]) for a in agree] == [
        ("zhangsan", "wmAgree", "Agree"),
        ("lisi", "wmNo", "Disagree"),
        ("zhangsan", "wmNew", "Default_Agree"),
    ]
    assert agree[0]["status_change_time"] == 1700000000 and agree[0]["external_userid"] == "wmAgree"

    # With a permit list, chats of members outside it are not archived.
    stored = post(http, corp, text("wmC", "lisi", "有现货吗"), text("wmC", "zhangsan", "有现货吗"))
    assert [s["archived"] for s in stored] == [False, True]
    got = fetch(emulator_url, corp, {1: key_pairs[1][0]})
    assert [m.message["msgtype"] for m in got] == ["agree", "disagree", "text"]
    assert got[0].message["agree"] == {"userid": "wmAgree", "agree_time": 1700000000000}
    assert got[2].message["tolist"] == ["zhangsan"]

    # A customer who said no: nothing more of that 1:1 chat is archived, either way, until
    # they agree again (other members' chats with them are not concerned).
    http.put(f"/_emulator/corps/{cid}/archive/permit", json={"userids": ["zhangsan", "lisi"]})
    declined = post(http, corp, text("wmNo", "lisi", "还在吗"), text("wmNo", "zhangsan", "在吗"))
    assert [s["archived"] for s in declined] == [False, True]
    reply = {"from": "lisi", "tolist": ["wmNo"], "msgtype": "text", "text": {"content": "在的"}}
    assert post(http, corp, reply)[0]["archived"] is False
    back = {"userid": "lisi", "external_userid": "wmNo", "agree": True, "msgid": "c-wmNo-2"}
    assert http.post(f"/_emulator/corps/{cid}/archive/agree", json=back).status_code == 200
    assert post(http, corp, text("wmNo", "lisi", "现在可以了"))[0]["archived"] is True

    # Faults work on the msgaudit APIs like on any /cgi-bin path.
    http.post(
        "/_emulator/faults",
        json={"corp_id": cid, "path": "/cgi-bin/msgaudit/get_permit_user_list", "errcode": 60020},
    )

    async def faulty():
        async with WeComClient(cid, corp["archive_secret"], base_url=emulator_url) as client:
            with pytest.raises(WeComError) as err:
                await permit_users(client)
            assert err.value.errcode == 60020
        async with WeComClient(cid, corp["contact_secret"], base_url=emulator_url) as client:
            with pytest.raises(WeComNotPermitted):
                await check_single_agree(client, [("zhangsan", "wmAgree")])

    asyncio.run(faulty())


def _chat_corp(http, make_corp, key_pair) -> dict:
    corp = make_corp(callback=False)
    tok = token(http, corp)
    call(
        http,
        "POST",
        "externalcontact/add_contact_way",
        tok,
        {"type": 2, "scene": 2, "user": ["zhangsan", "lisi"]},
    )
    upload(http, corp, 1, key_pair[1])
    return corp


async def _chat_story(url, corp_id, seed) -> list[dict]:
    world = World(url, corp_id, seed=seed, weights={"scan": 0.25, "chat": 0.75}, chat_step_s=60)
    try:
        await world.run(steps=60, rate=0)
    finally:
        await world.close()
    return world.log


def test_world_chats_deterministically(emulator_url, http, make_corp, key_pairs):
    a = _chat_corp(http, make_corp, key_pairs[1])
    b = _chat_corp(http, make_corp, key_pairs[1])
    story = asyncio.run(_chat_story(emulator_url, a["corp_id"], 11))
    assert story == asyncio.run(_chat_story(emulator_url, b["corp_id"], 11))

    chats = [e for e in story if e["action"] == "chat"]
    kinds = {e["kind"] for e in chats}
    assert (
        {"question", "thanks", "quiet"}
        <= kinds
        <= {"question", "photo", "recalled", "thanks", "quiet", "agree", "disagree"}
    )
    asking = ("question", "photo", "recalled")
    speeds = {e["reply"] for e in chats if e["kind"] in asking}
    assert {"fast", "never"} <= speeds
    replies = [e for e in story if e["action"] == "staff_reply"]
    assert replies
    questions = {e["msgid"]: e for e in chats if e["kind"] in asking}
    for reply in replies:
        asked = questions[reply["to_msgid"]]
        assert asked["reply"] != "never" and reply["delay_s"] == asked["reply_delay_s"]
        assert story.index(reply) > story.index(asked)

    got = fetch(emulator_url, a, {1: key_pairs[1][0]})
    by_id = {m.msgid: m.message for m in got}
    said = [e["msgid"] for e in chats if e["kind"] != "quiet"] + [e["msgid"] for e in replies]
    said += [m for e in chats if e["kind"] == "recalled" for m in (e["recalled"], e["recall"])]
    assert len(got) == len(said) and set(by_id) == set(said)
    all_questions = {q for qs in QUESTIONS.values() for q in qs}
    for e in chats:
        msg = by_id.get(e.get("msgid"), {})
        if e["kind"] in ("question", "recalled"):
            assert msg["from"] == e["external_userid"] and msg["text"]["content"] in all_questions
        if e["kind"] == "recalled":
            assert by_id[e["recalled"]]["text"]["content"] in all_questions
            assert by_id[e["recall"]]["action"] == "recall"
            assert by_id[e["recall"]]["revoke"] == {"pre_msgid": e["recalled"]}
        elif e["kind"] == "photo":
            assert msg["msgtype"] == "image" and msg["image"]["sdkfileid"]
        elif e["kind"] in ("agree", "disagree"):  # answered through the consent route: recorded too
            assert msg["msgtype"] == e["kind"] and msg[e["kind"]]["userid"] == e["external_userid"]
            assert msg["from"] == e["external_userid"] and msg["tolist"] == [e["userid"]]
        elif e["kind"] == "thanks":
            assert msg["text"]["content"] in CLOSINGS
    for r in replies:
        msg, asked = by_id[r["msgid"]], by_id[r["to_msgid"]]
        assert msg["from"] == r["userid"] and msg["tolist"] == [r["external_userid"]]
        assert msg["msgtime"] - asked["msgtime"] == pytest.approx(r["delay_s"] * 1000, abs=1)
    msgtimes = [m.message["msgtime"] for m in got]
    assert msgtimes == sorted(msgtimes)  # replies are posted at their due time, in order
