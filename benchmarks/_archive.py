"""Shared pieces of the archive benchmarks (ingest.py, archive_pull.py, escalation.py): a
fresh database, a corp's organisation, and archived messages shaped like WeCom's
(REFERENCE 11.3) with Chinese text; and the driver of a benchmark run in a work dir."""

from __future__ import annotations

import json
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉建红飞鑫宇浩凯婷雪琳晨阳"

PRODUCTS = [
    "iPhone15",
    "小米14",
    "空气净化器",
    "扫地机器人",
    "护肤套装",
    "奶粉",
    "跑步机",
    "羽绒服",
    "床垫",
    "咖啡机",
]
QUESTIONS = [
    "请问{p}还有货吗？",
    "{p}现在什么价格",
    "能便宜点吗",
    "我的订单{o}什么时候发货？",
    "快递三天了还没到，帮我查一下",
    "{p}有没有优惠活动",
    "这个颜色有现货吗",
    "可以开发票吗",
    "怎么申请退款",
    "{p}保修多久？",
    "收到的{p}有划痕，怎么处理",
    "你好，在吗",
    "会员卡怎么办理",
    "周末门店几点开门？",
    "{p}和上一代有什么区别",
    "我想换一个尺码",
    "地址填错了，能改吗？订单号{o}",
    "支持分期付款吗",
    "为什么我的优惠券用不了",
    "帮我预约一下明天下午安装",
]
FOLLOW_UPS = ["另外运费怎么算", "还有，能送到公司吗", "多久能到？", "那我什么时候能收到", "顺便问下有赠品吗"]
REPLIES = [
    "您好，{p}目前有现货，今天下单明天发货",
    "亲，这边帮您查了一下，订单{o}已经发出，预计后天送达",
    "现在活动价是{n}元，比平时便宜{m}元",
    "可以的，下单时备注开票信息就行",
    "退款在订单详情里点申请售后，我这边帮您加急处理",
    "保修期是两年，全国联保",
    "非常抱歉给您带来不便，麻烦发一下照片，我们给您换新",
    "在的，请问有什么可以帮您？",
    "会员卡在小程序里就可以免费领取",
    "门店周末早上九点到晚上九点营业",
    "已经帮您改好了，请放心",
    "支持花呗和信用卡分期，最多十二期免息",
    "优惠券需要满{n}元才能使用哦",
    "已为您预约明天下午两点上门安装",
    "确定要取消这个订单吗？",
    "还有其他问题吗？",
]
CLOSINGS = [
    "好的谢谢",
    "好的",
    "谢谢",
    "收到",
    "OK",
    "明白了，谢谢",
    "好的，辛苦了",
    "嗯嗯",
    "👍",
    "没有了，谢谢",
    "我再考虑一下",
]
GROUP_TALK = ["群里有人知道{p}怎么样吗", "今天有直播吗？", "{p}什么时候补货", "已下单，期待", "哈哈哈"]
INTERNAL = ["这个客户帮忙跟进一下", "{p}库存还有多少？", "下午开会别忘了", "报价单发你了"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- a fresh database


@contextmanager
def fresh_database(server_url: str | None, workdir: Path) -> Iterator[str]:
    """A SQLite file in `workdir`, or a fresh PostgreSQL database on `server_url` that is
    dropped afterwards (like tests/conftest.py). Yields its SQLAlchemy URL."""
    if not server_url:
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{workdir / 'data' / 'siyu.db'}"
        return
    from tests.support import postgres_database

    with postgres_database(server_url, "siyu_bench") as url:
        yield url


@contextmanager
def migrated_database(server_url: str | None, workdir: Path) -> Iterator[tuple]:
    """A fresh database (`fresh_database`), migrated: (the settings a benchmark's Siyu runs
    with, the Database), disposed of afterwards."""
    from siyu.config import Settings
    from siyu.db import Database

    with fresh_database(server_url, workdir) as url:
        settings = Settings(
            data_dir=workdir / "data",
            database_url=url,
            secret_key=secrets.token_urlsafe(32),
            auto_migrate=False,
            staff_sync_interval_s=0,
        )
        # the limits `siyu worker` runs with: the ingest measured is the one it does
        db = Database(url, settings.database_timeouts)
        try:
            db.migrate()
            yield settings, db
        finally:
            db.dispose()


def run_in_workdir(prefix: str, run: Callable[[Path], dict], keep: bool = False) -> None:
    """`run(workdir)` in a new temp dir (removed afterwards unless `keep`), SIGTERM taken as
    Ctrl-C; its result printed as the last line, in JSON."""

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        result = run(workdir)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    finally:
        if keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, ensure_ascii=False))


