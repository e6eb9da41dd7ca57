"""Callback crypto against known answers.

The two vectors below are the worked examples of WeCom's official WXBizMsgCrypt sample
(Sample.py / Sample.cpp / Sample.php, "使用示例一: 验证回调URL" and "使用示例二: 对用户回复的消息解密"),
which many SDKs reproduce in their own tests. Key, token and corp id are the sample's.
"""

from __future__ import annotations

import pytest

from siyu.wecom.crypto import DecryptError, InvalidSignature, WeComCrypto, WrongReceiver
from siyu.wecom.events import MalformedXML, envelope_encrypt, parse_event

TOKEN = "QDG6eK"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
CORP_ID = "wx5823bf96d3bd56c7"

VERIFY_ECHOSTR = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
POST_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYY"
    "vuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+"
    "LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcall"
    "crw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/"
    "T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
POST_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
    "<FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n"
    "<MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>"
)


@pytest.fixture
def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, CORP_ID)


def test_official_url_verification(crypto):
    sig = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
    assert crypto.verify_url(sig, "1409659589", "263014780", VERIFY_ECHOSTR) == "1616140317555161061"
    # re-encrypting with the sample's random prefix reproduces the ciphertext byte for byte
    assert crypto.encrypt("1616140317555161061", b"c41b64491c2468d0") == VERIFY_ECHOSTR
    with pytest.raises(InvalidSignature):
        crypto.verify_url(sig, "1409659589", "263014781", VERIFY_ECHOSTR)


def test_official_post_message(crypto):
    body = f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{POST_ENCRYPT}]]></Encrypt>\n<AgentID><![CDATA[218]]></AgentID>\n</xml>"  # noqa: E501
    plain = crypto.decrypt_callback(
        envelope_encrypt(body), "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149"
    )
    assert plain.decode() == POST_PLAINTEXT
    assert crypto.encrypt(plain, b"0960688932c47ef1") == POST_ENCRYPT
    event = parse_event(plain)
    assert event.get("Content") == "hello" and event.get("MsgId") == "4561255354251345929"


def test_round_trip_with_chinese_text_and_every_padding_length(crypto):
    for n in range(0, 70):
        message = "好" * n
        assert crypto.decrypt(crypto.encrypt(message)).decode() == message


def test_refusals(crypto):
    other_corp = WeComCrypto(TOKEN, AES_KEY, "wwSomebodyElse")
    with pytest.raises(WrongReceiver):
        crypto.decrypt(other_corp.encrypt("<xml/>"))
    with pytest.raises(DecryptError):
        crypto.decrypt("not base64 !!")
    with pytest.raises(DecryptError):
        crypto.decrypt("QUJD")  # 3 bytes: not a whole AES block
    with pytest.raises(MalformedXML):
        envelope_encrypt("<xml><Encrypt>")
    with pytest.raises(MalformedXML):
        parse_event(b'<!DOCTYPE x [<!ENTITY a "b">]><xml><MsgType>&a;</MsgType></xml>')  # defusedxml


def test_the_envelope_is_read_as_wecom_sends_it_and_a_body_of_repeated_elements_is_refused():
    encrypted = "QUJDREVGR0g="
    for body in (
        f"<xml><ToUserName><![CDATA[ww1]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>",
        f"\n  <xml><Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[1]]></AgentID></xml>\r\n",
        f"<xml><Encrypt>{encrypted}</Encrypt></xml>",  # not WeCom's CDATA: read by the XML parser
    ):
        assert envelope_encrypt(body) == encrypted
    # what an unsigned flood looks like: thousands of elements and no end (the expression
    # that read it once took seconds of the server's event loop before refusing it)
    with pytest.raises(MalformedXML):
        envelope_encrypt(b"<xml>" + b"<Encrypt><![CDATA[A]]></Encrypt>" * 8000)
    assert envelope_encrypt(b"<xml>" + b"<Encrypt><![CDATA[A]]></Encrypt>" * 8000 + b"</xml>") == "A"
