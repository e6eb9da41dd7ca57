"""The archive setup page (/setup/archive, admins): 会话存档 mode and Secret, key pairs by
version (generated here, or an uploaded private key), how far the archive is pulled, and,
asked live from WeCom with the archive secret, which members are archived and which
customers have not agreed to be archived (their chats cannot be watched)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from siyu.conversations import service as conversations
from siyu.conversations.models import ArchiveCursor, ArchiveKey
from siyu.conversations.search import SearchBacklog
from siyu.customers.models import Customer, Follow
from siyu.customers.queries import staff_names
from siyu.db import bulk
from siyu.db.base import utcnow
from siyu.db.crypto import masked
from siyu.tenancy import service as tenancy
from siyu.tenancy.models import Staff, Tenant
from siyu.web.api_errors import ClearNotFound
from siyu.web.auth import PageViewer, Viewer, require_admin
from siyu.web.templating import render, wecom_message
from siyu.wecom import archive, finance_sdk
from siyu.wecom.client import WeComClient
from siyu.wecom.errors import WeComFailure, WeComInvalidSecret, WeComNotPermitted, WeComRateLimited

router = APIRouter(include_in_schema=False)

# the worker stamps the error in UTC (conversations.tasks.pull); the page shows the tenant's time
_STAMPED = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC · (.*)", re.S)
_NAMED_SEQ = re.compile(r"\[seq (\d+)[,\]]")
MODES = {"off": "关闭", "http": "HTTP（模拟器）", "sdk": "企业微信 SDK（.so）"}
MAX_AGREE_PAIRS = 1000  # check_single_agree takes 100 a call: at most 10 calls per page view
MAX_PEM_BYTES = 16 * 1024
# How long the page's calls to WeCom wait out Siyu's pause after WeCom's frequency limit
# (45009), which doubles while the limit lasts, up to 60 s: a person had waited that long
# for the page (and nginx, 60 s by default, gave up first). Shorter pauses, WeCom's first
# answers to a burst, are waited out; past them the page says so at once.
PAGE_MAX_WAIT_S = 3.0
LIMITED = (
    "企业微信正在限制调用频率，请一分钟后刷新本页 / WeCom is limiting calls: reload this page in a minute"
)
# WeCom's secrets are 43 characters; the columns hold 500 (a sealed secret is about twice as long)
MAX_SECRET_CHARS = 128
MAX_SDK_PATH_CHARS = 400
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)
_PUBLIC_PEM = re.compile(r"-----BEGIN [A-Z ]*PUBLIC KEY-----")
SEARCH_STUCK_AFTER = timedelta(minutes=5)  # a pull indexes what it stored before it returns
DONE = {
    "saved": "会话存档设置已保存。",
    "generated": (
        "密钥已生成：把下方公钥粘贴到企业微信管理后台「管理工具 → 会话内容存档 → 消息加密公钥」，"
        "版本号与此一致。"
    ),
    "uploaded": "私钥已保存（加密存储）。",
    "removed": "密钥已删除：用同一版本号生成或上传正确的私钥后，该版本的消息继续拉取。",
    "callback": "会话存档回调的 Token 和 EncodingAESKey 已保存（加密存储）。",
}
GENERATED = (
    "已生成新的 Token 和 EncodingAESKey：把下方的 URL、Token 和 EncodingAESKey 填入企业微信管理后台"
    "「管理工具 → 会话内容存档 → 接收事件服务器」并保存（企业微信会校验 URL）。"
    "在此之前，企业微信用旧的设置发来的通知会被拒绝（消息仍由定时拉取收到）。"
)


@dataclass
class State:
    corp_id: str = ""
    mode: str = "off"
    secret_masked: str = ""
    secret: str = field(default="", repr=False)
    sdk_path: str = ""
    slug: str = ""
    keys: list[dict] = field(default_factory=list)
    cursor: dict | None = None
    tenant_id: int = 0
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (_live's: archived members' only)
    customers: dict[str, dict] = field(default_factory=dict)  # external_userid -> {id, name}
    names: dict[str, str] = field(default_factory=dict)
    active_staff: list[str] = field(default_factory=list)
    truncated: bool = False
    # The 会话存档 app's own callback (接收事件服务器): URL, Token, EncodingAESKey (masked;
    # in full only when the admin asks to see it).
    callback_url: str = ""
    callback_token: str = ""
    callback_key_masked: str = ""
    callback_key: str = field(default="", repr=False)


def _load(rt, tenant_id: int, reveal_key: bool = False) -> State:
    with rt.db.tenant_session(tenant_id) as s:
        tenant = s.get(Tenant, tenant_id)
        secret = rt.box.open(tenant.archive_secret_sealed) if tenant.archive_secret_sealed else ""
        st = State(
            corp_id=tenant.corp_id,
            mode=tenant.archive_mode or "off",
            secret_masked=masked(secret) if secret else "",
            secret=secret,
            sdk_path=tenant.archive_sdk_path or "",
            callback_url=rt.settings.archive_callback_url(tenant.slug),
            slug=tenant.slug,
            tenant_id=tenant_id,
        )
        pair = tenancy.archive_callback_pair(tenant, rt.box)
        if pair:
            st.callback_token, st.callback_key_masked = pair[0], masked(pair[1])
            st.callback_key = pair[1] if reveal_key else ""
        st.keys = [
            {
                "version": k.version,
                "public_pem": k.public_pem,
                "fingerprint": archive.key_fingerprint(k.public_pem),
                "used_at": k.used_at,
                "created_at": k.created_at,
            }
            for k in s.scalars(select(ArchiveKey).order_by(ArchiveKey.version.desc()))
        ]
        cursor = s.scalar(select(ArchiveCursor).where(ArchiveCursor.source == "archive"))
        if cursor is not None:
            # Stored batches whose search tokens wait for the indexer (PostgreSQL): a batch
            # queued for long means indexing fails (the worker's log says why).
            waiting, oldest = s.execute(select(func.count(), func.min(SearchBacklog.created_at))).one()
            st.cursor = {
                "seq": cursor.seq,
                "pulled_until": cursor.pulled_until,
                "pulled_at": cursor.pulled_at,
                **_error_parts(cursor.last_error),
                "search_waiting": waiting,
                "search_oldest": oldest,
                "search_stuck": oldest is not None and oldest < utcnow() - SEARCH_STUCK_AFTER,
            }
        st.names = staff_names(s)
        st.active_staff = list(
            s.scalars(select(Staff.userid).where(Staff.active.is_(True)).order_by(Staff.name))
        )
    return st


def _agree_pairs(rt, st: State, permitted: set[str]) -> list[tuple[str, str]]:
    """The archived members' contacts to ask WeCom about, newest first (a customer just added is
    the one just asked to agree), at most MAX_AGREE_PAIRS; the members WeCom does not archive
    are not asked about, nor use up the pairs asked."""
    with rt.db.tenant_session(st.tenant_id) as s:
        rows = s.execute(
            select(Follow.staff_userid, Customer.external_userid, Customer.id, Customer.name)
            .join(Customer, Customer.id == Follow.customer_id)
            .where(
                Follow.status.in_(("active", "half")), bulk.among(s, Follow.staff_userid, sorted(permitted))
            )
            .order_by(Follow.id.desc())
            .limit(MAX_AGREE_PAIRS + 1)
        ).all()
    st.truncated = len(rows) > MAX_AGREE_PAIRS
    for userid, ext, cid, name in rows[:MAX_AGREE_PAIRS]:
        st.pairs.append((userid, ext))
        st.customers[ext] = {"id": cid, "name": name}
    return st.pairs


def archive_client(rt, corp_id: str, secret: str) -> WeComClient:
    return WeComClient(
        corp_id,
        secret,
        base_url=rt.settings.wecom_base_url,
        max_retries=1,
        network_retries=1,
        max_wait=PAGE_MAX_WAIT_S,
        urgent_max_wait=PAGE_MAX_WAIT_S,
    )


async def _live(rt, st: State) -> dict:
    """Who is archived and who has not agreed, asked from WeCom now; never raises."""
    out: dict = {
        "checked": False,
        "error": "",
        "permit": [],
        "not_permitted": [],
        "disagree": [],
        "agreed": 0,
    }
    if st.mode == "off" or not st.secret:
        return out
    try:
        async with archive_client(rt, st.corp_id, st.secret) as client:
            # in the directory's own spelling: WeCom takes a userid in any case, and its list may
            # spell one otherwise than the sync kept it (ZhangSan had read as not archived, his
            # customers who said no not listed, where the worker counted him archived)
            spelt = {u.lower(): u for u in st.names}
            permit = [spelt.get(u.lower(), u) for u in await archive.permit_users(client)]
            permitted = set(permit)
            pairs = await run_in_threadpool(_agree_pairs, rt, st, permitted) if permitted else []
            answers = await archive.check_single_agree(client, pairs) if pairs else []
    except WeComRateLimited as exc:
        out["error"] = f"{LIMITED} (errcode {exc.errcode})"
        return out
    except WeComFailure as exc:
        out["error"] = wecom_message(exc)
        return out
    out["checked"] = True
    out["permit"] = [{"userid": u, "name": st.names.get(u, u)} for u in permit]
    out["not_permitted"] = [
        {"userid": u, "name": st.names.get(u, u)} for u in st.active_staff if u not in permitted
    ]
    for item in answers:
        if item.get("agree_status") == "Disagree":
            ext = item.get("external_userid", "")
            customer = st.customers.get(ext, {})
            out["disagree"].append(
                {
                    "customer_id": customer.get("id"),
                    "customer": customer.get("name") or ext,
                    "userid": item.get("userid", ""),
                    "staff_name": st.names.get(item.get("userid", ""), item.get("userid", "")),
                }
            )
        else:
            out["agreed"] += 1
    return out


async def _page(
    request: Request,
    viewer: Viewer,
    error: str = "",
    form: dict | None = None,
    status: int = 200,
    reveal_key: bool = False,
    error_at: str = "",
    **extra,
):
    """The page; `error` beside the form it is about (`error_at`: "callback", "keys"; else at
    the top), and `form` the values typed there, kept."""
    rt = request.app.state.rt
    done = request.query_params.get("done") or ""
    st = await run_in_threadpool(_load, rt, viewer.tenant_id, reveal_key)
    live = await _live(rt, st)
    next_version = max((k["version"] for k in st.keys), default=0) + 1
    response = render(
        request,
        "archive.html",
        {
            "st": st,
            "live": live,
            "modes": MODES,
            "form": form or {},
            "error": error,
            "error_at": error_at,
            "done": DONE.get(done),
            "new_version": _int(request.query_params.get("ver")),
            "next_version": next_version,
            "truncated": st.truncated,
            "url_warning": rt.settings.public_url_warning(),
            **extra,
        },
        status_code=status,
    )
    # a key pair shown in full, a private key typed back into its form: not for any cache
    response.headers["Cache-Control"] = "no-store"
    return response


_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def _int(value) -> int | None:
    """A whole number in digits, full width (a Chinese IME's １) as well, else None (int()
    alone also reads ٣ and 1_0, NFKC ² and ⑦)."""
    text = str(value).translate(_FULL_WIDTH_DIGITS).strip() if value is not None else ""
    # (none of ours has 10 digits; Python refuses to read one of over 4,300 at all)
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def _error_parts(last_error: str) -> dict:
    """The last pull error, when it happened, and the seq of the message it names (one the
    archive cannot decrypt holds the pull there until it is skipped: the page says how)."""
    stamped = _STAMPED.fullmatch(last_error)
    at = datetime.strptime(stamped[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC) if stamped else None
    error = stamped[2] if stamped else last_error
    seq = _NAMED_SEQ.search(error)
    return {"error_at": at, "error": error, "stuck_seq": int(seq[1]) if seq else None}


@router.get("/setup/archive", response_class=HTMLResponse)
async def archive_page(request: Request, viewer: PageViewer):
    require_admin(viewer)
    return await _page(request, viewer)


@router.post("/setup/archive")
async def archive_save(request: Request, viewer: PageViewer):
    """Mode, Secret (blank keeps the stored one) and the SDK's path. The Secret archiving will
    use is checked with WeCom (a token is fetched with it) before anything is stored: a new
    one whatever the mode, the stored one when archiving is on."""
    require_admin(viewer)
    rt = request.app.state.rt
    form = await request.form()
    mode = str(form.get("mode", ""))  # missing: refused below, not taken as "off"
    secret = str(form.get("secret", "")).strip()
    sdk_path = str(form.get("sdk_path", "")).strip()
    shown = {"mode": mode, "sdk_path": sdk_path[:MAX_SDK_PATH_CHARS]}
    if mode not in MODES:
        return await _page(request, viewer, "请选择存档方式 / choose an archive mode", shown, 422)
    if len(secret) > MAX_SECRET_CHARS:
        message = (
            f"Secret 太长（企业微信的 Secret 是 43 位）/ the Secret is over {MAX_SECRET_CHARS} characters"
        )
        return await _page(request, viewer, message, shown, 422)
    if len(sdk_path) > MAX_SDK_PATH_CHARS:
        message = (
            f"SDK 路径最多 {MAX_SDK_PATH_CHARS} 个字符 / the path is over {MAX_SDK_PATH_CHARS} characters"
        )
        return await _page(request, viewer, message, shown, 422)
    if mode == "sdk" and sdk_path:  # before asking WeCom
        try:
            finance_sdk.check_path(sdk_path, here=rt.settings.embedded_worker)
        except ValueError as exc:
            return await _page(request, viewer, str(exc), shown, 422)
    corp_id, stored = await run_in_threadpool(_corp_and_secret, rt, viewer.tenant_id)
    checked = secret or (stored if mode != "off" else "")
    if checked:
        try:
            async with archive_client(rt, corp_id, checked) as client:
                await client.get_token()
                # WeCom gives a token for any of the corp's secrets: only an archive call tells
                # the 会话存档 Secret from the app's or 客户联系's pasted in its place (its other
                # answers, a rate limit, a timeout, say nothing of the Secret: the page tells them)
                try:
                    await archive.permit_users(client)
                except WeComNotPermitted:
                    raise
                except WeComFailure:
                    pass
        except WeComFailure as exc:
            which = "" if secret else "已保存的"
            message = f"{which}会话存档 Secret 未通过企业微信检查：{_archive_secret_problem(exc)}"
            return await _page(request, viewer, message, shown, 422)

    def save() -> str:
        try:
            with rt.db.tenant_session(viewer.tenant_id) as s:
                tenant = s.get(Tenant, viewer.tenant_id)
                tenancy.save_archive_settings(
                    s,
                    rt.box,
                    tenant,
                    mode,
                    secret,
                    sdk_path if mode == "sdk" else "",
                    check_file=rt.settings.embedded_worker,  # the worker pulls on this machine
                )
        except ValueError as exc:  # said in both languages by the service
            return str(exc)
        return ""

    problem = await run_in_threadpool(save)
    if problem:
        return await _page(request, viewer, problem, shown, 422)
    rt.intake.forget(await run_in_threadpool(_slug, rt, viewer.tenant_id))  # a pair may be new
    return RedirectResponse("/setup/archive?done=saved", 303)


def _archive_secret_problem(exc: WeComFailure) -> str:
    if isinstance(exc, WeComNotPermitted):
        return (
            "这不是会话存档的 Secret（像是应用或客户联系的）：请在企业微信管理后台「管理工具 → 会话内容存档」"
            "复制它自己的 Secret / this Secret may not call the archive's APIs: it is another app's;"
            f" copy the archive's own Secret (errcode {exc.errcode})"
        )
    if isinstance(exc, WeComInvalidSecret):  # WeCom's own hint names the app's and 客户联系's pages
        return (
            "Secret 不正确：请在企业微信管理后台「管理工具 → 会话内容存档」重新复制"
            "（不是应用或客户联系的 Secret）"
            f" / the Secret is wrong: copy the archive's own Secret again (errcode {exc.errcode})"
        )
    return wecom_message(exc)


def _corp_and_secret(rt, tenant_id: int) -> tuple[str, str]:
    """The corp id, and the archive Secret stored ('' if none)."""
    with rt.db.tenant_session(tenant_id) as s:
        tenant = s.get(Tenant, tenant_id)
        sealed = tenant.archive_secret_sealed
        return tenant.corp_id, rt.box.open(sealed) if sealed else ""


def _slug(rt, tenant_id: int) -> str:
    with rt.db.tenant_session(tenant_id) as s:
        return s.get(Tenant, tenant_id).slug


def _save_callback(rt, tenant_id: int, token: str, aes_key: str) -> str:
    """Store the archive callback pair (blank both: a new random one); '' or the problem."""
    with rt.db.tenant_session(tenant_id) as s:
        tenant = s.get(Tenant, tenant_id)
        try:
            tenancy.save_archive_callback(s, rt.box, tenant, token, aes_key)
        except ValueError as exc:
            return str(exc)  # what WeCom's console would refuse, in both languages
        slug = tenant.slug
    rt.intake.forget(slug)  # this server verifies with the new pair from now on
    return ""


@router.post("/setup/archive/callback/generate")
async def callback_generate(request: Request, viewer: PageViewer):
    """A new random Token and EncodingAESKey for the 会话存档 app's callback, shown in full
    once, to paste into WeCom's console with the archive callback URL."""
    require_admin(viewer)
    rt = request.app.state.rt
    await run_in_threadpool(_save_callback, rt, viewer.tenant_id, "", "")
    # Shown in full in the answer to this POST only (a link or a reload of the page shows it
    # masked; the browser asks before sending the POST again, and the button asks first).
    return await _page(request, viewer, reveal_key=True, generated=GENERATED)


