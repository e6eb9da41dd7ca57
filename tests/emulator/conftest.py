"""Fixtures: a real emulator and a real callback receiver, both under uvicorn on free ports."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from siyu.emulator import create_emulator_app
from siyu.wecom.crypto import WeComCrypto
from tests.support.servers import serve


class Receiver:
    """Records every callback POST per path; answers from a per-path script of status codes
    (then 200), and answers WeCom's GET echostr check when it knows the corp's crypto."""

    def __init__(self) -> None:
        self.posts: dict[str, list[dict]] = {}
        self.scripts: dict[str, list[int]] = {}
        self.delays: dict[str, list[float]] = {}  # per path: seconds to stall before answering
        self.cryptos: dict[str, WeComCrypto] = {}
        self.lock = threading.Lock()
        self.app = FastAPI()

        @self.app.post("/cb/{key}")
        async def callback(key: str, request: Request):
            body = (await request.body()).decode()
            with self.lock:
                self.posts.setdefault(key, []).append({"params": dict(request.query_params), "body": body})
                script = self.scripts.get(key) or []
                status = script.pop(0) if script else 200
                delays = self.delays.get(key) or []
                delay = delays.pop(0) if delays else 0
            if delay:
                await asyncio.sleep(delay)
            return Response("", status_code=status)

        @self.app.get("/cb/{key}")
        async def verify(key: str, request: Request):
            q = request.query_params
            plain = self.cryptos[key].verify_url(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
            return Response(plain, media_type="text/plain")

    def wait_for(self, key: str, count: int, timeout: float = 5.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = list(self.posts.get(key, []))
            if len(got) >= count:
                return got
            time.sleep(0.01)
        raise AssertionError(f"expected {count} callbacks on {key}, got {len(got)}")


@pytest.fixture(scope="package")
def emulator_url():
    app = create_emulator_app(retry_delay_s=0.05, callback_timeout_s=2.0)
    with serve(app) as url:
        yield url


@pytest.fixture(scope="package")
def receiver():
    rec = Receiver()
    with serve(rec.app) as url:
        rec.url = url
        yield rec


@pytest.fixture
def http(emulator_url):
    with httpx.Client(base_url=emulator_url, timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def _clear_faults(emulator_url):
    yield
    httpx.delete(f"{emulator_url}/_emulator/faults")


_keys = itertools.count(1)

STAFF = [
    {"userid": "zhangsan", "name": "张三", "department": [2], "mobile": "13800000001", "gender": 1},
    {"userid": "lisi", "name": "李四", "department": [2], "direct_leader": ["wangwu"]},
    {"userid": "wangwu", "name": "王五", "department": [3], "is_leader_in_dept": [1]},
]
DEPARTMENTS = [
    {"id": 1, "name": "总部", "parentid": 0},
    {"id": 2, "name": "销售部", "parentid": 1},
    {"id": 3, "name": "客服部", "parentid": 1},
]


@pytest.fixture
def make_corp(http, receiver):
    """Create a corp whose callbacks go to a fresh receiver path; returns its control data
    plus `key` (the receiver path) and `crypto` (to decrypt what it gets)."""

    def make(callback: bool = True, staff=None, departments=None) -> dict:
        key = f"c{next(_keys)}"
        body = {"name": "测试企业", "departments": departments or DEPARTMENTS, "staff": staff or STAFF}
        if callback:
            body["callback_url"] = f"{receiver.url}/cb/{key}"
        resp = http.post("/_emulator/corps", json=body)
        assert resp.status_code == 201, resp.text
        corp = resp.json()
        corp["key"] = key
        corp["crypto"] = WeComCrypto(corp["token"], corp["encoding_aes_key"], corp["corp_id"])
        receiver.cryptos[key] = corp["crypto"]
        return corp

    return make


def token(http, corp: dict, secret: str = "contact_secret") -> str:
    resp = http.get("/cgi-bin/gettoken", params={"corpid": corp["corp_id"], "corpsecret": corp[secret]})
    data = resp.json()
    assert data["errcode"] == 0, data
    return data["access_token"]


def call(http, method: str, api: str, tok: str, body: dict | None = None, **params) -> dict:
    params["access_token"] = tok
    resp = http.request(method, f"/cgi-bin/{api}", params=params, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()
