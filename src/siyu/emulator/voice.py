"""A voice gateway for the emulator: records the calls Siyu places (REFERENCE 12).

Two doors, one record:
  POST   /_emulator/voice/calls   what siyu.sla.voice.EmulatorVoice posts:
           {called_number: "+8613800000002", template_params: [...], text, play_times?,
            session_context?} -> 201 {call_id, ...the call}; 400 for a number that is not a
           mainland mobile
  POST   /                        Tencent Cloud VMS API 3.0 (X-TC-Action: SendTtsVoice,
           X-TC-Version: 2020-09-02, TC3-HMAC-SHA256 Authorization), so the real provider
           built on Tencent's SDK can be pointed here (endpoint = the emulator's host:port,
           scheme http). Answers {"Response": {"SendStatus": {CallId, SessionContext},
           RequestId}} or {"Response": {"Error": {Code, Message}, RequestId}}. The signature
           is checked for shape only (the emulator does not know the secret key).
Reading and faults
  GET    /_emulator/voice/calls   [call, ...] oldest first; ?number= filters by callee, ?after=N
           skips the first N
  DELETE /_emulator/voice/calls   forget them
  POST   /_emulator/voice/faults  {fail: n, status?: 503}: the next n calls fail; {slow: n,
           delay_s}: the next n are placed (recorded) and answered delay_s later, as over a
           slow network

Mount: app.include_router(voice.build_router(emu)) in create_emulator_app.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import JSONResponse

MAINLAND = re.compile(r"^\+861[3-9][0-9]{9}$")


def build_router(emu=None) -> APIRouter:
    r = APIRouter(tags=["emulator voice"])
    calls: list[dict] = []
    faults = {"fail": 0, "status": 503, "slow": 0, "delay_s": 0.0}

    def now() -> float:
        return emu.state.now() if emu is not None else time.time()

    def record(provider: str, number: str, params: list, text: str, play_times: int, context: str) -> dict:
        call = {
            "call_id": f"{provider}-{secrets.token_hex(8)}",
            "provider": provider,
            "called_number": number,
            "template_params": [str(p) for p in params or []],
            "text": text,
            "play_times": play_times,
            "session_context": context,
            "received_at": now(),
        }
        calls.append(call)
        return call

    def injected_fault() -> int | None:
        if faults["fail"] > 0:
            faults["fail"] -= 1
            return faults["status"]
        return None

    @r.post("/_emulator/voice/calls", status_code=201)
    async def place(body: dict = Body(...)) -> dict:
        status = injected_fault()
        if status is not None:
            raise HTTPException(status, "injected voice gateway fault")
        number = str(body.get("called_number") or "")
        if not MAINLAND.match(number):
            raise HTTPException(400, f"not a mainland mobile number: {number!r}")
        placed = record(
            "emulator",
            number,
            body.get("template_params") or [],
            str(body.get("text") or ""),
            int(body.get("play_times") or 2),
            str(body.get("session_context") or ""),
        )
        if faults["slow"] > 0:
            faults["slow"] -= 1
            await asyncio.sleep(faults["delay_s"])
        return placed

    @r.get("/_emulator/voice/calls")
    async def list_calls(number: str = "", after: int = 0) -> list[dict]:
        return [c for c in calls[max(0, after) :] if not number or c["called_number"].endswith(number)]

    @r.delete("/_emulator/voice/calls")
    async def clear_calls() -> dict:
        calls.clear()
        return {"ok": True}

    @r.post("/_emulator/voice/faults")
    async def set_faults(body: dict = Body(...)) -> dict:
        faults["fail"] = int(body.get("fail", 0))
        faults["status"] = int(body.get("status", 503))
        faults["slow"] = int(body.get("slow", 0))
        faults["delay_s"] = float(body.get("delay_s", 0.0))
        return dict(faults)

    @r.post("/", include_in_schema=False)
    async def tencent_vms(request: Request) -> JSONResponse:
        request_id = str(uuid.uuid4())

        def error(code: str, message: str) -> JSONResponse:
            return JSONResponse(
                {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}
            )

        action = request.headers.get("x-tc-action", "")
        if not action:
            raise HTTPException(404, "not found")
        auth = request.headers.get("authorization", "")
        if not auth.startswith("TC3-HMAC-SHA256 Credential=") or "Signature=" not in auth:
            return error("AuthFailure.SignatureFailure", "the request is not signed with TC3-HMAC-SHA256")
        if action != "SendTtsVoice" or request.headers.get("x-tc-version") != "2020-09-02":
            return error("InvalidAction", f"{action} is not served here")
        if injected_fault() is not None:
            return error("InternalError", "injected voice gateway fault")
        body = await request.json()
        for name in ("TemplateId", "CalledNumber", "VoiceSdkAppid"):
            if not body.get(name):
                return error("MissingParameter", f"missing {name}")
        number = str(body["CalledNumber"])
        if not MAINLAND.match(number):
            return error("InvalidParameterValue.IncorrectPhoneNumber", f"bad number {number}")
        context = str(body.get("SessionContext") or "")
        call = record(
            "tencent",
            number,
            body.get("TemplateParamSet") or [],
            f"template {body['TemplateId']}",
            int(body.get("PlayTimes") or 2),
            context,
        )
        call["template_id"] = str(body["TemplateId"])
        call["sdk_app_id"] = str(body["VoiceSdkAppid"])
        return JSONResponse(
            {
                "Response": {
                    "SendStatus": {"CallId": call["call_id"], "SessionContext": context},
                    "RequestId": request_id,
                }
            }
        )

    return r