@router.post("/setup/archive/callback/reveal")
async def callback_reveal(request: Request, viewer: PageViewer):
    """The EncodingAESKey in full, for an admin who needs to paste it again."""
    require_admin(viewer)
    return await _page(request, viewer, reveal_key=True)


@router.post("/setup/archive/callback")
async def callback_save(request: Request, viewer: PageViewer):
    """The Token and EncodingAESKey as the admin typed them (e.g. from 随机获取 in WeCom)."""
    require_admin(viewer)
    rt = request.app.state.rt
    form = await request.form()
    token = str(form.get("token", "")).strip()
    aes_key = str(form.get("encoding_aes_key", "")).strip()
    typed = {"token": token[:64], "encoding_aes_key": aes_key[:64]}
    if not token or not aes_key:
        problem = "请同时填写 Token 和 EncodingAESKey / both Token and EncodingAESKey are needed"
    else:
        problem = await run_in_threadpool(_save_callback, rt, viewer.tenant_id, token, aes_key)
    if problem:
        return await _page(request, viewer, problem, typed, 422, error_at="callback")
    return RedirectResponse("/setup/archive?done=callback#callback", 303)


def _version(form, keys_exist: set[int]) -> tuple[int | None, str]:
    version = _int(form.get("version"))
    if version is None or version < 1 or version > 10000:
        return None, "版本号应为正整数，与企业微信后台的公钥版本一致 / the version is a positive integer"
    if version in keys_exist:
        return None, (
            f"版本 {version} 已有密钥：请用新的版本号，或先删除这把（例如传错了私钥）"
            f" / version {version} already has a key: use a new version, or remove that one first"
        )
    return version, ""


