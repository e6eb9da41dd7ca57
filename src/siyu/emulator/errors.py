"""WeCom-shaped errors (REFERENCE.md section 3.2).

Every failure answers HTTP 200 with `{"errcode": N, "errmsg": "<text>, hint: [<digits>],
from ip: <ip>, more info at https://open.work.weixin.qq.com/devtool/query?e=N"}`, the way
qyapi does, so a client's error handling is exercised against the real shape.

Where REFERENCE.md documents no code for a case we pick one and say so next to it.
"""

from __future__ import annotations

import secrets
import time

MESSAGES: dict[int, str] = {
    -1: "system busy",
    40001: "invalid credential",
    40003: "invalid userid",
    40004: "invalid media type",
    40005: "invalid file type",
    40006: "invalid file size",
    40007: "invalid media_id",
    40008: "invalid message type",
    40009: "invalid image size",
    40011: "invalid video size",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40029: "invalid code",
    40031: "invalid userid list",
    40032: "invalid userid list size",
    40035: "invalid parameter",
    40050: "chatid not found",
    40056: "invalid agentid",
    40068: "invalid tagid",
    40071: "tag name already exists",
    40096: "invalid external userid",
    41001: "access_token missing",
    41006: "media_id missing",
    41008: "missing code",
    41009: "missing user_ticket",
    41037: "missing contact way type",
    41050: "invalid welcome code",
    41051: "externaluser has started chatting",
    41065: "invalid attachment type",
    42001: "access_token expired",
    44001: "empty media data",
    45001: "media size out of limit",
    45009: "api freq out of limit",
    45011: "api minute-quota reach limit",  # not in WeCom's table (REFERENCE 17.1); for fault tests
    45033: "api concurrent out of limit",
    48001: "api forbidden",
    50001: "redirect_url not in trusted domains",
    60003: "department not found",
    60020: "not allow to access from your ip",
    60111: "userid not found",
    81013: "user & party & tag all invalid",
    84061: "not exist external contact",
}


class WeComError(Exception):
    """Raised by an API handler; the dispatcher turns it into the WeCom JSON answer."""

    def __init__(self, errcode: int, text: str | None = None):
        self.errcode = errcode
        self.text = text or MESSAGES.get(errcode, "error")
        super().__init__(f"{errcode} {self.text}")


def hint() -> str:
    # Real hints are ~25 digits that look like a timestamp followed by random digits.
    return f"{time.time_ns() // 1_000_000}{secrets.randbelow(10**12):012d}"


def errmsg(errcode: int, ip: str, text: str | None = None) -> str:
    text = text or MESSAGES.get(errcode, "error")
    return (
        f"{text}, hint: [{hint()}], from ip: {ip}, "
        f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
    )


def error_body(errcode: int, ip: str, text: str | None = None) -> dict:
    return {"errcode": errcode, "errmsg": errmsg(errcode, ip, text)}
