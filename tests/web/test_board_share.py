"""The SLA board page (/sla) against the API's figures."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from siyu.conversations import service as conversations
from siyu.insights.needs_reply import default_classifier

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class Item:
    seq: int
    msgid: str
    message: dict


def _text(n: int, sender: str, to: str, content: str, at: datetime) -> Item:
    msgid = f"hunt{n}-{uuid.uuid4().hex[:8]}"
    message = {
        "msgid": msgid,
        "action": "send",
        "from": sender,
        "tolist": [to],
        "roomid": "",
        "msgtime": int(at.timestamp() * 1000),
        "msgtype": "text",
        "text": {"content": content},
    }
    return Item(n, msgid, message)


def test_the_on_time_share_does_not_read_100_percent_when_a_wait_was_answered_late(as_role, db, world):
    """A past day (nothing else of the suite happens on it): 201 customers of 张三 asked at noon,
    200 were answered within a minute, one after 5 minutes (past step 1's 2 minutes). The API
    says share 200/201 = 0.995 with answered_late 1; the page's 按时占比 cell rounds it to
    "100%" right beside 超时回复 1 - a team lead reads "everyone answered on time"."""
    day = "2021-03-03"
    noon = datetime(2021, 3, 3, 12, 0, tzinfo=SHANGHAI)
    sfx = uuid.uuid4().hex[:6]
    items = []
    for i in range(201):
        ext = f"wmhunt{i}{sfx}"
        items.append(_text(2 * i, ext, "zhangsan", "请问有货吗？", noon))
        late = i == 0
        items.append(_text(2 * i + 1, "zhangsan", ext, "有的", noon + timedelta(seconds=300 if late else 30)))
    with db.tenant_session(world.a.id) as s:
        conversations.ingest(s, items, default_classifier().classify)

    api = as_role("admin").get("/api/v1/sla/board", params={"day": day}).json()
    first = api["within_steps"][0]
    assert (first["answered"], first["answered_late"], first["outlived"]) == (200, 1, 0)
    assert first["share"] < 1

    page = as_role("admin").get("/sla", params={"day": day})
    assert page.status_code == 200
    table = re.search(r'<table class="data figures" id="within-steps">.*?</table>', page.text, re.S)[0]
    row = re.search(r"<tbody><tr>(.*?)</tr>", table, re.S)[1]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    share, answered, late = cells[1], cells[2], cells[3]
    assert (answered, late) == ("200", "1")
    assert share != "100%", f"按时占比 reads {share} with a wait answered late"