def _versions(rt, tenant_id: int) -> set[int]:
    with rt.db.tenant_session(tenant_id) as s:
        return set(s.scalars(select(ArchiveKey.version)))


def _store_key(rt, tenant_id: int, version: int, private_pem: str, public_pem: str) -> str:
    """Stored, or why not: another key was put under the version meanwhile (a double click,
    another admin), which is kept."""
    try:
        with rt.db.tenant_session(tenant_id) as s:
            conversations.add_archive_key(s, rt.box, version, private_pem, public_pem)
    except conversations.KeyVersionTaken:
        return f"版本 {version} 已有密钥（刚由别人或另一次点击加上）/ version {version} already has a key"
    return ""


@router.post("/setup/archive/keys/generate")
async def key_generate(request: Request, viewer: PageViewer):
    require_admin(viewer)
    rt = request.app.state.rt
    form = await request.form()
    version, problem = _version(form, await run_in_threadpool(_versions, rt, viewer.tenant_id))
    if problem:
        typed = {"generate_version": str(form.get("version", ""))[:20]}
        return await _page(request, viewer, problem, typed, 422, error_at="keys")
    private_pem, public_pem = await run_in_threadpool(archive.generate_key_pair)
    if problem := await run_in_threadpool(_store_key, rt, viewer.tenant_id, version, private_pem, public_pem):
        return await _page(request, viewer, problem, {}, 422, error_at="keys")
    return RedirectResponse(f"/setup/archive?done=generated&ver={version}#key-{version}", 303)