# ---------------------------------------------------------------- the corp


def person_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def organisation(agents: int, team_size: int = 10, seed: int = 7) -> tuple[list[dict], list[dict]]:
    """(departments, staff) in the emulator's shape: a boss, teams of `team_size` agents
    under a leader each."""
    rng = random.Random(seed)
    teams = max(1, -(-agents // team_size))
    departments = [{"id": 1, "name": "总部", "parentid": 0, "department_leader": ["boss"]}]
    staff = [{"userid": "boss", "name": "王总", "department": [1], "mobile": "13800000000"}]
    for t in range(teams):
        leader = f"leader{t:02d}"
        departments.append(
            {"id": 10 + t, "name": f"销售{t + 1}部", "parentid": 1, "department_leader": [leader]}
        )
        staff.append(
            {
                "userid": leader,
                "name": person_name(rng),
                "department": [10 + t],
                "direct_leader": ["boss"],
                "mobile": f"139{t:08d}",
            }
        )
    for a in range(agents):
        staff.append(
            {
                "userid": f"agent{a:04d}",
                "name": person_name(rng),
                "department": [10 + a // team_size],
                "direct_leader": [f"leader{a // team_size:02d}"],
                "mobile": f"137{a:08d}",
            }
        )
    return departments, staff


def store_organisation(session, departments: list[dict], staff: list[dict]) -> None:
    """The organisation as a staff sync would store it (for runs without the emulator)."""
    from siyu.tenancy.models import Department, Staff

    for d in departments:
        session.add(
            Department(
                wecom_id=d["id"],
                name=d["name"],
                parent_wecom_id=d["parentid"],
                leaders=d["department_leader"],
            )
        )
    for s in staff:
        session.add(
            Staff(
                userid=s["userid"],
                name=s["name"],
                departments=s["department"],
                main_department=s["department"][0],
                direct_leaders=s.get("direct_leader", []),
                mobile=s.get("mobile", ""),
            )
        )


def new_tenant(db, box, name: str = "基准科技") -> int:
    """A tenant with made-up WeCom credentials (nothing here talks to WeCom)."""
    from siyu.tenancy.service import CorpCredentials, save_tenant
    from siyu.wecom.crypto import new_encoding_aes_key

    creds = CorpCredentials("ww" + secrets.token_hex(8), 1000002, "a", "c", "t", new_encoding_aes_key())
    with db.system_session() as s:
        return save_tenant(s, box, name, creds, slug="b" + secrets.token_hex(4)).id


def store_customers(db, tenant_id: int, externals: list[str], seed: int = 11) -> None:
    """Customer rows (as contact sync stores them), in bulk."""
    from siyu.customers.models import Customer

    rng = random.Random(seed)
    rows = [
        {"tenant_id": tenant_id, "external_userid": ext, "name": person_name(rng), "gender": 1 + i % 2}
        for i, ext in enumerate(externals)
    ]
    with db.engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            conn.execute(insert(Customer), rows[i : i + 5000])


def external_userid(i: int) -> str:
    return f"wm{i:08d}" + "x" * 20  # WeCom's are 32 characters; "wm" marks a customer


# ---------------------------------------------------------------- messages


def ms(at: datetime | float) -> int:
    return int((at.timestamp() if isinstance(at, datetime) else at) * 1000)


def fill(template: str, rng: random.Random) -> str:
    return template.format(
        p=rng.choice(PRODUCTS),
        o=f"{rng.randrange(10**11, 10**12)}",
        n=rng.randrange(99, 5000),
        m=rng.randrange(10, 500),
    )


def text_message(msgid: str, sender: str, to: str, at_ms: int, content: str, roomid: str = "") -> dict:
    return {
        "msgid": msgid,
        "action": "send",
        "from": sender,
        "tolist": [to] if to else [],
        "roomid": roomid,
        "msgtime": at_ms,
        "msgtype": "text",
        "text": {"content": content},
    }


def image_message(msgid: str, sender: str, to: str, at_ms: int) -> dict:
    return {
        "msgid": msgid,
        "action": "send",
        "from": sender,
        "tolist": [to],
        "roomid": "",
        "msgtime": at_ms,
        "msgtype": "image",
        "image": {
            "md5sum": secrets.token_hex(16),
            "filesize": 48213,
            "sdkfileid": "CtYBMzA2OTAyMDEwMjA0NjIz",
        },
    }


def recall_message(msgid: str, sender: str, to: str, at_ms: int, pre_msgid: str) -> dict:
    return {
        "msgid": msgid,
        "action": "recall",
        "from": sender,
        "tolist": [to],
        "roomid": "",
        "msgtime": at_ms,
        "msgtype": "revoke",
        "revoke": {"pre_msgid": pre_msgid},
    }


# ---------------------------------------------------------------- py-spy


def summarize_folded(path: Path, top: int = 25) -> str:
    """A py-spy `--format raw` (folded stacks) file as two tables: time where it is spent
    (leaf frames) and inclusive time of Siyu's own functions."""
    from collections import Counter

    own: Counter = Counter()
    inclusive: Counter = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[_short(frames[-1])] += n
        for frame in {_short(f) for f in frames if "(siyu/" in f or "/siyu/" in f}:
            inclusive[frame] += n
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples", "  own time (leaf frames):"]
    lines += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines.append("  inclusive time of siyu functions:")
    lines += [f"    {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """'fn (/long/path/site-packages/pkg/mod.py:12)' -> 'fn (pkg/mod.py:12)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for cut in ("site-packages/", "/src/", "/lib/python3"):
        if cut in where:
            where = where.split(cut, 1)[1]
            break
    return f"{name} ({where})" if where else name


# ---------------------------------------------------------------- the emulator, escalation edition


def escalation_emulator_app():
    """benchmarks._util's emulator (no rate limit; WeCom's per-member app message limits
    kept) plus a compact list of the app messages delivered: [[received_at, touser, title,
    url], ...] from index `after` on, leaving out those WeCom would have dropped for the
    members' limits (counted by app_messages_dropped), not those its duplicate check drops."""
    from fastapi import HTTPException

    from benchmarks._util import bench_emulator_app

    app = bench_emulator_app(rate_limit_per_minute=10**9)
    emu = app.state.emulator

    @app.get("/_bench/corps/{corp_id}/app_messages_compact")
    async def app_messages_compact(corp_id: str, after: int = 0):
        corp = emu.state.corps.get(corp_id)
        if corp is None:
            raise HTTPException(404, f"unknown corp {corp_id}")
        out = []
        for m in corp.app_messages[after:]:
            # a card sent again is counted even where WeCom's duplicate check would drop it:
            # how WeCom compares is not known for certain, and a resend is the engine's fault
            if not m["recipients"] and not m.get("duplicate_of"):
                continue
            body = m["payload"]
            card = body.get("textcard") or {}
            out.append([m["received_at"], body.get("touser", ""), card.get("title", ""), card.get("url", "")])
        return out

    @app.get("/_bench/corps/{corp_id}/app_messages_dropped")
    async def app_messages_dropped(corp_id: str):
        corp = emu.state.corps.get(corp_id)
        return {"dropped": sum(len(m["dropped"]) for m in corp.app_messages) if corp else 0}

    @app.get("/_bench/corps/{corp_id}/app_messages_count")
    async def app_messages_count(corp_id: str):
        corp = emu.state.corps.get(corp_id)
        return {"count": len(corp.app_messages) if corp else 0}

    return app


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "emulator" and sys.argv[2] == "--port":
        here = Path(__file__).resolve().parent
        for p in (str(here.parent), str(here.parent / "src")):
            if p not in sys.path:
                sys.path.insert(0, p)
        import uvicorn

        uvicorn.run(
            escalation_emulator_app(),
            host="127.0.0.1",
            port=int(sys.argv[3]),
            log_level="warning",
            access_log=False,
            loop="uvloop",
        )
    else:
        sys.exit("usage: python benchmarks/_archive.py emulator --port PORT")
