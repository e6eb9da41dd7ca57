"""Encrypted, signed callback delivery with WeCom's retry behaviour (REFERENCE.md 1.4, 1.5, 13.3).

Each event is encrypted once (WeComCrypto.encrypt_callback) and the exact same body and
query (msg_signature, timestamp, nonce) are resent on every retry, so a receiver that
dedupes on the inner XML sees identical bytes. An attempt succeeds only on HTTP 200 within
`callback_timeout_s`; otherwise it is retried after `retry_delay_s`, `max_retries` times.

Deliveries run as background tasks on the app's event loop; callers that want to see the
first attempt finish await `Delivery.first_attempt` (the control API's `wait` flag).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass, field

import httpx

from siyu.wecom.crypto import WeComCrypto
from siyu.wecom.events import event_xml

from .state import Corp, EmulatorConfig

_ids = itertools.count(1)


@dataclass
class Delivery:
    id: str
    corp_id: str
    kind: str  # Event/ChangeType, e.g. change_external_contact/add_external_contact
    inner_xml: str
    url: str
    body: str
    params: dict[str, str]
    created_at: float
    status: str = "pending"  # pending | delivered | failed | no_callback_url
    attempts: list[dict] = field(default_factory=list)
    first_attempt: asyncio.Event = field(default_factory=asyncio.Event)

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "corp_id": self.corp_id,
            "kind": self.kind,
            "url": self.url,
            "status": self.status,
            "attempt_count": len(self.attempts),
            "attempts": list(self.attempts),
            "created_at": self.created_at,
            "inner_xml": self.inner_xml,
        }


class Deliverer:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.log: dict[str, Delivery] = {}
        self._tasks: set[asyncio.Task] = set()
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self._client

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def emit(self, corp: Corp, fields: dict) -> Delivery:
        """Record the event and start delivering it in the background."""
        inner = event_xml(fields)
        kind = fields["Event"] + (f"/{fields['ChangeType']}" if fields.get("ChangeType") else "")
        crypto = WeComCrypto(corp.token, corp.encoding_aes_key, corp.corp_id)
        body, params = crypto.encrypt_callback(inner, corp.agent_id)
        delivery = Delivery(
            id=f"d{next(_ids)}",
            corp_id=corp.corp_id,
            kind=kind,
            inner_xml=inner,
            url=corp.callback_url,
            body=body,
            params=params,
            created_at=time.time(),
        )
        self.log[delivery.id] = delivery
        if not corp.callback_url:
            delivery.status = "no_callback_url"
            delivery.first_attempt.set()
            return delivery
        self._start(delivery)
        return delivery

    def redeliver(self, delivery: Delivery) -> None:
        """Send the identical callback again (the same body and query), with retries."""
        delivery.first_attempt = asyncio.Event()
        delivery.status = "pending"
        self._start(delivery)

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._run(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, delivery: Delivery) -> None:
        try:
            for attempt in range(self.config.max_retries + 1):
                if attempt:
                    await asyncio.sleep(self.config.retry_delay_s)
                ok = await self._attempt(delivery)
                delivery.first_attempt.set()
                if ok:
                    delivery.status = "delivered"
                    return
            delivery.status = "failed"
        finally:
            delivery.first_attempt.set()

    async def _attempt(self, delivery: Delivery) -> bool:
        started = time.time()
        record: dict = {"at": started, "status_code": None, "error": None}
        try:
            resp = await self._http().post(
                delivery.url,
                params=delivery.params,
                content=delivery.body.encode(),
                headers={"Content-Type": "text/xml"},
                timeout=self.config.callback_timeout_s,
            )
            record["status_code"] = resp.status_code
            ok = resp.status_code == 200
        except httpx.TimeoutException:
            record["error"] = "timeout"
            ok = False
        except httpx.HTTPError as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            ok = False
        record["duration_s"] = round(time.time() - started, 4)
        delivery.attempts.append(record)
        return ok

    def for_corp(self, corp_id: str) -> list[Delivery]:
        return [d for d in self.log.values() if d.corp_id == corp_id]


def header(corp: Corp, create_time: int, event: str) -> dict:
    """The common header of 客户联系 events, in the official samples' order."""
    return {
        "ToUserName": corp.corp_id,
        "FromUserName": "sys",
        "CreateTime": int(create_time),
        "MsgType": "event",
        "Event": event,
    }


async def echostr_check(url: str, crypto: WeComCrypto, timeout_s: float) -> dict:
    """WeCom's URL check (REFERENCE 1.3): GET url with an encrypted, signed echostr; the
    receiver must answer exactly the decrypted plaintext."""
    plain = str(secrets.randbelow(10**19))
    echostr = crypto.encrypt(plain)
    ts, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
    params = {
        "msg_signature": crypto.sign(ts, nonce, echostr),
        "timestamp": ts,
        "nonce": nonce,
        "echostr": echostr,
    }
    try:
        async with httpx.AsyncClient() as client:
            resp = await client.get(url, params=params, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    ok = resp.status_code == 200 and resp.text == plain
    return {"ok": ok, "status_code": resp.status_code, "expected": plain, "got": resp.text[:200]}
