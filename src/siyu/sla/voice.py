"""Voice calls for the last escalation step (WeCom has no phone API; REFERENCE 12).

`VoiceProvider.call(VoiceCall) -> call id`: one interface, chosen by configuration
(siyu.config.Settings, the `voice_*` fields; environment prefix SIYU_VOICE_):

  SIYU_VOICE_PROVIDER=off        no calls (the step is recorded, nothing rings)
  SIYU_VOICE_PROVIDER=emulator   POST {SIYU_VOICE_EMULATOR_URL or SIYU_WECOM_BASE_URL}/_emulator/voice/calls
  SIYU_VOICE_PROVIDER=tencent    Tencent Cloud VMS SendTtsVoice through its official SDK
                                 (tencentcloud-sdk-python-vms), with
      SIYU_VOICE_TENCENT_SECRET_ID / _SECRET_KEY   API credentials (CAM)
      SIYU_VOICE_TENCENT_SDK_APP_ID                VoiceSdkAppid
      SIYU_VOICE_TENCENT_TEMPLATE_ID               an approved TTS template with two parameters,
                                                   e.g. "您有{1}位客户在等待回复，最长已等{2}分钟，请尽快处理"
      SIYU_VOICE_TENCENT_REGION (ap-guangzhou), SIYU_VOICE_TENCENT_ENDPOINT (vms.tencentcloudapi.com),
      SIYU_VOICE_PLAY_TIMES (2)

Errors: `Permanent` for what retrying cannot fix (a bad number, an unapproved template, bad
credentials); `Retry` where the provider answered that it placed nothing (busy, limits, not
reached at all); `NoAnswer` where the request may have reached it (a timeout, a connection
lost midway): the call may have rung, and the sender does not ring it again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import httpx

from siyu.config import Settings
from siyu.notify.outbox import Permanent, Retry
from siyu.tenancy.service import mainland_mobile  # the rule the 成员 page checks numbers by


class NoAnswer(Exception):
    """The provider may have placed the call: it got the request, and no answer came back."""


@dataclass(frozen=True)
class VoiceCall:
    phone: str  # mainland mobile number, digits (+86 is added where a provider wants it)
    params: list[str]  # template parameters: [number of waiting customers, minutes waited]
    text: str  # what is read out, for providers and records that take free text
    context: str  # our reference, echoed back by the provider


class VoiceProvider(Protocol):
    name: str

    async def call(self, call: VoiceCall) -> str:
        """Place the call; return the provider's call id."""
        ...


def mainland(phone: str) -> str:
    """The number as the provider is given it (after +86); Permanent for one no call can ring."""
    try:
        return mainland_mobile(phone)
    except ValueError as exc:
        zh, en = str(exc).split(" / ", 1)
        fix = "请在「成员」页填写该成员接电话提醒的手机号"
        raise Permanent(f"{zh}，{fix} / {en}: set the number calls ring on the staff page") from None


class EmulatorVoice:
    """The emulator's voice gateway (siyu.emulator.voice): records each call."""

    name = "emulator"

    def __init__(self, base_url: str, play_times: int = 2, timeout: float = 10.0):
        self.url = base_url.rstrip("/") + "/_emulator/voice/calls"
        self.play_times = play_times
        self.timeout = timeout

    async def call(self, call: VoiceCall) -> str:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                r = await client.post(
                    self.url,
                    json={
                        "called_number": "+86" + mainland(call.phone),
                        "template_params": call.params,
                        "text": call.text,
                        "play_times": self.play_times,
                        "session_context": call.context,
                    },
                )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # the board's words, not a trace
            raise Retry(f"连不上语音网关（{type(exc).__name__}），稍后重试") from exc
        except httpx.TransportError as exc:
            raise NoAnswer(f"语音网关没有回答（{type(exc).__name__}），可能已经呼叫") from exc
        if r.status_code == 400:
            raise Permanent(f"语音网关拒绝了这次呼叫：{r.text[:300]}")
        if r.status_code >= 300:
            raise Retry(f"语音网关暂时无法呼叫（HTTP {r.status_code}），稍后重试：{r.text[:200]}")
        return r.json()["call_id"]


