"""A row's 暂缓 or 无需回复 tapped on the board after the member had answered that customer: the
board came back at the row after it (#w<next>), but said 这个会话已经不在等待回复了 at the top of
the page, out of sight on a phone (200 rows down). It says so where the page lands, above the row
after it, as for a row marked 无需回复."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.support.signed_in import SignedIn

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOT_WAITING = "这个会话已经不在等待回复了。"


def _said_where_it_lands(page: str, location: str) -> None:
    landed = location.partition("#")[2]
    said = re.findall(r'role="status" id="done">(.*?)</p>', page)
    assert said == [NOT_WAITING], said
    if landed == "done":
        return
    # else said in the row landed at, or just above it (as a row marked 无需回复 is)
    row = re.search(rf'<li class="cust conv" data-conversation="\d+" id="{landed}">.*?</li>', page, re.S)
    assert row, landed
    just_above = page[: row.start()].rstrip()[-400:]
    assert NOT_WAITING in row[0] or re.search(r'id="done">[^<]*</p>\s*</li>$', just_above), (
        f"the page lands at #{landed}, the notice is at the top of the board"
    )


@pytest.mark.parametrize("button", ["snooze", "dismiss"])
def test_a_row_answered_meanwhile_says_so_where_the_board_comes_back(local, button):
    w = local
    w.t0 = datetime(2025, 9, 9, 10, 0, tzinfo=SHANGHAI)
    w.clock(0)
    w.policy()
    for n, ext in enumerate(("wma", "wmb", "wmc")):
        w.say(f"请问发货了吗 {ext}", at=n * 10, ext=ext)
    # the middle row is tapped: the board comes back at the row after it, below another
    a, b = w.conversation("wmb").id, w.conversation("wmc").id
    w.clock(60)
    agent = SignedIn(w.rt, w.tenant_id, "agent", "zhangsan", "张三")
    board = agent("GET", "/sla").text
    assert f'name="gone" value="#w{b}"' in board
    w.reply("已发货", at=50, ext="wmb")  # answered after the board was drawn
    form = {"next": f"/sla#w{a}", "gone": f"#w{b}"}
    if button == "snooze":
        r = agent("POST", f"/conversations/{a}/snooze", form={**form, "minutes": "15"})
    else:
        row = re.search(rf'id="w{a}">.*?</li>', board, re.S)[0]
        msgid = re.search(r'name="msgid" value="([^"]*)"', row)[1]
        r = agent("POST", f"/conversations/{a}/dismiss", form={**form, "msgid": msgid})
    assert r.status_code == 303
    location = r.headers["location"]
    assert "done=not_waiting" in location, location
    page = agent("GET", location.partition("#")[0]).text
    _said_where_it_lands(page, location)
