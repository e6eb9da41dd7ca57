"""What can go wrong when calling WeCom, as typed exceptions an admin can read.

`WeComError` carries the errcode and errmsg that WeCom answered (and the API path);
`error_for()` picks the subclass for an errcode. `WeComTransportError` is everything
where no WeCom answer came back: network failure, timeout, a non-JSON body.
Both derive from `WeComFailure`, so `except WeComFailure` catches any failed call.

`describe()` gives a sentence in Chinese and English that says what is wrong and what
to do, for the admin console and for logs.
"""

from __future__ import annotations

import re

__all__ = [
    "WeComFailure",
    "WeComError",
    "WeComTransportError",
    "WeComTokenError",
    "WeComBusy",
    "WeComRateLimited",
    "WeComInvalidCredentials",
    "WeComInvalidSecret",
    "WeComInvalidCorpId",
    "WeComIPNotAllowed",
    "WeComWelcomeCodeError",
    "WeComWelcomeCodeUsed",
    "WeComWelcomeCodeExpired",
    "WeComInvalidCode",
    "WeComInvalidExternalUserId",
    "WeComNotPermitted",
    "error_for",
    "ip_from_errmsg",
    "TOKEN_ERRCODES",
    "RETRY_ERRCODES",
    "FREQUENCY_ERRCODES",
    "MEMBER_UNKNOWN_ERRCODES",
]

TOKEN_ERRCODES = frozenset({40014, 42001, 41001})
"""Errcodes after which the client drops its token, fetches a new one and retries once."""

FREQUENCY_ERRCODES = frozenset({45009, 45011})
"""Frequency limits: the endpoint is paused, then the call retried. 45011 (minute quota) is
not in WeCom's published table; REFERENCE 17.1 says to treat it like 45009 if seen."""

RETRY_ERRCODES = frozenset({-1, 45033}) | FREQUENCY_ERRCODES
"""Errcodes after which the client backs off and retries (at most `max_retries` times)."""

MEMBER_UNKNOWN_ERRCODES = frozenset({40003, 46004, 60011, 60111})
"""WeCom does not know the member, or the app may not see it (outside its visible range):
asking again gives the same answer until the admin changes something."""

_FROM_IP = re.compile(r"from ip:\s*([0-9A-Fa-f.:]+)")


def ip_from_errmsg(errmsg: str) -> str | None:
    """The caller IP that WeCom names in an errmsg ("..., from ip: 1.2.3.4, ..."), if any."""
    m = _FROM_IP.search(errmsg or "")
    if not m:
        return None
    return m.group(1).rstrip(".:") or None


def _lookup_url(errcode: int) -> str:
    return f"https://open.work.weixin.qq.com/devtool/query?e={errcode}"


class WeComFailure(Exception):
    """A WeCom call that did not succeed, for whatever reason."""

    path: str

    def describe(self) -> str:  # pragma: no cover - overridden
        return str(self)


