"""An independent client: wechatpy's enterprise WeChatClient works against the emulator.

wechatpy 1.8.18 reads its base URL from the `API_BASE_URL` class attribute, but its
`fetch_access_token` hard-codes https://qyapi.weixin.qq.com/cgi-bin/gettoken, so the
subclass points both at the emulator and changes nothing else.
"""

from __future__ import annotations

from wechatpy.enterprise import WeChatClient


def _client(base: str, corp: dict, secret: str):
    class EmulatedClient(WeChatClient):
        API_BASE_URL = f"{base}/cgi-bin/"

        def fetch_access_token(self):
            return self._fetch_access_token(
                url=f"{self.API_BASE_URL}gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret}
            )

    return EmulatedClient(corp["corp_id"], corp[secret])


def test_wechatpy_client_against_emulator(emulator_url, http, make_corp):
    corp = make_corp(callback=False)
    contact = _client(emulator_url, corp, "contact_secret")
    assert contact.user.get("zhangsan")["name"] == "张三"
    assert [d["name"] for d in contact.department.get()] == ["总部", "销售部", "客服部"]
    way = contact.external_contact.add_contact_way(type=1, scene=2, user=["zhangsan"], state="wx_test")
    assert way["config_id"] and way["qr_code"]
    scan = http.post(
        f"/_emulator/corps/{corp['corp_id']}/scan",
        json={"config_id": way["config_id"], "customer": {"name": "孙七", "gender": 2}},
    ).json()
    got = contact.external_contact.get(scan["external_userid"])
    assert got["external_contact"]["name"] == "孙七" and got["follow_user"][0]["state"] == "wx_test"
    assert contact.external_contact.list("zhangsan")["external_userid"] == [scan["external_userid"]]

    app = _client(emulator_url, corp, "agent_secret")
    sent = app.message.send_text(corp["agent_id"], ["zhangsan", "lisi"], "有客户在等你回复")
    assert sent["errcode"] == 0
    messages = http.get(f"/_emulator/corps/{corp['corp_id']}/app_messages").json()
    assert messages[-1]["payload"]["text"]["content"] == "有客户在等你回复"

    # wechatpy refreshes its token on 42001 and retries, transparently.
    http.post(f"/_emulator/corps/{corp['corp_id']}/expire_tokens")
    assert contact.user.get("lisi")["name"] == "李四"