# Tencent Cloud error codes that retrying cannot fix (VMS error code table): a voice app that
# fails verification, is disabled or suspended for arrears, an empty voice package, template
# parameters refused, a number not applied for. An escalation call an hour late helps nobody:
# the admin is told at once. (Timeouts upstream and the per-callee frequency limit are retried.)
TENCENT_PERMANENT = (
    "AuthFailure",
    "InvalidParameter",
    "MissingParameter",
    "UnsupportedOperation",
    "UnauthorizedOperation",
)
TENCENT_PERMANENT_FAILED = (
    "FailedOperation.TemplateIncorrectOrUnapproved",
    "FailedOperation.Forbidden",
    "FailedOperation.ContainSensitiveWord",
    "FailedOperation.InsufficientBalanceInVoicePackage",
    "FailedOperation.InvalidJsonParameters",
    "FailedOperation.InvalidParameters",
    "FailedOperation.JsonParseFail",
    "FailedOperation.ParametersOtherError",
    "FailedOperation.PhonenumberUnappliedOrExpired",
)


class TencentVoice:
    """Tencent Cloud VMS SendTtsVoice (API 2020-09-02) through the official SDK."""

    name = "tencent"

    def __init__(self, settings: Settings):
        if not (settings.voice_tencent_secret_id and settings.voice_tencent_secret_key):
            raise Permanent("服务器未设置 SIYU_VOICE_TENCENT_SECRET_ID / _SECRET_KEY")
        if not (settings.voice_tencent_sdk_app_id and settings.voice_tencent_template_id):
            raise Permanent("服务器未设置 SIYU_VOICE_TENCENT_SDK_APP_ID / _TEMPLATE_ID")
        self.settings = settings

    def _client(self):
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.vms.v20200902 import vms_client

        s = self.settings
        http = HttpProfile(
            protocol=s.voice_tencent_scheme, endpoint=s.voice_tencent_endpoint, reqTimeout=s.voice_timeout_s
        )
        profile = ClientProfile(httpProfile=http)
        profile.disable_region_breaker = True
        cred = credential.Credential(s.voice_tencent_secret_id, s.voice_tencent_secret_key)
        return vms_client.VmsClient(cred, s.voice_tencent_region, profile)

    def _send(self, call: VoiceCall) -> str:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.vms.v20200902 import models

        request = models.SendTtsVoiceRequest()
        request.TemplateId = self.settings.voice_tencent_template_id
        request.CalledNumber = "+86" + mainland(call.phone)
        request.VoiceSdkAppid = self.settings.voice_tencent_sdk_app_id
        request.TemplateParamSet = [str(p) for p in call.params]
        request.PlayTimes = max(1, min(3, self.settings.voice_play_times))
        request.SessionContext = call.context[:1000]
        try:
            response = self._client().SendTtsVoice(request)
        except TencentCloudSDKException as exc:
            code, said = exc.get_code() or "", _words(exc.get_message())
            if code.startswith(TENCENT_PERMANENT) or code.startswith(TENCENT_PERMANENT_FAILED):
                raise Permanent(f"腾讯云语音 {code}：{said}") from exc
            if code == "ClientNetworkError" and not _never_sent(exc.__context__):
                raise NoAnswer(f"腾讯云语音没有回答：{said}，可能已经呼叫") from exc
            if code == "ServerNetworkError":  # (its message is the page a gateway answered with)
                raise Retry("腾讯云语音服务暂时无法访问（网关回了一个错误页），稍后重试") from exc
            raise Retry(f"腾讯云语音 {code}：{said}（稍后重试）") from exc
        return response.SendStatus.CallId

    async def call(self, call: VoiceCall) -> str:
        return await asyncio.to_thread(self._send, call)


def _words(message) -> str:
    """The SDK's message as words: it hands some over as the bytes of a page (b'<html>…' had
    reached the board), and any may be long."""
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    return str(message)[:200]


def _never_sent(error: BaseException | None) -> bool:
    """Whether the HTTP error under the SDK's ClientNetworkError (any error of its requests
    session) came before the request went: no connection made, or its name not resolved.
    A read timeout or a connection lost midway may come after the call was placed."""
    import requests
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(error, requests.exceptions.ConnectionError) and error.args:
        reason = getattr(error.args[0], "reason", error.args[0])
        return isinstance(reason, (NewConnectionError, NameResolutionError))
    return False


def provider_for(rt, settings: Settings | None = None) -> VoiceProvider | None:
    """The configured provider (from `rt.settings` unless given), or None when calls are off."""
    settings = settings or rt.settings
    name = settings.voice_provider.strip().lower()
    if name in ("", "off", "none"):
        return None
    if name == "emulator":
        return EmulatorVoice(
            settings.voice_emulator_url or settings.wecom_base_url,
            settings.voice_play_times,
            settings.voice_timeout_s,
        )
    if name == "tencent":
        return TencentVoice(settings)
    raise Permanent(f"unknown SIYU_VOICE_PROVIDER {settings.voice_provider!r} (off | emulator | tencent)")