def public_of(private_pem: str) -> str:
    """The PKCS#1 public PEM of an RSA private key; ValueError (readable) if it is not one."""
    blocks = _PEM_BLOCK.findall(private_pem)  # (a public key pasted beside it is left out)
    if len(blocks) > 1:  # only the first would be kept
        raise ValueError("一次只能上传一把私钥 / one private key at a time")
    if blocks and "ENCRYPTED" in blocks[0]:  # BEGIN ENCRYPTED PRIVATE KEY, or Proc-Type: 4,ENCRYPTED
        raise ValueError(
            "私钥有密码保护，请先去掉密码（openssl rsa -in key.pem -out plain.pem）"
            " / the key has a passphrase: remove it first (openssl rsa -in key.pem -out plain.pem)"
        )
    if not blocks and _PUBLIC_PEM.search(private_pem):
        raise ValueError("这是公钥，请上传私钥 / this is the public key: upload the private key")
    try:
        keys = archive.load_private_keys({0: private_pem})
    except ValueError:
        raise ValueError(
            "不是 RSA 私钥（需要未加密的 PEM：BEGIN RSA PRIVATE KEY 或 BEGIN PRIVATE KEY）"
            " / not an RSA private key (an unencrypted PEM, PKCS#1 or PKCS#8)"
        ) from None
    if keys[0].key_size != 2048:  # what the admin console takes for 会话存档 (REFERENCE 11)
        raise ValueError(
            f"企业微信会话存档要求 2048 位 RSA 密钥，这把是 {keys[0].key_size} 位"
            f" / WeCom's archive takes a 2048-bit RSA key, not {keys[0].key_size}-bit"
        )
    return (
        keys[0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        .decode()
    )


@router.post("/setup/archive/keys/upload")
async def key_upload(request: Request, viewer: PageViewer):
    require_admin(viewer)
    rt = request.app.state.rt
    form = await request.form()
    pasted = str(form.get("private_pem", "") or "")
    # what was typed, kept in the form when it is refused (a file must be chosen again)
    typed = {"upload_version": str(form.get("version", ""))[:20], "private_pem": pasted[:MAX_PEM_BYTES]}

    async def refused(problem: str):
        return await _page(request, viewer, problem, typed, 422, error_at="keys")

    version, problem = _version(form, await run_in_threadpool(_versions, rt, viewer.tenant_id))
    if problem:
        return await refused(problem)
    pem = pasted
    upload = form.get("private_file")
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_PEM_BYTES + 1)
        if len(data) > MAX_PEM_BYTES:
            return await refused("文件太大，不是私钥 / the file is too large for a key")
        pem = data.decode("utf-8", errors="replace")
    pem = pem.strip()
    if not pem:
        return await refused("请粘贴或选择私钥文件 / paste or choose the private key")
    try:
        public_pem = public_of(pem)
    except ValueError as exc:
        return await refused(str(exc))
    if block := _PEM_BLOCK.search(pem):  # the key alone, without what was pasted around it
        pem = block.group(0)
    if problem := await run_in_threadpool(_store_key, rt, viewer.tenant_id, version, pem + "\n", public_pem):
        return await refused(problem)
    return RedirectResponse(f"/setup/archive?done=uploaded&ver={version}#key-{version}", 303)


def _remove_key(rt, tenant_id: int, version: int, fingerprint: str | None) -> bool | str:
    """Removed (False: there was none), or why not (conversations.KeyInUse)."""
    try:
        with rt.db.tenant_session(tenant_id) as s:
            return conversations.remove_archive_key(s, version, fingerprint)
    except conversations.KeyInUse as exc:
        return str(exc)


@router.post("/setup/archive/keys/{version}/remove")
async def key_remove(request: Request, viewer: PageViewer, version: int):
    """A key uploaded wrong (every message of its version failed to decrypt) is removed, so
    that the right one can be added under the same version: the key the page showed (its
    fingerprint), never one that decrypted messages."""
    require_admin(viewer)
    shown = (await request.form()).get("fingerprint")
    rt = request.app.state.rt
    done = await run_in_threadpool(_remove_key, rt, viewer.tenant_id, version, str(shown) if shown else None)
    if isinstance(done, str):
        return await _page(request, viewer, done, {}, 409, error_at="keys")
    if not done:
        raise ClearNotFound(f"没有版本 {version} 的密钥（可能已删除） / no key of version {version}")
    return RedirectResponse("/setup/archive?done=removed#keys", 303)
