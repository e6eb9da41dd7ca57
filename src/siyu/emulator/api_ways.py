"""Contact ways (联系我, REFERENCE.md section 6): add/get/list/update/del_contact_way.

For scene 2 the qr_code URL points at the emulator itself (`/_emulator/qr/{config_id}.png`,
a real PNG), so a demo page can show a scannable code.
"""

from __future__ import annotations

from .api_external import decode_cursor, encode_cursor
from .cgi import Ctx, api
from .errors import WeComError
from .state import ContactWay, Corp, rand_hex

MUTABLE = (
    "remark",
    "skip_verify",
    "style",
    "state",
    "user",
    "party",
    "expires_in",
    "chat_expires_in",
    "unionid",
)


def _validate(corp: Corp, way_type: int, fields: dict, sent: dict | None = None) -> None:
    """`sent`: what an update names; only the members and departments it sends are looked up
    (those it leaves out stay as they are, a member who has since left included)."""
    state = fields.get("state")
    if state is not None and len(str(state)) > 30:
        raise WeComError(40035, "invalid state, max length 30")
    remark = fields.get("remark")
    if remark is not None and len(str(remark)) > 30:
        raise WeComError(40035, "invalid remark, max length 30")
    users = fields.get("user") or []
    parties = fields.get("party") or []
    if not isinstance(users, list) or not isinstance(parties, list):
        raise WeComError(40035)
    sent = fields if sent is None else sent
    for uid in sent.get("user") or []:
        if uid not in corp.staff or corp.staff[uid].status == 5:
            raise WeComError(40003, f"invalid userid {uid}")
    for pid in sent.get("party") or []:
        if pid not in corp.departments:
            raise WeComError(60003)
    if way_type == 1 and (len(users) != 1 or parties):
        raise WeComError(40035, "single contact way needs exactly one user")
    if way_type == 2 and not users and not parties:
        raise WeComError(40035, "user and party are both empty")


def _way(ctx: Ctx) -> ContactWay:
    corp = ctx.need_corp()
    way = corp.ways.get(ctx.json.get("config_id", ""))
    if way is None:
        raise WeComError(40035, "invalid config_id")
    return way


@api("externalcontact/add_contact_way", methods=("POST",))
async def add_contact_way(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    body = ctx.json
    way_type, scene = ctx.int_field("type"), ctx.int_field("scene")
    if way_type is None:
        raise WeComError(41037)
    if scene is None:
        raise WeComError(40035, "missing scene")
    if way_type not in (1, 2) or scene not in (1, 2):
        raise WeComError(40035, "invalid type or scene")
    _validate(corp, way_type, body)
    config_id = rand_hex(32)
    way = ContactWay(
        config_id=config_id,
        type=way_type,
        scene=scene,
        create_time=int(ctx.state.now()),
        style=ctx.int_field("style", 0),
        remark=str(body.get("remark") or ""),
        skip_verify=bool(body.get("skip_verify", True)),
        state=str(body.get("state") or ""),
        user=list(body.get("user") or []),
        party=[int(p) for p in body.get("party") or []],
        is_temp=bool(body.get("is_temp", False)),
        expires_in=ctx.int_field("expires_in", 0),
        chat_expires_in=ctx.int_field("chat_expires_in", 0),
        unionid=str(body.get("unionid") or ""),
    )
    if scene == 2:
        way.qr_code = f"{ctx.base_url}/_emulator/qr/{config_id}.png"
    corp.ways[config_id] = way
    out = {"config_id": config_id}
    if way.qr_code:
        out["qr_code"] = way.qr_code
    return out


@api("externalcontact/get_contact_way", methods=("POST",))
async def get_contact_way(ctx: Ctx) -> dict:
    return {"contact_way": _way(ctx).as_api()}


@api("externalcontact/list_contact_way", methods=("POST",))
async def list_contact_way(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    body = ctx.json
    now = int(ctx.state.now())
    end = ctx.int_field("end_time", now)
    start = ctx.int_field("start_time", end - 90 * 86400)
    limit = max(1, min(ctx.int_field("limit", 100), 1000))
    rows = [w for w in corp.ways.values() if start <= w.create_time <= end]
    offset = decode_cursor(body.get("cursor"))
    page = rows[offset : offset + limit]
    more = offset + limit < len(rows)
    return {
        "contact_way": [{"config_id": w.config_id} for w in page],
        "next_cursor": encode_cursor(offset + limit) if more else "",
    }


@api("externalcontact/update_contact_way", methods=("POST",))
async def update_contact_way(ctx: Ctx) -> dict:
    corp = ctx.need_corp()
    way = _way(ctx)
    body = ctx.json
    merged = {name: getattr(way, name) for name in MUTABLE}
    merged.update({k: v for k, v in body.items() if k in MUTABLE and v is not None})
    _validate(corp, way.type, merged, body)
    for name in MUTABLE:
        value = merged[name]
        if name == "party":
            value = [int(p) for p in value]
        setattr(way, name, value)
    return {}


@api("externalcontact/del_contact_way", methods=("POST",))
async def del_contact_way(ctx: Ctx) -> dict:
    way = _way(ctx)
    del ctx.need_corp().ways[way.config_id]
    return {}