class WeComTransportError(WeComFailure):
    """No usable answer: connection failed, timed out, or the body was not WeCom's JSON."""

    def __init__(self, message: str, path: str = "", *, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.status_code = status_code

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        return f"{self.message}{where}"

    def describe(self) -> str:
        return (
            f"无法连接企业微信或其回复无法识别（{self.message}）/ could not reach WeCom or could not read "
            f"its answer ({self.message}): check the server's network, DNS and proxy settings and the "
            "configured WeCom API base URL."
        )


class WeComError(WeComFailure):
    """WeCom answered with a non-zero errcode."""

    errcodes: frozenset[int] = frozenset()

    def __init__(self, errcode: int, errmsg: str = "", path: str = ""):
        self.errcode = int(errcode)
        self.errmsg = errmsg or ""
        self.path = path or ""
        super().__init__(self.errcode, self.errmsg, self.path)

    def __str__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"WeCom errcode {self.errcode}{where}: {self.errmsg}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(errcode={self.errcode!r}, errmsg={self.errmsg!r}, path={self.path!r})"

    def describe(self) -> str:
        """A sentence for an admin: what is wrong, in Chinese and English, and what to do."""
        text = _DESCRIPTIONS.get(self.errcode)
        if text:
            return text
        return (
            f"企业微信返回错误 {self.errcode}：{self.errmsg} / WeCom answered errcode {self.errcode} "
            f"({self.errmsg}); see {_lookup_url(self.errcode)}"
        )


class WeComTokenError(WeComError):
    """The access token was invalid, expired or missing (40014, 42001, 41001).

    The client refreshes and retries once on its own; this is raised only when the fresh
    token is refused too.
    """

    errcodes = frozenset({40014, 42001, 41001})


class WeComBusy(WeComError):
    """-1: WeCom is busy. Retried with backoff; raised when the retries are used up."""

    errcodes = frozenset({-1})


class WeComRateLimited(WeComError):
    """45009 / 45011 (frequency limit) or 45033 (too many concurrent calls) on one API.

    Also raised with errcode 45009 and an errmsg starting "siyu:" when the client's own
    pacing would make a call wait longer than the call's `max_wait`.
    """

    errcodes = FREQUENCY_ERRCODES | {45033}

    @property
    def concurrency(self) -> bool:
        return self.errcode == 45033

    @property
    def local(self) -> bool:
        """True when the client gave up before asking WeCom (its own pacing or a pause)."""
        return self.errmsg.startswith("siyu:")

    def describe(self) -> str:
        if self.local:
            reason = self.errmsg.removeprefix("siyu:").strip()
            return (
                "调用排队超时 / Siyu held this WeCom call back to stay under WeCom's frequency limits "
                f"and gave up waiting ({reason}); try again later."
            )
        return super().describe()


class WeComInvalidCredentials(WeComError):
    """The corp id or secret in the settings is wrong (40013, 40001)."""

    errcodes = frozenset({40001, 40013})


class WeComInvalidSecret(WeComInvalidCredentials):
    errcodes = frozenset({40001})


class WeComInvalidCorpId(WeComInvalidCredentials):
    errcodes = frozenset({40013})


class WeComIPNotAllowed(WeComError):
    """60020: this server's IP is not in the app's 企业可信IP list."""

    errcodes = frozenset({60020})

    @property
    def ip(self) -> str | None:
        return ip_from_errmsg(self.errmsg)

    def describe(self) -> str:
        ip = self.ip
        if ip:
            return (
                f"服务器 IP {ip} 不在应用的企业可信IP中 / this server's IP {ip} is not in the app's "
                f"trusted IP list (企业可信IP): add {ip} on the app's page in WeCom's admin console "
                "(应用管理 → the app → 企业可信IP)."
            )
        return (
            "服务器 IP 不在应用的企业可信IP中 / this server's IP is not in the app's trusted IP list "
            "(企业可信IP): add the server's public IP on the app's page in WeCom's admin console "
            "(应用管理 → the app → 企业可信IP)."
        )


class WeComWelcomeCodeError(WeComError):
    """The welcome code can no longer be used (41051 used/chat started, 41050 expired)."""

    errcodes = frozenset({41050, 41051})


class WeComWelcomeCodeUsed(WeComWelcomeCodeError):
    """41051: already used (by us or another app), or the member and customer already chatted.

    A welcome code is single use. If `send_welcome_msg` timed out and is retried, or an
    errcode -1 retry follows a send WeCom did perform, the second call sees 41051 although
    the message went out once: treat 41051 as "no welcome message can be sent now", not as
    proof that none was sent.
    """

    errcodes = frozenset({41051})


class WeComWelcomeCodeExpired(WeComWelcomeCodeError):
    """41050: invalid welcome code, typically used after its 20-second window."""

    errcodes = frozenset({41050})


class WeComInvalidCode(WeComError):
    """40029: OAuth/login code reused, expired (5 min) or issued for another app."""

    errcodes = frozenset({40029})


class WeComInvalidExternalUserId(WeComError):
    """40096: the external_userid is unknown to this corp (or not a customer of that member)."""

    errcodes = frozenset({40096})


class WeComNotPermitted(WeComError):
    """48002: this token's app may not call this API."""

    errcodes = frozenset({48002})

    def describe(self) -> str:
        if self.path.startswith("/cgi-bin/message/"):
            # the self-built app's own secret sends app messages; the 客户联系 advice (below)
            # would have the admin paste the very secret that cannot
            return (
                "应用无权发送应用消息 / this app may not send app messages: check that the app Secret in "
                "Siyu's 设置 is the self-built app's own (not the 客户联系 or 会话存档 Secret) and that "
                "the app is enabled in WeCom's admin console."
            )
        return super().describe()


_CLASSES: dict[int, type[WeComError]] = {}
for _cls in (
    WeComTokenError,
    WeComBusy,
    WeComRateLimited,
    WeComInvalidSecret,
    WeComInvalidCorpId,
    WeComIPNotAllowed,
    WeComWelcomeCodeUsed,
    WeComWelcomeCodeExpired,
    WeComInvalidCode,
    WeComInvalidExternalUserId,
    WeComNotPermitted,
):
    for _code in _cls.errcodes:
        _CLASSES[_code] = _cls


def error_for(errcode: int, errmsg: str = "", path: str = "") -> WeComError:
    """The typed exception for a non-zero errcode."""
    return _CLASSES.get(int(errcode), WeComError)(errcode, errmsg, path)


_DESCRIPTIONS: dict[int, str] = {
    -1: (
        "企业微信系统繁忙，请稍后重试 / WeCom is busy: the call was retried and still failed; "
        "try again later."
    ),
    40001: (
        "Secret 不正确 / the secret is wrong: copy it again from the app's page in WeCom's admin console "
        "(应用管理 → the app → Secret, or 客户联系 → API → Secret) and check it belongs to this corp."
    ),
    40003: (
        "成员 UserID 无效 / invalid member UserID: the member does not exist in this corp "
        "or the app cannot see it."
    ),
    40013: (
        "企业ID（CorpID）不正确 / the corp id is wrong: copy it again from WeCom's admin console "
        "(我的企业 → 企业信息 → 企业ID); it starts with 'ww' or 'wx'."
    ),
    40014: (
        "access_token 无效 / the access token is invalid: it was refreshed and still refused; check that "
        "the corp id and secret belong together."
    ),
    41001: (
        "缺少 access_token / the access token is missing: the call was retried with a fresh token and failed."
    ),
    42001: "access_token 已过期 / the access token expired: it was refreshed and still refused.",
    40029: (
        "登录 code 无效 / the login code is invalid: it was already used, is older than 5 minutes, or was "
        "issued for another app; start the login again."
    ),
    40035: "参数不合法 / an invalid parameter was sent to WeCom.",
    40050: (
        "客户群 chat_id 无效 / unknown group chat: WeCom does not know it as a customer group "
        "(a group of staff only, or one dismissed)."
    ),
    40068: (
        "标签 ID 无效 / invalid tag id: WeCom does not know this tag (deleted in the admin console, "
        "or never this corp's); choose the tags again from those WeCom has."
    ),
    84061: (
        "客户不是该成员的联系人 / the customer is not a contact of that member: one of them deleted "
        "the other, or they were never connected."
    ),
    40096: (
        "外部联系人 external_userid 无效 / invalid external_userid: the customer is unknown to this corp "
        "or is not a customer of that member."
    ),
    41037: "缺少联系方式类型 / the contact way type is missing (add_contact_way needs type and scene).",
    41050: (
        "欢迎语 code 已失效 / the welcome code expired: WeCom accepts it only within 20 seconds of the "
        "add-customer event; the welcome message was not sent."
    ),
    41051: (
        "欢迎语 code 已被使用或客户已开始聊天 / the welcome code was already used (by Siyu or another app) "
        "or the member and customer already chatted; no welcome message can be sent now."
    ),
    45009: (
        "接口调用超过频率限制 / WeCom's frequency limit for this API was hit: Siyu paused and retried; "
        "if this persists, reduce sync frequency or check for a runaway job "
        "(https://open.work.weixin.qq.com/wwopen/devtool/checkCorpSpamBlock)."
    ),
    45011: (
        "接口调用超过每分钟频率限制 / WeCom's per-minute limit for this API was hit: Siyu paused and "
        "retried; if this persists, reduce sync frequency or check for a runaway job."
    ),
    45033: (
        "接口并发调用超过限制 / too many concurrent calls to this WeCom API: Siyu slowed down and retried; "
        "if this persists, lower the number of workers calling WeCom."
    ),
    48002: (
        "API 无权限 / this app may not call this API: use the 客户联系 secret, or add the app under "
        "客户联系 → API → 可调用接口的应用 in WeCom's admin console."
    ),
    50001: (
        "redirect_uri 未登记可信域名 / the login redirect URL's host is not a trusted domain of the app: "
        "set it (host and port exactly) under the app's 网页授权及JS-SDK / 可信域名 in WeCom's admin console."
    ),
    46004: "成员不存在 / the member does not exist in WeCom's contacts (left, or never there).",
    40031: (
        "不合法的 UserID 列表 / the recipients' UserID list is invalid: the member is not in WeCom's "
        "contacts (left, or their UserID changed); sync the staff again."
    ),
    60111: (
        "成员 UserID 不存在 / the member is not in WeCom's contacts: they left or their UserID changed; "
        "sync the staff again."
    ),
    60011: (
        "无权限访问 / no permission: the member or department is outside the app's visible range (可见范围)."
    ),
    81013: (
        "消息接收人全部无效 / every recipient of the app message is invalid or outside the app's "
        "visible range."
    ),
    82001: (
        "指定的成员/部门/标签全部无效 / every recipient of the app message is empty or invalid (left, or "
        "outside the app's visible range)."
    ),
    301002: (
        "无权操作该标签 / this app may not edit, delete or mark a tag another app created: use tags "
        "created in WeCom's admin console or by Siyu."
    ),
}
